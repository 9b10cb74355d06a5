"""Rank study: does the gradient-path score predict proxy accuracy better than FLOPs?

Candidates are feasible configs (< 150 GFLOPs at 640 px) sampled *stratified* over the 16
(backbone block × neck block) pairs, the other knobs uniform; candidate ``i`` depends only on
``(--seed, i)``, so a larger ``--candidates`` extends the same list. Each is trained with one
proxy recipe: ``--recipe reduced`` (96 px, 5 epochs; the default recipe takes 5–9 min per
candidate on a shared 2-core machine, too slow for ≥ 40 candidates) or ``--recipe default`` (the
search's own, on a GPU or many cores: ``benchmarks/parallel_studies.sh``). The first
``--repeat-seeds`` are trained again with seed 1 to measure the noise ceiling (seed-to-seed τ).

Reported, with bootstrap 95 % CIs over candidates: Kendall τ and Spearman ρ between proxy AP and
every network-level gradient-path metric, the cheap scores, FLOPs, params, synflow and NASWOT;
plus k-fold cross-validated τ of small fitted rank combinations. Resumable: each training has
its own ``runs/bench/rank_study/<hash>/seed<k>/`` (the trainer's checkpoint/metrics.json), the
zero-cost features ``<hash>/features.json``; a re-run reuses both.

    .venv/bin/python -m benchmarks.rank_study --candidates 40 --repeat-seeds 10
    .venv/bin/python -m benchmarks.rank_study --shard 0/2 --threads 1 &   # two workers
    .venv/bin/python -m benchmarks.rank_study --shard 1/2 --threads 1 &
    .venv/bin/python -m benchmarks.rank_study --analyze-only             # tables + plot

Results: ``runs/bench/rank_study.json``/``.png`` (reduced recipe), ``rank_study_default.*``; a
recipe version other than v1 adds its name (``rank_study_v2.json``).

``--space yolor`` (the default since the per-stage space) samples per-stage designs stratified
over the 16 (backbone majority block × neck majority block) pairs: 3 of the 5 stages (nodes) of
each part take the pair's block, the other 2 any block, every knob and multiplier uniform, and a
config whose stages are all alike is redrawn (the study is of heterogeneous designs). It writes
``runs/bench/rank_study_perstage*`` and trains under ``runs/bench/rank_study_perstage/``;
``--space yolor-uniform`` reproduces the first (uniform-space) study and its files.

    .venv/bin/python -m benchmarks.rank_study --space yolor-uniform --analyze-only   # the old study

The candidates are drawn by :mod:`benchmarks.lib.designs` and trained by the study runner of
:mod:`benchmarks.lib.study` (whose config-keyed folders the fidelity, live search-efficiency and
winner-vs-presets studies share). The rank study no longer ships the search's ``fitted`` score:
that is the gradient-path table's fit, past its held-out test (``python -m
benchmarks.gp_analysis --heldout --ship``), and ``--ship`` here is refused in one line.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.lib.common import BENCH_DIR, write_result
from benchmarks.lib.designs import BUDGET, candidates, majority_blocks

#: named by the rules of the registered design files (benchmarks/data/*_designs.json)
from benchmarks.lib.designs import perstage_candidate as perstage_candidate
from benchmarks.lib.designs import perstage_draw as perstage_draw
from benchmarks.lib.features import METRIC_KEYS, transform
from benchmarks.lib.recipes import RECIPES, add_version_flag, result_name, study_recipe
from benchmarks.lib.stats import correlation, cv_tau, fit_rank_linear
from benchmarks.lib.study import RANK_STUDY_DIR, cand_dir, finished, pending, shard_arg, train
from nas.core.runio import atomic_write_text

#: per space: the stem of the result files and the folder of the trainings (the uniform study keeps its names)
STUDY_NAMES = {"yolor-uniform": "rank_study", "yolor": "rank_study_perstage"}
#: what ``--ship`` is refused with: the fitted score ships from the gradient-path table, past its held-out test
SHIP_REFUSED = (
    "error: --ship is not accepted by the rank study; accepted: python -m benchmarks.gp_analysis --heldout "
    "--ship (the fitted score ships only past the gradient-path table's held-out test)\n"
)


def study_dir(space: str) -> Path:
    """Where the trainings and features of the study on ``space`` live."""
    return BENCH_DIR / STUDY_NAMES[space]


def job_order(cands: list[Any], repeat_seeds: int) -> list[tuple[Any, int]]:
    """Seed-0 runs, with the seed-1 repeat of candidate k right after the seed-0 run of
    candidate 3k+2: a study cut short by its deadline still has both a ranking and a noise
    ceiling, in a 3:1 ratio."""
    jobs: list[tuple[Any, int]] = []
    repeats = list(cands[:repeat_seeds])
    for i, c in enumerate(cands):
        jobs.append((c, 0))
        if i % 3 == 2 and repeats:
            jobs.append((repeats.pop(0), 1))
    return jobs + [(c, 1) for c in repeats]


def features(cfg: Any, recipe: dict[str, Any], study: Path = RANK_STUDY_DIR) -> dict[str, Any]:
    """Cheap features of one candidate (cached in ``features.json``): cost at 640 px,
    gradient-path metrics, cheap scores, and zero-cost proxies on the proxy-scale model."""
    folder = cand_dir(cfg, recipe, study)
    path = folder / "features.json"
    if path.exists():
        return json.loads(path.read_text())
    from evaluators.zero_cost import zero_cost_scores
    from nas.engine import cheap_score, score_candidate

    s = score_candidate(cfg, "gradpath")
    tick = time.perf_counter()
    zc = zero_cost_scores(cfg, recipe["width_mult"], recipe["img_size"])
    out = {
        "key": cfg.key(),
        "config": cfg.to_dict(),
        "flops": s["flops"],
        "params": s["params"],
        "metrics": s["metrics"],
        "gradpath": cheap_score("gradpath", s["flops"], s["params"], s["metrics"]),
        **zc,
        "zero_cost_s": round(time.perf_counter() - tick, 3),
    }
    atomic_write_text(path, json.dumps(out, indent=2, default=str))
    return out


# -- analysis ----------------------------------------------------------------------------------
def predictors(f: dict[str, Any]) -> dict[str, float]:
    """Every predictor of the report, oriented so that higher should mean better (FLOPs and
    params as-is: bigger nets learn more; a negative τ then says the opposite)."""
    from nas.engine import cheap_score

    m = f["metrics"]
    out = {f"gp.{k}": float(m[k]) for k in METRIC_KEYS}
    out["cheap.gradpath"] = float(f["gradpath"])
    # the shipped default as the analysis finds it (``fitted_score_version`` in the result): a
    # held-out test on any study it was not fitted on
    out["cheap.fitted"] = cheap_score("fitted", f["flops"], f["params"], m)
    out["flops"] = float(f["flops"])
    out["params"] = float(f["params"])
    out["synflow"] = float(f["synflow"])
    out["naswot"] = float(f["naswot"])
    return out


# the sign of τ the paper's argument predicts (short gradient paths and rich, non-duplicated
# gradient combinations learn better); FLOPs/params: bigger nets usually score higher
EXPECTED_SIGN = {
    "gp.max_shortest_gradient_path": -1,
    "gp.longest_gradient_path": -1,
    "gp.gradient_combinations": 1,
    "gp.distinct_gradient_combinations": 1,
    "gp.duplicate_gradient_ratio": -1,
    "gp.gradient_overlap": -1,
    "cheap.gradpath": 1,
    "cheap.fitted": 1,
    "flops": 1,
    "params": 1,
    "synflow": 1,
    "naswot": 1,
}

FITTED = {
    "fit.flops": ["flops"],
    "fit.params": ["params"],
    "fit.gradpath+flops": ["gp.gradient_combinations", "gp.max_shortest_gradient_path", "flops"],
    "fit.gp_all": [f"gp.{k}" for k in METRIC_KEYS],
    "fit.gp_all+flops": [f"gp.{k}" for k in METRIC_KEYS] + ["flops"],
    "fit.gp_all+flops+params": [f"gp.{k}" for k in METRIC_KEYS] + ["flops", "params"],
    "fit.synflow+naswot+flops": ["synflow", "naswot", "flops"],
}


def collect(cands: list[Any], recipe: dict[str, Any], study: Path = RANK_STUDY_DIR) -> list[dict[str, Any]]:
    """One row per candidate with a features file and an ended seed-0 training: its APs, epochs and predictors."""
    rows = []
    for cfg in cands:
        fpath = cand_dir(cfg, recipe, study) / "features.json"
        r0 = finished(cfg, recipe, 0, study)
        if not fpath.exists() or r0 is None:
            continue
        f = json.loads(fpath.read_text())
        r1 = finished(cfg, recipe, 1, study)
        rows.append(
            {
                "key": f["key"],
                "dir": str(cand_dir(cfg, recipe, study)),
                "blocks": majority_blocks(cfg),
                "pattern": ",".join(cfg.pattern()),
                "config": cfg.to_yaml(),
                "AP": float(r0.get("AP") or 0.0) if r0["status"] == "ok" else 0.0,
                "AP50": float(r0.get("AP50") or 0.0) if r0["status"] == "ok" else 0.0,
                "AP_seed1": None if r1 is None else float(r1.get("AP") or 0.0),
                "AP50_seed1": None if r1 is None else float(r1.get("AP50") or 0.0),
                "status": r0["status"],
                "wall_time_s": r0.get("wall_time_s"),
                "device": r0.get("device"),
                "AP_by_epoch": [float(h.get("AP") or 0.0) for h in r0.get("history", [])],
                "predictors": predictors(f),
            }
        )
    return rows


def analyze(rows: list[dict[str, Any]], target: str = "AP", n_boot: int = 1000) -> dict[str, Any]:
    """Correlation table, noise ceiling and cross-validated fitted scores for one target."""
    y = np.array([r[target] for r in rows])
    names = list(rows[0]["predictors"])
    table = {k: correlation([r["predictors"][k] for r in rows], y, n_boot) for k in names}
    pairs = [(r[target], r[f"{target}_seed1"]) for r in rows if r[f"{target}_seed1"] is not None]
    ceiling = correlation([a for a, _ in pairs], [b for _, b in pairs], n_boot) if len(pairs) >= 3 else None
    fitted = {}
    if len(rows) >= 10:
        for name, cols in FITTED.items():
            x = np.array([[transform(c, r["predictors"][c]) for c in cols] for r in rows])
            # the shipped score on the same folds: is a refit on this data better than it?
            base = {k: np.array([r["predictors"][k] for r in rows]) for k in ("flops", "params", "cheap.fitted")}
            fitted[name] = {"features": cols, **cv_tau(x, y, baselines=base)}
            w = fit_rank_linear(x, y)
            fitted[name]["all_data"] = {
                c: {"weight": float(wi), "mean": float(x[:, j].mean()), "std": float(x[:, j].std())}
                for j, (c, wi) in enumerate(zip(cols, w, strict=True))
            }
    return {
        "target": target,
        "early_stopping": early_stopping(rows, target, n_boot),
        "correlations": table,
        "paper_expected_sign": EXPECTED_SIGN,
        "seed_to_seed": ceiling,
        "fitted_cv": fitted,
    }


def early_stopping(rows: list[dict[str, Any]], target: str = "AP", n_boot: int = 1000) -> dict[str, Any]:
    """τ of each epoch's AP with the final one: how early ASHA can stop a trial and still rank
    it right (the search's grace period rests on this)."""
    if target != "AP":
        return {}
    runs = [r["AP_by_epoch"] for r in rows if r["status"] == "ok" and len(r.get("AP_by_epoch", [])) > 1]
    if len(runs) < 3:
        return {}
    final = [h[-1] for h in runs]
    return {f"epoch {e + 1}": correlation([h[e] for h in runs], final, n_boot) for e in range(min(map(len, runs)) - 1)}


def plot(report: dict[str, Any], rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    corr = report["correlations"]
    names = sorted(corr, key=lambda k: corr[k]["kendall_tau"] if math.isfinite(corr[k]["kendall_tau"]) else -9)
    tau = [corr[k]["kendall_tau"] for k in names]
    lo = [t - corr[k]["kendall_tau_ci95"][0] for k, t in zip(names, tau, strict=True)]
    hi = [corr[k]["kendall_tau_ci95"][1] - t for k, t in zip(names, tau, strict=True)]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 5.5))
    a1.barh(names, tau, xerr=[lo, hi], color="tab:blue", capsize=3)
    if report["seed_to_seed"]:
        s = report["seed_to_seed"]["kendall_tau"]
        a1.axvline(s, color="tab:red", ls="--", label=f"seed-to-seed τ = {s:.2f}")
        a1.legend(loc="lower right")
    a1.axvline(0, color="k", lw=0.5)
    a1.set_xlabel(f"Kendall τ with proxy {report['target']} (95 % bootstrap CI)")
    a1.set_title(f"n = {len(rows)} candidates")
    x = np.log10([r["predictors"]["flops"] for r in rows])
    a2.scatter(x, [r[report["target"]] for r in rows], c=[r["predictors"]["cheap.gradpath"] for r in rows])
    a2.set_xlabel("log10 FLOPs at 640 px (colour: gradpath score)")
    a2.set_ylabel(f"proxy {report['target']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidates", type=int, default=40)
    p.add_argument("--repeat-seeds", type=int, default=10, help="the first N candidates also get seed 1")
    p.add_argument("--seed", type=int, default=0, help="candidate sampling seed")
    p.add_argument(
        "--space",
        choices=sorted(STUDY_NAMES),
        default="yolor",
        help="yolor: per-stage designs (rank_study_perstage*); yolor-uniform: the first study (rank_study*)",
    )
    p.add_argument("--recipe", choices=sorted(RECIPES), default="reduced", help="proxy recipe (see RECIPES)")
    add_version_flag(p)
    p.add_argument("--threads", type=int, default=1, help="1: on a shared machine 2 threads ran 15x slower")
    p.add_argument("--shard", default="0/1", help="i/n: train only jobs j with j mod n == i")
    p.add_argument("--analyze-only", action="store_true")
    p.add_argument("--deadline", default=None, help="UTC HH:MM: start no training after it")
    p.add_argument("--bootstrap", type=int, default=1000)
    # the fit that ships is the gradient-path table's, past its held-out test: refused in one line
    p.add_argument("--ship", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--ship-fit", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.ship or args.ship_fit is not None:
        p.exit(2, SHIP_REFUSED)
    shard = shard_arg(p, args.shard)
    recipe = study_recipe(args.recipe, args.version)
    study = study_dir(args.space)
    cands = candidates(args.candidates, args.seed, args.space)
    if not args.analyze_only:
        jobs = job_order(cands, args.repeat_seeds)

        def done(job: tuple[Any, int]) -> bool:
            return finished(job[0], recipe, job[1], study) is not None

        for j, (cfg, seed) in pending(jobs, shard, done, args.deadline):
            features(cfg, recipe, study)
            tick = time.perf_counter()
            r = train(cfg, recipe, seed, args.threads, study)
            print(
                f"[{j + 1}/{len(jobs)}] {majority_blocks(cfg)} seed {seed}: AP {r.get('AP')} "
                f"AP50 {r.get('AP50')} {time.perf_counter() - tick:.0f} s",
                flush=True,
            )
        if shard.count > 1:
            return 0
    rows = collect(cands, recipe, study)
    if len(rows) < 3:
        print(f"only {len(rows)} finished candidates: nothing to analyse yet")
        return 0
    reports = {t: analyze(rows, t, args.bootstrap) for t in ("AP", "AP50")}
    from nas.engine.scores.registry import fitted_weights

    result = {
        "space": args.space,
        "fitted_score_version": fitted_weights()["version"],
        "recipe": {"name": args.recipe, **recipe},
        "devices": sorted({str(r["device"]) for r in rows}),
        "budget_flops_at_640": BUDGET,
        "candidates_requested": args.candidates,
        "candidates_finished": len(rows),
        "second_seed_finished": sum(r["AP_seed1"] is not None for r in rows),
        "block_pairs": sorted({r["blocks"] for r in rows}),
        "reports": reports,
        "rows": rows,
    }
    name = result_name(STUDY_NAMES[args.space], args.recipe, args.version)
    write_result(name, result)
    plot(reports["AP"], rows, BENCH_DIR / f"{name}.png")
    corr = reports["AP"]["correlations"]
    for k in sorted(corr, key=lambda k: -np.nan_to_num(corr[k]["kendall_tau"], nan=-9)):
        c = corr[k]
        print(f"{k:36s} τ {c['kendall_tau']:+.3f} {np.round(c['kendall_tau_ci95'], 3)}  ρ {c['spearman_rho']:+.3f}")
    for k, c in reports["AP"]["early_stopping"].items():
        print(f"AP at {k} vs final AP: τ {c['kendall_tau']:+.2f} {np.round(c['kendall_tau_ci95'], 2)}")
    if reports["AP"]["seed_to_seed"]:
        print("seed-to-seed τ", round(reports["AP"]["seed_to_seed"]["kendall_tau"], 3))
    for k, v in reports["AP"]["fitted_cv"].items():
        print(
            f"{k:36s} CV τ {v['cv_kendall_tau']:+.3f} (same folds: FLOPs {v['same_folds_tau.flops']:+.3f}, "
            f"params {v['same_folds_tau.params']:+.3f}; folds won/lost vs FLOPs {v['wins_vs.flops']:.0%}/"
            f"{v['losses_vs.flops']:.0%}; shipped `fitted` {v['same_folds_tau.cheap.fitted']:+.3f}, won/lost "
            f"{v['wins_vs.cheap.fitted']:.0%}/{v['losses_vs.cheap.fitted']:.0%})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
