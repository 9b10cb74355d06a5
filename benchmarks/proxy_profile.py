"""Where one proxy training's time goes (``python -m benchmarks.proxy --profile``).

Times ``--steps`` training steps and one evaluation of the default recipe's model
(``yolor-elan-2-1`` × width) for two setups of the same trainer code: ``before`` (fp32, NCHW,
the per-op AdamW and gradient clipping: the trainer at ac21d66) and ``after``
(:func:`evaluators.train.resolve_runtime` of ``--precision``). Steps alternate between the two
setups, so load from other processes slows both alike; medians per phase are scaled to one
training (steps per epoch × epochs, one evaluation per epoch).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from typing import Any

import torch
from torch import nn

from benchmarks.lib.common import write_json
from evaluators.coco_data import load_proxy_data
from evaluators.coco_eval import coco_from_dict
from evaluators.detection import decode, detection_loss, init_head_bias
from evaluators.recipe import DEFAULT
from evaluators.train import (
    Runtime,
    _autocast,
    _batch,
    _epoch_plan,
    _optimizer,
    coco_detections,
    prepare_model,
    resolve_runtime,
    score_detections,
)
from nas.core.module import build
from search_spaces import compile_config, load_config

PRESET = "yolor-elan-2-1"
TRAIN_PHASES = ("data", "forward", "loss/assignment", "backward", "optimiser")
EVAL_PHASES = ("eval forward", "decode/NMS", "pycocotools")


def _tick(sync: bool) -> float:
    if sync:
        torch.cuda.synchronize()
    return time.perf_counter()


class Setup:
    """One trainer setup: its model (same seed as the other), optimiser and phase timings."""

    def __init__(self, name: str, runtime: Runtime, graph: Any, img_size: int, num_classes: int) -> None:
        self.name, self.runtime = name, runtime
        torch.manual_seed(0)
        self.net: nn.Module = build(graph)
        init_head_bias(self.net, img_size, num_classes)
        prepare_model(self.net, runtime)
        self.opt = _optimizer(self.net, 4e-3, 0.05, fused=runtime.fused)
        self.times: dict[str, list[float]] = {p: [] for p in (*TRAIN_PHASES, *EVAL_PHASES)}

    def step(self, data: Any, idx: torch.Tensor, flips: torch.Tensor, record: bool) -> None:
        rt, sync = self.runtime, self.runtime.device.type == "cuda"
        self.net.train()
        t0 = _tick(sync)
        x, targets = _batch(data, idx, flips, rt.device, rt.channels_last)
        t1 = _tick(sync)
        with _autocast(rt):
            outputs = self.net(x)
        t2 = _tick(sync)
        loss, _ = detection_loss([o.float() for o in outputs], targets)
        float(loss.detach())
        t3 = _tick(sync)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        t4 = _tick(sync)
        nn.utils.clip_grad_norm_(self.net.parameters(), 10.0, foreach=rt.fused or None)
        self.opt.step()
        t5 = _tick(sync)
        if record:
            for phase, dt in zip(TRAIN_PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                self.times[phase].append(dt)

    @torch.no_grad()
    def evaluate(self, data: Any, coco_gt: Any, batch_size: int = 32) -> None:
        rt, sync = self.runtime, self.runtime.device.type == "cuda"
        self.net.eval()
        fwd = dec = 0.0
        detections: list[dict[str, Any]] = []
        for first in range(0, len(data.val.images), batch_size):
            t0 = _tick(sync)
            x = data.val.images[first : first + batch_size].to(rt.device).float().div_(255)
            if rt.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(rt):
                outputs = self.net(x)
            t1 = _tick(sync)
            for i, (boxes, scores, classes) in enumerate(decode([o.float() for o in outputs])):
                detections += coco_detections(data, first + i, boxes, scores, classes)
            t2 = _tick(sync)
            fwd, dec = fwd + t1 - t0, dec + t2 - t1
        t0 = time.perf_counter()
        score_detections(coco_gt, detections)
        coco = time.perf_counter() - t0
        for phase, dt in zip(EVAL_PHASES, (fwd, dec, coco), strict=True):
            self.times[phase].append(dt)


def profile(args: argparse.Namespace) -> dict[str, Any]:
    """Print and write (``<out>/proxy_profile.json``) the per-phase time of one default training."""
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    data = load_proxy_data("shapes", img_size=args.img_size, images=args.images, root=args.out.parent)
    base = load_config(PRESET)
    arch = dataclasses.replace(
        base, width=base.width * args.width_mult, img_size=args.img_size, num_classes=data.num_classes
    )
    graph = compile_config(arch)
    setups = [
        Setup(
            "before",
            Runtime(dev, "fp16" if dev.type == "cuda" else "fp32", False, False),
            graph,
            args.img_size,
            data.num_classes,
        ),
        Setup("after", resolve_runtime(args.precision, dev), graph, args.img_size, data.num_classes),
    ]
    batch = DEFAULT.batch_size
    order, flips = _epoch_plan(len(data.train.images), 0, 0)
    steps_per_epoch = -(-len(data.train.images) // batch)
    coco_gt = coco_from_dict(data.val.gt)
    print(
        f"profile: {PRESET} x{args.width_mult} @ {args.img_size}px, batch {batch}, {torch.get_num_threads()} threads, "
        f"{args.steps} timed steps per setup (+2 warm-up), 2 evaluations of {len(data.val.images)} val images",
        flush=True,
    )
    for step in range(args.steps + 2):
        first = (step * batch) % max(1, len(order) - batch)
        idx, fl = order[first : first + batch], flips[first : first + batch]
        for s in setups if step % 2 else setups[::-1]:  # alternate who goes first
            s.step(data, idx, fl, record=step >= 2)
    for _ in range(2):
        for s in setups:
            s.evaluate(data, coco_gt)
    report: dict[str, Any] = {
        "preset": PRESET,
        "recipe": {
            "epochs": args.epochs,
            "images": args.images,
            "img_size": args.img_size,
            "width_mult": args.width_mult,
            "batch_size": batch,
        },
        "threads": torch.get_num_threads(),
        "device": str(dev),
        "steps_timed": args.steps,
        "setups": {},
    }
    header = f"{'phase':<18}" + "".join(f"{s.name + ' s/training':>20}" for s in setups) + f"{'ratio':>8}"
    print(header)
    totals = {}
    rows = {}
    for phase in (*TRAIN_PHASES, *EVAL_PHASES):
        per = []
        for s in setups:
            med = statistics.median(s.times[phase])
            per.append(med * (steps_per_epoch if phase in TRAIN_PHASES else 1) * args.epochs)
        rows[phase] = per
        print(f"{phase:<18}" + "".join(f"{v:>20.1f}" for v in per) + f"{per[0] / max(per[1], 1e-9):>7.2f}x")
    for i, s in enumerate(setups):
        totals[s.name] = sum(r[i] for r in rows.values())
        report["setups"][s.name] = {
            "runtime": {
                "precision": s.runtime.precision,
                "channels_last": s.runtime.channels_last,
                "fused": s.runtime.fused,
            },
            "seconds_per_training": {p: round(r[i], 2) for p, r in rows.items()},
            "total_s": round(totals[s.name], 1),
            "ms_per_step_median": round(
                1000 * statistics.median([sum(v) for v in zip(*(s.times[p] for p in TRAIN_PHASES), strict=True)]),
                1,
            ),
        }
    print(
        f"{'total':<18}"
        + "".join(f"{totals[s.name]:>20.1f}" for s in setups)
        + f"{totals['before'] / totals['after']:>7.2f}x"
    )
    report["speedup"] = round(totals["before"] / totals["after"], 3)
    path = args.out / "proxy_profile.json"
    write_json(path, report)
    print(f"wrote {path}")
    return report
