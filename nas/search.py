"""``nas search``: the two-stage search (DESIGN §6).

1. Cheap stage — Optuna study ``<name>-cheap``: every candidate is compiled, costed and scored
   by its gradient-path metrics in milliseconds; over-budget ones are recorded infeasible.
2. Selection — feasible, non-dominated on (cheap score ↑, FLOPs ↓), deduplicated, diverse
   across block types; the top K go on.
3. Proxy stage — Ray Tune trains each on the COCO proxy (``evaluators.train``, the one
   training code path) under ASHA; the driver owns Optuna study ``<name>`` (AP ↑, FLOPs ↓)
   through ask/tell: completed → COMPLETE, stopped by ASHA → PRUNED (last AP kept as an
   attribute), failed → FAIL with the reason. The search goes on past failures.

Resume: the same command again keeps every finished trial, marks the ones a kill interrupted
as FAIL (``interrupted``) and re-runs them (their per-epoch checkpoints make the re-run
continue, not restart), and recomputes nothing finished.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evaluators.recipe import DEFAULT as RECIPE
from nas.cost import cost
from nas.runio import RunLock, atomic_write_json, atomic_write_text

CHEAP_SCORES = ("gradpath", "fitted", "flops", "params", "synflow", "naswot")
# the predictor the rank study supports (benchmarks/rank_study.py; README "Does it work?")
DEFAULT_CHEAP_SCORE = "fitted"
FINISHED = ("COMPLETE", "PRUNED")


class SearchError(ValueError):
    """A user-facing search problem (bad options, storage that cannot be used, run in use)."""


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    """Everything that defines a search; stored in ``runs/<name>/search.json`` so that a re-run
    with other options is refused instead of silently mixing two searches in one study."""

    budget: int
    name: str = "default"
    space: str = "yolor"
    candidates: int = 2000
    trials: int = 4
    data: str = "shapes"
    epochs: int = RECIPE.epochs
    img_size: int = RECIPE.img_size
    width_mult: float = RECIPE.width_mult
    images: int = RECIPE.images
    workers: int = 1
    seed: int = 0
    cheap_score: str = DEFAULT_CHEAP_SCORE
    ray_address: str | None = None
    storage: str | None = None
    runs_dir: str = "runs"

    # options that may differ between a run and its resume (where and how, not what)
    RUNTIME_ONLY = ("workers", "ray_address", "storage", "runs_dir")

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    def identity(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.RUNTIME_ONLY}


def validate_options(opts: SearchOptions) -> None:
    """Reject bad options before anything is written."""
    from search_spaces.space import SPACES

    if (
        not opts.name
        or any(c in opts.name for c in "/\\\0")
        or opts.name.startswith(".")
        or len(opts.name.encode("utf-8", "surrogatepass")) > 200
    ):
        raise SearchError(
            f"--name: {opts.name[:60]!r} is not a usable run name; accepted: a plain folder name of at most 200 bytes"
        )
    if opts.space not in SPACES:
        raise SearchError(f"--space: {opts.space!r} is unknown; accepted: {', '.join(SPACES)}")
    if opts.cheap_score not in CHEAP_SCORES:
        raise SearchError(f"--cheap-score: {opts.cheap_score!r} is unknown; accepted: {', '.join(CHEAP_SCORES)}")
    for flag, value, lo, hi in (
        ("--candidates", opts.candidates, 1, 10**6),
        ("--trials", opts.trials, 1, 10**4),
        ("--epochs", opts.epochs, 1, 1000),
        ("--images", opts.images, 8, 10**7),
        ("--workers", opts.workers, 1, 1024),
        ("--seed", opts.seed, 0, 2**31 - 1),
    ):
        if not lo <= value <= hi:
            raise SearchError(f"{flag}: {value} is out of range; accepted: an integer from {lo} to {hi}")
    # 64: the proxy's smallest image (evaluators.coco_data); a 32 px search would fail every trial
    if opts.img_size % 32 or not 64 <= opts.img_size <= 2048:
        raise SearchError(f"--img-size: {opts.img_size} is not accepted; accepted: a multiple of 32 from 64 to 2048")
    if not 0.03 <= opts.width_mult <= 4:
        raise SearchError(f"--width-mult: {opts.width_mult} is out of range; accepted: 0.03 to 4")
    if opts.data != "shapes" and not Path(opts.data).exists():
        raise SearchError(
            f"--data: {opts.data} does not exist; accepted: shapes or a COCO-format annotation file/folder"
        )


def check_data(opts: SearchOptions) -> None:
    """Load a ``--data`` set once in the driver, so a broken annotation file or a set with no
    decodable image stops the search at once (exit 2) instead of failing every trial in Ray.
    Corrupt images and dangling annotations are skipped (one warning), as training does."""
    if opts.data == "shapes":
        return
    from evaluators.coco_data import load_proxy_data
    from evaluators.errors import DataError

    try:
        data = load_proxy_data(opts.data, img_size=opts.img_size, images=opts.images, root=opts.runs_dir)
    except DataError as e:
        raise SearchError(f"--data: {e}") from None
    if not len(data.train.images) or not len(data.val.images):
        raise SearchError(
            f"--data: {opts.data}: no decodable image in the train or the val split; accepted: a COCO-format set"
        )


# -- storage -----------------------------------------------------------------------------------
def open_storage(url: str | None, run_dir: Path):  # noqa: ANN201 - optuna storage
    """The default is an Optuna *journal file* (``runs/<name>/optuna.journal``): one append-only
    file, written under a file lock, which stays readable by optuna-dashboard while the search
    appends to it and survives a SIGKILL (a torn last record is ignored on load). SQLite, the
    other single-file choice, is what Optuna's docs warn against under concurrent access (the
    dashboard reading while Ray callbacks write). ``--storage`` takes any Optuna RDB URL
    (``postgresql://…``) or a journal file path."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if url is None or "://" not in url:
        path = Path(url) if url else run_dir / "optuna.journal"
        if path.is_dir():
            raise SearchError(f"--storage: {path} is a folder; accepted: a journal file path or an Optuna RDB URL")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except (ValueError, KeyError, TypeError) as e:  # a damaged record: Optuna cannot replay the file
            raise SearchError(
                f"{path}: the Optuna journal cannot be read ({type(e).__name__}: {str(e)[:120]}); "
                "it was damaged outside nas search: restore it from a backup or start another --name"
            ) from None
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as e:  # noqa: BLE001 - any driver error is a user-facing storage problem
        raise SearchError(f"--storage: cannot open {url.split('@')[-1]!r} ({type(e).__name__}: {e})") from None


def prepare_journal(path: Path, log: Callable[[str], None]) -> None:
    """Make the run's own journal safe to append to; called only under the run's ``RunLock``.

    A process killed (or a disk that filled) mid-append can leave (a) a torn last record without
    its newline — the next append would glue a record to it and make the whole file unreadable —
    and (b) Optuna's lock symlink ``optuna.journal.lock``, which stalls the next writer for its
    30 s grace period. The lock is ours (no other writer can hold it while we hold the run), and
    the torn record was never acknowledged, so both are removed."""
    lock = path.with_name(path.name + ".lock")
    for _ in range(20):  # a live append (e.g. a note from the dashboard) holds it for milliseconds
        if not lock.is_symlink() and not lock.exists():
            break
        time.sleep(0.1)
    else:
        lock.unlink(missing_ok=True)
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        size = f.seek(0, os.SEEK_END)
        keep = 0
        block = 1 << 16
        pos = size
        while pos > 0:  # find the last newline, scanning back in blocks
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            pos = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    log(f"warning: {path}: dropped a torn last record ({size - keep} bytes) left by an interrupted write")


def _mark_constraint(study, trial, value: float) -> None:  # noqa: ANN001
    """Record feasibility three ways: Optuna 5's ``set_constraint``, the ``constraints`` system
    attribute that optuna-dashboard 0.21 reads, and a plain ``feasible`` user attribute."""
    trial.set_constraint("flops_over_budget", value)
    study._storage.set_trial_system_attr(trial._trial_id, "constraints", [value])
    trial.set_user_attr("feasible", value <= 0)


def _fail_interrupted(study) -> int:  # noqa: ANN001
    """Trials left RUNNING by a killed search become FAIL(interrupted); they will be re-run."""
    import optuna

    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        study._storage.set_trial_user_attr(t._trial_id, "reason", "interrupted (the search process stopped)")
        study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        n += 1
    return n


# -- cheap stage -------------------------------------------------------------------------------
def score_candidate(cfg, kind: str = DEFAULT_CHEAP_SCORE) -> dict[str, Any]:  # noqa: ANN001
    """Compile, cost and score one config: the attributes a cheap trial records.

    ``synflow``/``naswot`` also build the proxy-scale model (width ×0.25, 96 px) and record
    their value under ``zero_cost``: ~1–3 s per candidate on CPU instead of milliseconds, so they
    are opt-in baselines, never computed on the default path."""
    from nas.metrics import gradient_path_metrics
    from search_spaces import compile_config

    graph = compile_config(cfg)
    c = cost(graph)
    metrics = gradient_path_metrics(graph).to_dict(layers=False)
    zero_cost = None
    if kind in ("synflow", "naswot"):
        from evaluators import zero_cost as zc

        model = zc.proxy_model(cfg)
        zero_cost = (
            {"synflow": zc.synflow(model)} if kind == "synflow" else {"naswot": zc.naswot(model, zc.proxy_batch())}
        )
    out = {
        "flops": c.flops,
        "params": c.params,
        "metrics": metrics,
        "score": cheap_score(kind, c.flops, c.params, metrics, zero_cost),
    }
    if zero_cost is not None:
        out["zero_cost"] = zero_cost
    return out


#: The default cheap score: feature -> (weight, mean, std) of a ridge fit of standardised AP ranks
#: on standardised features (FLOPs and combinations as logs), from ``rank_study.json``
#: ``fit.gradpath+flops`` ``all_data`` — 40 candidates, reduced recipe; cross-validated Kendall τ
#: 0.54 vs 0.35 for FLOPs alone on the same folds (won 91 % of folds). Refit: copy the new values.
FITTED_SCORE = {
    "flops": (0.5750, 24.7227, 0.6635),
    "max_shortest_gradient_path": (-0.5086, 9.8250, 2.8274),
    "gradient_combinations": (-0.2357, 13.3489, 0.8379),
}


def cheap_score(
    kind: str, flops: int, params: int, metrics: dict[str, Any], zero_cost: dict[str, float] | None = None
) -> float:
    """The cheap stage's quality estimate (higher is better).

    ``gradpath``: log of the gradient combinations per layer-channel, minus the log of the
    longest shortest gradient path — rich combinations (PRN/CSP) and short paths (ELAN) are what
    the paper argues make a network learn well. ``flops``/``params``: plain size baselines.
    ``synflow``/``naswot``: zero-cost proxies (``evaluators.zero_cost``), read from ``zero_cost``
    as computed by :func:`score_candidate`. ``fitted``: the rank study's fitted combination
    (``benchmarks/rank_study.py``, ``fit.gradpath+flops`` in :data:`FITTED_SCORE`) — more FLOPs,
    a shorter longest-shortest gradient path, and (given those) fewer gradient combinations.
    How well each ranks proxy AP: README "Does it work?"."""
    if kind == "fitted":
        feats = {
            "flops": math.log(max(1, flops)),
            "max_shortest_gradient_path": float(metrics["max_shortest_gradient_path"] or 0),
            "gradient_combinations": math.log(max(1, metrics["gradient_combinations"])),
        }
        return sum(w * (feats[k] - mu) / sd for k, (w, mu, sd) in FITTED_SCORE.items())
    if kind == "flops":
        return float(flops)
    if kind == "params":
        return float(params)
    if kind in ("synflow", "naswot"):
        if not zero_cost or kind not in zero_cost:
            raise ValueError(f"cheap score {kind!r} needs its zero-cost value (score_candidate computes it)")
        return float(zero_cost[kind])
    comb = max(1, metrics["gradient_combinations"])
    sgp = max(1, metrics["max_shortest_gradient_path"] or 1)
    return math.log(comb) - math.log(sgp)


def cheap_stage(storage, opts: SearchOptions, progress: bool = True):  # noqa: ANN001, ANN201
    import optuna

    from search_spaces.space import SPACES

    space = SPACES[opts.space]
    study = optuna.create_study(
        study_name=f"{opts.name}-cheap", storage=storage, directions=["maximize", "minimize"], load_if_exists=True
    )
    study.set_metric_names([f"{opts.cheap_score}_score", "flops"])
    _fail_interrupted(study)
    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    bar = _bar(opts.candidates, "cheap stage", progress, initial=done)
    for i in range(done, opts.candidates):
        # A sampler seeded by the candidate's index: its proposal depends only on the study's
        # history and the index, so a resumed search proposes what an unbroken one would have.
        seed = (opts.seed * 1_000_003 + i) % 2**32  # numpy's seed range; a no-op for seed < 4293
        study.sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=100)
        trial = study.ask()
        cfg = space.suggest(trial)
        s = score_candidate(cfg, opts.cheap_score)
        trial.set_user_attr("config", cfg.to_yaml())
        trial.set_user_attr("key", cfg.key())
        trial.set_user_attr("params", s["params"])
        trial.set_user_attr("metrics", s["metrics"])
        _mark_constraint(study, trial, float(s["flops"] - opts.budget))
        study.tell(trial, [s["score"], float(s["flops"])])
        bar.update(1)
    bar.close()
    return study


# -- selection ---------------------------------------------------------------------------------
def _pareto_fronts(points: list[tuple[float, float]]) -> list[list[int]]:
    """Non-dominated sorting for (maximise a, minimise b): peel fronts with a sorted sweep."""
    remaining = list(range(len(points)))
    fronts = []
    while remaining:
        remaining.sort(key=lambda i: (points[i][1], -points[i][0]))
        front, rest, best = [], [], -math.inf
        for i in remaining:
            if points[i][0] > best or (front and points[i] == points[front[-1]]):  # equal points tie
                front.append(i)
                best = points[i][0]
            else:
                rest.append(i)
        fronts.append(front)
        remaining = rest
    return fronts


def select_candidates(trials: list, k: int, budget: int) -> list:  # noqa: ANN001
    """Feasible, deduplicated, front by front; within a front round-robin over the (backbone,
    neck) block pairs, best score first — so the K trained trials are not K copies of one idea."""
    import yaml

    seen, pool = set(), []
    for t in sorted(trials, key=lambda t: t.number):
        if t.state.name != "COMPLETE" or t.values[1] > budget or t.user_attrs["key"] in seen:
            continue
        seen.add(t.user_attrs["key"])
        pool.append(t)
    chosen = []
    for front in _pareto_fronts([(t.values[0], t.values[1]) for t in pool]):
        groups: dict[tuple[str, str], list] = {}
        for i in sorted(front, key=lambda i: -pool[i].values[0]):
            cfg = yaml.safe_load(pool[i].user_attrs["config"])
            groups.setdefault((cfg["backbone"]["block"], cfg["neck"]["block"]), []).append(pool[i])
        queues = list(groups.values())
        while queues and len(chosen) < k:
            for q in list(queues):
                if len(chosen) < k:
                    chosen.append(q.pop(0))
                if not q:
                    queues.remove(q)
        if len(chosen) >= k:
            break
    return chosen


# -- proxy stage -------------------------------------------------------------------------------
def config_hash(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def _proxy_trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: one proxy training, reporting AP after every epoch."""
    o, job = config["options"], config["trial"]
    claim = _claim_trial_dir(Path(job["out_dir"]))  # held until this worker process exits
    last_error = Path(job["out_dir"]) / ERROR_FILE
    last_error.unlink(missing_ok=True)
    try:
        _train_trial(o, job)
    except Exception as e:
        # our own record of why, written before Tune hears of the failure (Tune's error file may
        # not have reached the driver when it calls on_trial_error)
        atomic_write_text(last_error, " ".join(f"{type(e).__name__}: {e}".split())[:500])
        raise
    finally:
        os.close(claim)


ERROR_FILE = "last_error.txt"


def _train_trial(o: dict[str, Any], job: dict[str, Any]) -> None:
    from ray import tune

    from evaluators.train import train_from_config
    from search_spaces import parse_yaml

    fire = _fault_injector(o.get("fault"), job["number"])
    fire(0)
    reported = [0]

    def tell_tune(epoch: int, metrics: dict[str, Any]) -> None:
        reported[0] = epoch
        tune.report({"epoch": epoch, "AP": float(metrics.get("AP") or 0.0), "AP50": float(metrics.get("AP50") or 0.0)})

    def report(epoch: int, metrics: dict[str, Any]) -> None:
        fire(epoch)  # after the epoch's checkpoint is written, before Tune hears of the epoch
        tell_tune(epoch, metrics)

    result = train_from_config(
        parse_yaml(job["config"]),
        data=o["data"],
        epochs=o["epochs"],
        img_size=o["img_size"],
        width_mult=o["width_mult"],
        images=o["images"],
        seed=o["seed"],
        out_dir=job["out_dir"],
        data_root=o["data_root"],
        num_threads=o["threads"],
        progress=False,
        report=report,
    )
    if result.get("status") == "failed":
        tune.report({"epoch": -1, "AP": 0.0, "failed": result.get("reason", "failed")})
    elif result.get("status") == "ok" and reported[0] < result.get("epochs_done", 0):
        # resumed from a checkpoint that already held the last epoch (the search was killed after
        # the training ended but before Optuna was told): report the result it holds, else
        # Tune ends the trial without a result and it would be recorded as stopped early
        tell_tune(result["epochs_done"], result)


def _claim_trial_dir(out_dir: Path, wait_s: float = 600) -> int:
    """One trainer per trial folder, so two never write one checkpoint at once.

    A SIGKILLed search leaves its Ray trial workers running for a while (measured: up to a minute
    and more, see docs/reliability.md); the re-run's worker for the same trial would train beside
    them into the same folder. The folder's ``.worker.lock`` (an ``flock``, freed when its holder
    dies) is held for the whole training; a holder that is a Ray worker can only be such a stale
    one (this search holds the run's lock), so it is killed; anything else is waited for."""
    import fcntl
    import signal

    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir / ".worker.lock", os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            holder = int(text) if text.isdigit() else 0
            if holder and _is_ray_worker(holder):
                with contextlib.suppress(OSError):
                    os.kill(holder, signal.SIGKILL)
            if time.monotonic() > deadline:
                os.close(fd)
                raise RuntimeError(f"{out_dir} is in use by process {holder} (not a Ray worker of this run)") from None
            time.sleep(0.2)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _is_ray_worker(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::")
    except OSError:  # gone, or no /proc (then: wait, never kill)
        return False


FAULT_ENV = "GRADPATH_FAULT"


def _fault_injector(spec: str | None, number: int) -> Callable[[int], None]:
    """TEST-ONLY fault injection, so tests can prove how the search handles a failing trial.

    ``GRADPATH_FAULT`` (read by the driver, passed to every trial) is a comma-separated list of
    ``TRIAL:KIND@EPOCH``; TRIAL is a proxy-study trial number or ``*``; the fault fires when
    EPOCH's checkpoint is written (0: before training). KIND: ``raise`` (an exception: Tune
    retries once, the retry resumes after the checkpoint), ``kill`` (SIGKILL of the Ray worker
    process), ``nan`` (every later loss is NaN: the trial ends failed). Unset: does nothing."""
    fault = None
    for item in (spec or "").split(","):
        target, _, rest = item.strip().partition(":")
        kind, _, epoch = rest.partition("@")
        if target in ("*", str(number)) and kind in ("raise", "nan", "kill"):
            fault = (kind, int(epoch or 0))
    if fault is None:
        return lambda epoch: None
    kind, at = fault
    poisoned = [False]
    if kind == "nan":
        import evaluators.train as train_module

        real_loss = train_module.detection_loss

        def nan_loss(*args: Any, **kwargs: Any) -> Any:
            loss, parts = real_loss(*args, **kwargs)
            return (loss * float("nan"), parts) if poisoned[0] else (loss, parts)

        train_module.detection_loss = nan_loss  # this worker process only (reuse_actors=False)

    def fire(epoch: int) -> None:
        if epoch != at:
            return
        if kind == "raise":
            raise RuntimeError(f"injected fault ({FAULT_ENV}) at epoch {epoch}")
        if kind == "kill":
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        poisoned[0] = True

    return fire


def _tune_callback(study, pending: dict[int, Any], epochs: int, bar: Any, failure: list[BaseException]):  # noqa: ANN001, ANN202
    """Tells Optuna as each Ray trial ends, in the driver, so a kill loses nothing finished.

    A storage write that fails here (disk full, permission lost) is kept in ``failure`` instead of
    raised: Tune would treat it as the *trial's* failure and retry the trial. The search's stopper
    then ends every trial and ``_run_tune`` raises it: one clear error, nothing told after it."""
    import optuna
    from ray.tune import Callback

    class OptunaTeller(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001, ANN003
            if result.get("epoch", 0) > 0:
                bar.set_postfix_str(
                    f"trial {trial.config['trial']['number']} epoch {result['epoch']} AP {result['AP']:.3f}"
                )

        def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001, ANN003
            number = trial.config["trial"]["number"]
            if failure:  # the storage failed: leave the trial RUNNING, the next run re-runs it
                return
            ot = pending.pop(number, None)
            if ot is None:
                return
            last = trial.last_result or {}
            try:
                if "failed" in last:
                    ot.set_user_attr("reason", str(last["failed"]))
                    study.tell(ot, state=optuna.trial.TrialState.FAIL)
                elif last.get("epoch", 0) >= epochs:
                    ot.set_user_attr("AP50", last.get("AP50"))
                    study.tell(ot, [float(last["AP"]), ot.user_attrs["flops"]])
                else:
                    ot.set_user_attr("last_AP", last.get("AP"))
                    ot.set_user_attr("epochs_done", last.get("epoch", 0))
                    ot.set_user_attr("reason", "stopped early by ASHA")
                    study.tell(ot, state=optuna.trial.TrialState.PRUNED)
            except Exception as e:  # noqa: BLE001 - any storage error stops the search, see above
                failure.append(e)
                return
            bar.update(1)

        def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001, ANN003
            if failure:
                return
            ot = pending.pop(trial.config["trial"]["number"], None)
            if ot is None:
                return
            try:
                ot.set_user_attr("reason", _error_reason(trial))
                study.tell(ot, state=optuna.trial.TrialState.FAIL)
            except Exception as e:  # noqa: BLE001
                failure.append(e)
                return
            bar.update(1)

    return OptunaTeller()


def _error_reason(trial: Any) -> str:
    """The last ``SomeError: message`` line of the trial's last error (Tune keeps the traceback
    in ``error.txt``), e.g. ``RuntimeError: CUDA out of memory`` or the worker's death."""
    import re

    ours = Path(trial.config["trial"]["out_dir"]) / ERROR_FILE
    with contextlib.suppress(OSError):
        if ours.is_file():
            return ours.read_text(encoding="utf-8").strip()[:500] or "the training raised an exception"
    try:
        text = trial.get_error() or ""
    except Exception:  # noqa: BLE001 - the reason is best effort, the FAIL state is not
        text = ""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip() and not ln.startswith("Failure #")]
    errors = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b.*", ln)]
    reason = (errors or lines or ["the training raised an exception"])[-1]
    return reason[:500]


def proxy_stage(storage, opts: SearchOptions, chosen: list, progress: bool = True):  # noqa: ANN001, ANN201
    import optuna

    from search_spaces import parse_yaml
    from search_spaces.space import SPACES

    space = SPACES[opts.space]
    study = optuna.create_study(
        study_name=opts.name, storage=storage, directions=["maximize", "minimize"], load_if_exists=True
    )
    study.set_metric_names(["AP", "flops"])
    _fail_interrupted(study)
    finished = {
        t.user_attrs.get("key")
        for t in study.get_trials(deepcopy=False)
        if t.state.name in FINISHED or (t.state.name == "FAIL" and not t.user_attrs.get("interrupted"))
    }
    todo = [t for t in chosen if t.user_attrs["key"] not in finished]
    if not todo:
        return study
    pending: dict[int, Any] = {}
    ray_trials = []
    for cheap in todo:
        cfg = parse_yaml(cheap.user_attrs["config"])
        study.enqueue_trial(space.params_of(cfg), skip_if_exists=False)
        ot = study.ask()
        assert space.suggest(ot) == cfg
        ot.set_user_attr("config", cheap.user_attrs["config"])
        ot.set_user_attr("key", cheap.user_attrs["key"])
        ot.set_user_attr("flops", cheap.values[1])
        ot.set_user_attr("params", cheap.user_attrs["params"])
        ot.set_user_attr("metrics", cheap.user_attrs["metrics"])
        ot.set_user_attr("cheap_trial", cheap.number)
        ot.set_user_attr("cheap_score", cheap.values[0])
        _mark_constraint(study, ot, cheap.values[1] - opts.budget)
        pending[ot.number] = ot
        out_dir = (opts.run_dir / "trials" / config_hash(cheap.user_attrs["key"])).resolve()
        ray_trials.append({"number": ot.number, "config": cheap.user_attrs["config"], "out_dir": str(out_dir)})
    bar = _bar(len(chosen), "proxy stage", progress, initial=len(chosen) - len(todo))
    try:
        _run_tune(opts, ray_trials, study, pending, bar)
    finally:
        bar.close()
    return study


def _stop_all(failure: list[BaseException]) -> Any:
    from ray.tune.stopper import Stopper

    class StopAll(Stopper):
        """Ends every trial once the storage has failed (see ``_tune_callback``)."""

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return bool(failure)

        def stop_all(self) -> bool:
            return bool(failure)

    return StopAll()


def _run_tune(opts: SearchOptions, ray_trials: list[dict[str, Any]], study, pending, bar) -> None:  # noqa: ANN001
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    started = not ray.is_initialized()
    if started:
        address = opts.ray_address or os.environ.get("RAY_ADDRESS")
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if address:
            ray.init(address=address, **kwargs)
        else:
            # a local cluster stays on loopback: nothing of it is reachable from the network
            ray.init(num_cpus=os.cpu_count(), _node_ip_address="127.0.0.1", **kwargs)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)) // opts.workers)
    options = {
        "data": str(Path(opts.data).resolve()) if opts.data != "shapes" else "shapes",
        "epochs": opts.epochs,
        "img_size": opts.img_size,
        "width_mult": opts.width_mult,
        "images": opts.images,
        "seed": opts.seed,
        "threads": cpus,
        "data_root": str(Path(opts.runs_dir).resolve()),
        "fault": os.environ.get(FAULT_ENV),  # test-only, see _fault_injector
    }
    param_space = {"options": options, "trial": tune.grid_search(ray_trials)}
    failure: list[BaseException] = []
    # max_t one past the last epoch: ASHA only ever stops trials early; a trial that reaches its
    # last epoch ends by returning, so "completed" and "stopped by ASHA" stay distinguishable.
    scheduler = ASHAScheduler(
        metric="AP",
        mode="max",
        time_attr="training_iteration",
        max_t=opts.epochs + 1,
        grace_period=max(1, opts.epochs // 3),
    )
    tuner = tune.Tuner(
        tune.with_resources(_proxy_trainable, {"cpu": cpus}),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            scheduler=scheduler,
            max_concurrent_trials=opts.workers,
            reuse_actors=False,
            trial_dirname_creator=lambda t: f"trial_{t.config['trial']['number']}",
        ),
        run_config=tune.RunConfig(
            name=f"tune-{int(time.time())}",
            storage_path=str((opts.run_dir / "ray").resolve()),
            verbose=0,
            callbacks=[_tune_callback(study, pending, opts.epochs, bar, failure)],
            stop=_stop_all(failure),
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    )
    try:
        tuner.fit()
    finally:
        if started:  # our local Ray: stop its processes now, not at interpreter exit
            ray.shutdown()
    if failure:
        e = failure[0]
        text = f"{e.strerror}: {e.filename}" if isinstance(e, OSError) and e.strerror else f"{type(e).__name__}: {e}"
        raise SearchError(
            f"the search stopped: recording a trial in its storage failed ({text}); every trial recorded "
            "before is kept: fix the cause (disk space, permissions) and re-run the same command to resume"
        ) from e


# -- outputs -----------------------------------------------------------------------------------
def trained_rows(study) -> list[dict[str, Any]]:  # noqa: ANN001
    """Every trained trial of the proxy study as a plain dict (``summary.json``)."""
    import yaml

    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state.name not in ("COMPLETE", "PRUNED", "FAIL") or t.user_attrs.get("interrupted"):
            continue
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "AP": t.values[0] if t.values else None,
                "AP50": t.user_attrs.get("AP50"),
                "last_AP": t.user_attrs.get("last_AP"),
                "reason": t.user_attrs.get("reason"),
                "flops": int(t.user_attrs["flops"]),
                "params": t.user_attrs["params"],
                "knobs": t.params,
                "metrics": t.user_attrs["metrics"],
                "config": yaml.safe_load(t.user_attrs["config"]),
            }
        )
    return rows


def pareto_rows(rows: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    done = [r for r in rows if r["state"] == "COMPLETE" and r["flops"] <= budget]
    front = _pareto_fronts([(r["AP"], r["flops"]) for r in done])
    return sorted((done[i] for i in front[0]), key=lambda r: r["flops"]) if front else []


def write_outputs(study, opts: SearchOptions) -> dict[str, Any]:  # noqa: ANN001
    from search_spaces import parse_yaml

    rows = trained_rows(study)
    front = pareto_rows(rows, opts.budget)
    best = max(front, key=lambda r: (r["AP"], -r["flops"])) if front else None
    summary = {"options": opts.identity(), "budget": opts.budget, "trials": rows, "pareto": [r["trial"] for r in front]}
    summary["best_trial"] = best["trial"] if best else None
    if best is not None:
        atomic_write_text(opts.run_dir / "best.yaml", parse_yaml(_yaml_of(study, best["trial"])).to_yaml())
    atomic_write_json(opts.run_dir / "summary.json", summary)
    plot_pareto(rows, front, opts.budget, opts.run_dir / "pareto.png")
    return summary


def _yaml_of(study, number: int) -> str:  # noqa: ANN001
    return study.trials[number].user_attrs["config"]


def plot_pareto(rows: list[dict[str, Any]], front: list[dict[str, Any]], budget: int, path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    done = [r for r in rows if r["state"] == "COMPLETE"]
    pruned = [r for r in rows if r["state"] == "PRUNED" and r["last_AP"] is not None]
    ax.scatter([r["flops"] / 1e9 for r in done], [r["AP"] for r in done], c="tab:blue", label="trained")
    ax.scatter(
        [r["flops"] / 1e9 for r in pruned], [r["last_AP"] for r in pruned], c="lightgray", label="stopped (last AP)"
    )
    if front:
        ax.plot([r["flops"] / 1e9 for r in front], [r["AP"] for r in front], "o-", c="tab:red", label="Pareto front")
    ax.axvline(budget / 1e9, ls="--", c="k", label="budget")
    ax.set_xlabel("GFLOPs (full size)")
    ax.set_ylabel("proxy box AP")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    from nas.runio import atomic_write_bytes

    atomic_write_bytes(path, buf.getvalue())


def format_front(summary: dict[str, Any]) -> str:
    by_number = {r["trial"]: r for r in summary["trials"]}
    lines = [f"{'trial':>5}  {'GFLOPs':>7}  {'AP':>6}  {'backbone':<22} {'neck':<22}"]
    for n in summary["pareto"]:
        r = by_number[n]
        mark = " *" if n == summary["best_trial"] else ""
        lines.append(
            f"{n:>5}  {r['flops'] / 1e9:7.1f}  {r['AP']:6.3f}  {_part(r['config']['backbone']):<22} {_part(r['config']['neck']):<22}{mark}"
        )
    return "\n".join(lines)


def _part(p: dict[str, Any]) -> str:
    extra = {
        "prn": f"m={p['mask_fraction']}",
        "csp": f"r={p['split_ratio']},{p['fusion']}",
        "elan": f"r={p['split_ratio']},s={p['elan_stack']}",
    }
    return f"{p['block']} {extra.get(p['block'], '')}".strip()


def _bar(total: int, desc: str, enabled: bool, initial: int = 0):  # noqa: ANN202
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, initial=initial, disable=not enabled, file=sys.stderr, dynamic_ncols=True)


# -- the whole search --------------------------------------------------------------------------
def _quiet_libraries() -> None:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def search(opts: SearchOptions, progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) a search and return its summary (also ``runs/<name>/summary.json``).
    Example (about 20 minutes on 2 cores)::

        nas.search(SearchOptions(budget=parse_flops("150GFLOPs"), name="demo"))
    """
    validate_options(opts)
    check_data(opts)
    _quiet_libraries()
    run_dir = opts.run_dir
    meta = run_dir / "search.json"
    created = [p for p in (run_dir, *run_dir.parents) if not p.exists()]  # what the lock will make
    lock = RunLock(run_dir)
    if not lock.acquire():
        raise SearchError(
            f"{run_dir} is in use by another nas search (lock {lock.path}); wait for it or use another --name"
        )
    started = False
    try:
        _check_identity(meta, opts)  # under the lock: no other search can write search.json meanwhile
        if opts.storage is None:
            prepare_journal(run_dir / "optuna.journal", log)
        storage = open_storage(opts.storage, run_dir)
        atomic_write_json(meta, opts.identity())
        started = True
        t0 = time.perf_counter()
        cheap = cheap_stage(storage, opts, progress)
        trials = cheap.get_trials(deepcopy=False)
        feasible = sum(1 for t in trials if t.state.name == "COMPLETE" and t.values[1] <= opts.budget)
        log(
            f"cheap stage: {len(trials)} candidates, {feasible} within {opts.budget / 1e9:g} GFLOPs ({time.perf_counter() - t0:.1f} s)"
        )
        chosen = select_candidates(trials, opts.trials, opts.budget)
        if not chosen:
            raise SearchError(f"no candidate fits the budget of {opts.budget / 1e9:g} GFLOPs; raise --budget")
        study = proxy_stage(storage, opts, chosen, progress)
        summary = write_outputs(study, opts)
        summary["wall_s"] = time.perf_counter() - t0
        log("Pareto front (AP vs FLOPs, * = best.yaml):")
        log(format_front(summary))
        log(f"outputs in {run_dir}/: best.yaml summary.json pareto.png; dashboard: nas dashboard {run_dir}")
        return summary
    finally:
        lock.release()
        if created and not started:
            _remove_unstarted(created)


def _check_identity(meta: Path, opts: SearchOptions) -> None:
    """A resumed run must have the options it was started with. An unreadable ``search.json``
    (written atomically, so only damaged from outside) is not trusted: the search stops."""
    if not meta.exists():
        return
    try:
        before = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SearchError(
            f"{meta} cannot be read ({type(e).__name__}); it records the options of this run: "
            "restore it, delete it to resume with the current options, or use another --name"
        ) from None
    if not isinstance(before, dict):
        raise SearchError(f"{meta} is not a JSON object; restore it, delete it, or use another --name")
    if before != opts.identity():
        ident = opts.identity()
        diff = ", ".join(f"{k}={before.get(k)!r}" for k in ident if before.get(k) != ident[k])
        raise SearchError(f"{meta.parent} was started with {diff}; re-run with the same options or use another --name")


def _remove_unstarted(created: list[Path]) -> None:
    """Undo the folders a search made (run folder first, then the runs folders above it) before
    failing at its start (bad storage): bad input leaves no half-made run behind. Only the lock
    and an empty journal are removed, then the folders if empty."""
    run_dir = created[0]
    for name in (".lock", "optuna.journal"):
        f = run_dir / name
        if f.is_file() and (name == ".lock" or f.stat().st_size == 0):
            f.unlink(missing_ok=True)
    for folder in created:
        with contextlib.suppress(OSError):  # not empty: something else is there, keep it
            folder.rmdir()
