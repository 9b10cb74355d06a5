"""Reading COCO-format data into in-memory tensors for the proxy.

Why in memory: the proxy trains a few hundred to a few thousand small images for a few epochs; a
decoded, letterboxed ``uint8`` tensor per split removes all data-loading cost from the training
loop and makes the data order a pure function of the seed.

Where the data comes from (``data`` argument / ``--data``):

- ``"shapes"``: the embedded synthetic set (:mod:`evaluators.shapes`), generated at the proxy
  image size under ``<root>/data/`` and cached.
- a **JSON file**: one COCO annotation file; the proxy's train and val images are both drawn from
  it, disjoint.
- a **folder**: it (or its ``annotations/`` subfolder) must hold exactly one
  ``instances_val*.json`` (the val split) and at most one ``instances_train*.json`` (the train
  split; without it, train is drawn from the val file, disjoint from val).

Images of an annotation file ``<dir>/instances_<split>.json`` are looked up, ``file_name`` relative
to the first of ``<dir>``, ``<dir>/<split>``, ``<dir>/../<split>`` (the COCO layout:
``annotations/instances_val2017.json`` + ``val2017/``), ``<dir>/images``, ``<dir>/../images``
that holds any of the first listed images.

Subsampling takes ``images`` train and ``val_images`` val images from a permutation seeded by
``data_seed``. Undecodable images and dangling annotations (unknown image or category, no valid
bbox) are skipped, counted and reported in one warning line. Category ids map to contiguous
``0..nc-1`` in category-id order (``ProxyData.category_ids`` maps back).
"""

from __future__ import annotations

import copy
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from evaluators.errors import DataError
from evaluators.shapes import generate_shapes

log = logging.getLogger(__name__)

PAD_VALUE = 114  # letterbox fill (the YOLO grey)


@dataclass(frozen=True)
class Split:
    """One split in proxy coordinates.

    ``images``: (N, 3, S, S) uint8, letterboxed at the top-left corner; ``targets[i]``: (n, 5)
    float32 rows ``(class, x1, y1, x2, y2)`` in proxy pixels (crowd boxes excluded);
    ``scales[i]``: proxy pixels per original pixel; ``gt``: the split's annotations in original
    coordinates as a COCO-format dict (only kept images, annotations and categories).
    """

    images: torch.Tensor
    targets: list[torch.Tensor]
    image_ids: list[int]
    scales: torch.Tensor
    gt: dict[str, Any]


@dataclass(frozen=True)
class ProxyData:
    """A loaded proxy dataset: train and val splits plus the category mapping."""

    name: str
    img_size: int
    train: Split
    val: Split
    category_ids: list[int]
    category_names: list[str]
    skipped_images: int = 0
    skipped_annotations: int = 0

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)


def default_val_images(images: int) -> int:
    """Val split size for ``images`` train images: a quarter, at least 50."""
    return max(50, images // 4)


_CACHE: dict[tuple, ProxyData] = {}


def load_proxy_data(
    data: str | Path = "shapes",
    *,
    img_size: int = 160,
    images: int = 800,
    val_images: int | None = None,
    data_seed: int = 0,
    categories: list[str | int] | None = None,
    root: Path | str = Path("runs"),
) -> ProxyData:
    """Load (and for ``"shapes"`` generate) a proxy dataset; cached per process by arguments."""
    if img_size % 32 or img_size < 64:
        raise ValueError(f"img_size must be a multiple of 32 and >= 64, got {img_size}")
    if images < 1:
        raise ValueError(f"images must be >= 1, got {images}")
    n_val = default_val_images(images) if val_images is None else val_images
    source = "shapes" if str(data) == "shapes" else str(Path(data).resolve())
    key = (source, img_size, images, n_val, data_seed, tuple(categories or ()), str(Path(root).resolve()))
    if key not in _CACHE:
        _CACHE.clear()  # one dataset per worker process is enough; do not accumulate
        _CACHE[key] = _load(data, img_size, images, n_val, data_seed, categories, Path(root))
    return _CACHE[key]


def _load(
    data: str | Path,
    img_size: int,
    images: int,
    n_val: int,
    data_seed: int,
    categories: list[str | int] | None,
    root: Path,
) -> ProxyData:
    if str(data) == "shapes":
        folder = generate_shapes(root, seed=data_seed, train_images=images, val_images=n_val, size=img_size)
        name = folder.name
        train_file, val_file = folder / "instances_train.json", folder / "instances_val.json"
    else:
        path = Path(data)
        name = path.stem if path.is_file() else path.resolve().name
        train_file, val_file = _annotation_files(path)

    rng = np.random.default_rng(data_seed)
    val_raw = _read_json(val_file)
    val_ids = _permuted_image_ids(val_raw, rng)
    if train_file is None:  # one file: val first, train from the rest
        train_raw, train_ids = val_raw, val_ids[n_val:]
        val_ids = val_ids[:n_val]
    else:
        train_raw = _read_json(train_file)
        train_ids, val_ids = _permuted_image_ids(train_raw, rng), val_ids[:n_val]
    train_ids = train_ids[:images]
    if not train_ids or not val_ids:
        raise DataError(f"{data}: not enough images for a train and a val split")

    cats = _select_categories(val_raw, categories, val_file)
    skipped = [0, sum(_dangling(raw) for raw in {id(r): r for r in (val_raw, train_raw)}.values())]
    val = _build_split(val_raw, val_ids, val_file, cats, img_size, skipped)
    train = _build_split(train_raw, train_ids, train_file or val_file, cats, img_size, skipped)
    if any(skipped):
        log.warning(
            "%s: skipped %d image(s) that could not be decoded and %d annotation(s) with an "
            "unknown image or category or no valid bbox",
            data,
            *skipped,
        )
    return ProxyData(
        name=name,
        img_size=img_size,
        train=train,
        val=val,
        category_ids=[c["id"] for c in cats],
        category_names=[str(c.get("name", c["id"])) for c in cats],
        skipped_images=skipped[0],
        skipped_annotations=skipped[1],
    )


def _annotation_files(path: Path) -> tuple[Path | None, Path]:
    """(train file or None, val file) for a ``--data`` path, by the rule in the module doc."""
    if path.is_file():
        return None, path
    if not path.is_dir():
        raise DataError(f"data path not found: {path}")

    def find(prefix: str) -> list[Path]:
        return sorted(f for d in (path, path / "annotations") for f in d.glob(f"instances_{prefix}*.json"))

    trains, vals = find("train"), find("val")
    if len(vals) != 1 or len(trains) > 1:
        raise DataError(
            f"{path}: expected one instances_val*.json and at most one instances_train*.json "
            f"(in it or its annotations/ folder), found {[f.name for f in trains + vals] or 'none'};"
            " pass the annotation JSON file instead"
        )
    return (trains[0] if trains else None), vals[0]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"annotation file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read COCO annotations {path}: {err}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("images"), list):
        raise DataError(f"{path}: not a COCO annotation file (no 'images' list)")
    cats = raw.get("categories")
    if not isinstance(cats, list) or not cats or not all(isinstance(c, dict) and "id" in c for c in cats):
        raise DataError(f"{path}: not a COCO annotation file (no 'categories' with ids)")
    if not isinstance(raw.setdefault("annotations", []), list):
        raise DataError(f"{path}: 'annotations' is not a list")
    # the fields the loader indexes by: ill-typed ones are a broken file, not a crash
    if not all(
        isinstance(i, dict) and _is_id(i.get("id")) and isinstance(i.get("file_name"), str) for i in raw["images"]
    ):
        raise DataError(f"{path}: not a COCO annotation file (every image needs an integer 'id' and a 'file_name')")
    if not all(_is_id(c["id"]) for c in cats):
        raise DataError(f"{path}: not a COCO annotation file (category ids must be integers)")
    if not all(
        not isinstance(a, dict) or all(a.get(k) is None or _is_id(a[k]) for k in ("image_id", "category_id"))
        for a in raw["annotations"]
    ):
        raise DataError(f"{path}: not a COCO annotation file (annotation image_id/category_id must be integers)")
    return raw


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _dangling(raw: dict[str, Any]) -> int:
    """Annotations whose image or category the file does not list."""
    image_ids = {img.get("id") for img in raw["images"]}
    cat_ids = {c.get("id") for c in raw["categories"]}
    return sum(
        1
        for a in raw["annotations"]
        if not isinstance(a, dict) or a.get("image_id") not in image_ids or a.get("category_id") not in cat_ids
    )


def _permuted_image_ids(raw: dict[str, Any], rng: np.random.Generator) -> list[int]:
    ids = sorted({img["id"] for img in raw["images"] if "id" in img})
    return [ids[i] for i in rng.permutation(len(ids))]


def _select_categories(raw: dict[str, Any], wanted: list[str | int] | None, path: Path) -> list[dict[str, Any]]:
    cats = sorted(raw["categories"], key=lambda c: c["id"])
    if not wanted:
        return cats
    chosen = [c for c in cats if c["id"] in wanted or c.get("name") in wanted]
    known = {c["id"] for c in chosen} | {c.get("name") for c in chosen}
    missing = [w for w in wanted if w not in known]
    if missing:
        raise DataError(f"{path}: unknown categories {missing}")
    return chosen


def _image_dir(path: Path, records: list[dict[str, Any]]) -> Path:
    split = re.sub(r"^instances_", "", path.stem)
    d = path.parent
    candidates = [d, d / split, d.parent / split, d / "images", d.parent / "images"]
    names = [r["file_name"] for r in records[:20] if "file_name" in r]
    for c in candidates:
        if any((c / n).is_file() for n in names):
            return c
    raise DataError(f"images of {path} not found in any of {[str(c) for c in candidates]}")


def _build_split(
    raw: dict[str, Any],
    ids: list[int],
    path: Path,
    cats: list[dict[str, Any]],
    size: int,
    skipped: list[int],
) -> Split:
    """Decode, letterbox and index one split; ``skipped`` accumulates (images, annotations)."""
    by_id = {img["id"]: img for img in raw["images"] if "id" in img}
    records = [by_id[i] for i in ids]
    folder = _image_dir(path, records)
    contiguous = {c["id"]: k for k, c in enumerate(cats)}
    anns_of: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for a in raw["annotations"]:
        if isinstance(a, dict) and a.get("image_id") in anns_of:
            if a.get("category_id") not in contiguous:
                continue  # not in the category subset (or dangling: counted by _dangling)
            if _valid_bbox(a.get("bbox")):
                anns_of[a["image_id"]].append(a)
            else:
                skipped[1] += 1

    pixels, targets, kept, scales, gt_images, gt_anns = [], [], [], [], [], []
    for rec in records:
        try:
            with Image.open(folder / rec["file_name"]) as im:
                im = im.convert("RGB")
                w, h = im.size
                scale = size / max(w, h)
                nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
                im = im.resize((nw, nh), Image.BILINEAR)
                canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
                canvas[:nh, :nw] = np.asarray(im)
        except (OSError, ValueError, KeyError, Image.DecompressionBombError):
            skipped[0] += 1
            continue
        pixels.append(torch.from_numpy(canvas).permute(2, 0, 1))
        kept.append(rec["id"])
        scales.append(scale)
        gt_images.append({**rec, "width": w, "height": h})
        rows = []
        for a in anns_of[rec["id"]]:
            gt_anns.append(a)
            if a.get("iscrowd", 0):
                continue
            x, y, bw, bh = (float(v) for v in a["bbox"])
            x1, y1 = max(0.0, x) * scale, max(0.0, y) * scale
            x2, y2 = min(w, x + bw) * scale, min(h, y + bh) * scale
            if x2 - x1 >= 1 and y2 - y1 >= 1:
                rows.append([contiguous[a["category_id"]], x1, y1, x2, y2])
        targets.append(torch.tensor(rows, dtype=torch.float32).reshape(-1, 5))

    images = torch.stack(pixels) if pixels else torch.zeros((0, 3, size, size), dtype=torch.uint8)
    gt = {
        "info": copy.deepcopy(raw.get("info", {})),
        "images": gt_images,
        "annotations": gt_anns,
        "categories": copy.deepcopy(cats),
    }
    return Split(images, targets, kept, torch.tensor(scales, dtype=torch.float32), gt)


def _valid_bbox(bbox: Any) -> bool:
    return (
        isinstance(bbox, list | tuple)
        and len(bbox) == 4
        and all(isinstance(v, int | float) for v in bbox)
        and bbox[2] > 0
        and bbox[3] > 0
    )
