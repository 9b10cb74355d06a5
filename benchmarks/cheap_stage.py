"""How good and how fast is the cheap stage's optimiser (``nas.engine.cheap.evolution``)?

    .venv/bin/python -m benchmarks.cheap_stage [--parts exhaustive,quality,timing,dashboard]
        [--counts 1000,10000,100000] [--quality-candidates 2000] [--seeds 3]

- **exhaustive** — on the uniform space (one block per part, ``search_spaces.space.SearchSpace()``:
  12,544 configs before the per-stage space) every config is scored; for 1k / 2k / 5k candidates
  the optimiser's best score in each of the K = 4 FLOPs bands of the exhaustive selection is
  compared with the exhaustive best of that band.
- **quality** — (score, FLOPs) hypervolume of a run of ``--quality-candidates`` against a run 10×
  longer (or the exhaustive front, when the space is smaller than 10×), and against uniform
  random sampling of the same number of unique configs. The score axis is normalised to [0, 1]
  by the min/max score of all feasible points compared, FLOPs as a share of the budget
  (``benchmarks.lib.stats.hypervolume``).
- **timing** — end to end (proposal, dedup, scoring on every core, journal writes) seconds per
  unique candidate at each of ``--counts``, on ``--timing-space``: ``yolor`` (the search's space),
  or ``wide`` — the uniform space with 36 widths × 36 depths (~10^6 configs), a stand-in with
  room for 10^5 unique candidates until the per-stage space lands.
- **dashboard** — seconds for optuna-dashboard's API (its WSGI app, as the browser calls it) to
  list the studies and load the cheap study of the default ``--candidates`` (``--dashboard-counts``)
  as ``nas dashboard`` serves it (the view of :func:`nas.engine.cheap.stage.mark_dashboard_view`), the
  journal's replay alone, and with ``--dashboard-whole`` the whole study.

Writes ``runs/bench/cheap_stage.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.lib.common import BENCH_DIR, write_result
from nas.engine.record.trials import flops_of

BUDGET = 150e9
K = 4


def uniform_name() -> str:
    """The uniform space (one block per part): ``yolor-uniform`` once the per-stage space is
    ``yolor``, else ``yolor``."""
    from search_spaces.space import SPACES

    return "yolor-uniform" if "yolor-uniform" in SPACES else "yolor"


def space_size(name: str) -> int:
    from search_spaces.space import SPACES

    space = SPACES[name]
    return int(space.size()) if hasattr(space, "size") else len(space)


#: ``--cost``: the cheap stage's cost objective (latency reads the device table under runs/latency/)
COST = "flops"


def _opts(name: str, candidates: int, space: str = "yolor", seed: int = 0, runs_dir: str = "runs") -> Any:
    from evaluators.recipe import Recipe
    from nas.engine import SearchOptions

    return SearchOptions(
        budget=int(BUDGET),
        name=name,
        space=space,
        candidates=candidates,
        recipe=Recipe(seed=seed),
        runs_dir=runs_dir,
        cost=COST,
    )


def _quiet() -> None:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def run_stage(candidates: int, space: str | None = None, seed: int = 0, storage: Any = None) -> tuple[list[Any], float]:
    """One cheap stage in memory (or in ``storage``); its trials and seconds."""
    import optuna

    from nas.engine import cheap_stage

    t = time.perf_counter()
    opts = _opts("b", candidates, space or uniform_name(), seed)
    study = cheap_stage(storage or optuna.storages.InMemoryStorage(), opts, False)
    return study.get_trials(deepcopy=False), time.perf_counter() - t


def band_bests(trials: list[Any], low: float, k: int = K) -> dict[int, float]:
    """Best score per FLOPs band (the selection's bands, from ``low`` to the budget)."""
    width = (BUDGET - low) / k
    out: dict[int, float] = {}
    for t in trials:
        if flops_of(t) > BUDGET or flops_of(t) < low:
            continue
        b = min(k - 1, int((flops_of(t) - low) / width))
        out[b] = max(out.get(b, -float("inf")), t.values[0])
    return out


def _feasible(trials: list[Any]) -> list[tuple[float, float]]:
    return [(t.values[0], flops_of(t)) for t in trials if flops_of(t) <= BUDGET]


def hv_ratio(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """Hypervolume of ``a`` over that of ``b``, scores normalised by the range of both."""
    from benchmarks.lib.stats import hypervolume

    scores = [s for s, _ in a + b]
    lo, hi = min(scores), max(scores)
    span = (hi - lo) or 1.0
    lo -= 1e-9 * span  # the worst point still counts (hypervolume needs a score > 0)

    def norm(ps: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [((s - lo) / span, f) for s, f in ps]

    return hypervolume(norm(a), BUDGET) / hypervolume(norm(b), BUDGET)


def random_trials(n: int, seed: int, name: str) -> list[Any]:
    """``n`` unique uniformly sampled configs, scored like the cheap stage scores them."""
    from types import SimpleNamespace

    from nas.engine.cheap.stage import evaluate_batch
    from search_spaces.space import SPACES

    space, rng, cfgs, seen = SPACES[name], random.Random(seed), [], set()
    for _ in range(200 * n):
        if len(cfgs) == n:
            break
        c = space.sample(rng)
        if c.canonical() not in seen:
            seen.add(c.canonical())
            cfgs.append(c)
    return [
        SimpleNamespace(values=[s["score"], s["flops"] / 1e9], user_attrs={"GFLOPs": s["flops"] / 1e9})
        for s in evaluate_batch(cfgs, "fitted")
    ]


def part_exhaustive(counts: list[int], seeds: int) -> dict[str, Any]:
    size = space_size(uniform_name())
    every, secs = run_stage(size)  # candidates >= the space: the stage enumerates it
    low = min(flops_of(t) for t in every if flops_of(t) <= BUDGET)
    exact = band_bests(every, low)
    out: dict[str, Any] = {"space_size": size, "exhaustive_s": round(secs, 1), "band_best": exact, "runs": []}
    for n in counts:
        for seed in range(seeds):
            trials, s = run_stage(n, seed=seed)
            got = band_bests(trials, low)
            out["runs"].append(
                {
                    "candidates": n,
                    "seed": seed,
                    "seconds": round(s, 1),
                    "bands_matching_exhaustive": sum(got.get(b) == v for b, v in exact.items()),
                    "bands": len(exact),
                    "hv_vs_exhaustive": round(hv_ratio(_feasible(trials), _feasible(every)), 5),
                }
            )
            print(f"  exhaustive check: {out['runs'][-1]}")
    out["_every"] = every
    return out


def part_quality(n: int, seeds: int, every: list[Any] | None, name: str) -> dict[str, Any]:
    size = space_size(name)
    rows = []
    for seed in range(seeds):
        short, _ = run_stage(n, space=name, seed=seed)
        if 10 * n >= size:
            long = every if every is not None and name == uniform_name() else run_stage(size, space=name)[0]
            label = "exhaustive"
        else:
            long, label = run_stage(10 * n, space=name, seed=seed)[0], f"{10 * n} candidates"
        rand = random_trials(n, seed, name)
        rows.append(
            {
                "seed": seed,
                "reference": label,
                "hv_vs_10x": round(hv_ratio(_feasible(short), _feasible(long)), 5),
                "hv_random_vs_10x": round(hv_ratio(_feasible(rand), _feasible(long)), 5),
            }
        )
        print(f"  quality: {rows[-1]}")
    return {
        "space": name,
        "candidates": n,
        "runs": rows,
        "min_hv_vs_10x": min(r["hv_vs_10x"] for r in rows),
        "beats_random_every_seed": all(r["hv_vs_10x"] > r["hv_random_vs_10x"] for r in rows),
    }


def _register_wide() -> None:
    from search_spaces.space import SPACES, SearchSpace

    grid = tuple(round(0.25 + 0.05 * i, 2) for i in range(36))
    SPACES.setdefault("wide", dataclasses.replace(SearchSpace(), widths=grid, depths=grid))


def _cpu_seconds() -> float:
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def part_timing(counts: list[int], space: str) -> dict[str, Any]:
    from nas.engine.record.storage import open_storage

    rows = []
    for n in counts:
        cpu0 = _cpu_seconds()
        with tempfile.TemporaryDirectory() as d:
            trials, s = run_stage(n, space=space, storage=open_storage(None, Path(d)))
            journal = (Path(d) / "optuna.journal").stat().st_size
        cpu = _cpu_seconds() - cpu0
        rows.append(
            {
                "candidates": n,
                "unique": len({t.user_attrs["key"] for t in trials}),
                "seconds": round(s, 1),
                "ms_per_candidate": round(1e3 * s / len(trials), 3),
                "candidates_per_s": round(len(trials) / s, 1),
                "journal_bytes_per_candidate": round(journal / len(trials)),
                # CPU time of this process and its (joined) pool workers: what the run costs on
                # a machine shared with other work, where wall time measures the neighbours
                "cpu_ms_per_candidate": round(1e3 * cpu / len(trials), 3),
                "candidates_per_s_on_2_idle_cores": round(2 * len(trials) / cpu, 1),
            }
        )
        print(f"  timing: {rows[-1]}")
    per = [r["ms_per_candidate"] for r in rows]
    return {"space": space, "runs": rows, "flatness_max_over_min": round(max(per) / min(per), 3)}


def _api_load(open_: Any) -> tuple[float, int]:
    """Seconds to open the storage (``open_()``: the journal's replay) and for optuna-dashboard's
    API (its WSGI app, as the browser calls it) to list the studies and load the cheap study's
    trials, and how many it listed."""
    from optuna_dashboard import wsgi

    from benchmarks.kill_resume import dashboard_api

    t = time.perf_counter()
    app = wsgi(open_())
    studies = dashboard_api(app, "/api/studies")["study_summaries"]
    sid = next(x["study_id"] for x in studies if x["study_name"].endswith("-cheap"))
    loaded = dashboard_api(app, f"/api/studies/{sid}", "after=0")["trials"]
    return time.perf_counter() - t, len(loaded)


def part_dashboard(counts: list[int], whole: bool) -> dict[str, Any]:
    """For each count: the load of what ``nas dashboard`` serves (the cheap study's view,
    :func:`nas.engine.cheap.stage.mark_dashboard_view`), the journal's replay alone, and with
    ``whole`` the whole study as plain ``optuna-dashboard`` loads it."""
    import optuna

    from nas.engine.cheap.stage import mark_dashboard_view
    from nas.engine.record.dashboard import dashboard_view
    from nas.engine.record.storage import open_storage

    rows = []
    for n in counts:
        with tempfile.TemporaryDirectory() as d:
            trials, _ = run_stage(n, space="yolor", storage=open_storage(None, Path(d)))
            study = optuna.load_study(study_name="b-cheap", storage=open_storage(None, Path(d)))
            mark_dashboard_view(study, _opts("b", n), [])
            t = time.perf_counter()
            open_storage(None, Path(d))  # the journal's replay, which every reader pays
            replay = time.perf_counter() - t
            view_s, shown = _api_load(lambda: dashboard_view(open_storage(None, Path(d))))
            row = {
                "candidates": len(trials),
                "journal_mb": round((Path(d) / "optuna.journal").stat().st_size / 1e6, 1),
                "journal_replay_s": round(replay, 2),
                "nas_dashboard_api_load_s": round(view_s, 2),
                "trials_shown": shown,
            }
            if whole:
                whole_s, _ = _api_load(lambda: open_storage(None, Path(d)))
                row["whole_study_api_load_s"] = round(whole_s, 2)
        rows.append(row)
        print(f"  dashboard: {row}")
    return {"runs": rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--parts", default="exhaustive,quality,timing,dashboard")
    p.add_argument("--exhaustive-counts", default="1000,2000,5000")
    p.add_argument("--quality-candidates", type=int, default=2000)
    p.add_argument("--quality-space", default=None, help="default: the uniform space; yolor: the search's space")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--counts", default="1000,10000,100000", help="timing: unique candidates per run")
    p.add_argument("--timing-space", default="wide", help="wide (a 10^6 uniform stand-in) or a registered space")
    p.add_argument("--dashboard-counts", default=None, help="dashboard: candidates per run (default: the search's)")
    p.add_argument("--dashboard-whole", action="store_true", help="dashboard: also time the whole cheap study")
    p.add_argument("--cost", default="flops", help="flops | latency: the cost objective (timing: its price)")
    args = p.parse_args()
    global COST
    COST = args.cost
    _quiet()
    _register_wide()
    parts = set(args.parts.split(","))
    result: dict[str, Any] = {"cpus_usable": len(os.sched_getaffinity(0)), "load_avg_at_start": os.getloadavg()}
    every = None
    if "exhaustive" in parts:
        ex = part_exhaustive([int(c) for c in args.exhaustive_counts.split(",")], args.seeds)
        every = ex.pop("_every")
        result["exhaustive"] = ex
    if "quality" in parts:
        result["quality"] = part_quality(
            args.quality_candidates, args.seeds, every, args.quality_space or uniform_name()
        )
    if "timing" in parts:
        key = "timing" if args.cost == "flops" else f"timing_{args.cost}"
        result[key] = part_timing([int(c) for c in args.counts.split(",")], args.timing_space)
    if "dashboard" in parts:
        from nas.engine import SearchOptions

        counts = args.dashboard_counts or str(SearchOptions(budget=1).candidates)
        result["dashboard"] = part_dashboard([int(c) for c in counts.split(",")], args.dashboard_whole)
    result["load_avg_at_end"] = os.getloadavg()
    previous = BENCH_DIR / "cheap_stage.json"  # a run of some --parts keeps the other parts' figures
    if previous.exists():
        old = json.loads(previous.read_text())
        old.pop("machine", None)
        result = {**old, **result}
    print(f"wrote {write_result('cheap_stage', result)}")


if __name__ == "__main__":
    main()
