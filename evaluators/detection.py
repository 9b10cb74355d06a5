"""Loss and decoder of the fixed anchor-free P3–P5 detection head.

The searched detector returns ``[P3, P4, P5]`` (strides 8, 16, 32), each ``(B, 4 + 1 + nc, H, W)``:
channels 0:4 box regression, 4 objectness logit, 5: class logits. The head is the fixed part of
the search, so its loss is kept simple, robust and cheap on a CPU (FCOS/YOLOX-like):

- **boxes**: distances to the cell centre ``(l, t, r, b) = softplus(raw) * stride`` — positive by
  construction and without ``exp``'s overflow;
- **assignment**: a point is positive for a box when it lies inside the box, within
  ``CENTRE_RADIUS`` strides of its centre, on a level whose size range holds the box's longer
  side; the point nearest the centre on an admissible level is always positive (tiny boxes); a
  point claimed by several boxes takes the smallest;
- **loss**: ``5 * (1 - GIoU)`` on positives + BCE objectness (target: the positive's IoU,
  detached, as in YOLOv5) on all points + BCE one-hot classes on positives, each normalised by the
  number of positives in the batch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

STRIDES = (8, 16, 32)
CENTRE_RADIUS = 2.5
BOX_WEIGHT = 5.0
#: Longer box side (proxy pixels) each level is responsible for; neighbours overlap a little.
LEVEL_RANGES = ((0.0, 64.0), (48.0, 128.0), (96.0, math.inf))


def flatten_outputs(outputs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concatenate levels: predictions (B, A, 5+nc), cell centres (A, 2) and strides (A,)."""
    if len(outputs) != len(STRIDES):
        raise ValueError(f"detector must return {len(STRIDES)} levels, got {len(outputs)}")
    preds, points, strides = [], [], []
    for out, stride in zip(outputs, STRIDES, strict=True):
        b, c, h, w = out.shape
        preds.append(out.permute(0, 2, 3, 1).reshape(b, h * w, c))
        ys, xs = torch.meshgrid(torch.arange(h, device=out.device), torch.arange(w, device=out.device), indexing="ij")
        points.append(torch.stack([xs, ys], -1).reshape(-1, 2).float().add_(0.5).mul_(stride))
        strides.append(torch.full((h * w,), float(stride), device=out.device))
    return torch.cat(preds, 1).float(), torch.cat(points), torch.cat(strides)


def decode_boxes(reg: torch.Tensor, points: torch.Tensor, strides: torch.Tensor) -> torch.Tensor:
    """Regression channels (..., A, 4) → boxes (..., A, 4) as x1, y1, x2, y2 in pixels."""
    ltrb = F.softplus(reg) * strides[:, None]
    return torch.cat([points - ltrb[..., :2], points + ltrb[..., 2:]], -1)


def box_iou(a: torch.Tensor, b: torch.Tensor, *, giou: bool = False) -> torch.Tensor:
    """Element-wise IoU (or GIoU) of two broadcastable (..., 4) xyxy box tensors."""
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[..., 2:] - a[..., :2]).clamp(min=0).prod(-1)
    area_b = (b[..., 2:] - b[..., :2]).clamp(min=0).prod(-1)
    union = area_a + area_b - inter
    iou = inter / union.clamp(min=1e-9)
    if not giou:
        return iou
    hull = (torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])).prod(-1)
    return iou - (hull - union) / hull.clamp(min=1e-9)


def assign(
    targets: list[torch.Tensor], points: torch.Tensor, strides: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Positives per image: mask (B, A), matched boxes (B, A, 4) and classes (B, A).

    ``targets[i]`` is (n, 5) rows ``(class, x1, y1, x2, y2)``. Vectorised over the batch by
    padding to the largest ``n``.
    """
    batch, anchors, device = len(targets), points.shape[0], points.device
    m = max((len(t) for t in targets), default=0)
    if m == 0:
        return (
            torch.zeros(batch, anchors, dtype=torch.bool, device=device),
            torch.zeros(batch, anchors, 4, device=device),
            torch.zeros(batch, anchors, dtype=torch.long, device=device),
        )
    gt = torch.zeros(batch, m, 5, device=device)
    valid = torch.zeros(batch, m, dtype=torch.bool, device=device)
    for i, t in enumerate(targets):
        gt[i, : len(t)] = t.to(device)
        valid[i, : len(t)] = True
    boxes = gt[..., 1:]  # (B, M, 4)
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    side = (boxes[..., 2:] - boxes[..., :2]).amax(-1)  # (B, M)
    p = points[None, :, None, :]  # (1, A, 1, 2)
    inside = ((p > boxes[:, None, :, :2]) & (p < boxes[:, None, :, 2:])).all(-1)  # (B, A, M)
    offset = (p - centre[:, None]).abs() / strides[None, :, None, None]  # in strides
    near = (offset < CENTRE_RADIUS).all(-1)
    lo = torch.tensor([r[0] for r in LEVEL_RANGES], device=device)
    hi = torch.tensor([r[1] for r in LEVEL_RANGES], device=device)
    level = torch.bucketize(strides, torch.tensor(STRIDES, device=device, dtype=strides.dtype))
    admissible = (side[:, None] >= lo[level][None, :, None]) & (side[:, None] <= hi[level][None, :, None])
    admissible &= valid[:, None]
    candidate = inside & near & admissible
    # the point nearest each box's centre on an admissible level is always positive
    distance = offset.pow(2).sum(-1).masked_fill(~admissible, math.inf)  # (B, A, M)
    nearest = distance.argmin(1)  # (B, M)
    forced = torch.zeros_like(candidate)
    forced.scatter_(1, nearest[:, None], valid[:, None])
    candidate |= forced
    area = (boxes[..., 2:] - boxes[..., :2]).prod(-1)  # (B, M)
    cost = area[:, None].expand_as(candidate).masked_fill(~candidate, math.inf)
    best = cost.argmin(-1)  # (B, A)
    positive = candidate.any(-1)
    matched = boxes.gather(1, best[..., None].expand(-1, -1, 4))
    classes = gt[..., 0].long().gather(1, best)
    return positive, matched, classes


def detection_loss(outputs: list[torch.Tensor], targets: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts (``box``, ``obj``, ``cls``) for one batch."""
    preds, points, strides = flatten_outputs(outputs)
    positive, matched, classes = assign(targets, points, strides)
    num_pos = max(1.0, float(positive.sum()))
    obj_target = torch.zeros(preds.shape[:2], device=preds.device)
    box_loss = cls_loss = preds.sum() * 0.0
    if positive.any():
        pred_boxes = decode_boxes(
            preds[..., :4][positive],
            points.expand(len(targets), -1, -1)[positive],
            strides.expand(len(targets), -1)[positive],
        )
        giou = box_iou(pred_boxes, matched[positive], giou=True)
        box_loss = (1.0 - giou).sum() / num_pos
        obj_target[positive] = box_iou(pred_boxes.detach(), matched[positive]).clamp(min=0)
        cls_logits = preds[..., 5:][positive]
        one_hot = F.one_hot(classes[positive], cls_logits.shape[-1]).float()
        cls_loss = F.binary_cross_entropy_with_logits(cls_logits, one_hot, reduction="sum") / num_pos
    obj_loss = F.binary_cross_entropy_with_logits(preds[..., 4], obj_target, reduction="sum") / num_pos
    total = BOX_WEIGHT * box_loss + obj_loss + cls_loss
    parts = {"box": float(box_loss.detach()), "obj": float(obj_loss.detach()), "cls": float(cls_loss.detach())}
    return total, parts


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, max_keep: int | None = None) -> torch.Tensor:
    """Greedy NMS without torchvision: indices of kept boxes, highest score first.

    A box is dropped when its IoU with a kept, higher-scoring box exceeds ``iou_threshold``. The
    pairwise overlaps are one vectorised torch computation (N² memory: callers bound N, see
    ``decode``'s ``pre_nms``); only the greedy sweep is a Python loop, over a CPU bool matrix.
    """
    order = scores.argsort(descending=True)
    if order.numel() == 0:
        return order
    ordered = boxes[order]
    over = (box_iou(ordered[:, None], ordered[None]) > iou_threshold).cpu().numpy()
    removed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if removed[i]:
            continue
        keep.append(i)
        if len(keep) == max_keep:
            break
        removed |= over[i]
    return order[torch.tensor(keep, dtype=torch.long, device=order.device)]


def batched_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    classes: torch.Tensor,
    iou_threshold: float,
    max_keep: int | None = None,
) -> torch.Tensor:
    """NMS within each class only: boxes of different classes never suppress each other.

    Each class is shifted by its own offset larger than the span of all boxes, so one greedy pass
    over the shifted boxes equals per-class NMS.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    span = float(boxes.max() - boxes.min()) + 1.0
    shifted = boxes + (classes.to(boxes.dtype) * span)[:, None]
    return nms(shifted, scores, iou_threshold, max_keep)


@torch.no_grad()
def decode(
    outputs: list[torch.Tensor],
    *,
    conf_threshold: float = 0.001,
    iou_threshold: float = 0.6,
    max_det: int = 100,
    pre_nms: int = 300,
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Detections per image: ``(boxes xyxy (k, 4), scores (k,), classes (k,))``.

    Score = sigmoid(objectness) * sigmoid(class); every (point, class) pair above
    ``conf_threshold`` competes (multi-label, as COCO evaluation rewards), the best ``pre_nms``
    go to class-wise NMS, at most ``max_det`` survive.
    """
    preds, points, strides = flatten_outputs(outputs)
    boxes = decode_boxes(preds[..., :4], points, strides)
    scores = preds[..., 4:5].sigmoid() * preds[..., 5:].sigmoid()  # (B, A, nc)
    nc = scores.shape[-1]
    results = []
    for b in range(preds.shape[0]):
        flat = scores[b].flatten()
        top = flat.topk(min(pre_nms, flat.numel()))
        chosen = top.indices[top.values > conf_threshold]
        anchor, cls = chosen // nc, chosen % nc
        box, score = boxes[b, anchor], flat[chosen]
        keep = batched_nms(box, score, cls, iou_threshold, max_det)
        results.append((box[keep], score[keep], cls[keep]))
    return results


def init_head_bias(model: nn.Module, img_size: int, num_classes: int) -> bool:
    """Set objectness/class priors in the final 1×1 convs, if the model exposes them.

    Uses ``model.head_convs()`` → ``[(stride, conv)]`` when present (returns False otherwise).
    Objectness: about 4 objects per image spread over the level's cells; classes:
    ``0.6 / (nc - 0.99)`` as in YOLOv5. Without it, early losses are dominated by the many
    negative cells and the first epoch is wasted.
    """
    head_convs = getattr(model, "head_convs", None)
    if head_convs is None:
        return False
    with torch.no_grad():
        for stride, conv in head_convs():
            cells = (img_size / stride) ** 2
            conv.bias[4] = math.log(4.0 / cells / (1 - min(0.5, 4.0 / cells)))
            conv.bias[5 : 5 + num_classes] = math.log(0.6 / max(num_classes - 0.99, 0.01))
    return True
