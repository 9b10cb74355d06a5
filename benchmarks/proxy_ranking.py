"""Does the faster trainer change which designs win? (``python -m benchmarks.proxy --ranking-check``)

Trains every detector preset of the paper (10 configs over block patterns and FLOPs) with the
rank study's reduced recipe, same seed, in two setups of the trainer: ``old`` (fp32, NCHW, the
per-op AdamW and clipping: the trainer at ac21d66) and ``new`` (the default now,
``resolve_runtime(--precision)``). Reports Kendall τ between the two AP rankings and the mean
|ΔAP|, against the seed-to-seed noise the README reports for that recipe (τ 0.64, |ΔAP| 0.018).
Each finished training is kept under ``runs/bench/ranking/``, so an interrupted check resumes.
Writes ``runs/bench/proxy_ranking.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

from evaluators.recipe import Recipe
from evaluators.train import Runtime, resolve_runtime, train_from_config
from nas.engine.stats import kendall_tau

#: the detector presets of Tables 5-8 (search_spaces/presets), in FLOPs order roughly
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
    "yolor-elan-hetero",
)
#: benchmarks/rank_study.py RECIPES["reduced"]
REDUCED = {"epochs": 5, "images": 480, "img_size": 96, "width_mult": 0.25}
#: README, rank study (reduced recipe, 10 candidates with a second seed)
SEED_TAU, SEED_ABS_DAP = 0.64, 0.018


def ranking_check(args: argparse.Namespace) -> dict[str, Any]:
    """Train the presets in both setups (interleaved per config), print and write the comparison."""
    dev = torch.device("cpu")
    setups = {"old": Runtime(dev, "fp32", False, False), "new": resolve_runtime(args.precision, dev)}
    recipe = Recipe(**REDUCED, seed=0, precision=args.precision)
    folder = args.out / "ranking"
    presets = PRESETS[: args.configs] if args.configs else PRESETS
    rows: dict[str, dict[str, Any]] = {}
    print(
        f"ranking check: {len(presets)} presets, reduced recipe {REDUCED}, seed 0, {torch.get_num_threads()} "
        f"thread(s); old {setups['old']}, new {setups['new']}",
        flush=True,
    )
    for j, preset in enumerate(presets):
        rows[preset] = {}
        names = ("old", "new") if j % 2 == 0 else ("new", "old")  # alternate who trains first
        for name in names:
            tick = time.perf_counter()
            result = train_from_config(
                preset,
                recipe,
                out_dir=folder / f"{preset}-{name}-{setups[name].precision}",
                data_root=args.out.parent,
                num_threads=args.threads,
                progress=False,
                setup=setups[name],
            )
            rows[preset][name] = {
                "AP": result["AP"],
                "AP50": result["AP50"],
                "status": result["status"],
                "train_time_s": result["train_time_s"],
                "wall_time_s": result["wall_time_s"],
                "flops": result["flops"],
            }
            print(
                f"  {preset:<24} {name}: AP {result['AP']:.4f} AP50 {result['AP50']:.4f} "
                f"train {result['train_time_s']:.0f} s ({time.perf_counter() - tick:.0f} s this call)",
                flush=True,
            )
    old = [rows[p]["old"]["AP"] for p in presets]
    new = [rows[p]["new"]["AP"] for p in presets]
    tau = kendall_tau(old, new)
    mean_dap = statistics.fmean(abs(a - b) for a, b in zip(old, new, strict=True))
    speed = [rows[p]["old"]["train_time_s"] / rows[p]["new"]["train_time_s"] for p in presets]
    holds = tau >= SEED_TAU and mean_dap <= SEED_ABS_DAP
    summary = {
        "recipe": recipe.to_dict(),
        "threads": torch.get_num_threads(),
        "setups": {
            k: {"precision": v.precision, "channels_last": v.channels_last, "fused": v.fused} for k, v in setups.items()
        },
        "configs": rows,
        "kendall_tau": round(tau, 4),
        "mean_abs_dAP": round(mean_dap, 4),
        "max_abs_dAP": round(max(abs(a - b) for a, b in zip(old, new, strict=True)), 4),
        "seed_noise": {"kendall_tau": SEED_TAU, "mean_abs_dAP": SEED_ABS_DAP},
        "holds": holds,
        "train_time_ratio_old_over_new_median": round(statistics.median(speed), 3),
    }
    print(
        f"Kendall tau(old AP, new AP) {tau:.3f} (seed-to-seed {SEED_TAU}); mean |dAP| {mean_dap:.4f} "
        f"(seed-to-seed {SEED_ABS_DAP}); {'HOLDS' if holds else 'FAILS'}; "
        f"median train-time ratio old/new {summary['train_time_ratio_old_over_new_median']:.2f}x"
    )
    path = args.out / "proxy_ranking.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {path}")
    return summary
