"""Reading COCO-format sets: the documented path rule, skips that are counted, errors that are clear."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

from evaluators import coco_data
from evaluators.coco_data import load_proxy_data
from evaluators.errors import DataError


def _write_coco(root: Path, split: str = "val2017", n: int = 8) -> Path:
    """A COCO-layout set: annotations/instances_<split>.json + <split>/*.jpg, 200x100 images.

    Image 3 is corrupt, annotation 'dangling' points at image 999, one uses category 77 (unknown),
    one is a crowd region (kept for evaluation, not trained on), category 5 is never used.
    """
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / split).mkdir(exist_ok=True)
    images, anns = [], []
    for i in range(1, n + 1):
        name = f"{i:012d}.jpg"
        if i == 3:
            (root / split / name).write_bytes(b"this is not a jpeg")
        else:
            Image.new("RGB", (200, 100), (10 * i, 50, 90)).save(root / split / name)
        images.append({"id": i, "file_name": name, "width": 200, "height": 100})
        anns.append(
            {
                "id": 10 * i,
                "image_id": i,
                "category_id": 2 if i % 2 else 9,
                "bbox": [20, 10, 50, 40],
                "area": 2000.0,
                "iscrowd": 0,
            }
        )
    anns.append({"id": 1, "image_id": 999, "category_id": 2, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 0})
    anns.append({"id": 2, "image_id": 1, "category_id": 77, "bbox": [0, 0, 5, 5], "area": 25, "iscrowd": 0})
    anns.append({"id": 3, "image_id": 2, "category_id": 2, "bbox": [100, 0, 90, 90], "area": 999, "iscrowd": 1})
    cats = [{"id": 9, "name": "dog"}, {"id": 2, "name": "bicycle"}, {"id": 5, "name": "airplane"}]
    path = root / "annotations" / f"instances_{split}.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path


def test_coco_layout_folder_with_corrupt_image_and_dangling_annotations(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _write_coco(tmp_path)
    with caplog.at_level(logging.WARNING):
        data = load_proxy_data(tmp_path, img_size=64, images=4, val_images=4, root=tmp_path / "runs")
    assert data.skipped_images == 1 and data.skipped_annotations == 2
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "skipped 1 image" in warnings[0].getMessage()
    assert "2 annotation" in warnings[0].getMessage()
    # only the val file: 4 val images, train drawn from the rest, disjoint; corrupt one dropped
    assert len(data.val.image_ids) + len(data.train.image_ids) == 7
    assert not set(data.val.image_ids) & set(data.train.image_ids)
    assert 3 not in data.val.image_ids + data.train.image_ids
    # contiguous classes in category-id order, and back
    assert data.category_ids == [2, 5, 9] and data.category_names == ["bicycle", "airplane", "dog"]
    assert data.train.images.shape[1:] == (3, 64, 64) and data.train.images.dtype == torch.uint8
    split = data.train
    k = 0
    scale = 64 / 200
    assert split.scales[k] == pytest.approx(scale)
    row = split.targets[k][0].tolist()
    img = split.image_ids[k]
    assert row == pytest.approx([0 if img % 2 else 2, 20 * scale, 10 * scale, 70 * scale, 50 * scale])
    assert split.images[k, :, 40:, :].eq(114).all()  # letterbox padding below the 200x100 image
    # ground truth for evaluation stays in original pixels and keeps the crowd region
    gt_boxes = [a["bbox"] for a in data.val.gt["annotations"] + data.train.gt["annotations"]]
    assert [20, 10, 50, 40] in gt_boxes
    crowd = [a for a in data.val.gt["annotations"] + data.train.gt["annotations"] if a["iscrowd"]]
    assert len(crowd) == (1 if 2 in data.val.image_ids + data.train.image_ids else 0)
    assert all(len(t) == 1 for t in data.train.targets)  # the crowd box is not a training target


def test_annotation_file_path_and_category_subset(tmp_path: Path) -> None:
    path = _write_coco(tmp_path, split="train2017")
    data = load_proxy_data(path, img_size=64, images=3, val_images=2, categories=["dog"], root=tmp_path)
    assert data.category_ids == [9] and data.num_classes == 1
    kept = data.train.image_ids + data.val.image_ids
    assert len(kept) == 5 - data.skipped_images and 3 not in kept  # image 3 is the corrupt one
    for split in (data.train, data.val):
        for img, t in zip(split.image_ids, split.targets, strict=True):
            assert len(t) == (0 if img % 2 else 1)  # odd images hold a bicycle: not selected
        assert {a["category_id"] for a in split.gt["annotations"]} <= {9}
    coco_data._CACHE.clear()
    again = load_proxy_data(path, img_size=64, images=3, val_images=2, categories=["dog"], root=tmp_path)
    assert again.val.image_ids == data.val.image_ids  # deterministic subsample
    with pytest.raises(DataError, match="unknown categories"):
        load_proxy_data(path, img_size=64, images=3, val_images=2, categories=["cat"], root=tmp_path)


def test_folder_with_train_and_val_files(tmp_path: Path) -> None:
    _write_coco(tmp_path, split="val2017", n=5)
    _write_coco(tmp_path, split="train2017", n=6)
    data = load_proxy_data(tmp_path, img_size=64, images=100, val_images=100, root=tmp_path)
    assert len(data.val.image_ids) == 4 and len(data.train.image_ids) == 5  # one corrupt in each


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "not found"),
        ("{not json", "cannot read COCO annotations"),
        ('{"images": [], "annotations": []}', "no 'categories' with ids"),
        ("[1, 2]", "not a COCO annotation file"),
    ],
)
def test_unusable_annotation_files_raise_data_error(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "instances_val.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_proxy_data(path, img_size=64, images=2, root=tmp_path)


def test_folder_without_annotations_or_images_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="expected one instances_val"):
        load_proxy_data(tmp_path, img_size=64, images=2, root=tmp_path)
    with pytest.raises(DataError, match="data path not found"):
        load_proxy_data(tmp_path / "nope", img_size=64, images=2, root=tmp_path)
    path = _write_coco(tmp_path / "coco")
    for jpg in (tmp_path / "coco" / "val2017").iterdir():
        jpg.unlink()
    with pytest.raises(DataError, match="images of .* not found"):
        load_proxy_data(path, img_size=64, images=2, val_images=2, root=tmp_path)


def test_shapes_loads_at_the_proxy_size(tmp_path: Path) -> None:
    data = load_proxy_data("shapes", img_size=96, images=12, val_images=4, root=tmp_path)
    assert data.num_classes == 6 and data.skipped_images == data.skipped_annotations == 0
    assert data.train.images.shape == (12, 3, 96, 96) and len(data.val.image_ids) == 4
    assert all(t.shape[1] == 5 and len(t) for t in data.train.targets)
    assert (tmp_path / "data" / data.name / "instances_val.json").is_file()
