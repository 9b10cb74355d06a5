"""The proxy recipe: the one training code path of ``nas train`` and the search's workers.

Why one function: every trained candidate must be scored the same way, so ``train_proxy`` owns
the whole recipe (data order, augmentation, optimiser, schedule, evaluation) and everything else
only chooses the model and the data. A run is a pure function of its arguments: data order and
flips come from a generator seeded by ``(seed, epoch)``, the model is initialised after
``torch.manual_seed(seed)``, and the per-epoch checkpoint holds every piece of state, so a run
resumed after epoch k ends with the same weights and metrics as one that was never interrupted.

The loop is here; how it runs on a device (:mod:`evaluators.runtime`), how a model is scored
(:mod:`evaluators.evaluate`) and what a checkpoint holds (:mod:`evaluators.checkpoint`) have
their own modules. Their public names are re-exported here, where the trainer's callers import
them from.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from evaluators.checkpoint import (
    get_rng_state,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    scored_weights,
    set_rng_state,
)
from evaluators.coco_data import ProxyData, load_proxy_data
from evaluators.coco_eval import METRICS, coco_from_dict
from evaluators.detection import detection_loss, init_head_bias
from evaluators.errors import DataError
from evaluators.evaluate import (
    WeightAverage,
    coco_detections,
    evaluate_model,
    recompute_batchnorm,
    score_detections,
    val_detections,
)
from evaluators.recipe import DEFAULT, Recipe
from evaluators.runtime import NARROW_BATCHNORM, Runtime, autocast, prepare_model, resolve_runtime
from nas.core.cost import cost
from nas.core.module import build
from nas.core.runio import atomic_write_json
from search_spaces import compile_config, load_config

__all__ = [
    "DEFAULT",
    "NARROW_BATCHNORM",
    "Recipe",
    "Runtime",
    "WeightAverage",
    "coco_detections",
    "evaluate_model",
    "prepare_model",
    "proxy_graph",
    "read_checkpoint",
    "recipe_data",
    "recompute_batchnorm",
    "resolve_runtime",
    "score_detections",
    "scored_weights",
    "train_from_config",
    "train_proxy",
    "val_detections",
]

Report = Callable[[int, dict[str, Any]], None]
LossFn = Callable[..., tuple[torch.Tensor, dict[str, float]]]
ModelOrFactory = nn.Module | Callable[[int], nn.Module]

#: the name :mod:`benchmarks.proxy_profile` imports (it was private here before the split)
_autocast = autocast


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
    started = time.perf_counter()
    if num_threads:
        torch.set_num_threads(num_threads)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if not isinstance(data, ProxyData):
        data = recipe_data(
            data, recipe, val_images=val_images, data_seed=data_seed, categories=categories, root=data_root
        )
    _check_data(data, recipe.img_size)
    _seed_everything(recipe.seed)
    net = model if isinstance(model, nn.Module) else model(data.num_classes)
    init_head_bias(net, recipe.img_size, data.num_classes)
    runtime = setup or resolve_runtime(recipe.precision, dev)
    prepare_model(net, runtime)
    out = Path(out_dir) if out_dir is not None else None
    run = _start(net, data, recipe, runtime, loss_fn or detection_loss, out, started, flops=flops, extra=extra)
    checkpoint = out / "checkpoint.pt" if out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    if checkpoint and resume and checkpoint.exists():
        _resume(run, checkpoint)

    coco_gt = coco_from_dict(data.val.gt)
    for epoch in range(run.start_epoch, recipe.epochs):
        tick = time.perf_counter()
        losses, failure = _train_epoch(run, epoch, progress)
        run.train_time += time.perf_counter() - tick
        if failure is not None:
            return _finish(run, "failed", failure)
        entry = _score_epoch(run, epoch, losses, coco_gt, tick)
        if checkpoint:
            _save(run, checkpoint, epoch)
        _finish(run, "running")
        if report is not None:
            try:
                report(epoch + 1, dict(entry))
            except BaseException as err:
                _finish(run, "stopped", f"report() raised {type(err).__name__}: {err}")
                raise
    return _finish(run, "ok")


@dataclasses.dataclass
class _Run:
    """One training's state between its helpers: what an epoch changes and a checkpoint holds."""

    net: nn.Module
    data: ProxyData
    recipe: Recipe
    runtime: Runtime
    loss_fn: LossFn
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    ema: WeightAverage | None
    #: training images per epoch
    per_epoch: int
    #: what a checkpoint must have been trained with to be resumed
    fingerprint: dict[str, Any]
    #: the metrics returned and written to ``metrics.json``
    result: dict[str, Any]
    #: the output folder (None: nothing written)
    out: Path | None
    #: ``time.perf_counter()`` when the call began
    started: float
    start_epoch: int = 0
    train_time: float = 0.0
    images_seen: int = 0
    #: the wall time of the calls this one resumes
    prior_wall: float = 0.0


def _check_data(data: ProxyData, img_size: int) -> None:
    """Refuse data the recipe cannot train on: loaded at another size, or a split without images."""
    if data.img_size != img_size:
        raise ValueError(f"data was loaded at {data.img_size} px, training asked for {img_size}")
    if not len(data.train.images) or not len(data.val.images):  # a hand-made ProxyData: the loader checks too
        raise DataError(
            f"{data.name}: {len(data.train.images)} train and {len(data.val.images)} val image(s) could be used;"
            " accepted: at least one decodable image in each split"
        )


def _start(
    net: nn.Module,
    data: ProxyData,
    recipe: Recipe,
    runtime: Runtime,
    loss_fn: LossFn,
    out: Path | None,
    started: float,
    *,
    flops: float | None,
    extra: dict[str, Any] | None,
) -> _Run:
    """A new training of ``net`` (seeded, initialised, on its device): its optimiser, schedule,
    grad scaler and weight average, and the result it starts from."""
    per_epoch = min(recipe.images, len(data.train.images)) if recipe.fresh_images else len(data.train.images)
    total_steps = recipe.epochs * math.ceil(per_epoch / recipe.batch_size)
    optimizer = _optimizer(net, recipe.lr, recipe.weight_decay, fused=runtime.fused)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        _lr_lambda(total_steps, min(recipe.warmup_iters, total_steps // 2), recipe.min_lr_ratio, recipe.schedule),
    )
    ema = WeightAverage(net, recipe.ema_decay) if recipe.ema_decay else None
    scaler = torch.amp.GradScaler("cuda", enabled=runtime.precision == "fp16")
    fingerprint = _fingerprint(data, recipe, runtime, params=sum(p.numel() for p in net.parameters()))
    result: dict[str, Any] = {
        "status": "running",
        "reason": None,
        **fingerprint,
        "data_skipped": {"images": data.skipped_images, "annotations": data.skipped_annotations},
        "data_skipped_by_reason": dict(data.skipped_by_reason),
        "flops": flops,
        "device": str(runtime.device),
        "precision": runtime.precision,
        "channels_last": runtime.channels_last,
        "recipe": recipe.to_dict(),
        "history": [],
        **{k: None for k in METRICS},
        "detections": None,
        **(extra or {}),
    }
    return _Run(
        net,
        data,
        recipe,
        runtime,
        loss_fn,
        optimizer,
        scheduler,
        scaler,
        ema,
        per_epoch,
        fingerprint,
        result,
        out,
        started,
    )


def _fingerprint(data: ProxyData, recipe: Recipe, runtime: Runtime, params: int) -> dict[str, Any]:
    """What a checkpoint must have been trained with for a run to resume from it."""
    fingerprint = {
        "data": data.name,
        # resolved path + annotation bytes + sampling: siteA/coco and siteB/coco never share a result
        "data_fingerprint": data.fingerprint,
        "num_classes": data.num_classes,
        "train_images": len(data.train.images),
        "val_images": len(data.val.images),
        "epochs": recipe.epochs,
        "img_size": recipe.img_size,
        "seed": recipe.seed,
        "batch_size": recipe.batch_size,
        "lr": recipe.lr,
        "weight_decay": recipe.weight_decay,
        "warmup_iters": recipe.warmup_iters,
        "params": params,
    }
    if runtime.precision != ("fp16" if runtime.device.type == "cuda" else "fp32"):  # what earlier ones trained in
        fingerprint["precision"] = runtime.precision
    if recipe.version != "v1":  # v1 checkpoints predate versions: theirs still resume under --recipe v1
        fingerprint["recipe"] = recipe.version
    return fingerprint


def _resume(run: _Run, checkpoint: Path) -> None:
    """Continue ``run`` from ``checkpoint``: every piece of state, the history and the timings. A
    damaged checkpoint is ignored (with a warning: the run trains from epoch 0); one of another
    run or recipe is a DataError."""
    state = load_checkpoint(checkpoint, run.runtime.device)
    if state is None:
        return
    trained_under = state["fingerprint"].get("recipe", "v1")
    if trained_under != run.recipe.version:
        raise DataError(
            f"{run.out} holds a training of recipe {trained_under}, not {run.recipe.version}; nothing resumes across "
            f"recipes; accepted: the same command with --recipe {trained_under}, or another output folder"
        )
    if state["fingerprint"] != run.fingerprint:
        raise DataError(
            f"{run.out} holds a checkpoint of a different run ({_diff(state['fingerprint'], run.fingerprint)});"
            " use another output folder or delete it"
        )
    run.net.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    set_rng_state(state["rng"])
    if run.ema is not None:
        run.ema.load_state_dict(state["ema"])
    run.start_epoch, run.train_time, run.images_seen = state["epoch"], state["train_time"], state["images_seen"]
    run.prior_wall = state["wall_time"]
    history = run.result["history"] = state["history"]
    if history:
        run.result.update({k: history[-1].get(k) for k in (*METRICS, "detections")})


def _train_epoch(run: _Run, epoch: int, progress: bool) -> tuple[dict[str, float], str | None]:
    """One epoch of optimiser steps: its mean losses, and why it stopped early (a non-finite loss)
    or None."""
    recipe, data, runtime = run.recipe, run.data, run.runtime
    run.net.train()
    sums = {"loss": 0.0, "box": 0.0, "obj": 0.0, "cls": 0.0}
    if recipe.fresh_images:
        order, flips = _fresh_epoch_plan(len(data.train.images), run.per_epoch, recipe.seed, epoch, recipe.flip)
    else:
        order, flips = _epoch_plan(len(data.train.images), recipe.seed, epoch, recipe.flip)
    batches = range(0, len(order), recipe.batch_size)
    bar = _progress(batches, epoch, recipe.epochs, progress)
    for step, first in enumerate(bar):
        idx = order[first : first + recipe.batch_size]
        x, targets = _batch(data, idx, flips[first : first + recipe.batch_size], runtime.device, runtime.channels_last)
        with autocast(runtime):
            outputs = run.net(x)
        loss, parts = run.loss_fn([o.float() for o in outputs], targets)
        value = float(loss.detach())
        if not math.isfinite(value):
            return sums, f"non-finite loss ({value}) at epoch {epoch + 1}, step {step + 1}"
        _step(run, loss)
        sums["loss"] += value
        for k, v in parts.items():
            sums[k] += v
        run.images_seen += len(idx)
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{value:.3f}")
    return {k: round(v / len(batches), 5) for k, v in sums.items()}, None


def _step(run: _Run, loss: torch.Tensor) -> None:
    """One optimiser step on ``loss``: (scaled) backward, gradient clipping, the schedule's next
    rate and the weight average's update."""
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.unscale_(run.optimizer)
    nn.utils.clip_grad_norm_(run.net.parameters(), run.recipe.grad_clip, foreach=True)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.scheduler.step()
    if run.ema is not None:
        run.ema.update(run.net)


def _score_epoch(run: _Run, epoch: int, losses: dict[str, float], coco_gt: Any, tick: float) -> dict[str, Any]:
    """Score the weights after ``epoch`` and record its history entry (returned). The weights are
    the average where the recipe keeps one, its BatchNorm recomputed after the last epoch; the
    last epoch scores the whole val split and its loss, earlier ones their first
    ``epoch_val_images``. ``tick``: when the epoch began."""
    recipe, ema = run.recipe, run.ema
    last = epoch + 1 == recipe.epochs
    if ema is not None and last and recipe.bn_images:
        recompute_batchnorm(ema.model, run.data, recipe.bn_images, runtime=run.runtime)
    scored = ema.model if ema is not None else run.net
    subset = None if last or not recipe.epoch_val_images else recipe.epoch_val_images
    metrics = evaluate_model(
        scored, run.data, coco_gt, run.runtime.device, runtime=run.runtime, images=subset, with_loss=last
    )
    entry = {
        "epoch": epoch + 1,
        **losses,
        **metrics,
        "lr": run.optimizer.param_groups[0]["lr"],
        "epoch_time_s": round(time.perf_counter() - tick, 3),
    }
    run.result["history"].append(entry)
    run.result.update(metrics)
    return entry


def _save(run: _Run, checkpoint: Path, epoch: int) -> None:
    """Write the checkpoint after ``epoch``: every piece of state a resumed run continues from."""
    save_checkpoint(
        checkpoint,
        {
            "epoch": epoch + 1,
            "model": run.net.state_dict(),
            "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict(),
            "rng": get_rng_state(),
            **({"ema": run.ema.state_dict()} if run.ema is not None else {}),
            "fingerprint": run.fingerprint,
            "history": run.result["history"],
            "train_time": run.train_time,
            "images_seen": run.images_seen,
            "wall_time": run.prior_wall + time.perf_counter() - run.started,
        },
    )


def _finish(run: _Run, status: str, reason: str | None = None) -> dict[str, Any]:
    """The result as it stands, with ``status`` and the timings (written to ``metrics.json``
    where the run has an output folder)."""
    result = run.result
    result["status"], result["reason"] = status, reason
    result["epochs_done"] = len(result["history"])
    result["train_time_s"] = round(run.train_time, 3)
    result["wall_time_s"] = round(run.prior_wall + time.perf_counter() - run.started, 3)
    result["images_per_s"] = round(run.images_seen / run.train_time, 2) if run.train_time else None
    if run.out:
        atomic_write_json(run.out / "metrics.json", result)
    return result


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


def _diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = list(new) + [k for k in old if k not in new]
    return ", ".join(f"{k}: {old.get(k)} -> {new.get(k)}" for k in keys if old.get(k) != new.get(k))
