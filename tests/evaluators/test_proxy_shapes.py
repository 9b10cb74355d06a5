"""The embedded synthetic set is valid COCO, deterministic and cached safely."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from evaluators import shapes
from evaluators.shapes import CLASSES, dataset_name, generate_shapes

# pycocotools' annToMask trips numpy 2's copy-keyword deprecation; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_shapes(tmp_path_factory.mktemp("runs"), seed=3, train_images=90, val_images=10)


def _load(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def test_generated_set_is_valid_coco(shapes_dir: Path) -> None:
    coco = _load(shapes_dir / "instances_train.json")
    assert len(coco.getImgIds()) == 90
    areas = []
    for ann in coco.loadAnns(coco.getAnnIds()):
        img = coco.imgs[ann["image_id"]]
        assert (shapes_dir / img["file_name"]).is_file()
        x, y, w, h = ann["bbox"]
        assert x >= 0 and y >= 0 and x + w <= img["width"] and y + h <= img["height"]
        mask = coco.annToMask(ann)
        assert mask.shape == (img["height"], img["width"])
        assert ann["area"] == mask.sum() >= 24
        ys, xs = np.nonzero(mask)
        assert [x, y, w, h] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert mask_utils.area(ann["segmentation"]) == ann["area"]
        areas.append(ann["area"])
    assert {c["name"] for c in coco.loadCats(coco.getCatIds())} == set(CLASSES)
    used = {a["category_id"] for a in coco.dataset["annotations"]}
    assert used == set(coco.getCatIds())
    areas = np.array(areas)
    assert (areas < 32**2).any() and ((areas >= 32**2) & (areas <= 96**2)).any() and (areas > 96**2).any()
    assert max(len(coco.getAnnIds(imgIds=i)) for i in coco.getImgIds()) >= 4  # several per image


def test_occluded_objects_are_annotated_by_their_visible_part() -> None:
    """Later shapes cover earlier ones: visible masks are disjoint, some are cut, none is tiny."""
    occluded = 0
    for index in range(40):
        _, objects = shapes.render_image(np.random.default_rng([0, 0, index]), 160)
        masks = [m for _, m, _ in objects]
        for i in range(len(masks)):
            for j in range(i + 1, len(masks)):
                assert not (masks[i] & masks[j]).any()
        for _, visible, full in objects:
            assert 0.3 * full <= visible.sum() <= full
            occluded += visible.sum() < full
    assert occluded > 0


def test_same_seed_same_bytes_different_seed_different(tmp_path: Path) -> None:
    a = generate_shapes(tmp_path / "a", seed=1, train_images=6, val_images=2, size=96)
    b = generate_shapes(tmp_path / "b", seed=1, train_images=6, val_images=2, size=96)
    c = generate_shapes(tmp_path / "c", seed=2, train_images=6, val_images=2, size=96)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 6 + 2 + 2
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / "instances_train.json").read_bytes() != (c / "instances_train.json").read_bytes()
    assert (a / "train/000000.jpg").read_bytes() != (c / "train/000000.jpg").read_bytes()


def test_cache_reuses_and_arguments_select_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = generate_shapes(tmp_path, seed=0, train_images=4, val_images=2, size=96)
    assert first.name == dataset_name(seed=0, train_images=4, val_images=2, size=96)

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("regenerated a cached set")

    monkeypatch.setattr(shapes, "_write_split", fail)
    assert generate_shapes(tmp_path, seed=0, train_images=4, val_images=2, size=96) == first
    with pytest.raises(AssertionError, match="regenerated"):
        generate_shapes(tmp_path, seed=0, train_images=5, val_images=2, size=96)


def test_interrupted_generation_is_not_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = shapes._write_split
    calls = []

    def die_on_val(folder: Path, split: str, *args: object, **kwargs: object) -> None:
        calls.append(split)
        if split == "val":
            raise KeyboardInterrupt
        real(folder, split, *args, **kwargs)

    monkeypatch.setattr(shapes, "_write_split", die_on_val)
    with pytest.raises(KeyboardInterrupt):
        generate_shapes(tmp_path, seed=0, train_images=4, val_images=2, size=96)
    assert calls == ["train", "val"]
    assert list((tmp_path / "data").iterdir()) == []  # no half set, no temp folder left
    # a temp folder left by a killed process is ignored too
    name = dataset_name(seed=0, train_images=4, val_images=2, size=96)
    stale = tmp_path / "data" / f".tmp-{name}-killed"
    (stale / "train").mkdir(parents=True)

    monkeypatch.setattr(shapes, "_write_split", real)
    out = generate_shapes(tmp_path, seed=0, train_images=4, val_images=2, size=96)
    assert out.name == name
    val = json.loads((out / "instances_val.json").read_text())
    assert len(val["images"]) == 2
    assert stale.is_dir() and out != stale
