"""The paper's ablations (Tables 3, 5, 6, 7) at proxy scale: does each claimed direction hold?

Trains the presets — YOLOR-v3, PRN, CSP and its three fusion variants, ELAN {1,1}/{2,1}/{2,2} —
and YOLOR-CSP with stop-gradient on the identity connection / on the computational block
(Fig. 9; ``stop_gradient`` on both parts) with one of the rank study's proxy recipes
(``--recipe reduced``, the default, or ``default``: the search's own), for two seeds each.
Each claim "A beats B" is judged on the seed-mean AP difference against the noise:
``agree`` / ``disagree`` when |Δ| exceeds twice the pooled seed-to-seed standard deviation of a
difference (pooled over every model trained with two seeds at the recipe, here and in the rank
study), else ``within noise``. Resumable: ``runs/bench/paper_ablation[_default]/<name>/seed<k>/``;
``--shard i/n`` splits the trainings between n workers, and a plain run then only analyses.

    .venv/bin/python -m benchmarks.paper_ablation [--recipe reduced] [--seeds 0 1] [--deadline HH:MM]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from typing import Any

import numpy as np

from benchmarks._common import BENCH_DIR, write_result
from benchmarks.rank_study import RECIPES, finished_metrics, result_name

PRESETS = (
    "yolor-v3",
    "yolor-prn",
    "yolor-csp",
    "yolor-csp-fusion-first",
    "yolor-csp-fusion-last",
    "yolor-csp-no-fusion",
    "yolor-elan-1-1",
    "yolor-elan-2-1",
    "yolor-elan-2-2",
)
STOP = {"yolor-csp-stopgrad-identity": "identity", "yolor-csp-stopgrad-block": "block"}
# (paper table, better, worse, paper's AP_box of better, of worse) — COCO val, full scale
CLAIMS = (
    ("Table 3", "yolor-csp", "yolor-csp-stopgrad-identity", 51.0, None),
    ("Table 3", "yolor-csp", "yolor-csp-stopgrad-block", 51.0, None),
    ("Table 5", "yolor-prn", "yolor-v3", 50.0, 49.5),
    ("Table 6", "yolor-csp", "yolor-v3", 51.0, 49.5),
    ("Table 6", "yolor-csp", "yolor-csp-fusion-first", 51.0, 50.8),
    ("Table 6", "yolor-csp", "yolor-csp-fusion-last", 51.0, 50.6),
    ("Table 6", "yolor-csp", "yolor-csp-no-fusion", 51.0, 50.5),
    ("Table 7", "yolor-elan-1-1", "yolor-v3", 50.2, 49.5),
    ("Table 7", "yolor-elan-2-1", "yolor-elan-1-1", 51.4, 50.2),
    ("Table 7", "yolor-elan-2-2", "yolor-elan-2-1", 51.8, 51.4),
)


def config(name: str) -> Any:
    """A preset, or yolor-csp with stop-gradient on both parts (Fig. 9)."""
    from search_spaces import load_config, validate

    if name in STOP:
        base = load_config("yolor-csp")
        sg = STOP[name]
        return validate(
            dataclasses.replace(
                base,
                backbone=dataclasses.replace(base.backbone, stop_gradient=sg),
                neck=dataclasses.replace(base.neck, stop_gradient=sg),
            )
        )
    return load_config(name)


def preset_ranking(results: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """Kendall τ between each cheap predictor and the seed-mean AP of the trained presets: a
    held-out check of the cheap scores on designs the rank study never sampled."""
    from nas.engine import cheap_score, score_candidate
    from nas.engine.stats import correlation

    names = [n for n, r in results.items() if r]
    if len(names) < 3:
        return {}
    ap = [float(np.mean([v["AP"] for v in results[n].values()])) for n in names]
    scored = [score_candidate(config(n), "gradpath") for n in names]
    predictors = {
        "fitted (the default cheap score)": [
            cheap_score("fitted", s["flops"], s["params"], s["metrics"]) for s in scored
        ],
        "gradpath": [s["score"] for s in scored],
        "flops": [s["flops"] for s in scored],
        "-max_shortest_gradient_path": [-s["metrics"]["max_shortest_gradient_path"] for s in scored],
    }
    return {k: correlation(v, ap) for k, v in predictors.items()}


def rank_study_spreads(recipe_name: str) -> list[float]:
    """Seed-to-seed AP variances of the rank study's repeated candidates at the same recipe."""
    path = BENCH_DIR / f"{result_name('rank_study', recipe_name)}.json"
    if not path.exists():
        return []
    rows = json.loads(path.read_text())["rows"]
    return [float(np.var([r["AP"], r["AP_seed1"]], ddof=1)) for r in rows if r["AP_seed1"] is not None]


def verdict(better: list[float], worse: list[float], sd_diff: float) -> str:
    d = float(np.mean(better) - np.mean(worse))
    if not math.isfinite(sd_diff) or abs(d) <= 2 * sd_diff:
        return "within noise"
    return "agree" if d > 0 else "disagree"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--recipe", choices=sorted(RECIPES), default="reduced")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--shard", default=None, help="i/n: train only jobs j with j mod n == i, no analysis")
    p.add_argument("--deadline", default=None, help="UTC HH:MM: start no training after it")
    p.add_argument("--analyze-only", action="store_true")
    args = p.parse_args(argv)
    from evaluators.train import train_from_config

    recipe, name_out = RECIPES[args.recipe], result_name("paper_ablation", args.recipe)
    out = BENCH_DIR / name_out
    shard, of = (int(v) for v in args.shard.split("/")) if args.shard else (0, 1)
    names = list(PRESETS) + list(STOP)
    results: dict[str, dict[int, dict[str, Any]]] = {n: {} for n in names}
    # all names for seed 0 first: a cut-short run still covers every claim
    for j, (seed, name) in enumerate((s, n) for s in args.seeds for n in names):
        path = out / name / f"seed{seed}" / "metrics.json"
        if finished_metrics(path) is None:
            late = args.deadline and time.strftime("%H:%M", time.gmtime()) >= args.deadline
            if args.analyze_only or late or j % of != shard:
                continue
            train_from_config(
                config(name), seed=seed, out_dir=path.parent, progress=False, num_threads=args.threads, **recipe
            )
        m = finished_metrics(path)
        if m is not None:
            results[name][seed] = {"AP": float(m.get("AP") or 0.0), "AP50": float(m.get("AP50") or 0.0)}
            print(f"{name} seed {seed}: AP {results[name][seed]['AP']:.4f}", flush=True)
    if args.shard:
        return 0
    # seed-to-seed sd of one model's AP, pooled over models with >= 2 seeds; sd of a difference of
    # two seed means = sd * sqrt(2 / n_seeds)
    spreads = [np.var([v["AP"] for v in r.values()], ddof=1) for r in results.values() if len(r) >= 2]
    spreads += rank_study_spreads(args.recipe)  # same recipe, other models: more pairs, same noise
    sd = math.sqrt(float(np.mean(spreads))) if spreads else float("nan")
    claims = []
    for table, better, worse, ap_b, ap_w in CLAIMS:
        b = [v["AP"] for v in results[better].values()]
        w = [v["AP"] for v in results[worse].values()]
        if not b or not w:
            claims.append({"table": table, "claim": f"{better} > {worse}", "verdict": "not measured"})
            continue
        n = min(len(b), len(w))
        sd_diff = sd * math.sqrt(2 / n) if n else float("nan")
        claims.append(
            {
                "table": table,
                "claim": f"{better} > {worse}",
                "paper_AP_box": [ap_b, ap_w],
                "proxy_AP": [float(np.mean(b)), float(np.mean(w))],
                "delta": float(np.mean(b) - np.mean(w)),
                "noise_sd_of_delta": sd_diff,
                "seeds": n,
                "verdict": verdict(b, w, sd_diff),
            }
        )
    ranking = preset_ranking(results)
    write_result(
        name_out,
        {
            "recipe": {"name": args.recipe, **recipe},
            "seed_sd_AP": sd,
            "seed_pairs": len(spreads),
            "results": results,
            "claims": claims,
            "preset_ranking": ranking,
        },
    )
    for c in claims:
        print(f"{c['table']}: {c['claim']:50s} {c['verdict']}")
    for k, c in ranking.items():
        print(f"presets ranked by {k:34s} τ {c['kendall_tau']:+.2f} {np.round(c['kendall_tau_ci95'], 2)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
