"""A quirk suite: real-world variants of the shapes set, the way a new user's COCO data looks.

Why from the shapes generator: its ground truth is exact (boxes of the visible masks), so every
variant keeps a known answer, and a variant's quirk is the only difference from the plain set.
:func:`build_quirk_suite` writes each variant as a ``--data`` path; ``EXTRA_SKIPS`` says which
per-reason skip counts a variant adds on top of the plain set (its injected faults).
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from evaluators.shapes import generate_shapes

SIZE = 96  # generated image size
N = 12  # images per split

Coco = dict[str, Any]


def base_set(root: Path) -> Path:
    """The plain shapes set the variants are made from (``instances_{train,val}.json`` + images)."""
    return generate_shapes(root, seed=0, train_images=N, val_images=N, size=SIZE)


def _read(src: Path, split: str) -> Coco:
    return json.loads((src / f"instances_{split}.json").read_text())


def _write(path: Path, coco: Coco) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco))  # allow_nan: NaN / Infinity literals, as Python writers emit


def _copy(src: Path, dst: Path, edit: Callable[[Coco, str], None]) -> Path:
    """The plain layout (JSONs beside ``train/``, ``val/``) with both files edited by ``edit``."""
    for split in ("train", "val"):
        shutil.copytree(src / split, dst / split)
        coco = _read(src, split)
        edit(coco, split)
        _write(dst / f"instances_{split}.json", coco)
    return dst


def _recategorise(coco: Coco, split: str) -> None:
    """Non-contiguous, unordered category ids."""
    new = {1: 90, 2: 3, 3: 47, 4: 12, 5: 7, 6: 64}
    for a in coco["annotations"]:
        a["category_id"] = new[a["category_id"]]
    coco["categories"] = [{**c, "id": new[c["id"]]} for c in reversed(coco["categories"])]


def _duplicate_ids(coco: Coco, split: str) -> None:
    for k, a in enumerate(coco["annotations"]):
        a["id"] = 1 + k // 3  # every id three times


def _zero_ids(coco: Coco, split: str) -> None:
    for k, a in enumerate(coco["annotations"]):
        a["id"] = k  # the first one is id 0


def _crowd(coco: Coco, split: str) -> None:
    for a in coco["annotations"][::4]:
        a["iscrowd"] = 1


def _out_of_image(coco: Coco, split: str) -> None:
    """Every third box reaches past the image's left/top/right/bottom; two per file wholly outside."""
    for k, a in enumerate(coco["annotations"][::3]):
        x, y, w, h = a["bbox"]
        a["bbox"] = [
            [x - 40, y, w + 40, h],
            [x, y - 40, w, h + 40],
            [x, y, SIZE - x + 30, h],
            [x, y, w, SIZE - y + 30],
        ][k % 4]
        a.pop("area")
    _add(coco, [[SIZE + 5, 10, 20, 20], [-50, -50, 30, 30]])


def _add(coco: Coco, boxes: list[list[Any]]) -> None:
    """Annotations with these bboxes on the first images (category 1)."""
    next_id = max(a["id"] for a in coco["annotations"]) + 1
    for k, box in enumerate(boxes):
        coco["annotations"].append(
            {"id": next_id + k, "image_id": 1 + k % N, "category_id": 1, "bbox": box, "area": 100.0, "iscrowd": 0}
        )


NAN_BOXES = [
    [float("nan"), 10, 20, 20],
    [10, 10, float("inf"), 20],
    [10, float("-inf"), 20, 20],
    [True, 10, 20, 20],
    [10, 10, 20, False],
    ["10", 10, 20, 20],
]
DEGENERATE_BOXES = [[10, 10, 0, 20], [10, 10, 20, -3], [10, 10, 20], None]


def _train_only_category(coco: Coco, split: str) -> None:
    """A category listed only in the train file, with annotations there."""
    if split == "train":
        coco["categories"].append({"id": 99, "name": "hexagon", "supercategory": "shape"})
        for a in coco["annotations"][::3]:
            a["category_id"] = 99


def _image_modes(src: Path, dst: Path) -> Path:
    """Grayscale, RGBA, palette and CMYK files, and sizes from 64x48 to 2000x1500 px."""
    forms = [("L", ".jpg", None), ("RGBA", ".png", None), ("P", ".png", None), ("CMYK", ".jpg", None)]
    forms += [("RGB", ".jpg", (2000, 1500)), ("RGB", ".png", (64, 48)), ("RGB", ".jpg", (96, 300))]
    for split in ("train", "val"):
        coco = _read(src, split)
        (dst / split).mkdir(parents=True)
        for k, img in enumerate(coco["images"]):
            mode, ext, size = forms[k % len(forms)]
            im = Image.open(src / img["file_name"]).convert("RGB")
            sx, sy = (1.0, 1.0) if size is None else (size[0] / im.width, size[1] / im.height)
            if size is not None:
                im = im.resize(size, Image.BILINEAR)
            img["file_name"] = str(Path(img["file_name"]).with_suffix(ext))
            img["width"], img["height"] = im.size
            im.convert(mode).save(dst / img["file_name"])
            for a in coco["annotations"]:
                if a["image_id"] == img["id"]:
                    x, y, w, h = a["bbox"]
                    a["bbox"], a["area"] = [x * sx, y * sy, w * sx, h * sy], a["area"] * sx * sy
        _write(dst / f"instances_{split}.json", coco)
    return dst


def _negatives(coco: Coco, split: str) -> None:
    """Images without any annotation (grey frames): negatives, not skips."""
    first = max(i["id"] for i in coco["images"]) + 1
    for k in range(3):
        name = f"{split}/empty{k}.jpg"
        coco["images"].append({"id": first + k, "file_name": name, "width": SIZE, "height": SIZE})


def _coco_layout(src: Path, dst: Path, *, root_relative: bool) -> Path:
    """``annotations/instances_{train,val}2017.json`` + ``{train,val}2017/``; ``file_name`` is the
    bare name, or (``root_relative``) ``val2017/x.jpg``, relative to the dataset root."""
    for split in ("train", "val"):
        shutil.copytree(src / split, dst / f"{split}2017")
        coco = _read(src, split)
        for img in coco["images"]:
            name = Path(img["file_name"]).name
            img["file_name"] = f"{split}2017/{name}" if root_relative else name
        _write(dst / "annotations" / f"instances_{split}2017.json", coco)
    return dst


def _single_file(src: Path, dst: Path) -> Path:
    """One annotation file for both splits (train is drawn from it, disjoint from val)."""
    merged = _read(src, "val")
    train = _read(src, "train")
    shift = max(i["id"] for i in merged["images"])
    ann_shift = max(a["id"] for a in merged["annotations"])
    merged["images"] += [{**i, "id": i["id"] + shift} for i in train["images"]]
    merged["annotations"] += [
        {**a, "id": a["id"] + ann_shift, "image_id": a["image_id"] + shift} for a in train["annotations"]
    ]
    for split in ("train", "val"):
        shutil.copytree(src / split, dst / split)
    _write(dst / "all.json", merged)
    return dst / "all.json"


def _with_boxes(boxes: list[Any]) -> Callable[[Coco, str], None]:
    return lambda coco, split: _add(coco, copy.deepcopy(boxes))


#: Per variant: the skip counts (by reason) it adds to the plain set's, over both splits.
EXTRA_SKIPS: dict[str, dict[str, int]] = {
    "out_of_image": {"outside_image": 4},
    "nan_boxes": {"bad_bbox": 2 * len(NAN_BOXES)},
    "degenerate_boxes": {"bad_bbox": 2 * len(DEGENERATE_BOXES)},
}


def build_quirk_suite(root: Path) -> dict[str, Path]:
    """Write every variant under ``root``; returns ``name -> --data path``."""
    src = base_set(root / "gen")
    makers: dict[str, Callable[[Path], Path]] = {
        "plain": lambda d: _copy(src, d, lambda c, s: None),
        "noncontiguous_ids": lambda d: _copy(src, d, _recategorise),
        "duplicate_ids": lambda d: _copy(src, d, _duplicate_ids),
        "zero_ids": lambda d: _copy(src, d, _zero_ids),
        "crowd": lambda d: _copy(src, d, _crowd),
        "out_of_image": lambda d: _copy(src, d, _out_of_image),
        "degenerate_boxes": lambda d: _copy(src, d, _with_boxes(DEGENERATE_BOXES)),
        "nan_boxes": lambda d: _copy(src, d, _with_boxes(NAN_BOXES)),
        "train_only_category": lambda d: _copy(src, d, _train_only_category),
        "negatives": lambda d: _negatives_set(src, d),
        "image_modes": lambda d: _image_modes(src, d),
        "coco_layout": lambda d: _coco_layout(src, d, root_relative=False),
        "root_relative": lambda d: _coco_layout(src, d, root_relative=True),
        "single_file": lambda d: _single_file(src, d),
    }
    return {name: make(root / name) for name, make in makers.items()}


def _negatives_set(src: Path, dst: Path) -> Path:
    out = _copy(src, dst, _negatives)
    for split in ("train", "val"):
        for k in range(3):
            Image.new("RGB", (SIZE, SIZE), (114, 114, 114)).save(out / split / f"empty{k}.jpg")
    return out
