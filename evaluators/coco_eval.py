"""COCO box AP with pycocotools, guarded against its known traps.

Why a wrapper: ``COCOeval`` is the reference number the search optimises, but it prints to
stdout, ``loadRes`` crashes on an empty result list, ``evaluate`` needs ``iscrowd``/``area``/``id``
on every ground-truth annotation, and it reports ``-1`` for an area range without ground truth.
Here: chatter is swallowed, empty results score 0.0, missing fields are filled (``iscrowd=0``,
``area`` = bbox area, ``id`` numbered ``1..n`` when missing, repeated or 0), and a metric whose
area range holds no ground truth is ``None`` (never ``-1``, never a fake 0.0).
"""

from __future__ import annotations

import contextlib
import copy
import io
from typing import Any

import numpy as np

#: Names of the first six ``COCOeval.stats`` entries, in order.
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
_AREA_RANGES = {"APs": (0.0, 32.0**2), "APm": (32.0**2, 96.0**2), "APl": (96.0**2, 1e10)}


def complete_gt(dataset: dict[str, Any]) -> dict[str, Any]:
    """A copy of a COCO-format dict with every field ``COCOeval`` needs filled in.

    Annotation ids are renumbered ``1..n`` unless they already are unique positive integers:
    pycocotools indexes annotations by id (a repeated id keeps one of them) and its matcher
    writes the matched ground truth's id into a zero-initialised array, so id 0 reads as
    "unmatched". Either way perfect predictions would score below 1.
    """
    out = copy.deepcopy(dataset)
    out.setdefault("info", {})
    out.setdefault("annotations", [])
    ids = [a.get("id") for a in out["annotations"]]
    renumber = len(set(map(repr, ids))) != len(ids) or not all(
        isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids
    )
    for k, a in enumerate(out["annotations"]):
        a.setdefault("iscrowd", 0)
        if "area" not in a:
            a["area"] = float(a["bbox"][2] * a["bbox"][3])
        if renumber:
            a["id"] = k + 1
    return out


def coco_from_dict(dataset: dict[str, Any]) -> Any:
    """A pycocotools ``COCO`` from an in-memory dict (completed by :func:`complete_gt`), quietly."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = complete_gt(dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def evaluate_bbox(
    gt: dict[str, Any] | Any, detections: list[dict[str, Any]], img_ids: list[int] | None = None
) -> dict[str, float | None]:
    """COCO bbox metrics (:data:`METRICS`) of ``detections`` against ``gt``.

    ``gt`` is a COCO-format dict or a pycocotools ``COCO``; ``detections`` are COCO result dicts
    (``image_id``, ``category_id``, ``bbox`` as xywh in original pixels, ``score``). Returns
    0.0 for every metric when there are no detections, ``None`` for area ranges without ground
    truth. ``img_ids``: score on these ground-truth images only (all by default).
    """
    from pycocotools.cocoeval import COCOeval

    coco_gt = gt if hasattr(gt, "loadRes") else coco_from_dict(gt)
    present = _ranges_with_gt(coco_gt)
    if not detections:
        return {k: (0.0 if present.get(k, True) else None) for k in METRICS}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(copy.deepcopy(detections))
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        if img_ids is not None:
            ev.params.imgIds = sorted(img_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    stats = [float(v) for v in ev.stats[: len(METRICS)]]
    return {k: (None if v < 0 else v) for k, v in zip(METRICS, stats, strict=True)}


def _ranges_with_gt(coco_gt: Any) -> dict[str, bool]:
    """Whether each area range of :data:`_AREA_RANGES` has a non-crowd ground-truth box."""
    areas = np.array([a["area"] for a in coco_gt.dataset["annotations"] if not a["iscrowd"]])
    out = {k: bool(((areas >= lo) & (areas <= hi)).any()) for k, (lo, hi) in _AREA_RANGES.items()}
    out["AP"] = out["AP50"] = out["AP75"] = areas.size > 0
    return out
