"""Which low fidelity ranks candidates like the full proxy training? (issue 13, item 1)

The adaptive proxy stage trains a larger pool at a low fidelity and promotes the best. A low
fidelity must be a *complete* short schedule, not a truncated long one (whose cosine has not
annealed: AP after 2 of 6 epochs ranked the final AP with τ ≈ 0.2). This trains the first
``--candidates`` configs of the per-stage rank study (seed 0) once per option below, each a
whole schedule of its own (warm-up and cosine over its own steps), and reports Kendall τ of the
low-fidelity AP with the rank study's full reduced-recipe AP (5 epochs, 480 images, 96 px),
with bootstrap 95 % CIs, and what each option costs relative to the full training:

* ``epochs2``: 2 epochs instead of 5 (its own cosine over 120 steps);
* ``images240``: half the training images (240; the val split is unchanged);
* ``px64``: 64 px instead of 96.

Also reported, at no training cost: the *truncated* long schedule (the full run's AP after
epoch 2 of 5, from its history), the baseline the options must beat. The full AP is the rank
study's (``runs/bench/rank_study_perstage/``), trained by ``benchmarks.rank_study`` if missing.
Resumable: ``runs/bench/fidelity/<hash>/seed0/``; ``--shard i/n`` splits the trainings.

    .venv/bin/python -m benchmarks.fidelity --candidates 10 [--options epochs2 images240 px64]
    .venv/bin/python -m benchmarks.fidelity --analyze-only

Result: ``runs/bench/fidelity.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from benchmarks.lib.common import BENCH_DIR, write_result
from benchmarks.lib.designs import candidates, majority_blocks
from benchmarks.lib.recipes import RECIPES, add_version_flag, study_recipe
from benchmarks.lib.study import finished, pending, shard_arg, train
from benchmarks.rank_study import STUDY_NAMES, study_dir

FIDELITY_DIR = BENCH_DIR / "fidelity"


def _half_images(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "images": max(8, r["images"] // 2)}


#: option -> the low-fidelity recipe made from the full one (each a complete schedule)
OPTIONS = {
    "epochs2": lambda r: {**r, "epochs": min(2, r["epochs"])},
    "images240": _half_images,
    "px64": lambda r: {**r, "img_size": 64},
}


def steps_ratio(low: dict[str, Any], full: dict[str, Any]) -> float:
    """Compute of the low fidelity relative to the full one, by counting: optimiser steps
    (epochs × images) times pixels per image; a contention-free figure next to wall time."""
    work = lambda r: r["epochs"] * r["images"] * r["img_size"] ** 2  # noqa: E731
    return work(low) / work(full)


def analyze(
    pairs: dict[str, list[tuple[float, float]]], costs: dict[str, list[float]], n_boot: int = 1000
) -> dict[str, Any]:
    """τ (with CIs) of each option's AP against the full AP, over the candidates both have,
    and the median wall-time ratio of the option to the full training."""
    from benchmarks.lib.stats import correlation

    out: dict[str, Any] = {}
    for name, xy in pairs.items():
        if len(xy) < 3:
            out[name] = {"n": len(xy)}
            continue
        c = correlation([a for a, _ in xy], [b for _, b in xy], n_boot)
        ratios = costs.get(name) or []
        out[name] = {**c, "wall_time_ratio_median": statistics.median(ratios) if ratios else None}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--candidates", type=int, default=10, help="the first N candidates of the rank study")
    p.add_argument("--options", nargs="+", choices=sorted(OPTIONS), default=list(OPTIONS))
    p.add_argument("--recipe", choices=sorted(RECIPES), default="reduced", help="the full recipe")
    add_version_flag(p)
    p.add_argument("--space", choices=sorted(STUDY_NAMES), default="yolor")
    p.add_argument("--seed", type=int, default=0, help="candidate sampling seed (the rank study's)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--shard", default=None, help="i/n: train only jobs j with j mod n == i, no analysis")
    p.add_argument("--deadline", default=None, help="UTC HH:MM: start no training after it")
    p.add_argument("--analyze-only", action="store_true")
    p.add_argument("--bootstrap", type=int, default=1000)
    args = p.parse_args(argv)
    shard = shard_arg(p, args.shard)
    full = study_recipe(args.recipe, args.version)
    study = study_dir(args.space)
    cands = candidates(args.candidates, args.seed, args.space)
    # option-major order: a run cut short still has every candidate of the first option
    jobs = [(o, c) for o in args.options for c in cands]
    if not args.analyze_only:

        def done(job: tuple[str, Any]) -> bool:
            option, cfg = job
            return finished(cfg, OPTIONS[option](full), 0, FIDELITY_DIR) is not None

        for j, (option, cfg) in pending(jobs, shard, done, args.deadline):
            tick = time.perf_counter()
            r = train(cfg, OPTIONS[option](full), 0, args.threads, FIDELITY_DIR)
            print(
                f"[{j + 1}/{len(jobs)}] {option} {majority_blocks(cfg)}: AP {r.get('AP')} "
                f"{time.perf_counter() - tick:.0f} s",
                flush=True,
            )
        if args.shard:
            return 0
    pairs: dict[str, list[tuple[float, float]]] = {o: [] for o in args.options}
    pairs["truncated (epoch 2 of the full run)"] = []
    costs: dict[str, list[float]] = {o: [] for o in args.options}
    rows = []
    for cfg in cands:
        f = finished(cfg, full, 0, study)
        if f is None or f["status"] != "ok":
            continue
        ap_full = float(f.get("AP") or 0.0)
        row: dict[str, Any] = {"key": cfg.key(), "blocks": majority_blocks(cfg), "AP_full": ap_full}
        hist = f.get("history", [])
        if len(hist) >= 2:
            pairs["truncated (epoch 2 of the full run)"].append((float(hist[1].get("AP") or 0.0), ap_full))
        for option in args.options:
            m = finished(cfg, OPTIONS[option](full), 0, FIDELITY_DIR)
            if m is None:
                continue
            ap = float(m.get("AP") or 0.0) if m["status"] == "ok" else 0.0
            row[option] = ap
            pairs[option].append((ap, ap_full))
            if m.get("wall_time_s") and f.get("wall_time_s"):
                costs[option].append(float(m["wall_time_s"]) / float(f["wall_time_s"]))
        rows.append(row)
    report = analyze(pairs, costs, args.bootstrap)
    for option in args.options:
        report[option]["recipe"] = OPTIONS[option](full)
        report[option]["compute_ratio"] = steps_ratio(OPTIONS[option](full), full)
    write_result(
        "fidelity",
        {
            "space": args.space,
            "full_recipe": {"name": args.recipe, **full},
            "candidates_requested": args.candidates,
            "candidates_with_full_AP": len(rows),
            "options": report,
            "rows": rows,
        },
    )
    for name, c in report.items():
        if "kendall_tau" not in c:
            print(f"{name:38s} n {c['n']}: too few to rank")
            continue
        lo, hi = c["kendall_tau_ci95"]
        cost = c.get("wall_time_ratio_median")
        tail = "" if cost is None else f", wall time ×{cost:.2f} of full (compute ×{c['compute_ratio']:.2f})"
        print(f"{name:38s} n {c['n']}: τ {c['kendall_tau']:+.2f} [{lo:+.2f}, {hi:+.2f}]{tail}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
