"""Benchmark of the proxy task: is the default recipe fast and discriminative enough?

Trains ``yolor-elan-2-1`` with the default recipe on the embedded shapes set for two seeds and
reports AP, AP50, wall time, images/s, the achieved training GFLOP/s (3 x forward FLOPs x images
processed / training time) as a share of this machine's fp32 matmul GFLOP/s, and the AP
difference between the seeds (the noise floor any architecture comparison must beat). Then one
longer run (``--long-epochs``, same recipe otherwise) checks the acceptance target: AP50 >= 0.5
within 10 minutes. Writes ``runs/bench/proxy.json``.

``--profile`` instead times where one default training's time goes, phase by phase (data,
forward, loss/assignment, backward, optimiser, and per evaluation: forward, decode/NMS,
pycocotools), for the trainer's setup before issue 17 (fp32, NCHW, the per-op AdamW) and its
setup now (``evaluators.train.resolve_runtime``), interleaved step by step so that a loaded
machine slows both alike. Writes ``runs/bench/proxy_profile.json``.

    .venv/bin/python -m benchmarks.proxy [--threads T] [--epochs E] [--seeds 0 1] [--long-epochs 10]
    .venv/bin/python -m benchmarks.proxy --profile [--steps 20] [--threads 2]
    .venv/bin/python -m benchmarks.proxy --ranking-check --threads 2 [--precision bf16] [--noise-seeds 3]
    .venv/bin/python -m benchmarks.proxy --end-to-end --base ../wt17-base --threads 2 [--reps 2] [--precision bf16]
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import torch

from benchmarks.lib.common import write_json
from evaluators.recipe import Recipe
from evaluators.train import DEFAULT, train_from_config

PRESET = "yolor-elan-2-1"
TARGET_AP50 = 0.5


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of fp32 ``torch.matmul`` throughput: the machine's practical peak for dense math."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(repeats):
        tick = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - tick)
    return 2 * n**3 / best / 1e9


def run(seed: int, epochs: int, args: argparse.Namespace, out: Path) -> dict:
    folder = out / f"{PRESET}-e{epochs}-seed{seed}"
    shutil.rmtree(folder, ignore_errors=True)  # a benchmark times a fresh run, never a resume
    recipe = Recipe(
        epochs=epochs,
        img_size=args.img_size,
        width_mult=args.width_mult,
        images=args.images,
        seed=seed,
        precision=args.precision,
    )
    result = train_from_config(
        PRESET,
        recipe,
        out_dir=folder,
        num_threads=args.threads,
        progress=False,
        report=lambda e, m: print(
            f"  seed {seed} epoch {e}: loss {m['loss']:.3f} AP {m['AP']:.4f} AP50 {m['AP50']:.4f} "
            f"({m['epoch_time_s']:.0f} s)",
            flush=True,
        ),
    )
    reached, elapsed = None, 0.0
    for entry in result["history"]:
        elapsed += entry["epoch_time_s"]
        if (entry["AP50"] or 0) >= TARGET_AP50:
            reached = round(elapsed, 1)
            break
    images = result["train_images"] * result["epochs_done"]
    achieved = 3 * result["flops"] * images / result["train_time_s"] / 1e9
    return {
        "seed": seed,
        "epochs": epochs,
        "status": result["status"],
        "AP": result["AP"],
        "AP50": result["AP50"],
        "wall_time_s": result["wall_time_s"],
        "train_time_s": result["train_time_s"],
        "images_per_s": result["images_per_s"],
        "seconds_to_AP50_0.5": reached,
        "train_gflops_per_s": round(achieved, 2),
        "forward_gflops": result["flops"] / 1e9,
        "params": result["params"],
        "history": result["history"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="default: torch's (all cores)")
    parser.add_argument("--epochs", type=int, default=DEFAULT.epochs)
    parser.add_argument("--images", type=int, default=DEFAULT.images)
    parser.add_argument("--img-size", type=int, default=DEFAULT.img_size)
    parser.add_argument("--width-mult", type=float, default=DEFAULT.width_mult)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--long-epochs", type=int, default=10, help="acceptance run (0: skip)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--precision", default=DEFAULT.precision, choices=("auto", "fp32", "bf16"))
    parser.add_argument("--profile", action="store_true", help="time the phases of one training, old vs new setup")
    parser.add_argument("--steps", type=int, default=20, help="--profile: timed training steps per setup")
    parser.add_argument("--ranking-check", action="store_true", help="old vs new setup: AP ranking of 10 presets")
    parser.add_argument("--configs", type=int, default=0, help="--ranking-check: only the first N presets (0: all)")
    parser.add_argument(
        "--noise-seeds", type=int, default=3, help="--ranking-check: old-setup seeds, 2+ (new: one fewer)"
    )
    parser.add_argument("--end-to-end", action="store_true", help="time `nas train` here against --base, interleaved")
    parser.add_argument("--base", type=Path, default=None, help="--end-to-end: a checkout of the older commit")
    parser.add_argument("--reps", type=int, default=1, help="--end-to-end: repetitions per checkout")
    parser.add_argument("--preset", default=PRESET, help="--end-to-end: the preset trained")
    args = parser.parse_args()
    if args.ranking_check and args.noise_seeds < 2:
        parser.error(f"--noise-seeds {args.noise_seeds}: the noise is a pair of seeds; accepted: 2 or more")
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.profile:
        from benchmarks.proxy_profile import profile

        profile(args)
        return
    if args.end_to_end:
        from benchmarks.proxy_speed import end_to_end

        if args.base is None:
            parser.error("--end-to-end needs --base DIR")
        args.threads = args.threads or 2
        end_to_end(args)
        return
    if args.ranking_check:
        from benchmarks.proxy_ranking import ranking_check

        ranking_check(args)
        return
    peak = matmul_gflops()
    print(
        f"{PRESET} x{args.width_mult} @ {args.img_size}px, {args.images} images, {args.epochs} "
        f"epochs, {torch.get_num_threads()} threads; matmul peak {peak:.1f} GFLOP/s",
        flush=True,
    )
    runs = [run(seed, args.epochs, args, args.out) for seed in args.seeds]
    if args.long_epochs:
        runs.append(run(args.seeds[0], args.long_epochs, args, args.out))
    for r in runs:
        r["share_of_matmul_peak"] = round(r["train_gflops_per_s"] / peak, 3)
        print(
            f"seed {r['seed']}, {r['epochs']} epochs: {r['status']} AP {r['AP']:.4f} AP50 {r['AP50']:.4f}  "
            f"wall {r['wall_time_s']:.0f} s  {r['images_per_s']:.1f} img/s  "
            f"AP50>=0.5 after {r['seconds_to_AP50_0.5']} s  "
            f"{r['train_gflops_per_s']:.1f} GFLOP/s = {100 * r['share_of_matmul_peak']:.1f}% of matmul"
        )
    summary = {
        "preset": PRESET,
        "recipe": {k: getattr(args, k) for k in ("epochs", "images", "img_size", "width_mult")}
        | {"batch_size": DEFAULT.batch_size, "lr": DEFAULT.lr},
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "matmul_gflops_per_s": round(peak, 1),
        "runs": runs,
    }
    if len(args.seeds) > 1:
        summary["seed_AP_difference"] = round(abs(runs[0]["AP"] - runs[1]["AP"]), 4)
        summary["seed_AP50_difference"] = round(abs(runs[0]["AP50"] - runs[1]["AP50"]), 4)
        print(f"seed noise: |dAP| {summary['seed_AP_difference']:.4f}  |dAP50| {summary['seed_AP50_difference']:.4f}")
    path = args.out / "proxy.json"
    write_json(path, summary)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
