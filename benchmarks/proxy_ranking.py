"""Does the faster trainer change which designs win? (``python -m benchmarks.proxy --ranking-check``)

Trains every detector preset of the paper (10 configs over block patterns and FLOPs) with the
rank study's reduced recipe, same seed, in two setups of the trainer: ``old`` (fp32, NCHW, the
per-op AdamW and clipping: the trainer at ac21d66) and ``new`` (the default now,
``resolve_runtime(--precision)``). Reports Kendall τ between the two AP rankings and the mean
|ΔAP|, against the seed-to-seed noise measured in the same run on the same machine: the old setup
trained again with seed 1 (``seed`` below), τ(old seed 0, old seed 1) and its |ΔAP|; the rank
study's figures (τ 0.64, |ΔAP| 0.018, another machine) are printed beside. Each finished
training is kept under ``runs/bench/ranking/``, so an interrupted check resumes.
Writes ``runs/bench/proxy_ranking_<precision>.json``.
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
#: README, rank study (reduced recipe, 10 candidates with a second seed, the earlier machine)
SEED_TAU, SEED_ABS_DAP = 0.64, 0.018
#: the setups' names, and the seed each trains with
SEEDS = {"old": 0, "new": 0, "seed": 1}


def ranking_check(args: argparse.Namespace) -> dict[str, Any]:
    """Train the presets in both setups (interleaved per config), print and write the comparison."""
    dev = torch.device("cpu")
    old = Runtime(dev, "fp32", False, False)
    setups = {"old": old, "new": resolve_runtime(args.precision, dev), "seed": old}
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
        names = ("old", "new", "seed") if j % 2 == 0 else ("new", "old", "seed")  # alternate who trains first
        for name in names:
            tick = time.perf_counter()
            recipe = Recipe(**REDUCED, seed=SEEDS[name], precision=args.precision)
            suffix = f"-seed{SEEDS[name]}" if SEEDS[name] else ""
            result = train_from_config(
                preset,
                recipe,
                out_dir=folder / f"{preset}-{'old' if name == 'seed' else name}-{setups[name].precision}{suffix}",
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
    old, new, seed = ([rows[p][n]["AP"] for p in presets] for n in ("old", "new", "seed"))
    tau, seed_tau = kendall_tau(old, new), kendall_tau(old, seed)
    mean_dap = statistics.fmean(abs(a - b) for a, b in zip(old, new, strict=True))
    seed_dap = statistics.fmean(abs(a - b) for a, b in zip(old, seed, strict=True))
    speed = [rows[p]["old"]["train_time_s"] / rows[p]["new"]["train_time_s"] for p in presets]
    holds = tau >= seed_tau and mean_dap <= seed_dap
    summary = {
        "recipe": Recipe(**REDUCED, precision=args.precision).to_dict(),
        "threads": torch.get_num_threads(),
        "setups": {
            k: {"precision": v.precision, "channels_last": v.channels_last, "fused": v.fused} for k, v in setups.items()
        },
        "configs": rows,
        "kendall_tau": round(tau, 4),
        "mean_abs_dAP": round(mean_dap, 4),
        "max_abs_dAP": round(max(abs(a - b) for a, b in zip(old, new, strict=True)), 4),
        "seed_noise": {"kendall_tau": round(seed_tau, 4), "mean_abs_dAP": round(seed_dap, 4)},
        "seed_noise_rank_study": {"kendall_tau": SEED_TAU, "mean_abs_dAP": SEED_ABS_DAP},
        "holds": holds,
        "train_time_ratio_old_over_new_median": round(statistics.median(speed), 3),
    }
    print(
        f"Kendall tau(old AP, new AP) {tau:.3f} (seed 0 vs 1 here {seed_tau:.3f}, rank study {SEED_TAU}); "
        f"mean |dAP| {mean_dap:.4f} (here {seed_dap:.4f}, rank study {SEED_ABS_DAP}); {'HOLDS' if holds else 'FAILS'}; "
        f"median train-time ratio old/new {summary['train_time_ratio_old_over_new_median']:.2f}x"
    )
    path = args.out / f"proxy_ranking_{setups['new'].precision}.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {path}")
    return summary
