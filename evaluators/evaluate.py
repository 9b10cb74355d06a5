"""Scoring a proxy training: COCO box metrics on the val split and the weights they are taken of.

Why a module of its own: the training loop, the benchmarks that re-score a checkpoint and the
ground-truth oracle test must all score the same way, so the val forward, the mapping of boxes
back to original pixels, pycocotools, the weight average (EMA) and the BatchNorm recompute of
the scored weights live here, apart from the loop that trains them.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from evaluators.coco_data import ProxyData
from evaluators.coco_eval import evaluate_bbox
from evaluators.detection import decode, detection_loss
from evaluators.runtime import Runtime, autocast, resolve_runtime


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
        with autocast(runtime):
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
        with autocast(runtime):
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
    """The metrics an epoch records: :data:`evaluators.coco_eval.METRICS` (rounded) and the number
    of detections (on the val images ``img_ids`` only, when given)."""
    if img_ids is not None:
        keep = set(img_ids)
        detections = [d for d in detections if d["image_id"] in keep]
    metrics: dict[str, Any] = {
        k: (None if v is None else round(v, 5)) for k, v in evaluate_bbox(coco_gt, detections, img_ids).items()
    }
    metrics["detections"] = len(detections)
    return metrics
