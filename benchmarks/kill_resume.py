"""Kill ``nas search`` with SIGKILL at random moments, resume it each time, and count what was lost.

One tiny search (both stages) is killed ``--kills`` times — in the cheap stage after a random
number of candidates, and in the proxy stage at a random delay, right after a checkpoint is
written, or right after a trial is told to Optuna — and re-run with the same command after each
kill; the last run goes to the end. After every kill the Optuna journal and the per-trial
checkpoints are snapshot; at the end the benchmark reports:

- **lost**: finished trials (cheap COMPLETE; proxy COMPLETE/PRUNED/FAIL) seen after some kill
  that are missing or changed at the end (target 0);
- **duplicated**: cheap candidates beyond ``--candidates``, proxy trainings (a config at one
  fidelity: the proxy stage trains a config once per rung it reaches) finished twice (0);
- **recomputed**: finished proxy trials launched again in a later Tune session (Tune's
  ``params.json``), checkpointed epochs trained again (an epoch's history entry in a checkpoint
  at some kill that differs at the end: its time would), checkpoints that went back (0);
- that the storage still opens in Optuna and in optuna-dashboard (its WSGI API), no trial is
  left RUNNING, and what became of Ray's processes after each kill (orphans and their lifetime).

    .venv/bin/python -m benchmarks.kill_resume [--kills 5] [--seed 0] [--workers 2]

Writes ``runs/bench/kill_resume.json``; the run itself is kept in ``runs/bench/kill_resume_run/``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

NAME = "kr"
OPTIONS = ["--budget", "45G", "--candidates", "300", "--trials", "3", "--epochs", "2", "--images", "32"]
# halving: kills land in a bottom rung and between rungs too, the harder resume of the two proxy stages
OPTIONS += ["--img-size", "64", "--proxy-stage", "halving"]
FINISHED = ("COMPLETE", "PRUNED", "FAIL")
TRIALS, EPOCHS = int(OPTIONS[OPTIONS.index("--trials") + 1]), int(OPTIONS[OPTIONS.index("--epochs") + 1])


# -- reading the run -----------------------------------------------------------------------------
def _storage(run: Path) -> Any:
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    return JournalStorage(JournalFileBackend(str(run / "optuna.journal")))


def _trials(storage: Any, study: str, states: tuple[str, ...] | None = None) -> list:
    for s in storage.get_all_studies():
        if s.study_name == study:
            trials = storage.get_all_trials(s._study_id, deepcopy=False)
            return [t for t in trials if states is None or t.state.name in states]
    return []


def _checkpoint(path: Path) -> tuple[int, list[list[Any]]]:
    """(epoch, history) of a trial checkpoint; each history entry is (epoch, epoch_time_s, loss):
    a re-trained epoch would show up as a changed entry (its time differs)."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - an unreadable checkpoint counts as none
        return -1, []
    return int(state["epoch"]), [[h["epoch"], h["epoch_time_s"], h["loss"]] for h in state["history"]]


def _training(t: Any) -> str:
    """What one training is: its config key at its fidelity (a config trains once per rung)."""
    epochs = (t.user_attrs.get("fidelity") or {}).get("epochs", EPOCHS)
    return f"{t.user_attrs.get('key')}@{epochs}"


def snapshot(run: Path) -> dict[str, Any]:
    """What the run holds right now (read after a kill: nothing is writing)."""
    storage = _storage(run)
    proxy = _trials(storage, NAME)
    return {
        "cheap": {t.number: t.user_attrs["key"] for t in _trials(storage, f"{NAME}-cheap", ("COMPLETE",))},
        "proxy": {
            t.number: {"key": _training(t), "state": t.state.name, "values": t.values}
            for t in proxy
            if t.state.name in FINISHED and not t.user_attrs.get("interrupted")
        },
        "running": [t.number for t in proxy if t.state.name == "RUNNING"],
        "interrupted": [t.number for t in proxy if t.user_attrs.get("interrupted")],
        "checkpoints": {p.parent.name: _checkpoint(p)[0] for p in sorted(run.glob("trials/*/checkpoint.pt"))},
        "histories": {p.parent.name: _checkpoint(p)[1] for p in sorted(run.glob("trials/*/checkpoint.pt"))},
        "journal_bytes": (run / "optuna.journal").stat().st_size,
        "journal_torn_tail": not (run / "optuna.journal").read_bytes().endswith(b"\n"),
        "journal_lock_left": (run / "optuna.journal.lock").is_symlink(),
    }


def tune_sessions(run: Path) -> list[dict[str, Any]]:
    """Every Tune session of the run: its start time and the config keys of the trials it
    launched (Tune's ``trial_<n>`` folders; ``n`` is the proxy-study trial number, whose key Optuna
    holds even for a trial killed before Tune wrote anything into its folder)."""
    keys = {t.number: _training(t) for t in _trials(_storage(run), NAME)}
    out = []
    for d in sorted(run.glob("ray/tune-*")):
        trials = [
            {"number": int(t.name.split("_")[1]), "key": keys.get(int(t.name.split("_")[1]))} for t in d.glob("trial_*")
        ]
        out.append({"session": d.name, "started": int(d.name.split("-")[1]), "trials": trials})
    return out


# -- Ray's processes left by a kill ----------------------------------------------------------------
def session_processes(sid: int) -> list[tuple[int, str]]:
    """Live processes of the killed driver's session (it was started in a new session)."""
    procs = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) != sid or fields[0] == "Z":
                continue
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            procs.append((int(p.name), cmd[:80]))
        except (OSError, ValueError, IndexError):
            continue
    return procs


class OrphanWatch(threading.Thread):
    """Polls a killed session's processes once a second until they are gone (or ``limit``)."""

    def __init__(self, sid: int, limit: float = 600) -> None:
        super().__init__(daemon=True)
        self.sid, self.limit, self.started = sid, limit, time.monotonic()
        self.first = session_processes(sid)
        self.gone_after: float | None = 0.0 if not self.first else None
        self.start()

    def run(self) -> None:
        while self.gone_after is None and time.monotonic() - self.started < self.limit:
            time.sleep(1)
            if not session_processes(self.sid):
                self.gone_after = round(time.monotonic() - self.started, 1)

    def report(self) -> dict[str, Any]:
        left = session_processes(self.sid)
        return {
            "processes_after_1s": sorted({c.split()[0] if not c.startswith("ray::") else c for _, c in self.first}),
            "count_after_1s": len(self.first),
            "all_gone_after_s": self.gone_after,
            "still_alive": [c for _, c in left],
        }


# -- the benchmark ---------------------------------------------------------------------------------
def _wait(pred: Any, timeout: float, proc: subprocess.Popen, step: float = 0.1) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        if pred():
            return True
        time.sleep(step)
    return False


def trigger(kind: str, run: Path, proc: subprocess.Popen, rng: random.Random, candidates: int) -> str | None:
    """Wait for the kill moment of ``kind``; returns what it was, or None if the run ended first."""
    journal = run / "optuna.journal"
    if not _wait(journal.exists, 120, proc):
        return None
    storage = _storage(run)
    if kind == "cheap":
        done = len(_trials(storage, f"{NAME}-cheap", ("COMPLETE",)))
        if done >= candidates - 1:
            return None
        target = rng.randint(done + 1, candidates - 1)
        ok = _wait(lambda: len(_trials(storage, f"{NAME}-cheap", ("COMPLETE",))) >= target, 300, proc, 0.05)
        return f"cheap stage, after candidate {target}" if ok else None
    if not _wait(lambda: bool(_trials(storage, NAME)), 600, proc, 0.2):
        return None
    moment = rng.choice(("delay", "after-checkpoint", "after-tell"))
    if moment == "delay":
        delay = rng.uniform(1, 40)
        _wait(lambda: False, delay, proc)
        return f"proxy stage, {delay:.1f} s in" if proc.poll() is None else None
    if moment == "after-checkpoint":
        seen = {p: p.stat().st_mtime for p in run.glob("trials/*/checkpoint.pt")}

        def new_checkpoint() -> bool:
            return any(p not in seen or p.stat().st_mtime > seen[p] for p in run.glob("trials/*/checkpoint.pt"))

        ok = _wait(new_checkpoint, 600, proc, 0.02)
        time.sleep(rng.uniform(0, 0.5))
        return "proxy stage, just after a checkpoint was written" if ok else None

    def told() -> int:  # finished by a tell, not FAILed as interrupted by this run's start
        return sum(1 for t in _trials(storage, NAME, FINISHED) if not t.user_attrs.get("interrupted"))

    before = told()
    ok = _wait(lambda: told() > before, 600, proc, 0.05)
    return "proxy stage, just after a trial was told to Optuna" if ok else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kills", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="concurrent proxy trainings (default: %(default)s)")
    p.add_argument("--out", default="runs/bench/kill_resume_run")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    runs_dir = Path(args.out).resolve()
    shutil.rmtree(runs_dir, ignore_errors=True)
    runs_dir.mkdir(parents=True)
    run = runs_dir / NAME
    cmd = [sys.executable, "-m", "nas.cli", "search", *OPTIONS, "--name", NAME, "--runs-dir", str(runs_dir)]
    cmd += ["--workers", str(args.workers), "--no-progress"]
    candidates = int(OPTIONS[OPTIONS.index("--candidates") + 1])
    plan = (
        ["cheap", "cheap"] + ["proxy"] * max(0, args.kills - 2) if args.kills >= 3 else ["cheap", "proxy"][: args.kills]
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kills: list[dict[str, Any]] = []
    watches: list[OrphanWatch] = []
    snapshots: list[dict[str, Any]] = []
    started = time.perf_counter()
    segment = 0
    while True:  # one segment per start of the same command; the last one runs to the end
        segment += 1
        log = (runs_dir / f"segment{segment}.log").open("w")
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        if len(kills) < len(plan):
            kind = plan[len(kills)]
            what = trigger(kind, run, proc, rng, candidates)
            if what is None and proc.poll() is None and kind == "cheap":
                what = trigger("proxy", run, proc, rng, candidates)  # the cheap stage was already done
            if what is not None and proc.poll() is None:
                at = time.time()
                proc.send_signal(signal.SIGKILL)  # the driver only, as the OOM killer or kill -9 would
                proc.wait()
                log.close()
                time.sleep(1)
                watches.append(OrphanWatch(proc.pid))
                snap = snapshot(run)
                snapshots.append(snap)
                kills.append(
                    {
                        "kill": len(kills) + 1,
                        "at_unix": at,
                        "moment": what,
                        "segment_s": round(time.perf_counter() - t0, 1),
                        "cheap_done": len(snap["cheap"]),
                        "proxy_finished": len(snap["proxy"]),
                        "proxy_running": len(snap["running"]),
                        "checkpoint_epochs": snap["checkpoints"],
                        "journal_torn_tail": snap["journal_torn_tail"],
                        "journal_lock_left": snap["journal_lock_left"],
                    }
                )
                print(f"kill {len(kills)}: {what} ({kills[-1]['segment_s']} s into segment {segment})", flush=True)
                continue
        rc = proc.wait(timeout=1800)  # no kill left (or the run ended before its moment)
        log.close()
        final = {"rc": rc, "segment_s": round(time.perf_counter() - t0, 1), "kills_planned": len(plan)}
        break
    wall = time.perf_counter() - started
    end = snapshot(run)
    result = verify(run, kills, snapshots, end, candidates)
    deadline = time.monotonic() + 300  # let the orphan watches see the end of what a kill left
    while time.monotonic() < deadline and any(w.is_alive() for w in watches):
        time.sleep(1)
    result.update(
        {
            "command": " ".join(["nas", *cmd[3:]]).replace(str(runs_dir), "RUNS"),
            "kills": kills,
            "final_run": final,
            "wall_s": round(wall, 1),
            "orphans": [w.report() for w in watches],
        }
    )
    for w in watches:  # anything still alive would be a leak: say so, then clean up
        for pid, _ in session_processes(w.sid):
            os.kill(pid, signal.SIGKILL)
    print_report(result)
    from benchmarks.lib.common import write_result

    print(f"-> {write_result('kill_resume', result)}")
    ok = final and final["rc"] == 0 and not any(result["counts"].values()) and result["storage"]["ok"]
    return 0 if ok else 1


def verify(
    run: Path, kills: list[dict[str, Any]], snapshots: list[dict[str, Any]], end: dict[str, Any], candidates: int
) -> dict[str, Any]:
    from nas.core.cost import parse_flops
    from nas.engine import SearchOptions, select_candidates
    from nas.engine.cheap.select import feasible_pool, inside_support
    from nas.engine.proxy.fidelity import plan_rungs

    lost_cheap = lost_proxy = 0
    for snap in snapshots:
        lost_cheap += sum(1 for n, k in snap["cheap"].items() if end["cheap"].get(n) != k)
        lost_proxy += sum(1 for n, t in snap["proxy"].items() if end["proxy"].get(n) != t)
    finished_keys = [t["key"] for t in end["proxy"].values() if t["state"] in ("COMPLETE", "PRUNED")]
    storage = _storage(run)
    cheap_trials = _trials(storage, f"{NAME}-cheap")
    # every bottom-rung pick trained at the bottom fidelity, and the full rung's count at full fidelity
    pool = feasible_pool(cheap_trials, parse_flops("45G"))
    only = inside_support(pool) or None  # the default trust region and picks, as the driver applies them
    plan = plan_rungs(TRIALS, EPOCHS, pool=len(only or pool))
    picks = select_candidates(cheap_trials, plan[0].n, parse_flops("45G"), only, SearchOptions(budget=1).picks)
    expected = {f"{t.user_attrs['key']}@{plan[0].epochs}" for t in picks}
    full_trained = sum(1 for k in set(finished_keys) if k.endswith(f"@{EPOCHS}"))
    sessions = tune_sessions(run)
    # a proxy trial finished at kill k must not be launched by a Tune session started after kill k
    relaunched = 0
    for snap, kill in zip(snapshots, kills, strict=True):
        done_keys = {t["key"] for t in snap["proxy"].values()}
        later = [s for s in sessions if s["started"] >= int(kill["at_unix"])]
        relaunched += sum(1 for s in later for t in s["trials"] if t["key"] in done_keys)
    # an epoch in a checkpoint at some kill must end in the final history unchanged (not re-trained)
    retrained = 0
    for snap in snapshots:
        for name, hist in snap["histories"].items():
            final = end["histories"].get(name, [])
            retrained += sum(1 for i, h in enumerate(hist) if i >= len(final) or final[i] != h)
    launches: dict[str, int] = {}
    for s in sessions:
        for t in s["trials"]:
            launches[t["key"]] = launches.get(t["key"], 0) + 1
    regressions = 0
    series = [*snapshots, end]
    for a, b in zip(series, series[1:], strict=False):
        regressions += sum(1 for name, ep in a["checkpoints"].items() if b["checkpoints"].get(name, -1) < ep)
    counts = {
        "lost_cheap": lost_cheap,
        "lost_proxy": lost_proxy,
        "duplicated_cheap": max(0, len(end["cheap"]) - candidates),
        "duplicated_proxy": len(finished_keys) - len(set(finished_keys)),
        "missing_proxy": len(expected - set(finished_keys)) + max(0, plan[-1].n - full_trained),
        "recomputed_finished_trials": relaunched,
        "recomputed_epochs": retrained,
        "checkpoint_regressions": regressions,
        "left_running": len(end["running"]),
    }
    return {
        "counts": counts,
        "storage": storage_opens(run),
        "end": {
            "cheap_complete": len(end["cheap"]),
            "proxy_finished": len(end["proxy"]),
            "proxy_states": sorted(t["state"] for t in end["proxy"].values()),
            "interrupted_marked_fail": len(end["interrupted"]),
            "tune_sessions": len(sessions),
            "plan": [[r.n, r.epochs] for r in plan],
            "tune_launches_per_training": launches,
            "final_histories": {k: [h[0] for h in v] for k, v in end["histories"].items()},
        },
    }


def storage_opens(run: Path) -> dict[str, Any]:
    """Both studies load in Optuna; optuna-dashboard's API serves them with the same trials."""
    import optuna
    from optuna_dashboard import wsgi

    from nas.engine.record.storage import open_storage

    out: dict[str, Any] = {"ok": False}
    storage = open_storage(None, run)
    counts = {s: len(optuna.load_study(study_name=s, storage=storage).trials) for s in (f"{NAME}-cheap", NAME)}
    app = wsgi(open_storage(None, run))
    ids = {s["study_name"]: s["study_id"] for s in dashboard_api(app, "/api/studies")["study_summaries"]}
    served = {s: len(dashboard_api(app, f"/api/studies/{ids[s]}", "after=0")["trials"]) for s in counts}
    out.update({"optuna_trials": counts, "dashboard_trials": served, "ok": counts == served})
    return out


def wsgi_request(app: Any, method: str, path: str, query: str = "") -> tuple[str, bytes]:
    """Send one request to a WSGI app, as a browser would; returns (status line, body)."""
    import io

    status: dict[str, str] = {}

    def start_response(s: str, headers: list, exc_info: object = None) -> None:
        status["code"] = s

    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_LENGTH": "0",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "wsgi.url_scheme": "http",
    }
    body = b"".join(app(env, start_response))
    return status["code"], body


def dashboard_api(app: Any, path: str, query: str = "") -> dict[str, Any]:
    """GET ``path`` from optuna-dashboard's WSGI app, as the browser would; asserts 200."""
    code, body = wsgi_request(app, "GET", path, query)
    assert code.startswith("200"), (code, body[:300])
    return json.loads(body)


def print_report(r: dict[str, Any]) -> None:
    print(
        f"{len(r['kills'])} SIGKILLs, final run exit {r['final_run']['rc'] if r['final_run'] else None}, {r['wall_s']} s"
    )
    for k in r["kills"]:
        print(
            f"  kill {k['kill']}: {k['moment']}: cheap {k['cheap_done']}, proxy finished {k['proxy_finished']}"
            f", running {k['proxy_running']}, checkpoints {k['checkpoint_epochs']}, torn tail {k['journal_torn_tail']}"
            f", lock left {k['journal_lock_left']}"
        )
    for name, v in r["counts"].items():
        print(f"  {name:<28} {v}")
    print(f"  storage: {r['storage']}")
    for i, o in enumerate(r["orphans"], 1):
        print(
            f"  orphans after kill {i}: {o['count_after_1s']} {o['processes_after_1s']} gone after {o['all_gone_after_s']} s"
        )


if __name__ == "__main__":
    sys.exit(main())
