"""What ``nas search`` returns against the paper's presets, under the same budget and recipe,
each trained with 2 seeds.

The winners are the best-AP picks (what ``best.yaml`` holds) of the default searches of the live
confirmation (``benchmarks/search_efficiency_live.py``, recipe ``reduced`` v2, one search per
seed). A search chose its winner on that training's AP, which is biased upward (the winner's
curse), so each winner is retrained with two fresh seeds (:data:`FRESH_SEEDS`) and only those
count. The presets are those within the 150 GFLOPs budget, trained with seeds 0 and 1 exactly as
``benchmarks.paper_ablation --version v2`` trains them (its folders are reused).

Resumable; ``--shard i/n`` splits the trainings, a run without it reports
(``runs/bench/winner_vs_presets.json``; ``--data`` also writes the committed copy
``benchmarks/data/winner_vs_presets.json``). About 8 CPU-min with the presets already trained:

    .venv/bin/python -m benchmarks.winner_vs_presets --shard 0/2 &
    .venv/bin/python -m benchmarks.winner_vs_presets --shard 1/2 &
    wait; .venv/bin/python -m benchmarks.winner_vs_presets --data
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.lib.common import BENCH_DIR, write_json, write_result
from benchmarks.lib.designs import BUDGET
from benchmarks.lib.recipes import make_recipe, result_name, study_recipe
from benchmarks.lib.stats import sem
from benchmarks.lib.study import cand_dir, finished_metrics, shard_arg, walk
from benchmarks.paper_ablation import config, full_scale_flops

RECIPE, VERSION = "reduced", "v2"
#: seeds no search selected on (the searches trained with seeds 0, 1, ...)
FRESH_SEEDS = (10, 11)
PRESET_SEEDS = (0, 1)
DATA = Path(__file__).resolve().parent / "data" / "winner_vs_presets.json"
#: the live confirmation's committed result (``search_efficiency_live --data``)
LIVE = DATA.parent / f"{result_name('search_efficiency_live', RECIPE, VERSION)}.json"


def winners(live: dict[str, Any]) -> list[dict[str, Any]]:
    """Each default search's best-AP pick, in seed order.

    >>> live = {"arms": {"search": {"picks": [[{"AP": 0.1, "key": "a"}, {"AP": 0.2, "key": "b"}]]}}}
    >>> [w["key"] for w in winners(live)]
    ['b']
    """
    return [max(picks, key=lambda p: p["AP"]) for picks in live["arms"]["search"]["picks"]]


def presets_in_budget() -> list[str]:
    """The detector presets (``yolor-*``; the darknets are backbones alone) under the budget."""
    from search_spaces.config import preset_names

    return [n for n in preset_names() if n.startswith("yolor-") and full_scale_flops(config(n)) < BUDGET]


def jobs(live: dict[str, Any]) -> list[tuple[str, Any, int, Path]]:
    """(label, config, seed, folder) of every training the comparison needs."""
    from search_spaces import parse_yaml

    recipe = study_recipe(RECIPE, VERSION)
    out = []
    for i, w in enumerate(winners(live)):
        cfg = parse_yaml(w["config"])
        out += [(f"search seed {i}", cfg, s, cand_dir(cfg, recipe) / f"seed{s}") for s in FRESH_SEEDS]
    ablation = BENCH_DIR / result_name("paper_ablation", RECIPE, VERSION)
    for name in presets_in_budget():
        out += [(name, config(name), s, ablation / name / f"seed{s}") for s in PRESET_SEEDS]
    return out


def report(live: dict[str, Any], aps: dict[tuple[str, int], float]) -> dict[str, Any]:
    """Per design its 2-seed mean; the winners' mean against the best preset, with the noise of a
    difference of 2-seed means (the pooled seed-to-seed sd of every design here × √(2/2))."""
    rows = []
    for i, w in enumerate(winners(live)):
        label = f"search seed {i}"
        fresh = [aps[(label, s)] for s in FRESH_SEEDS]
        rows.append(
            {
                "design": label,
                "config": w["config"],
                "GFLOPs": w["flops"] / 1e9,
                "selection_AP": w["AP"],
                "AP": float(np.mean(fresh)),
                "seed_APs": fresh,
            }
        )
    for name in presets_in_budget():
        seeds = [aps[(name, s)] for s in PRESET_SEEDS]
        rows.append(
            {
                "design": name,
                "GFLOPs": full_scale_flops(config(name)) / 1e9,
                "AP": float(np.mean(seeds)),
                "seed_APs": seeds,
            }
        )
    sd = math.sqrt(float(np.mean([np.var(r["seed_APs"], ddof=1) for r in rows])))
    found = [r["AP"] for r in rows if r["design"].startswith("search")]
    best_preset = max((r for r in rows if not r["design"].startswith("search")), key=lambda r: r["AP"])
    return {
        "recipe": {"name": RECIPE, "version": VERSION},
        "fresh_seeds": list(FRESH_SEEDS),
        "rows": rows,
        "winners_mean_AP": float(np.mean(found)),
        "winners_mean_AP_sem": sem(found),
        "best_preset": best_preset["design"],
        "best_preset_AP": best_preset["AP"],
        "seed_sd_AP": sd,  # also the sd of a difference of two 2-seed means: sd * sqrt(2 / 2)
        "winners_above_best_preset": sum(a > best_preset["AP"] for a in found),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--live", type=Path, default=LIVE, help="the live confirmation's result (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--shard", default=None, help="i/n: train only jobs j with j mod n == i, no report")
    p.add_argument("--data", action="store_true", help=f"also write {DATA.relative_to(DATA.parents[2])}")
    args = p.parse_args(argv)
    if not args.live.is_file():
        p.exit(2, f"error: --live: {args.live} does not exist; run benchmarks.search_efficiency_live first\n")
    from evaluators.train import train_from_config

    live = json.loads(args.live.read_text())
    shard = shard_arg(p, args.shard)
    recipe = study_recipe(RECIPE, VERSION)
    aps: dict[tuple[str, int], float] = {}

    def done(job: tuple[str, Any, int, Path]) -> bool:
        return finished_metrics(job[3] / "metrics.json") is not None

    for _, (label, cfg, seed, folder), run in walk(jobs(live), shard, done):
        if run:
            train_from_config(cfg, make_recipe(recipe, seed), out_dir=folder, progress=False, num_threads=args.threads)
        m = finished_metrics(folder / "metrics.json")
        if m is not None:
            aps[(label, seed)] = float(m.get("AP") or 0.0) if m.get("status") == "ok" else 0.0
            print(f"{label} seed {seed}: AP {aps[(label, seed)]:.4f}", flush=True)
    if args.shard:
        return 0
    result = report(live, aps)
    for r in sorted(result["rows"], key=lambda r: -r["AP"]):
        sel = f"  (selected at {r['selection_AP']:.3f})" if "selection_AP" in r else ""
        print(f"{r['design']:18s} {r['GFLOPs']:6.1f} GFLOPs  AP {r['AP']:.3f} {r['seed_APs']}{sel}")
    print(
        f"winners {result['winners_mean_AP']:.3f} ± {result['winners_mean_AP_sem']:.3f} against the best preset "
        f"({result['best_preset']}) {result['best_preset_AP']:.3f}; sd of a 2-seed difference {result['seed_sd_AP']:.3f}"
    )
    write_result("winner_vs_presets", result)
    if args.data:
        write_json(DATA, result, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
