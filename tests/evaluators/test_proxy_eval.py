"""COCO evaluation wrapper and the head's decoder: same numbers as pycocotools, no traps."""

from __future__ import annotations

import contextlib
import copy
import io
import math

import pytest
import torch
from pycocotools.cocoeval import COCOeval

from evaluators.coco_eval import METRICS, coco_from_dict, evaluate_bbox
from evaluators.detection import STRIDES, batched_nms, box_iou, decode, nms


def _gt() -> dict:
    """Two images, small/medium/large boxes, two categories (one annotation lacks optional keys)."""
    boxes = [
        (1, 1, [10, 10, 20, 20]),  # small (400)
        (1, 2, [50, 40, 60, 50]),  # medium (3000)
        (2, 1, [5, 5, 120, 110]),  # large (13200)
        (2, 2, [130, 120, 25, 28]),  # small
    ]
    anns = [
        {"id": i + 1, "image_id": img, "category_id": cat, "bbox": b, "area": b[2] * b[3], "iscrowd": 0}
        for i, (img, cat, b) in enumerate(boxes)
    ]
    del anns[3]["area"], anns[3]["iscrowd"], anns[3]["id"]
    return {
        "images": [{"id": 1, "width": 160, "height": 160}, {"id": 2, "width": 160, "height": 160}],
        "annotations": anns,
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }


def _perfect(gt: dict) -> list[dict]:
    return [
        {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": list(a["bbox"]), "score": 0.9}
        for a in gt["annotations"]
    ]


def test_perfect_predictions_score_one() -> None:
    result = evaluate_bbox(_gt(), _perfect(_gt()))
    assert set(result) == set(METRICS)
    assert all(v == pytest.approx(1.0) for v in result.values()), result


def test_shifted_boxes_match_pycocotools_called_directly() -> None:
    gt = _gt()
    dets = _perfect(gt)
    for k, d in enumerate(dets):
        d["bbox"][0] += 3 + 2 * k  # growing shifts: some pass IoU 0.75, fewer pass 0.95
        d["score"] = 0.5 + 0.1 * k
    dets.append({"image_id": 1, "category_id": 2, "bbox": [100, 100, 30, 30], "score": 0.95})
    ours = evaluate_bbox(gt, copy.deepcopy(dets))

    coco_gt = coco_from_dict(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(dets)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    for name, value in zip(METRICS, ev.stats[:6], strict=True):
        assert ours[name] == pytest.approx(value)
    assert 0 < ours["AP"] < ours["AP50"] and ours["AP50"] < 1


def test_empty_predictions_and_empty_area_ranges() -> None:
    assert evaluate_bbox(_gt(), []) == {k: 0.0 for k in METRICS}
    gt = _gt()
    gt["annotations"] = [a for a in gt["annotations"] if a["bbox"][2] < 30]  # only small boxes
    empty = evaluate_bbox(gt, [])
    assert empty == {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "APs": 0.0, "APm": None, "APl": None}
    full = evaluate_bbox(gt, _perfect(coco_from_dict(gt).dataset))
    assert full["APm"] is None and full["APl"] is None and full["APs"] == pytest.approx(1.0)


def _reference_nms(boxes: torch.Tensor, scores: torch.Tensor, thr: float) -> list[int]:
    """Textbook greedy NMS over the full IoU matrix."""
    order = scores.argsort(descending=True).tolist()
    suppressed, keep = set(), []
    for i in order:
        if i in suppressed:
            continue
        keep.append(i)
        for j in order:
            if j not in suppressed and j != i and box_iou(boxes[i], boxes[j]) > thr:
                suppressed.add(j)
    return keep


def test_nms_equals_textbook_greedy_nms() -> None:
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(150, 2, generator=g) * 100
    wh = torch.rand(150, 2, generator=g) * 40 + 2
    boxes = torch.cat([xy, xy + wh], 1)
    scores = torch.rand(150, generator=g)
    keep = nms(boxes, scores, 0.5).tolist()
    assert keep == _reference_nms(boxes, scores, 0.5)
    assert 10 < len(keep) < 150
    assert nms(boxes, scores, 0.5, max_keep=7).tolist() == keep[:7]


def test_batched_nms_never_suppresses_across_classes() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    classes = torch.tensor([0, 1, 0, 1])
    assert batched_nms(boxes, scores, classes, 0.5).tolist() == [0, 1, 3]


def test_decode_finds_a_planted_box() -> None:
    """A confident cell at P4 with known distances decodes to the box it encodes."""
    size, nc = 128, 3
    outputs = [torch.full((2, 5 + nc, size // s, size // s), -12.0) for s in STRIDES]
    # cell (x=3, y=2) of P4 has centre (56, 40); distances l,t,r,b = 16, 8, 32, 24
    ltrb = torch.tensor([16.0, 8.0, 32.0, 24.0]) / 16
    outputs[1][1, :4, 2, 3] = torch.log(torch.expm1(ltrb))  # inverse softplus
    outputs[1][1, 4, 2, 3] = 6.0
    outputs[1][1, 5 + 2, 2, 3] = 6.0
    (b0, s0, c0), (b1, s1, c1) = decode(outputs)
    assert len(b0) == 0
    assert c1[0] == 2 and s1[0] == pytest.approx(torch.sigmoid(torch.tensor(6.0)) ** 2)
    assert b1[0].tolist() == pytest.approx([40.0, 32.0, 88.0, 64.0], abs=1e-4)
    assert len(b1) == 1  # other cells are far below the threshold
    assert not math.isnan(s1[0])
