"""End-to-end speed of one proxy training, this checkout against an older one
(``python -m benchmarks.proxy --end-to-end --base DIR``).

Runs the same ``nas train PRESET --threads T`` (default recipe unless told otherwise) with
``PYTHONPATH`` pointing at ``--base`` (e.g. a worktree of ac21d66, the commit before issue 17)
and at this checkout, alternating which goes first per repetition so that a loaded machine slows
both alike; both share this checkout's ``runs/data`` cache. Reports wall time (the whole command),
training time, images/s, AP, the medians, the old/new ratio and the load average
(``--precision bf16``: the new checkout trains in bf16). Writes
``runs/bench/proxy_speed[_bf16].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.lib.common import write_json

ROOT = Path(__file__).resolve().parents[1]


def _train(tree: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    # -P: without it ``python -m`` puts the working directory (this checkout) before PYTHONPATH,
    # and both sides would run this checkout's code
    cmd = [sys.executable, "-P", "-m", "nas.cli", "train", args.preset]
    cmd += ["--threads", str(args.threads), "--out", str(out)]
    cmd += ["--epochs", str(args.epochs), "--images", str(args.images), "--img-size", str(args.img_size), "--json"]
    if tree == ROOT and args.precision != "auto":  # the older tree has no --precision: it trains fp32
        cmd += ["--precision", args.precision]
    env = _env(tree)
    load = os.getloadavg()[0]
    tick = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - tick
    if proc.returncode:
        raise SystemExit(f"{tree}: nas train failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    result = json.loads(proc.stdout)
    return {
        "wall_s": round(wall, 1),
        "train_time_s": result["train_time_s"],
        "images_per_s": result["images_per_s"],
        "AP": result["AP"],
        "AP50": result["AP50"],
        "precision": result.get("precision", "fp32"),
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree)}


def _check_imports(tree: Path) -> None:
    """Fail unless ``python -P`` with :func:`_env` imports ``tree``'s code (not an installed copy)."""
    probe = [sys.executable, "-P", "-c", "import evaluators.train as t; print(t.__file__)"]
    where = subprocess.run(probe, cwd=ROOT, env=_env(tree), capture_output=True, text=True, check=True).stdout.strip()
    if not Path(where).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"{tree}: nas train would import {where}, not this tree's code")


def end_to_end(args: argparse.Namespace) -> dict[str, Any]:
    """Time ``nas train`` at ``--base`` and here, ``--reps`` times each, interleaved."""
    trees = {"old": Path(args.base).resolve(), "new": ROOT}
    for tree in trees.values():
        _check_imports(tree)
    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    print(
        f"end to end: nas train {args.preset} --threads {args.threads} --epochs {args.epochs} --images {args.images} "
        f"--img-size {args.img_size}; old = {trees['old']}, new = {trees['new']}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for name in ("old", "new") if rep % 2 == 0 else ("new", "old"):
                r = _train(trees[name], args, Path(tmp) / f"{name}{rep}")
                runs[name].append(r)
                print(f"  rep {rep} {name}: {r}", flush=True)
    med = {
        k: {m: statistics.median(r[m] for r in v) for m in ("wall_s", "train_time_s", "images_per_s")}
        for k, v in runs.items()
    }
    summary = {
        "command": f"nas train {args.preset} --threads {args.threads} --epochs {args.epochs} --images {args.images} "
        f"--img-size {args.img_size}",
        "precision_new": args.precision,
        "trees": {k: str(v) for k, v in trees.items()},
        "runs": runs,
        "median": med,
        "speedup_wall": round(med["old"]["wall_s"] / med["new"]["wall_s"], 3),
        "speedup_train": round(med["old"]["train_time_s"] / med["new"]["train_time_s"], 3),
    }
    print(
        f"median wall old {med['old']['wall_s']:.0f} s, new {med['new']['wall_s']:.0f} s: {summary['speedup_wall']:.2f}x;"
        f" img/s old {med['old']['images_per_s']:.1f}, new {med['new']['images_per_s']:.1f}"
        f" (train time {summary['speedup_train']:.2f}x)"
    )
    path = args.out / ("proxy_speed.json" if args.precision == "auto" else f"proxy_speed_{args.precision}.json")
    write_json(path, summary)
    print(f"wrote {path}")
    return summary
