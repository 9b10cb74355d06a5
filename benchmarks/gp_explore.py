"""In-run learning on the gradient-path table — a POOL-BASED SIMULATION (nothing is trained).

Does splitting a run's K trainings into an *explore* round and an *exploit* round, the score
refitted in between on the table plus the run's own explore trainings, beat one round of K
(docs/gp-features.md, "In-run learning")? The pool, the noise (a training observes one of a
design's 2 seeds), the budget and the judging (true AP = the 2-seed mean) are
``benchmarks/gp_search.py``'s; the pool also holds the active rounds' designs, which lie where
the search looks.

Per simulation seed the pool splits at random into the **table** the score is fitted on (a
share ``1 - offered``) and the **offered** designs, what the cheap stage sampled. No arm reads
a score fitted on an offered design's AP. Every arm fits the shipped model (``gp_all+flops``,
rank-linear, ``benchmarks.gp_analysis``) and picks with the search's selection
(``select_candidates``: one per FLOPs band, block patterns kept diverse):

- ``one-round``: K picks by the model fitted on the table;
- ``explore-exploit``: the selection's picks in every other FLOPs band (K / 2, the largest band
  first) by it, trained; the model refitted on the table plus their observed APs; the picks in
  the other bands among the untrained offered designs by the refit;
- ``explore-exploit-w``: the same, with the run's trainings weighted to count as much as the
  whole table in the refit (a model that trusts what this run saw).

    .venv/bin/python -m benchmarks.gp_explore [--seeds 200] [--k 4 8 16] [--offered 0.5]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from benchmarks.gp_analysis import model_matrix, resolve
from benchmarks.gp_search import Design, Lab, Pool, Training, build_pool, ci95, judge, select_designs
from benchmarks.gp_table import load_table, round_file
from benchmarks.lib.common import write_result
from benchmarks.lib.stats import fit_rank_linear, predict_rank_linear

MODEL = "gp_all+flops"
ARMS = ("one-round", "explore-exploit", "explore-exploit-w")
REFERENCE = "one-round"
METRICS = ("best_AP", "hypervolume")


def rounds_committed() -> int:
    """The active rounds whose design files are committed next to the table (1, 2, …)."""
    r = 0
    while round_file(r + 1).exists():
        r += 1
    return r


class Scorer:
    """The shipped model's inputs of every pooled design, and its fit on any weighted subset."""

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        self.x = model_matrix(rows, resolve(MODEL, rows))

    def scores(self, table: dict[int, float]) -> np.ndarray:
        """Every pooled design's score by the model fitted on ``table`` (design index -> AP)."""
        return self.fit_run(table, {}, 1)

    def fit_run(self, table: dict[int, float], run: dict[int, float], weight: int) -> np.ndarray:
        """Scores by the model refitted on the table plus the run's observations, each of those
        repeated ``weight`` times."""
        idx = list(table) + [i for i in run for _ in range(weight)]
        y = np.array([table[i] for i in table] + [run[i] for i in run for _ in range(weight)])
        rows = self.x[np.array(idx)]
        w = fit_rank_linear(rows, y)
        return predict_rank_linear(rows, w, self.x)


def pick(offered: list[Design], scores: np.ndarray, k: int, exclude: Collection[int] = ()) -> list[Design]:
    """The search's selection of ``k`` among the offered designs not in ``exclude``, by ``scores``
    (one per FLOPs band, the largest band first)."""
    free = [d for d in offered if d.index not in exclude]
    rescored = [dataclasses.replace(d, scores={"s": float(scores[d.index])}) for d in free]
    by_index = {d.index: d for d in free}
    return [by_index[d.index] for d in select_designs(rescored, k, "s")]


def one_round(lab: Lab, offered: list[Design], table_scores: np.ndarray, k: int) -> list[Training]:
    """``one-round``: the K picks by the table's model, each trained once."""
    for d in pick(offered, table_scores, k):
        lab.train(d, "full")
    return lab.trainings


def explore_exploit(
    lab: Lab,
    offered: list[Design],
    scorer: Scorer,
    table: dict[int, float],
    table_scores: np.ndarray,
    k: int,
    weighted: bool,
) -> list[Training]:
    """``explore-exploit`` (``weighted``: ``-w``): half the bands by the table's model, trained;
    the other half by the model refitted on the table and what they observed."""
    explore = pick(offered, table_scores, k)[0::2]  # every other FLOPs band, the largest first
    run = {d.index: lab.train(d, "full") for d in explore}
    refit = scorer.fit_run(table, run, max(1, round(len(table) / len(run))) if weighted else 1)
    for d in pick(offered, refit, k, exclude=set(run))[1::2]:  # the other bands, by the refit
        lab.train(d, "full")
    return lab.trainings


def simulate(pool: Pool, scorer: Scorer, k: int, seed: int, offered_share: float) -> dict[str, dict[str, float]]:
    """Every arm on seed ``seed``'s split of the pool, at budget ``k``."""
    rng = random.Random(f"gp-explore-split-{seed}")
    n = len(pool.designs)
    chosen = set(rng.sample(range(n), round(offered_share * n)))
    offered = [d for d in pool.designs if d.index in chosen]
    table = {d.index: d.true_ap for d in pool.designs if d.index not in chosen}
    table_scores = scorer.scores(table)
    out = {}
    for name in ARMS:
        lab = Lab(pool, random.Random(f"gp-explore-{seed}-{k}"))  # the same seed draws for every arm
        if name == "one-round":
            trainings = one_round(lab, offered, table_scores, k)
        else:
            trainings = explore_exploit(lab, offered, scorer, table, table_scores, k, name.endswith("-w"))
        out[name] = judge(pool, trainings)
    return out


def summarise(runs: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    """Per arm: the mean of each metric with its 95 % interval, and the paired difference
    against ``one-round`` on the same seeds."""
    return {
        arm: {m: ci95([r[arm][m] for r in runs]) for m in METRICS}
        | {"vs_" + REFERENCE: {m: ci95([r[arm][m] - r[REFERENCE][m] for r in runs]) for m in METRICS}}
        for arm in runs[0]
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--k", type=int, nargs="+", default=[4, 8, 16], help="trainings per run")
    p.add_argument("--seeds", type=int, default=200, help="simulation seeds")
    p.add_argument("--offered", type=float, default=0.5, help="the share of the pool offered (the rest is the table)")
    args = p.parse_args(argv)
    if not 0 < args.offered < 1 or args.seeds < 1 or min(args.k) < 2:
        p.exit(2, "error: --offered must lie in (0, 1), --seeds be positive and every --k at least 2\n")
    rounds = rounds_committed()
    rows = [d for d in load_table(rounds=rounds) if d["AP"] is not None]
    pool, scorer = build_pool(rows, {}), Scorer(rows)
    offered = round(args.offered * len(rows))
    if max(args.k) > offered:
        p.exit(2, f"error: --k {max(args.k)} exceeds the {offered} offered designs; accepted: at most {offered}\n")
    result: dict[str, Any] = {
        "simulation": "pool-based on the gradient-path table and active rounds (docs/gp-features.md, 'In-run learning')",
        "rounds": rounds,
        "pool_size": len(rows),
        "offered": offered,
        "seeds": args.seeds,
        "model": MODEL,
        "results": {},
    }
    for k in args.k:
        summary = summarise([simulate(pool, scorer, k, s, args.offered) for s in range(args.seeds)])
        result["results"][f"K={k}"] = summary
        print(f"K={k} (pool {len(rows)}, {offered} offered, {args.seeds} seeds)")
        for arm, s in summary.items():
            d = s["vs_" + REFERENCE]
            print(
                f"  {arm:18s} best AP {s['best_AP']['mean']:.4f}  HV {s['hypervolume']['mean']:.4f}"
                f"  Δbest {d['best_AP']['mean']:+.4f} [{d['best_AP']['ci95'][0]:+.4f}, {d['best_AP']['ci95'][1]:+.4f}]"
                f"  ΔHV {d['hypervolume']['mean']:+.4f} [{d['hypervolume']['ci95'][0]:+.4f}, {d['hypervolume']['ci95'][1]:+.4f}]"
            )
    print(write_result("gp_explore", result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
