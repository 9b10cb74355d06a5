"""The proxy recipe: the one training code path of ``nas train`` and the search's workers.

Why one function: every trained candidate must be scored the same way, so ``train_proxy`` owns
the whole recipe (data order, augmentation, optimiser, schedule, evaluation) and everything else
only chooses the model and the data. A run is a pure function of its arguments: data order and
flips come from a generator seeded by ``(seed, epoch)``, the model is initialised after
``torch.manual_seed(seed)``, and the per-epoch checkpoint holds every piece of state, so a run
resumed after epoch k ends with the same weights and metrics as one that was never interrupted.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from evaluators.coco_data import ProxyData, load_proxy_data
from evaluators.coco_eval import METRICS, coco_from_dict, evaluate_bbox
from evaluators.detection import decode, detection_loss, init_head_bias
from evaluators.errors import DataError
from evaluators.recipe import DEFAULT, Recipe
from nas.core.cost import cost
from nas.core.module import build
from search_spaces import compile_config, load_config

Report = Callable[[int, dict[str, Any]], None]
LossFn = Callable[..., tuple[torch.Tensor, dict[str, float]]]
ModelOrFactory = nn.Module | Callable[[int], nn.Module]


@dataclasses.dataclass(frozen=True)
class Runtime:
    """How a recipe runs on one device: the arithmetic, the memory layout and the optimiser kernel.

    Why apart from the recipe: these change the speed, not what is trained, so the same recipe
    resolves differently on a CPU and on CUDA (and the benchmark's profile can
    time the old setup, ``Runtime(dev, "fp32", False, False)``, beside the new one).
    """

    device: torch.device
    #: "fp32", "bf16" (autocast) or "fp16" (CUDA AMP with a grad scaler)
    precision: str
    #: channels-last activations and weights (measured faster on CPU: ``benchmarks.proxy --profile``)
    channels_last: bool
    #: the fused AdamW kernel (one pass over each tensor instead of a dozen elementwise ops)
    fused: bool

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)


def resolve_runtime(precision: str, device: torch.device) -> Runtime:
    """The runtime of ``precision`` (a :data:`evaluators.recipe.PRECISIONS` value) on ``device``.

    ``auto``: fp16 AMP on CUDA (as before), fp32 on a CPU, channels-last with the fused AdamW.
    Not bf16, even where the CPU runs it fast: on an AMX CPU (Sapphire Rapids) bf16 made a default
    training 1.6x faster, but it moved the preset ranking more than a change of seed does, at two
    seeds; on an avx512_bf16 CPU without AMX it was only 1.07x per step (README, "Proxy trainer
    speed"). ``bf16`` is honoured when asked for.
    """
    if device.type == "cuda":
        chosen = {"auto": "fp16", "fp32": "fp32", "bf16": "bf16"}[precision]
        return Runtime(device, chosen, channels_last=False, fused=False)
    chosen = "bf16" if precision == "bf16" else "fp32"
    return Runtime(device, chosen, channels_last=device.type == "cpu", fused=device.type == "cpu")


def recipe_data(
    data: str | Path,
    recipe: Recipe,
    *,
    val_images: int | None = None,
    data_seed: int = 0,
    categories: list[str | int] | None = None,
    root: Path | str = Path("runs"),
) -> ProxyData:
    """The proxy data ``recipe`` trains on: its pool of training images (``images`` per epoch,
    new ones each epoch with ``fresh_images``) and its val set (``val_images``, else the
    recipe's; v1: a quarter of ``images``). The val images are drawn before the training ones
    and from another split, so the val set of a fixed size is the same whatever ``images`` is."""
    return load_proxy_data(
        data,
        img_size=recipe.img_size,
        images=recipe.train_pool(),
        val_images=val_images if val_images is not None else recipe.val_images,
        data_seed=data_seed,
        categories=categories,
        root=root,
    )


def train_proxy(
    model: ModelOrFactory,
    data: str | Path | ProxyData = "shapes",
    recipe: Recipe = DEFAULT,
    *,
    out_dir: Path | str | None = None,
    val_images: int | None = None,
    data_seed: int = 0,
    categories: list[str | int] | None = None,
    data_root: Path | str = Path("runs"),
    num_threads: int | None = None,
    device: str | None = None,
    progress: bool = True,
    resume: bool = True,
    flops: float | None = None,
    extra: dict[str, Any] | None = None,
    report: Report | None = None,
    loss_fn: LossFn | None = None,
    setup: Runtime | None = None,
) -> dict[str, Any]:
    """Train a detector on the proxy task and return its metrics (also in ``out_dir/metrics.json``).

    ``num_threads`` defaults to torch's own choice: all cores, or ``OMP_NUM_THREADS`` where set
    (as Ray sets it for its workers; more threads than free cores slows training many-fold).
    ``model`` is a module or a factory ``num_classes -> module`` (called after seeding, so its
    initialisation is reproducible); ``recipe`` says how it is trained, whole (its ``width_mult``
    is for :func:`train_from_config`, which builds the model). Its forward returns ``[P3, P4, P5]`` as described in
    :mod:`evaluators.detection`. After every epoch, box AP is measured on the val split and
    ``report(epoch, metrics)`` is called; an exception from ``report`` (a scheduler stopping the
    trial) ends the run with status ``stopped`` and is re-raised. A non-finite loss ends it with
    status ``failed`` and the reason. With ``out_dir``, a checkpoint is written atomically per
    epoch and, with ``resume``, a later call with the same arguments continues from it (or returns
    the finished result). ``flops`` (forward, batch 1) and ``extra`` are recorded as given.

    ``loss_fn`` replaces the detection loss (``None``: :func:`evaluators.detection.detection_loss`;
    the search's fault tests wrap it). ``setup`` overrides how the recipe runs (``None``:
    :func:`resolve_runtime` of ``recipe.precision``; the ranking check trains the old setup so).

    Example::

        result = train_proxy(lambda nc: MyDetector(nc), "shapes", Recipe(epochs=2, images=64), out_dir="runs/t")
        result["AP50"]
    """
    recipe.validate()
    loss_fn = loss_fn or detection_loss
    epochs, img_size, images, seed = recipe.epochs, recipe.img_size, recipe.images, recipe.seed
    batch_size, lr, weight_decay, warmup_iters = recipe.batch_size, recipe.lr, recipe.weight_decay, recipe.warmup_iters
    started = time.perf_counter()
    if num_threads:
        torch.set_num_threads(num_threads)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if not isinstance(data, ProxyData):
        data = recipe_data(
            data, recipe, val_images=val_images, data_seed=data_seed, categories=categories, root=data_root
        )
    if data.img_size != img_size:
        raise ValueError(f"data was loaded at {data.img_size} px, training asked for {img_size}")
    if not len(data.train.images) or not len(data.val.images):  # a hand-made ProxyData: the loader checks too
        raise DataError(
            f"{data.name}: {len(data.train.images)} train and {len(data.val.images)} val image(s) could be used;"
            " accepted: at least one decodable image in each split"
        )
    _seed_everything(seed)
    net = model if isinstance(model, nn.Module) else model(data.num_classes)
    init_head_bias(net, img_size, data.num_classes)
    runtime = setup or resolve_runtime(recipe.precision, dev)
    dev = runtime.device
    prepare_model(net, runtime)

    per_epoch = min(images, len(data.train.images)) if recipe.fresh_images else len(data.train.images)
    steps_per_epoch = math.ceil(per_epoch / batch_size)
    total_steps = epochs * steps_per_epoch
    optimizer = _optimizer(net, lr, weight_decay, fused=runtime.fused)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        _lr_lambda(total_steps, min(warmup_iters, total_steps // 2), recipe.min_lr_ratio, recipe.schedule),
    )
    ema = WeightAverage(net, recipe.ema_decay) if recipe.ema_decay else None
    scaler = torch.amp.GradScaler("cuda", enabled=runtime.precision == "fp16")
    params = sum(p.numel() for p in net.parameters())
    fingerprint = {
        "data": data.name,
        # resolved path + annotation bytes + sampling: siteA/coco and siteB/coco never share a result
        "data_fingerprint": data.fingerprint,
        "num_classes": data.num_classes,
        "train_images": len(data.train.images),
        "val_images": len(data.val.images),
        "epochs": epochs,
        "img_size": img_size,
        "seed": seed,
        "batch_size": batch_size,
        "lr": lr,
        "weight_decay": weight_decay,
        "warmup_iters": warmup_iters,
        "params": params,
    }
    if runtime.precision != ("fp16" if dev.type == "cuda" else "fp32"):  # what earlier checkpoints were trained in
        fingerprint["precision"] = runtime.precision
    if recipe.version != "v1":  # v1 checkpoints predate versions: theirs still resume under --recipe v1
        fingerprint["recipe"] = recipe.version
    result: dict[str, Any] = {
        "status": "running",
        "reason": None,
        **fingerprint,
        "data_skipped": {"images": data.skipped_images, "annotations": data.skipped_annotations},
        "data_skipped_by_reason": dict(data.skipped_by_reason),
        "flops": flops,
        "device": str(dev),
        "precision": runtime.precision,
        "channels_last": runtime.channels_last,
        "recipe": recipe.to_dict(),
        "history": [],
        **{k: None for k in METRICS},
        "detections": None,
        **(extra or {}),
    }
    out = Path(out_dir) if out_dir is not None else None
    checkpoint = out / "checkpoint.pt" if out else None
    start_epoch, train_time, images_seen, prior_wall = 0, 0.0, 0, 0.0
    if out:
        out.mkdir(parents=True, exist_ok=True)
    state = _load_checkpoint(checkpoint, dev) if checkpoint and resume and checkpoint.exists() else None
    if state is not None:
        trained_under = state["fingerprint"].get("recipe", "v1")
        if trained_under != recipe.version:
            raise DataError(
                f"{out} holds a training of recipe {trained_under}, not {recipe.version}; nothing resumes across "
                f"recipes; accepted: the same command with --recipe {trained_under}, or another output folder"
            )
        if state["fingerprint"] != fingerprint:
            raise DataError(
                f"{out} holds a checkpoint of a different run ({_diff(state['fingerprint'], fingerprint)});"
                " use another output folder or delete it"
            )
        net.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        start_epoch, train_time, images_seen = state["epoch"], state["train_time"], state["images_seen"]
        prior_wall = state["wall_time"]
        result["history"] = state["history"]
        if result["history"]:
            result.update({k: result["history"][-1].get(k) for k in (*METRICS, "detections")})

    coco_gt = coco_from_dict(data.val.gt)

    def finish(status: str, reason: str | None = None) -> dict[str, Any]:
        result["status"], result["reason"] = status, reason
        result["epochs_done"] = len(result["history"])
        result["train_time_s"] = round(train_time, 3)
        result["wall_time_s"] = round(prior_wall + time.perf_counter() - started, 3)
        result["images_per_s"] = round(images_seen / train_time, 2) if train_time else None
        if out:
            _write_json_atomic(out / "metrics.json", result)
        return result

    for epoch in range(start_epoch, epochs):
        tick = time.perf_counter()
        net.train()
        sums = {"loss": 0.0, "box": 0.0, "obj": 0.0, "cls": 0.0}
        if recipe.fresh_images:
            order, flips = _fresh_epoch_plan(len(data.train.images), per_epoch, seed, epoch, recipe.flip)
        else:
            order, flips = _epoch_plan(len(data.train.images), seed, epoch, recipe.flip)
        batches = range(0, len(order), batch_size)
        bar = _progress(batches, epoch, epochs, progress)
        for step, first in enumerate(bar):
            idx = order[first : first + batch_size]
            x, targets = _batch(data, idx, flips[first : first + batch_size], dev, runtime.channels_last)
            with _autocast(runtime):
                outputs = net(x)
            loss, parts = loss_fn([o.float() for o in outputs], targets)
            value = float(loss.detach())
            if not math.isfinite(value):
                train_time += time.perf_counter() - tick
                return finish("failed", f"non-finite loss ({value}) at epoch {epoch + 1}, step {step + 1}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(net.parameters(), recipe.grad_clip, foreach=True)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if ema is not None:
                ema.update(net)
            sums["loss"] += value
            for k, v in parts.items():
                sums[k] += v
            images_seen += len(idx)
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{value:.3f}")
        train_time += time.perf_counter() - tick
        last = epoch + 1 == epochs
        if ema is not None and last and recipe.bn_images:
            recompute_batchnorm(ema.model, data, recipe.bn_images, runtime=runtime)
        scored = ema.model if ema is not None else net
        subset = None if last or not recipe.epoch_val_images else recipe.epoch_val_images
        metrics = evaluate_model(scored, data, coco_gt, dev, runtime=runtime, images=subset, with_loss=last)
        entry = {
            "epoch": epoch + 1,
            **{k: round(v / len(batches), 5) for k, v in sums.items()},
            **metrics,
            "lr": optimizer.param_groups[0]["lr"],
            "epoch_time_s": round(time.perf_counter() - tick, 3),
        }
        result["history"].append(entry)
        result.update(metrics)
        if checkpoint:
            _save_atomic(
                checkpoint,
                {
                    "epoch": epoch + 1,
                    "model": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "rng": _get_rng_state(),
                    **({"ema": ema.state_dict()} if ema is not None else {}),
                    "fingerprint": fingerprint,
                    "history": result["history"],
                    "train_time": train_time,
                    "images_seen": images_seen,
                    "wall_time": prior_wall + time.perf_counter() - started,
                },
            )
        finish("running")
        if report is not None:
            try:
                report(epoch + 1, dict(entry))
            except BaseException as err:
                finish("stopped", f"report() raised {type(err).__name__}: {err}")
                raise
    return finish("ok")


#: Fewer channels than this and a channels-last BatchNorm runs in NCHW: PyTorch's channels-last
#: BatchNorm backward on a CPU is many times slower there once two threads share it (14 ms against
#: NCHW's 1.4 ms for an (8, 8, 160, 160) activation; at 16 channels the two are even).
NARROW_BATCHNORM = 16


def prepare_model(net: nn.Module, runtime: Runtime) -> nn.Module:
    """Move ``net`` to the runtime's device and memory layout (in place; returned for chaining).

    Channels-last wraps each narrow BatchNorm (:data:`NARROW_BATCHNORM`) in a layout change by
    forward hooks, so the weights, the state dict and the arithmetic stay those of NCHW.
    """
    net.to(runtime.device)
    if runtime.channels_last:
        net.to(memory_format=torch.channels_last)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d) and m.num_features < NARROW_BATCHNORM:
                m.register_forward_pre_hook(_to_nchw)
                m.register_forward_hook(_to_channels_last)
    return net


class _Relayout(torch.autograd.Function):
    """``x`` in ``layout``, and its gradient back in the layout ``x`` came in: a plain
    ``contiguous`` would hand the gradient on in the new layout, and a BatchNorm backward with
    mixed layouts takes PyTorch's slowest path."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
        ctx.back = (
            torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        )
        return x.contiguous(memory_format=layout)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad.contiguous(memory_format=ctx.back), None


def _to_nchw(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return (_Relayout.apply(inputs[0], torch.contiguous_format), *inputs[1:])


def _to_channels_last(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
    return _Relayout.apply(output, torch.channels_last)


def _autocast(runtime: Runtime) -> Any:
    dtype = runtime.autocast_dtype
    return torch.autocast(runtime.device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


@torch.no_grad()
def evaluate_model(
    net: nn.Module,
    data: ProxyData,
    coco_gt: Any,
    device: torch.device,
    batch_size: int = 32,
    *,
    runtime: Runtime | None = None,
    images: int | None = None,
    with_loss: bool = False,
) -> dict[str, Any]:
    """COCO box metrics of ``net`` on the val split (its first ``images``, else all of it), boxes
    mapped back to original pixels, and ``detections``: how many were evaluated (an AP of 0.0
    with 0 detections is a silent model). ``runtime``: the training's (default: ``precision:
    auto`` on ``device``). ``with_loss``: also ``val_loss``, the mean detection loss (the
    proxy-noise study found it as reliable as AP and ranking designs alike)."""
    count = len(data.val.images) if images is None else min(images, len(data.val.images))
    losses: list[float] | None = [] if with_loss else None
    detections = val_detections(net, data, device, batch_size, runtime=runtime, images=count, losses=losses)
    subset = None if count == len(data.val.images) else data.val.image_ids[:count]
    metrics = score_detections(coco_gt, detections, img_ids=subset)
    if losses:
        metrics["val_loss"] = round(sum(losses) / len(losses), 5)
    return metrics


@torch.no_grad()
def val_detections(
    net: nn.Module,
    data: ProxyData,
    device: torch.device,
    batch_size: int = 32,
    *,
    runtime: Runtime | None = None,
    images: int | None = None,
    losses: list[float] | None = None,
) -> list[dict[str, Any]]:
    """COCO result dicts of ``net`` on the first ``images`` val images (all by default); with
    ``losses``, each image's share of the detection loss is appended to it (a loss signal from
    the same forward pass)."""
    runtime = runtime or resolve_runtime("auto", device)
    net.eval()
    val = data.val
    count = len(val.images) if images is None else images
    detections = []
    for first in range(0, count, batch_size):
        last = min(first + batch_size, count)
        x = val.images[first:last].to(device).float().div_(255)
        if runtime.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(runtime):
            outputs = net(x)
        if losses is not None:
            loss, _ = detection_loss([o.float() for o in outputs], [t.to(device) for t in val.targets[first:last]])
            losses += [float(loss)] * (last - first)
        for i, (boxes, scores, classes) in enumerate(decode([o.float() for o in outputs])):
            detections += coco_detections(data, first + i, boxes, scores, classes)
    return detections


class WeightAverage:
    """An exponential moving average of a model's weights and floating buffers (``model``), the
    weights a v2 recipe scores: over a few hundred steps the last weights still carry the noise of
    the last batches. The decay ramps up as ``(1 + t) / (10 + t)`` so that early steps are not
    averaged with the initialisation.

    >>> net = nn.Linear(2, 2)
    >>> avg = WeightAverage(net, 0.9)
    >>> avg.update(net); bool(torch.equal(avg.model.weight, net.weight))
    True
    """

    def __init__(self, net: nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(net).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay, self.steps = decay, 0
        pairs = list(zip(self.model.state_dict().values(), net.state_dict().values(), strict=True))
        self._floats = [(a, c) for a, c in pairs if a.dtype.is_floating_point]
        self._others = [(a, c) for a, c in pairs if not a.dtype.is_floating_point]

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        """Average in ``net``'s current state (the module the average was made from)."""
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        if self._floats:
            torch._foreach_lerp_([a for a, _ in self._floats], [c for _, c in self._floats], 1 - decay)
        for a, c in self._others:
            a.copy_(c)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "model": self.model.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.steps = state["steps"]


@torch.no_grad()
def recompute_batchnorm(
    net: nn.Module, data: ProxyData, images: int, batch_size: int = 32, *, runtime: Runtime | None = None
) -> None:
    """Replace every BatchNorm's running statistics by their average over the first ``images``
    training images (in train mode, as PreciseBN does): averaged weights never produced the
    statistics they inherit.
    """
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    device = next(net.parameters()).device
    runtime = runtime or resolve_runtime("auto", device)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
    net.train()
    count = min(images, len(data.train.images))
    for first in range(0, count, batch_size):
        x = data.train.images[first : min(first + batch_size, count)].to(device).float().div_(255)
        if runtime.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(runtime):
            net(x)
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    net.eval()


def coco_detections(
    data: ProxyData, k: int, boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor
) -> list[dict[str, Any]]:
    """COCO result dicts of val image ``k`` from ``(x1, y1, x2, y2)`` boxes in proxy pixels and
    contiguous classes: the one mapping back to original pixels and category ids (the ground-truth
    oracle test feeds the val targets through it)."""
    val = data.val
    info = val.gt["images"][k]
    boxes = (boxes / val.scales[k]).cpu()
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, info["width"])
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, info["height"])
    out = []
    for (x1, y1, x2, y2), s, c in zip(boxes.tolist(), scores.tolist(), classes.tolist(), strict=True):
        if x2 > x1 and y2 > y1:
            out.append(
                {
                    "image_id": val.image_ids[k],
                    "category_id": data.category_ids[int(c)],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": s,
                }
            )
    return out


def score_detections(
    coco_gt: Any, detections: list[dict[str, Any]], img_ids: list[int] | None = None
) -> dict[str, Any]:
    """The metrics an epoch records: :data:`METRICS` (rounded) and the number of detections
    (on the val images ``img_ids`` only, when given)."""
    if img_ids is not None:
        keep = set(img_ids)
        detections = [d for d in detections if d["image_id"] in keep]
    metrics: dict[str, Any] = {
        k: (None if v is None else round(v, 5)) for k, v in evaluate_bbox(coco_gt, detections, img_ids).items()
    }
    metrics["detections"] = len(detections)
    return metrics


def train_from_config(
    cfg: Any,
    recipe: Recipe = DEFAULT,
    *,
    data: str | Path = "shapes",
    out_dir: Path | str | None = None,
    val_images: int | None = None,
    data_seed: int = 0,
    categories: list[str | int] | None = None,
    data_root: Path | str = Path("runs"),
    **runtime: Any,
) -> dict[str, Any]:
    """Build a detector from an ArchConfig (or preset name / YAML path) and train the proxy.

    The config's width is multiplied by ``recipe.width_mult``, its image size and class count
    set to the proxy's; forward FLOPs come from the compiled graph. ``runtime`` (threads, device,
    progress, report, ...) goes to :func:`train_proxy`. This is what ``nas train`` and the
    search's workers call.
    """
    base = cfg if dataclasses.is_dataclass(cfg) else load_config(cfg)
    recipe.validate()
    loaded = recipe_data(
        data, recipe, val_images=val_images, data_seed=data_seed, categories=categories, root=data_root
    )
    graph, arch = proxy_graph(base, recipe, loaded.num_classes)
    extra = {"config": json.loads(json.dumps(dataclasses.asdict(arch), default=str))}
    extra["width_mult"] = recipe.width_mult
    return train_proxy(
        lambda _nc: build(graph),
        loaded,
        recipe,
        out_dir=out_dir,
        flops=float(cost(graph).flops),
        extra=extra,
        **runtime,
    )


def proxy_graph(cfg: Any, recipe: Recipe, num_classes: int) -> tuple[Any, Any]:
    """The compiled graph and ArchConfig the proxy trains for ``cfg``: its width times
    ``recipe.width_mult``, the recipe's image size, the data's classes (:func:`train_from_config`
    trains it; benchmarks rebuild it to re-score a checkpoint)."""
    arch = dataclasses.replace(
        cfg, width=cfg.width * recipe.width_mult, img_size=recipe.img_size, num_classes=num_classes
    )
    return compile_config(arch), arch


def _batch(
    data: ProxyData, idx: torch.Tensor, flips: torch.Tensor, device: torch.device, channels_last: bool = False
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Images as float (B, 3, S, S) in [0, 1] and their targets, horizontally flipped where asked."""
    x = data.train.images[idx].float().div_(255)
    targets = []
    size = data.img_size
    for j, i in enumerate(idx.tolist()):
        t = data.train.targets[i]
        if flips[j]:
            x[j] = x[j].flip(-1)
            t = t.clone()
            t[:, 1], t[:, 3] = size - t[:, 3], size - t[:, 1]
        targets.append(t.to(device))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x.to(device, non_blocking=True), targets


def _fresh_epoch_plan(pool: int, n: int, seed: int, epoch: int, flip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Epoch ``epoch``'s ``n`` images of a pool the seed shuffles once: each epoch takes the next
    ``n`` (wrapping only when the pool is smaller than ``n × epochs``), flips as :func:`_epoch_plan`."""
    order = torch.randperm(pool, generator=torch.Generator().manual_seed(seed * 100_003 - 1))
    picked = order[(torch.arange(n) + epoch * n) % pool]
    _, flips = _epoch_plan(n, seed, epoch, flip)
    return picked, flips


def _epoch_plan(n: int, seed: int, epoch: int, flip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffled order and flip decisions of one epoch: a pure function of (seed, epoch)."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=g)
    flips = torch.rand(n, generator=g) < (0.5 if flip else 0.0)
    return order, flips


def _optimizer(net: nn.Module, lr: float, weight_decay: float, fused: bool = False) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and norm parameters (1-d tensors). ``fused``: torch's
    one-kernel AdamW (the same update; on CPU the per-op loop cost ~7 % of a step)."""
    decay = [p for p in net.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in net.parameters() if p.requires_grad and p.ndim <= 1]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.999),
        **({"fused": True} if fused else {}),
    )


def _lr_lambda(
    total: int, warmup: int, low: float = DEFAULT.min_lr_ratio, schedule: str = "cosine"
) -> Callable[[int], float]:
    """Linear warm-up, then cosine or linear from 1 to ``low`` (per optimiser step).

    >>> f = _lr_lambda(10, 2, 0.0, "linear"); [round(f(s), 2) for s in (0, 1, 2, 6, 10)]
    [0.5, 1.0, 1.0, 0.5, 0.0]
    """

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        if schedule == "linear":
            return low + (1 - low) * (1 - t)
        return low + (1 - low) * 0.5 * (1 + math.cos(math.pi * t))

    return factor


def _progress(batches: range, epoch: int, epochs: int, enabled: bool) -> Any:
    if not enabled or not sys.stderr.isatty():
        return batches
    from tqdm import tqdm

    return tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", file=sys.stderr, leave=False)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _get_rng_state() -> dict[str, Any]:
    """Every generator's state as tensors and plain data: what ``torch.load(weights_only=True)``
    reads back without allowing any other type (numpy's own state holds an ndarray)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
        "numpy": [str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal.tolist()), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = list(new) + [k for k in old if k not in new]
    return ", ".join(f"{k}: {old.get(k)} -> {new.get(k)}" for k in keys if old.get(k) != new.get(k))


#: what a checkpoint's keys must hold before anything of it is compared or restored
_CHECKPOINT_TYPES = {"fingerprint": dict, "epoch": int, "model": dict, "history": list}


def _load_checkpoint(path: Path, device: torch.device) -> dict[str, Any] | None:
    """The checkpoint's state, or None (with a one-line warning) when it cannot be used: it is a
    cache of finished epochs, so a damaged one costs a retrain, never a crash or a half-restored
    run. It is read with ``weights_only=True``: a checkpoint comes from a trial folder or a shared
    ``--ray-storage`` that others can write, and one whose pickle names anything but tensors and
    plain data is refused without running it."""
    try:
        return read_checkpoint(path, device)
    except ValueError as err:
        logging.getLogger(__name__).warning("%s: unusable checkpoint ignored, training from epoch 0 (%s)", path, err)
        return None


def read_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A proxy checkpoint's state, read with ``weights_only=True`` (nothing but tensors and plain
    data is unpickled); ValueError with one line saying why when it is not a usable one."""
    import warnings

    try:
        with warnings.catch_warnings():  # torch warns about a foreign pickle protocol: it is refused anyway
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=device, weights_only=True)
        if not isinstance(state, dict) or not all(isinstance(state.get(k), t) for k, t in _CHECKPOINT_TYPES.items()):
            raise ValueError("not a proxy checkpoint")
        return state
    except Exception as err:  # noqa: BLE001 - truncated zip, bad or unsafe pickle, wrong type: all mean "unusable"
        raise ValueError(_load_error(err)) from None


def scored_weights(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The state dict a checkpoint's training was scored with: the weight average where the
    recipe keeps one (v2: ``ema``, BatchNorm recomputed after the last epoch), else the last weights
    (v1), as :func:`train_proxy` scores ``ema.model if ema is not None else net``."""
    return state["ema"]["model"] if "ema" in state else state["model"]


def _load_error(err: Exception) -> str:
    """One line for why a checkpoint was refused (torch's weights-only message is a paragraph)."""
    import pickle

    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    unsafe = next((ln for ln in lines if "GLOBAL" in ln), None)
    if isinstance(err, pickle.UnpicklingError) and unsafe:
        return f"it holds more than tensors and plain data: {unsafe[:200]}"
    return f"{type(err).__name__}: {(lines[0] if lines else '')[:200]}"


def _save_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` with torch.save, replacing ``path`` only once the whole file is written and
    only if it holds tensors and plain data alone: a checkpoint that ``_load_checkpoint`` would
    refuse is a bug here, not a retrain from epoch 0 found on the next resume."""
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(tmp)
    if unsafe:
        tmp.unlink(missing_ok=True)
        raise TypeError(f"checkpoint {path} would hold {', '.join(unsafe)}: store tensors and plain data only")
    os.replace(tmp, path)


def _write_json_atomic(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)
