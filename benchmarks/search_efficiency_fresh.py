"""Search efficiency at equal compute, judged with fresh seeds: the default search against TPE,
random sampling and regularised evolution, all with real trainings on the per-stage space.

Rule (fixed, and this text committed, before any of its trainings). Five seeds s = 0 … 4, the
table's recipe (``reduced``, v2), a budget of 150 GFLOPs, the compute of 8 full trainings each:

- ``search``: the default ``nas search --budget 150GFLOPs --seed s`` — the headline's own runs
  (``benchmarks/search_vs_presets.py``): 4 picks × 2 seeds; it reports ``best.yaml``. When the
  default is another ``--picks`` (``top``, ``families``), its picks and winners are
  ``benchmarks/search_rescored.py --variant``'s (the same searches' candidates, selected as that
  ``--picks`` selects).
- ``optuna-tpe``, ``random``, ``evolution``: ``benchmarks/search_efficiency_live.py``'s arms at
  K = 8 single trainings (training seed 0, its folders), proposal seed s; each reports the design
  of its best observed AP. (``halving``, the default before issue 28, is not rerun: it lost to the
  search at K = 4 in ``search_efficiency_live_v2.json``.)

Judged, per arm and seed: ``fresh_AP``, the reported design retrained with the headline's fresh
seeds 100 and 101 (mean; ``search_vs_presets.retrain``, so a design both train is trained once):
what a user would get; ``hypervolume`` of the trained designs at their observed AP (a pick's is its
2-seed mean) against (0 AP, the budget); ``outside_support``, the share of the trained designs
outside the gradient-path table's support (:mod:`nas.engine.scores.support`). Reported: means,
and search minus each arm paired by seed with a bootstrap 95 % CI over the seeds.

**Known, 2026-12-08:** one task of 15 is trained. The ``optuna-tpe`` arm stalls at K = 8:
``search_efficiency_live.tpe_run`` tells an over-budget proposal FAIL, from which TPE learns
nothing, so it keeps proposing over budget while every ``suggest`` rereads the growing list of
trials (both workers spent 10 min of CPU without a training). Give TPE the budget as a
constraint (``TPESampler(constraints_func=...)``) as a new registered arm before running on.

    .venv/bin/python -m benchmarks.search_efficiency_fresh --shard 0/2 &     # workers
    .venv/bin/python -m benchmarks.search_efficiency_fresh --shard 1/2 &
    wait; .venv/bin/python -m benchmarks.search_efficiency_fresh --data    # the report
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from benchmarks.lib.common import BENCH_DIR, write_json, write_result
from benchmarks.lib.designs import config_flops, random_feasible
from benchmarks.lib.study import run_once, shard_arg
from benchmarks.pool_sim import hypervolume
from benchmarks.search_efficiency_live import DATA_DIR, evolution_run, tpe_run, trained_ap
from benchmarks.search_vs_presets import BUDGET, DATA, FRESH_SEEDS, RECIPE, SEARCH_SEEDS, retrain, run_picks
from nas.core.cost import parse_flops

#: the compute every arm spends, in full trainings: the default search's 4 picks × 2 seeds
TRAININGS = 8
OTHER_ARMS = ("optuna-tpe", "random", "evolution")
ARMS = ("search", *OTHER_ARMS)
TASKS_DIR = BENCH_DIR / "search_efficiency_fresh"
OUT = DATA_DIR / "search_efficiency_fresh.json"


def default_picks() -> str:
    """How the default search spreads its picks (``--picks``) now."""
    from nas.engine import SearchOptions

    return SearchOptions(budget=1).picks


def search_arm(seed: int, picks: str) -> dict[str, Any]:
    """The default search with ``--seed seed``: its trained picks (2-seed means) and its winner's
    fresh APs, from the headline's runs (``front``) or the variant's (``top``, ``families``)."""
    if picks != "front":
        from benchmarks.search_rescored import OUT as VARIANTS

        row = next(r for r in json.loads(VARIANTS[picks].read_text())["searches"] if r["search_seed"] == seed)
        trained = [{"config": p["config"], "AP": p["AP"], "flops": p["GFLOPs"] * 1e9} for p in row["picks"]]
        return {"picks": trained, "reported": row["winner"]["config"], "fresh_APs": row["fresh_APs"]}
    picks_, winner = run_picks(seed)
    trained = [{k: p[k] for k in ("config", "AP", "flops")} for p in picks_]
    row = next(r for r in json.loads(DATA.read_text())["searches"] if r["search_seed"] == seed)
    return {"picks": trained, "reported": winner, "fresh_APs": row["fresh_APs"]}


def other_arm(arm: str, seed: int, threads: int) -> dict[str, Any]:
    """One of the other arms at :data:`TRAININGS` single trainings, its best observed design
    retrained with the fresh seeds."""
    if arm == "optuna-tpe":
        rows = tpe_run(seed, TRAININGS, RECIPE, threads)
    elif arm == "evolution":
        rows = evolution_run(seed, TRAININGS, RECIPE, threads)
    else:
        cfgs = random_feasible(seed, TRAININGS)
        rows = [{"config": c.to_yaml(), "AP": trained_ap(c, RECIPE, threads), "flops": config_flops(c)} for c in cfgs]
    trained = [{"config": r["config"], "AP": r["AP"], "flops": r["flops"]} for r in rows]
    reported = max(trained, key=lambda r: r["AP"])["config"]  # max keeps the first of equals
    return {"picks": trained, "reported": reported, "fresh_APs": [retrain(reported, f, threads) for f in FRESH_SEEDS]}


def outside_support(configs: list[str]) -> float:
    """The share of ``configs`` (YAML) outside the gradient-path table's support."""
    from nas.engine import score_candidate
    from nas.engine.scores.calibration import features_of
    from nas.engine.scores.support import support
    from search_spaces import parse_yaml

    scored = [score_candidate(parse_yaml(c)) for c in configs]
    inside = support().inside([features_of(s["flops"], s["params"], s["metrics"]) for s in scored])
    return 1.0 - float(np.mean(inside))


def paired_ci(diff: np.ndarray, n_boot: int = 10000) -> list[float]:
    """A bootstrap 95 % CI of the mean of paired differences (over the seeds).

    >>> paired_ci(np.array([0.01, 0.01, 0.01]))
    [0.01, 0.01]
    """
    rng = np.random.default_rng(0)
    means = diff[rng.integers(0, len(diff), (n_boot, len(diff)))].mean(axis=1)
    return [round(float(v), 10) for v in np.percentile(means, [2.5, 97.5])]


def judge(task: dict[str, Any]) -> dict[str, float]:
    """One (arm, seed) task's figures: see the rule."""
    return {
        "fresh_AP": float(np.mean(task["fresh_APs"])),
        "hypervolume": hypervolume([(p["AP"], p["flops"]) for p in task["picks"]], parse_flops(BUDGET)),
        "outside_support": outside_support([p["config"] for p in task["picks"]]),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--shard", default=None, help="i/n: run only the other arms' tasks j with j mod n == i, no report")
    p.add_argument("--data", action="store_true", help=f"also write {OUT.name} (committed)")
    args = p.parse_args(argv)
    shard = shard_arg(p, args.shard)
    tasks = [(arm, s) for s in SEARCH_SEEDS for arm in OTHER_ARMS]
    runs = {
        (arm, s): run_once(
            TASKS_DIR / f"{arm}-seed{s}.json", lambda a=arm, s=s: other_arm(a, s, args.threads), indent=2
        )
        for j, (arm, s) in enumerate(tasks)
        if shard.owns(j)
    }
    if args.shard:
        return 0
    picks = default_picks()
    runs |= {("search", s): search_arm(s, picks) for s in SEARCH_SEEDS}
    judged = {key: judge(task) for key, task in runs.items()}
    metrics = ("fresh_AP", "hypervolume", "outside_support")
    result: dict[str, Any] = {"rule": __doc__.split("\n\n")[1], "default_picks": picks, "trainings": TRAININGS}
    result["arms"] = {
        arm: {m: float(np.mean([judged[arm, s][m] for s in SEARCH_SEEDS])) for m in metrics}
        | {"per_seed": {m: [judged[arm, s][m] for s in SEARCH_SEEDS] for m in metrics}}
        for arm in ARMS
    }
    result["search_minus_arm"] = {}
    for arm in OTHER_ARMS:
        gaps = {}
        for m in ("fresh_AP", "hypervolume"):
            diff = np.array([judged["search", s][m] - judged[arm, s][m] for s in SEARCH_SEEDS])
            gaps[m] = {"mean": float(diff.mean()), "ci95": paired_ci(diff)}
        result["search_minus_arm"][arm] = gaps
    for arm, a in result["arms"].items():
        print(
            f"{arm:11s} fresh AP {a['fresh_AP']:.3f}  HV {a['hypervolume']:.4f}  outside support {a['outside_support']:.0%}"
        )
    for arm, g in result["search_minus_arm"].items():
        f, h = g["fresh_AP"], g["hypervolume"]
        print(
            f"search − {arm:11s} fresh AP {f['mean']:+.3f} [{f['ci95'][0]:+.3f}, {f['ci95'][1]:+.3f}]  "
            f"HV {h['mean']:+.4f} [{h['ci95'][0]:+.4f}, {h['ci95'][1]:+.4f}]"
        )
    result["tasks"] = {f"{arm}-seed{s}": runs[arm, s] for arm, s in sorted(runs)}
    print(f"wrote {write_result('search_efficiency_fresh', result)}")
    if args.data:
        write_json(OUT, result, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
