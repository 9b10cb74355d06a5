"""A user's own COCO-format data: the proxy's AP is right on every quirk, nothing is dropped
silently, and no result is reused across datasets.

The ground-truth oracle feeds each set's val targets back as detections through the trainer's own
evaluation path (:func:`evaluators.train.coco_detections` -> :func:`~evaluators.train.score_detections`
against :func:`~evaluators.coco_eval.coco_from_dict` of the split's ground truth): it must score
AP 1.0; labels shifted by one must score about 0, which shows the oracle can fail.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from evaluators import coco_data
from evaluators.coco_data import SKIP_REASONS, ProxyData, load_proxy_data
from evaluators.coco_eval import coco_from_dict, evaluate_bbox
from evaluators.detection import STRIDES
from evaluators.errors import DataError
from evaluators.recipe import Recipe
from evaluators.train import coco_detections, score_detections, train_proxy
from tests.support.coco_quirks import EXTRA_SKIPS, NAN_BOXES, build_quirk_suite

IMG = 64


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_quirk_suite(tmp_path_factory.mktemp("quirks"))


def _load(path: Path, **kwargs: object) -> ProxyData:
    args = {"img_size": IMG, "images": 50, "val_images": 50, "root": path.parent / "runs"}
    if path.suffix == ".json":  # one file: val is its first 12 images, train the rest
        args["val_images"] = 12
    return load_proxy_data(path, **{**args, **kwargs})


def _oracle(data: ProxyData, shift: int = 0) -> dict:
    """The val targets as detections (score 1), through the trainer's evaluation path."""
    detections = []
    for k, t in enumerate(data.val.targets):
        classes = (t[:, 0].long() + shift) % data.num_classes
        detections += coco_detections(data, k, t[:, 1:], torch.ones(len(t)), classes)
    return score_detections(coco_from_dict(data.val.gt), detections)


VARIANTS = [
    "plain",
    "noncontiguous_ids",
    "duplicate_ids",
    "zero_ids",
    "crowd",
    "out_of_image",
    "degenerate_boxes",
    "nan_boxes",
    "train_only_category",
    "negatives",
    "image_modes",
    "coco_layout",
    "root_relative",
    "single_file",
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_ground_truth_oracle_scores_one_and_a_wrong_mapping_scores_zero(suite: dict[str, Path], variant: str) -> None:
    data = _load(suite[variant])
    assert sum(len(t) for t in data.val.targets) >= 10  # enough ground truth for AP to mean something
    right = _oracle(data)
    assert right["AP"] == pytest.approx(1.0), (variant, right)
    assert right["AP50"] == pytest.approx(1.0) and right["detections"] == sum(len(t) for t in data.val.targets)
    wrong = _oracle(data, shift=1)
    assert wrong["AP"] < 0.05, (variant, wrong)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_skips_only_its_injected_faults(suite: dict[str, Path], variant: str) -> None:
    data = _load(suite[variant])
    expected = dict.fromkeys(SKIP_REASONS, 0) | EXTRA_SKIPS.get(variant, {})
    assert data.skipped_by_reason == expected
    assert data.skipped_annotations == sum(v for k, v in expected.items() if k not in coco_data.IMAGE_REASONS)
    assert data.skipped_images == 0


def test_noncontiguous_ids_map_both_ways_and_an_order_preserving_remap_gives_the_same_ap(
    suite: dict[str, Path],
) -> None:
    plain, remapped = _load(suite["plain"]), _load(suite["noncontiguous_ids"])
    assert remapped.category_ids == [3, 7, 12, 47, 64, 90]
    assert [c["id"] for c in remapped.val.gt["categories"]] == remapped.category_ids
    # the same half-right detections score the same on both (after mapping the ids)
    dets = []
    for k, t in enumerate(plain.val.targets):
        boxes = t[:, 1:].clone()
        boxes[::2, 2] += 6  # every other box too wide: misses the high IoU thresholds
        dets += coco_detections(plain, k, boxes, torch.linspace(1, 0.5, len(t)), t[:, 0].long())
    to_new = dict(zip(plain.category_ids, [90, 3, 47, 12, 7, 64], strict=True))
    dets_new = [{**d, "category_id": to_new[d["category_id"]]} for d in dets]
    a = evaluate_bbox(coco_from_dict(plain.val.gt), dets)
    b = evaluate_bbox(coco_from_dict(remapped.val.gt), dets_new)
    assert 0.3 < a["AP"] < 0.95
    for k, v in a.items():  # categories average in another order: equal to the last bits
        assert b[k] == (None if v is None else pytest.approx(v, rel=1e-12))


# -- one regression test per numbered problem of issue 18 ---------------------------------------
def test_1_duplicate_or_zero_annotation_ids_do_not_change_ap(suite: dict[str, Path]) -> None:
    """pycocotools keeps one annotation per id, and id 0 reads as "unmatched" in its matcher."""
    for variant in ("duplicate_ids", "zero_ids"):
        data = _load(suite[variant])
        ids = [a["id"] for a in data.val.gt["annotations"]]
        assert sorted(ids) == list(range(1, len(ids) + 1))
        assert _oracle(data)["AP"] == pytest.approx(1.0)
    # the same through evaluate_bbox on a hand-made dict (complete_gt renumbers)
    gt = {
        "images": [{"id": 1, "width": 100, "height": 100}],
        "annotations": [
            {"id": i, "image_id": 1, "category_id": 1, "bbox": [10 * i, 10, 8, 8], "area": 64.0, "iscrowd": 0}
            for i in (0, 3, 3)
        ],
        "categories": [{"id": 1, "name": "a"}],
    }
    dets = [{"image_id": 1, "category_id": 1, "bbox": a["bbox"], "score": 0.9} for a in gt["annotations"]]
    assert evaluate_bbox(gt, dets)["AP"] == pytest.approx(1.0)


def test_2_boxes_outside_the_image_are_clipped_in_the_ground_truth_or_counted(suite: dict[str, Path]) -> None:
    data = _load(suite["out_of_image"])
    for split in (data.train, data.val):
        sizes = {i["id"]: (i["width"], i["height"]) for i in split.gt["images"]}
        for a in split.gt["annotations"]:
            x, y, w, h = a["bbox"]
            iw, ih = sizes[a["image_id"]]
            assert x >= 0 and y >= 0 and x + w <= iw and y + h <= ih
            assert 0 < a["area"] <= w * h + 1e-6  # a mask area, or the clipped box's
    assert data.skipped_by_reason["outside_image"] == 4  # two wholly outside per file, both used
    assert _oracle(data)["AP"] == pytest.approx(1.0)


def test_3_categories_only_in_the_train_file_are_trained_and_names_must_agree(
    suite: dict[str, Path], tmp_path: Path
) -> None:
    data = _load(suite["train_only_category"])
    assert data.category_ids[-1] == 99 and data.category_names[-1] == "hexagon"
    hexagon = data.category_ids.index(99)
    raw = json.loads((suite["train_only_category"] / "instances_train.json").read_text())
    n99 = sum(a["category_id"] == 99 for a in raw["annotations"])
    assert sum(int((t[:, 0] == hexagon).sum()) for t in data.train.targets) == n99 > 0
    assert data.skipped_annotations == 0
    swapped = tmp_path / "swapped"
    shutil.copytree(suite["plain"], swapped)
    val = json.loads((swapped / "instances_val.json").read_text())
    val["categories"][0]["name"], val["categories"][1]["name"] = val["categories"][1]["name"], "circle"
    (swapped / "instances_val.json").write_text(json.dumps(val))
    with pytest.raises(DataError, match="disagree on category 1: 'circle' vs 'square'"):
        _load(swapped)


def _corrupt_train_images(suite: dict[str, Path], dst: Path) -> Path:
    shutil.copytree(suite["plain"], dst)
    for jpg in (dst / "train").iterdir():
        jpg.write_bytes(b"not an image")
    return dst


def test_4_nas_train_on_a_set_whose_train_images_all_fail_is_one_error_line(
    suite: dict[str, Path], tmp_path: Path
) -> None:
    pytest.importorskip("search_spaces")
    data = _corrupt_train_images(suite, tmp_path / "broken")
    with pytest.raises(DataError, match="no usable image in the train split: all 12 sampled"):
        _load(data)
    cmd = [sys.executable, "-m", "nas.cli", "train", "yolor-elan-2-1", "--data", str(data), "--epochs", "1"]
    cmd += ["--images", "8", "--img-size", "64", "--threads", "1", "--out", str(tmp_path / "out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(lines) == 1 and lines[0].startswith("error: ")
    assert "all 8 sampled image(s)" in lines[0] and "8 could not be decoded" in lines[0]


class _Tiny(nn.Module):
    """The smallest module with the detectors' output contract: [P3, P4, P5] of (B, 5 + nc, S/s, S/s)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 8, 1)
        self.down = nn.ModuleList(nn.Conv2d(8, 8, 3, 2, 1) for _ in range(2))
        self.heads = nn.ModuleList(nn.Conv2d(8, 5 + num_classes, 1) for _ in STRIDES)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        p3 = self.stem(x)
        p4 = self.down[0](p3)
        return [h(f) for h, f in zip(self.heads, (p3, p4, self.down[1](p4)), strict=True)]

    def head_convs(self) -> list[tuple[int, nn.Conv2d]]:
        return list(zip(STRIDES, self.heads, strict=True))


def _train(data: Path, out: Path) -> dict:
    return train_proxy(
        _Tiny,
        data,
        Recipe(epochs=1, img_size=IMG, images=8),
        val_images=6,
        out_dir=out,
        data_root=out.parent / "runs",
        num_threads=1,
        progress=False,
    )


def test_5_sets_in_folders_of_the_same_name_never_share_a_result(suite: dict[str, Path], tmp_path: Path) -> None:
    from nas.cli.train import default_out_dir

    site_a, site_b = tmp_path / "siteA" / "coco", tmp_path / "siteB" / "coco"
    shutil.copytree(suite["plain"], site_a)
    shutil.copytree(suite["plain"], site_b)
    val = json.loads((site_b / "instances_val.json").read_text())
    val["annotations"] = val["annotations"][::2]  # another set: same layout, same names, other labels
    (site_b / "instances_val.json").write_text(json.dumps(val))

    def out_of(path: Path) -> Path:
        args = type("Args", (), {"config": "yolor-elan-2-1", "data": str(path), "width_mult": 0.25})()
        args.img_size, args.images, args.epochs, args.seed = 160, 800, 6, 0
        args.recipe, args.val_images, args.precision = "v2", None, None
        return default_out_dir(args)

    assert out_of(site_a) != out_of(site_b) and out_of(site_a) == out_of(site_a)
    assert out_of(site_a).name.startswith("yolor-elan-2-1-coco-")
    out = tmp_path / "out"
    first = _train(site_a, out)
    assert first["status"] == "ok" and first["data_fingerprint"] == _load(site_a, images=8, val_images=6).fingerprint
    with pytest.raises(DataError, match="holds a checkpoint of a different run .*data_fingerprint"):
        _train(site_b, out)  # before: siteA's metrics returned at once, nothing trained
    assert _train(site_a, out)["history"] == first["history"]  # the same set still resumes
    # 8: the result carries per-reason skips and the number of detections evaluated
    assert first["data_skipped_by_reason"] == dict.fromkeys(SKIP_REASONS, 0)
    assert isinstance(first["detections"], int) and first["history"][-1]["detections"] == first["detections"]


def test_6_nan_inf_and_boolean_boxes_are_counted_never_trained_or_evaluated(suite: dict[str, Path]) -> None:
    data = _load(suite["nan_boxes"])
    assert data.skipped_by_reason["bad_bbox"] == 2 * len(NAN_BOXES)
    for split in (data.train, data.val):
        assert all(torch.isfinite(t).all() for t in split.targets)
        assert all(not isinstance(v, bool) and math.isfinite(v) for a in split.gt["annotations"] for v in a["bbox"])
        wide = [t for t in split.targets if len(t) and ((t[:, 3] - t[:, 1]) >= IMG - 0.5).any()]
        assert not wide  # a NaN x used to become a full-width box
    assert _oracle(data)["AP"] == pytest.approx(1.0)


def test_7_file_names_relative_to_the_dataset_root_are_found(suite: dict[str, Path]) -> None:
    data = _load(suite["root_relative"])
    assert len(data.val.image_ids) == 12 and len(data.train.image_ids) == 12
    assert data.val.gt["images"][0]["file_name"].startswith("val2017/")


def test_8_skips_are_counted_per_reason_over_the_images_used_in_one_warning(
    suite: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    d = tmp_path / "faults"
    shutil.copytree(suite["plain"], d)
    val = json.loads((d / "instances_val.json").read_text())
    for img in val["images"]:  # an unknown category on every val image, one annotation each
        val["annotations"].append(
            {"id": 10_000 + img["id"], "image_id": img["id"], "category_id": 77, "bbox": [1, 1, 9, 9]}
        )
    val["annotations"].append({"id": 20_000, "image_id": 4242, "category_id": 1, "bbox": [1, 1, 9, 9]})
    (d / "instances_val.json").write_text(json.dumps(val))
    (d / "val" / "000000.jpg").unlink()  # missing
    (d / "val" / "000001.jpg").rename(d / "val" / "000001.JPG")  # wrong case
    (d / "val" / "000002.jpg").write_bytes(b"broken")  # undecodable
    with caplog.at_level(logging.WARNING):
        data = _load(d, val_images=8)  # 8 of the 12 val images are used
    kept = len(data.val.image_ids)
    counts = data.skipped_by_reason
    assert counts["unknown_category"] == kept  # over the images used, not the 12 of the file
    assert counts["unknown_image"] == 1  # the one annotation of image 4242: belongs to no image
    assert data.skipped_images == 8 - kept  # of the three broken files, those in the sample
    assert data.skipped_annotations == kept + 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    for k, v in counts.items():
        if v:
            assert f"{v} {SKIP_REASONS[k]}" in warnings[0]


def test_8_missing_wrong_case_and_undecodable_files_are_told_apart(suite: dict[str, Path], tmp_path: Path) -> None:
    d = tmp_path / "files"
    shutil.copytree(suite["plain"], d)
    (d / "val" / "000000.jpg").unlink()
    (d / "val" / "000001.jpg").rename(d / "val" / "000001.JPG")
    (d / "val" / "000002.jpg").write_bytes(b"broken")
    data = _load(d)
    assert {k: data.skipped_by_reason[k] for k in coco_data.IMAGE_REASONS} == {
        "missing_file": 1,
        "wrong_case": 1,
        "undecodable": 1,
    }


def test_8_not_enough_images_says_how_many_were_found_and_needed(suite: dict[str, Path]) -> None:
    """v1's val split (a quarter of --images, at least 50) does not fit a 24-image file: one line.
    A fixed val size (v2's) is cut to what leaves the training its images, with a warning."""
    with pytest.raises(DataError, match=r"all\.json lists 24 image\(s\); val takes the first 50"):
        load_proxy_data(suite["single_file"], img_size=IMG, images=8, root=suite["plain"].parent)
    data = _load(suite["single_file"], val_images=50, images=8)
    assert len(data.val.images) == 16 and len(data.train.images) == 8


def test_8_the_result_says_how_many_detections_were_evaluated(suite: dict[str, Path]) -> None:
    data = _load(suite["plain"])
    empty = score_detections(coco_from_dict(data.val.gt), [])
    assert empty["AP"] == 0.0 and empty["detections"] == 0


@pytest.mark.slow
def test_5_nas_train_twice_on_same_named_folders_trains_both(suite: dict[str, Path], tmp_path: Path) -> None:
    """End to end: the second ``nas train`` used to return the first set's metrics in seconds."""
    pytest.importorskip("search_spaces")
    results = []
    for site, step in (("siteA", 1), ("siteB", 2)):
        coco = tmp_path / site / "coco"
        shutil.copytree(suite["plain"], coco)
        val = json.loads((coco / "instances_val.json").read_text())
        val["annotations"] = val["annotations"][::step]
        (coco / "instances_val.json").write_text(json.dumps(val))
        cmd = [sys.executable, "-m", "nas.cli", "train", "yolor-elan-2-1", "--data", f"{site}/coco", "--epochs", "1"]
        cmd += ["--images", "8", "--img-size", "64", "--threads", "1", "--json"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        results.append(json.loads(proc.stdout))
    a, b = results
    assert a["out_dir"] != b["out_dir"] and Path(a["out_dir"]).parent == Path(b["out_dir"]).parent
    assert a["data_fingerprint"] != b["data_fingerprint"]
    assert a["epochs_done"] == b["epochs_done"] == 1 and b["train_time_s"] > 0


def test_a_path_with_a_nul_byte_is_a_data_error_not_a_crash(tmp_path: Path) -> None:
    assert len(coco_data.dataset_digest("a\0b")) == 64
    with pytest.raises(DataError, match="data path not found"):
        load_proxy_data("a\0b", img_size=IMG, images=2, root=tmp_path)


def test_ap_by_subset_equals_scoring_each_subset_alone() -> None:
    """The split-half AP of proxy_noise (one evaluate, re-accumulated per subset) against
    pycocotools run on each subset from scratch."""
    import random

    from evaluators.coco_eval import ap_by_subset, evaluate_bbox

    rng = random.Random(0)
    images = [{"id": i, "width": 100, "height": 100} for i in range(1, 41)]
    anns, dets = [], []
    for img in images:
        for _ in range(rng.randint(0, 3)):
            x, y, w, h = rng.uniform(0, 60), rng.uniform(0, 60), rng.uniform(5, 40), rng.uniform(5, 40)
            cat = rng.randint(1, 2)
            anns.append({"id": len(anns) + 1, "image_id": img["id"], "category_id": cat, "bbox": [x, y, w, h]})
            jitter = [v + rng.gauss(0, 3) for v in (x, y)] + [w, h]
            dets.append({"image_id": img["id"], "category_id": cat, "bbox": jitter, "score": rng.random()})
        dets.append({"image_id": img["id"], "category_id": 1, "bbox": [5, 5, 20, 20], "score": rng.random() / 2})
    gt = {"images": images, "annotations": anns, "categories": [{"id": 1}, {"id": 2}]}
    ids = [img["id"] for img in images]
    subsets = {"A": ids[0::2], "B": ids[1::2], "few": ids[:7]}
    got = ap_by_subset(gt, dets, subsets)
    assert got[""] == pytest.approx(evaluate_bbox(gt, dets)["AP"], abs=1e-12)
    for name, subset in subsets.items():
        alone = [d for d in dets if d["image_id"] in set(subset)]
        assert got[name] == pytest.approx(evaluate_bbox(gt, alone, img_ids=subset)["AP"], abs=1e-12), name
    assert len({round(v, 6) for v in got.values()}) > 1  # the subsets really differ
