"""Does the faster trainer change which designs win? (``python -m benchmarks.proxy --ranking-check``)

Trains every detector preset of the paper (10 configs over block patterns and FLOPs) with the
rank study's reduced recipe in two setups of the trainer: ``old`` (fp32, NCHW, the per-op AdamW
and clipping: the trainer at ac21d66) and ``new`` (``resolve_runtime(--precision)``). The old
setup trains seeds ``0 … N-1`` (``--noise-seeds N``, default 3), the new one seeds ``0 … N-2``,
all in the same run on the same machine:

- the **change**: Kendall τ and mean |ΔAP| between the old and the new AP ranking at each shared
  seed;
- the **noise**: the same between the old setup's seeds, every pair.

With 10 configs one τ moves by ±0.2 from draw to draw, so the check compares means over pairs:
it holds when the mean τ of the change is no lower than the noise's, and its mean |ΔAP| no
larger. The rank study's figures (τ 0.64, |ΔAP| 0.018, another machine) are printed beside.
Each finished training is kept under ``runs/bench/ranking/``, so an interrupted check resumes.
Writes ``runs/bench/proxy_ranking_<precision>.json``.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from typing import Any

import torch

from benchmarks.lib.common import write_json
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


def ranking_check(args: argparse.Namespace) -> dict[str, Any]:
    """Train the presets in both setups (interleaved per config), print and write the comparison."""
    dev = torch.device("cpu")
    setups = {"old": Runtime(dev, "fp32", False, False), "new": resolve_runtime(args.precision, dev)}
    n = args.noise_seeds  # >= 2: the command line checks it
    seeds = {"old": list(range(n)), "new": list(range(n - 1))}
    folder = args.out / "ranking"
    presets = PRESETS[: args.configs] if args.configs else PRESETS
    rows: dict[str, dict[str, Any]] = {}
    print(
        f"ranking check: {len(presets)} presets, reduced recipe {REDUCED}, {torch.get_num_threads()} thread(s); "
        f"old {setups['old']} seeds {seeds['old']}, new {setups['new']} seeds {seeds['new']}",
        flush=True,
    )
    for j, preset in enumerate(presets):
        rows[preset] = {}
        order = ("old", "new") if j % 2 == 0 else ("new", "old")  # alternate who trains first
        for name, seed in [(name, seed) for seed in range(n) for name in order if seed in seeds[name]]:
            key = f"{name}-seed{seed}"
            tick = time.perf_counter()
            result = train_from_config(
                preset,
                Recipe(**REDUCED, seed=seed, precision=args.precision),
                out_dir=folder / f"{preset}-{name}-{setups[name].precision}{f'-seed{seed}' if seed else ''}",
                data_root=args.out.parent,
                num_threads=args.threads,
                progress=False,
                setup=setups[name],
            )
            rows[preset][key] = {k: result[k] for k in ("AP", "AP50", "status", "train_time_s", "wall_time_s", "flops")}
            print(
                f"  {preset:<24} {key}: AP {result['AP']:.4f} AP50 {result['AP50']:.4f} "
                f"train {result['train_time_s']:.0f} s ({time.perf_counter() - tick:.0f} s this call)",
                flush=True,
            )

    def ap(key: str) -> list[float]:
        return [rows[p][key]["AP"] for p in presets]

    def compare(a: str, b: str) -> dict[str, Any]:
        x, y = ap(a), ap(b)
        gaps = [abs(u - v) for u, v in zip(x, y, strict=True)]
        return {
            "pair": [a, b],
            "kendall_tau": round(kendall_tau(x, y), 4),
            "mean_abs_dAP": round(statistics.fmean(gaps), 4),
            "max_abs_dAP": round(max(gaps), 4),
        }

    change = [compare(f"old-seed{s}", f"new-seed{s}") for s in seeds["new"]]
    noise = [compare(f"old-seed{a}", f"old-seed{b}") for a, b in itertools.combinations(seeds["old"], 2)]

    def mean(pairs: list[dict[str, Any]], k: str) -> float:
        return round(statistics.fmean(c[k] for c in pairs), 4)

    tau, seed_tau = mean(change, "kendall_tau"), mean(noise, "kendall_tau")
    dap, seed_dap = mean(change, "mean_abs_dAP"), mean(noise, "mean_abs_dAP")
    speed = [rows[p]["old-seed0"]["train_time_s"] / rows[p]["new-seed0"]["train_time_s"] for p in presets]
    summary = {
        "recipe": Recipe(**REDUCED, precision=args.precision).to_dict(),
        "threads": torch.get_num_threads(),
        "setups": {
            k: {"precision": v.precision, "channels_last": v.channels_last, "fused": v.fused, "seeds": seeds[k]}
            for k, v in setups.items()
        },
        "configs": rows,
        "change": change,
        "seed_noise": noise,
        "kendall_tau": tau,
        "mean_abs_dAP": dap,
        "seed_kendall_tau": seed_tau,
        "seed_mean_abs_dAP": seed_dap,
        "seed_noise_rank_study": {"kendall_tau": SEED_TAU, "mean_abs_dAP": SEED_ABS_DAP},
        "holds": tau >= seed_tau and dap <= seed_dap,
        "train_time_ratio_old_over_new_median": round(statistics.median(speed), 3),
    }
    for c in (*noise, *change):
        print(f"  {' vs '.join(c['pair']):<26} tau {c['kendall_tau']:.3f}  mean |dAP| {c['mean_abs_dAP']:.4f}")
    print(
        f"old vs new: mean tau {tau:.3f} (seed pairs {seed_tau:.3f}, rank study {SEED_TAU}); mean |dAP| {dap:.4f} "
        f"(seed pairs {seed_dap:.4f}, rank study {SEED_ABS_DAP}); {'HOLDS' if summary['holds'] else 'FAILS'}; "
        f"median train-time ratio old/new {summary['train_time_ratio_old_over_new_median']:.2f}x"
    )
    path = args.out / f"proxy_ranking_{setups['new'].precision}.json"
    write_json(path, summary)
    print(f"wrote {path}")
    return summary
