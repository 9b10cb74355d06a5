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

``--match-flops`` (issue 13, item 4) separates "better gradient paths" from "fewer FLOPs": CSP,
ELAN-{1,1}, ELAN-{2,1} and PRN are each widened until the FLOPs of the model actually trained
at 640 px match YOLOR-v3's within 2 % (the global ``width`` on a 0.001 grid; among the widths
that do, the one closest in the FLOPs of the proxy-scale model actually trained, whose channels
round to multiples of 8 and so move in steps of a few %), then trained against v3 with the same seeds and noise rule. Results:
``runs/bench/paper_ablation_matched[_<recipe>].json``, trainings under ``paper_ablation_matched/``.

    .venv/bin/python -m benchmarks.paper_ablation --match-flops [--shard i/2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.lib.common import BENCH_DIR, write_result
from benchmarks.lib.recipes import RECIPES, add_version_flag, make_recipe, result_name, study_recipe
from benchmarks.lib.study import finished_metrics, shard_arg, walk
from benchmarks.rank_study import STUDY_NAMES

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

#: --match-flops: the reference, and the designs widened to its FLOPs
MATCH_REFERENCE = "yolor-v3"
MATCHED = ("yolor-prn", "yolor-csp", "yolor-elan-1-1", "yolor-elan-2-1")
MATCH_TOLERANCE = 0.02
MATCHED_CLAIMS = (
    ("Table 5", "yolor-prn", "yolor-v3", 50.0, 49.5),
    ("Table 6", "yolor-csp", "yolor-v3", 51.0, 49.5),
    ("Table 7", "yolor-elan-1-1", "yolor-v3", 50.2, 49.5),
    ("Table 7", "yolor-elan-2-1", "yolor-v3", 51.4, 49.5),
)


def trained_flops(cfg: Any, recipe: dict[str, Any]) -> float:
    """Forward FLOPs of the model a recipe trains from ``cfg`` (as ``train_from_config`` builds it)."""
    from nas.core.cost import cost
    from search_spaces import compile_config

    arch = dataclasses.replace(cfg, width=cfg.width * recipe["width_mult"], img_size=recipe["img_size"])
    return float(cost(compile_config(arch)).flops)


def full_scale_flops(cfg: Any) -> float:
    from nas.core.cost import cost
    from search_spaces import compile_config

    return float(cost(compile_config(cfg)).flops)


def match_width(cfg: Any, ref: Any, recipe: dict[str, Any], step: float = 0.001, hi: float = 2.0) -> Any:
    """``cfg`` with the global width (a ``step`` grid from its own up to ``hi``) whose FLOPs at
    640 px are within :data:`MATCH_TOLERANCE` of ``ref``'s (the project's FLOPs, the budget's
    and the paper's), and, among those, whose trained proxy-scale FLOPs are closest to ``ref``'s
    (its channels round to multiples of 8 at width × 0.25, so an exact match there is often not
    reachable); a :class:`ValueError` when no width is within tolerance."""
    full, trained = full_scale_flops(ref), trained_flops(ref, recipe)
    best, gap = None, math.inf
    for k in range(int(round((hi - cfg.width) / step)) + 1):
        c = dataclasses.replace(cfg, width=round(cfg.width + k * step, 4))
        if abs(full_scale_flops(c) / full - 1) <= MATCH_TOLERANCE:
            g = abs(trained_flops(c, recipe) / trained - 1)
            if g < gap:
                best, gap = c, g
    if best is None:
        raise ValueError(f"no width matches {full:.3g} FLOPs within {MATCH_TOLERANCE:.0%}")
    return best


def matched_configs(recipe: dict[str, Any]) -> dict[str, Any]:
    """The reference and each design of :data:`MATCHED` at the reference's trained FLOPs."""
    ref = config(MATCH_REFERENCE)
    return {MATCH_REFERENCE: ref, **{n: match_width(config(n), ref, recipe) for n in MATCHED}}


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


def preset_ranking(
    results: dict[str, dict[int, dict[str, Any]]], configs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Kendall τ between each cheap predictor and the seed-mean AP of the trained presets: a
    held-out check of the cheap scores on designs the rank study never sampled."""
    from benchmarks.lib.stats import correlation
    from nas.engine import cheap_score, score_candidate

    names = [n for n, r in results.items() if r]
    if len(names) < 3:
        return {}
    ap = [float(np.mean([v["AP"] for v in results[n].values()])) for n in names]
    scored = [score_candidate((configs or {}).get(n) or config(n), "gradpath") for n in names]
    predictors = {
        "fitted (the default cheap score)": [
            cheap_score("fitted", s["flops"], s["params"], s["metrics"]) for s in scored
        ],
        "gradpath": [s["score"] for s in scored],
        "flops": [s["flops"] for s in scored],
        "-max_shortest_gradient_path": [-s["metrics"]["max_shortest_gradient_path"] for s in scored],
    }
    return {k: correlation(v, ap) for k, v in predictors.items()}


def rank_study_spreads(recipe_name: str, version: str = "v1") -> list[float]:
    """Seed-to-seed AP variances of the rank studies' repeated candidates at the same recipe
    (the uniform-space and the per-stage study, whichever have been analysed)."""
    out = []
    for stem in sorted(set(STUDY_NAMES.values())):
        path = BENCH_DIR / f"{result_name(stem, recipe_name, version)}.json"
        if path.exists():
            rows = json.loads(path.read_text())["rows"]
            out += [float(np.var([r["AP"], r["AP_seed1"]], ddof=1)) for r in rows if r["AP_seed1"] is not None]
    return out


def verdict(better: list[float], worse: list[float], sd_diff: float) -> str:
    d = float(np.mean(better) - np.mean(worse))
    if not math.isfinite(sd_diff) or abs(d) <= 2 * sd_diff:
        return "within noise"
    return "agree" if d > 0 else "disagree"


def flops_table(configs: dict[str, Any], recipe: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each model's width, the FLOPs of the model the recipe trains and at 640 px, and both
    relative to YOLOR-v3's when it is among them."""
    flops = {
        n: {
            "width": c.width,
            "trained_flops": trained_flops(c, recipe),
            "flops_at_640": full_scale_flops(c),
        }
        for n, c in configs.items()
    }
    ref = flops.get(MATCH_REFERENCE)
    if ref:
        for f in flops.values():
            f["trained_flops_vs_v3"] = f["trained_flops"] / ref["trained_flops"] - 1
            f["flops_at_640_vs_v3"] = f["flops_at_640"] / ref["flops_at_640"] - 1
    return flops


def judge(
    claims_table: tuple[tuple[str, str, str, float, float | None], ...],
    results: dict[str, dict[int, dict[str, Any]]],
    sd: float,
) -> list[dict[str, Any]]:
    """Each claim "better > worse" against the seed-mean APs, judged by :func:`verdict` with the
    noise of a difference of seed means (``sd`` × √(2 / seeds))."""
    claims = []
    for table, better, worse, ap_b, ap_w in claims_table:
        b = [v["AP"] for v in results.get(better, {}).values()]
        w = [v["AP"] for v in results.get(worse, {}).values()]
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
    return claims


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--recipe", choices=sorted(RECIPES), default="reduced")
    add_version_flag(p)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--shard", default=None, help="i/n: train only jobs j with j mod n == i, no analysis")
    p.add_argument("--deadline", default=None, help="UTC HH:MM: start no training after it")
    p.add_argument("--analyze-only", action="store_true")
    p.add_argument(
        "--models", nargs="+", default=None, help="train only these models (any preset; default: the ablation's)"
    )
    p.add_argument(
        "--match-flops", action="store_true", help="CSP/ELAN/PRN widened to v3 FLOPs at 640 px (within 2 %%)"
    )
    args = p.parse_args(argv)
    from evaluators.train import train_from_config

    recipe = study_recipe(args.recipe, args.version)
    name_out = result_name(
        "paper_ablation_matched" if args.match_flops else "paper_ablation", args.recipe, args.version
    )
    out = BENCH_DIR / name_out
    shard = shard_arg(p, args.shard)
    configs = matched_configs(recipe) if args.match_flops else {n: config(n) for n in list(PRESETS) + list(STOP)}
    if args.models:
        from search_spaces.config import preset_names

        known = list(configs) + [n for n in preset_names() if n not in configs and not args.match_flops]
        unknown = sorted(set(args.models) - set(known))
        if unknown:
            p.exit(2, f"error: --models {' '.join(unknown)}: not accepted; accepted: {', '.join(known)}\n")
        configs = {n: configs.get(n) or config(n) for n in known if n in args.models}
    names = list(configs)
    claims_table = MATCHED_CLAIMS if args.match_flops else CLAIMS
    results: dict[str, dict[int, dict[str, Any]]] = {n: {} for n in names}
    # all names for seed 0 first: a cut-short run still covers every claim
    jobs = [(s, n) for s in args.seeds for n in names]

    def metrics_path(job: tuple[int, str]) -> Path:
        seed, name = job
        return out / name / f"seed{seed}" / "metrics.json"

    def done(job: tuple[int, str]) -> bool:
        return finished_metrics(metrics_path(job)) is not None

    for _, (seed, name), run in walk(jobs, None if args.analyze_only else shard, done, args.deadline):
        path = metrics_path((seed, name))
        if run:
            train_from_config(
                configs[name], make_recipe(recipe, seed), out_dir=path.parent, progress=False, num_threads=args.threads
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
    spreads += rank_study_spreads(args.recipe, args.version)  # same recipe, other models: more pairs, same noise
    sd = math.sqrt(float(np.mean(spreads))) if spreads else float("nan")
    claims = judge(claims_table, results, sd)
    ranking = preset_ranking(results, configs)
    flops = flops_table(configs, recipe)
    write_result(
        name_out,
        {
            "recipe": {"name": args.recipe, **recipe},
            "match_flops": args.match_flops,
            "flops": flops,
            "seed_sd_AP": sd,
            "seed_pairs": len(spreads),
            "results": results,
            "claims": claims,
            "preset_ranking": ranking,
        },
    )
    if args.match_flops:
        for n, f in flops.items():
            print(
                f"{n:16s} width {f['width']:.3f}: trained {f['trained_flops'] / 1e6:.1f} MFLOPs "
                f"({f.get('trained_flops_vs_v3', 0):+.1%} vs v3), at 640 px {f['flops_at_640'] / 1e9:.1f} GFLOPs "
                f"({f.get('flops_at_640_vs_v3', 0):+.1%})"
            )
    for c in claims:
        delta = f"Δ {c['delta']:+.4f} (noise sd {c['noise_sd_of_delta']:.4f})" if "delta" in c else ""
        print(f"{c['table']}: {c['claim']:50s} {c['verdict']:14s} {delta}")
    for k, c in ranking.items():
        print(f"presets ranked by {k:34s} τ {c['kendall_tau']:+.2f} {np.round(c['kendall_tau_ci95'], 2)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
