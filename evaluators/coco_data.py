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
``annotations/instances_val2017.json`` + ``val2017/``), ``<dir>/images``, ``<dir>/../images``,
``<dir>/..`` (``file_name: "val2017/x.jpg"`` beside ``annotations/``) that holds any of the first
listed images.

Subsampling takes ``images`` train and ``val_images`` val images from a permutation seeded by
``data_seed``. What cannot be used is skipped, counted per reason (:data:`SKIP_REASONS`) over the
images actually used, and reported in one warning line: images whose file is missing, differs only
in case, or does not decode; annotations with an unknown category, a bbox that is not four finite
numbers with positive size, a box wholly outside its image, or one under a proxy pixel once clipped
to the image; and (over the whole file: they belong to no image) annotations of images the file
does not list. Boxes are clipped to their image in the training targets *and* in the evaluation
ground truth, and ground-truth annotation ids are renumbered ``1..n`` (pycocotools keeps one
annotation per id and treats id 0 as "unmatched"), so perfect predictions score AP 1.0. The
categories are the union of the train and val files' lists (a category only in train is trained
on); the two files must agree on the name of every id they share. Category ids map to contiguous
``0..nc-1`` in category-id order (``ProxyData.category_ids`` maps back).

A dataset is identified by :func:`dataset_digest` (resolved paths and bytes of its annotation
files); ``ProxyData.fingerprint`` adds the sampling arguments. The trainer's checkpoint check and
``nas train``'s default output folder use them, so two sets that share a folder name never share a
result.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import re
from collections import Counter
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

#: Why an image (first three) or an annotation (the rest) was skipped, with the warning's wording.
SKIP_REASONS = {
    "missing_file": "missing file",
    "wrong_case": "file name differs only in case",
    "undecodable": "could not be decoded",
    "unknown_category": "unknown category",
    "bad_bbox": "bbox not 4 finite numbers with positive width and height",
    "outside_image": "box wholly outside its image",
    "too_small": "box under 1 proxy pixel once clipped to its image",
    "unknown_image": "image_id the file does not list (whole file)",
}
IMAGE_REASONS = ("missing_file", "wrong_case", "undecodable")


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
    #: every key of :data:`SKIP_REASONS` -> count (the totals above are its image / annotation sums)
    skipped_by_reason: dict[str, int] = dataclasses.field(default_factory=dict)
    #: sha256 of the annotation files (resolved path + bytes) and the sampling arguments
    fingerprint: str = ""

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
    """Load (and for ``"shapes"`` generate) a proxy dataset; cached per process by arguments and by
    the annotation files' bytes (an edited file is read again)."""
    if img_size % 32 or img_size < 64:
        raise ValueError(f"img_size must be a multiple of 32 and >= 64, got {img_size}")
    if images < 1:
        raise ValueError(f"images must be >= 1, got {images}")
    n_val = default_val_images(images) if val_images is None else val_images
    source = "shapes" if str(data) == "shapes" else dataset_digest(data)
    fixed = val_images is not None
    key = (source, img_size, images, n_val, fixed, data_seed, tuple(categories or ()), str(Path(root).resolve()))
    if key not in _CACHE:
        _CACHE.clear()  # one dataset per worker process is enough; do not accumulate
        _CACHE[key] = _load(data, img_size, images, n_val, data_seed, categories, Path(root), fixed)
    return _CACHE[key]


def dataset_digest(data: str | Path) -> str:
    """sha256 (hex) of a ``--data`` path's annotation files: their resolved paths and bytes.

    Why both: the same folder name (``siteA/coco``, ``siteB/coco``) may hold different sets, and
    one file may be edited in place. A path that does not exist (or is not a usable set) hashes
    its resolved path only: loading it fails anyway, with the real message.
    """
    path = Path(data)
    try:
        train_file, val_file = _annotation_files(path)
        h = hashlib.sha256()
        for f in (val_file, train_file):
            if f is not None:
                h.update(f"{f.resolve()}\0{_file_sha256(f)}\0".encode())
        return h.hexdigest()
    except (DataError, OSError, ValueError):  # ValueError: a NUL in the path
        return hashlib.sha256(f"unusable:{os.path.abspath(str(data).replace(chr(0), '?'))}".encode()).hexdigest()


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, remembered by (path, size, mtime): a COCO train file is ~0.5 GB."""
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if key not in _FILE_HASHES:
            h = hashlib.sha256()
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 22), b""):
                    h.update(chunk)
            _FILE_HASHES[key] = h.hexdigest()
        return _FILE_HASHES[key]
    except OSError:
        return "unreadable"


def _load(
    data: str | Path,
    img_size: int,
    images: int,
    n_val: int,
    data_seed: int,
    categories: list[str | int] | None,
    root: Path,
    fixed_val: bool = False,
) -> ProxyData:
    if str(data) == "shapes":
        folder = generate_shapes(root, seed=data_seed, train_images=images, val_images=n_val, size=img_size)
        name = folder.name
        train_file, val_file = folder / "instances_train.json", folder / "instances_val.json"
        digest = dataset_digest(folder)
    else:
        path = Path(data)
        train_file, val_file = _annotation_files(path)  # first: a bad path is a DataError, never a crash
        name = path.stem if path.is_file() else path.resolve().name
        digest = dataset_digest(path)
    fingerprint = hashlib.sha256(
        json.dumps([digest, img_size, images, n_val, data_seed, [str(c) for c in categories or ()]]).encode()
    ).hexdigest()

    rng = np.random.default_rng(data_seed)
    val_raw = _read_json(val_file)
    val_ids = _permuted_image_ids(val_raw, rng)
    listed_val = len(val_ids)
    if train_file is None:  # one file: val first, train from the rest
        if fixed_val:  # a fixed val size (recipe v2) leaves the training its images, or three quarters
            asked, n_val = n_val, min(n_val, max(1, listed_val - images, listed_val // 4))
            if n_val < asked:
                log.warning(
                    "%s lists %d image(s): val takes %d of the %d asked, leaving the rest to training",
                    val_file.name,
                    listed_val,
                    n_val,
                    asked,
                )
        train_raw, train_ids = val_raw, val_ids[n_val:]
        val_ids = val_ids[:n_val]
    else:
        train_raw = _read_json(train_file)
        train_ids, val_ids = _permuted_image_ids(train_raw, rng), val_ids[:n_val]
    train_ids = train_ids[:images]
    if not train_ids or not val_ids:
        if train_file is None:
            found = (
                f"{val_file.name} lists {listed_val} image(s); val takes the first {n_val} and train needs at "
                f"least 1 more; accepted: a file with more than {n_val} images, or a folder with an "
                "instances_train*.json beside it"
            )
        else:
            found = (
                f"{train_file.name} lists {len(train_ids)} image(s) and {val_file.name} {listed_val}; "
                "accepted: at least 1 image in each"
            )
        raise DataError(f"{data}: not enough images for a train and a val split: {found}")

    cats = _select_categories(_merge_categories(val_raw, val_file, train_raw, train_file), categories, val_file)
    known = {c["id"] for raw in (val_raw, train_raw) for c in raw["categories"]}
    skips: Counter[str] = Counter({k: 0 for k in SKIP_REASONS})
    examples: dict[str, str] = {}
    val = _build_split(val_raw, val_ids, val_file, cats, known, img_size, skips, examples)
    train = _build_split(train_raw, train_ids, train_file or val_file, cats, known, img_size, skips, examples)
    skips["unknown_image"] = sum(_unknown_image(raw) for raw in {id(r): r for r in (val_raw, train_raw)}.values())
    n_images = sum(skips[k] for k in IMAGE_REASONS)
    n_anns = sum(skips.values()) - n_images
    summary = _skip_summary(skips, examples, len(train_ids) + len(val_ids))
    for split_name, split, ids in (("train", train, train_ids), ("val", val, val_ids)):
        if not len(split.images):  # the error carries the summary: one line, no warning before it
            raise DataError(
                f"{data}: no usable image in the {split_name} split: all {len(ids)} sampled image(s) were skipped "
                f"({summary}); accepted: a COCO-format set with readable images"
            )
    if n_images or n_anns:
        log.warning("%s: %s", data, summary)
    return ProxyData(
        name=name,
        img_size=img_size,
        train=train,
        val=val,
        category_ids=[c["id"] for c in cats],
        category_names=[str(c.get("name", c["id"])) for c in cats],
        skipped_images=n_images,
        skipped_annotations=n_anns,
        skipped_by_reason=dict(skips),
        fingerprint=fingerprint,
    )


def _skip_summary(skips: Counter[str], examples: dict[str, str], sampled: int) -> str:
    """One line: skipped images and annotations, per reason, with an example file per image reason."""

    def part(keys: Any) -> str:
        return ", ".join(
            f"{skips[k]} {SKIP_REASONS[k]}" + (f" (e.g. {examples[k]!r})" if k in examples else "")
            for k in keys
            if skips[k]
        )

    n_images = sum(skips[k] for k in IMAGE_REASONS)
    ann_keys = [k for k in SKIP_REASONS if k not in IMAGE_REASONS]
    n_anns = sum(skips[k] for k in ann_keys)
    return (
        f"skipped {n_images} image(s) of {sampled} sampled"
        + (f" [{part(IMAGE_REASONS)}]" if n_images else "")
        + f" and {n_anns} annotation(s)"
        + (f" [{part(ann_keys)}]" if n_anns else "")
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


def _unknown_image(raw: dict[str, Any]) -> int:
    """Annotations (over the whole file) that name no image the file lists, or are not objects."""
    image_ids = {img.get("id") for img in raw["images"]}
    return sum(1 for a in raw["annotations"] if not isinstance(a, dict) or a.get("image_id") not in image_ids)


def _permuted_image_ids(raw: dict[str, Any], rng: np.random.Generator) -> list[int]:
    ids = sorted({img["id"] for img in raw["images"] if "id" in img})
    return [ids[i] for i in rng.permutation(len(ids))]


def _merge_categories(
    val_raw: dict[str, Any], val_file: Path, train_raw: dict[str, Any], train_file: Path | None
) -> list[dict[str, Any]]:
    """The union of both files' categories by id; a shared id must carry the same name in both.

    Why: a category listed only in the train file is still trained on (its annotations are data,
    not noise), and a train/val mismatch of names means the labels disagree: no AP is meaningful.
    """
    merged = {c["id"]: c for c in train_raw["categories"]} if train_file is not None else {}
    for c in val_raw["categories"]:
        other = merged.get(c["id"])
        if other is not None and other.get("name") != c.get("name"):
            raise DataError(
                f"{train_file} and {val_file} disagree on category {c['id']}: {other.get('name')!r} vs "
                f"{c.get('name')!r}; accepted: the same id -> name mapping in both files"
            )
        merged[c["id"]] = c
    return list(merged.values())


def _select_categories(cats: list[dict[str, Any]], wanted: list[str | int] | None, path: Path) -> list[dict[str, Any]]:
    cats = sorted(cats, key=lambda c: c["id"])
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
    candidates = [d, d / split, d.parent / split, d / "images", d.parent / "images", d.parent]
    names = [r["file_name"] for r in records[:20] if "file_name" in r]
    for c in candidates:
        if any((c / n).is_file() for n in names):
            return c
    raise DataError(f"images of {path} not found in any of {[str(c) for c in dict.fromkeys(map(str, candidates))]}")


def _build_split(
    raw: dict[str, Any],
    ids: list[int],
    path: Path,
    cats: list[dict[str, Any]],
    known: set[int],
    size: int,
    skips: Counter[str],
    examples: dict[str, str],
) -> Split:
    """Decode, letterbox and index one split; ``skips`` counts per reason, over this split's images."""
    by_id = {img["id"]: img for img in raw["images"] if "id" in img}
    records = [by_id[i] for i in ids]
    folder = _image_dir(path, records)
    contiguous = {c["id"]: k for k, c in enumerate(cats)}
    anns_of: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for a in raw["annotations"]:
        if isinstance(a, dict) and a.get("image_id") in anns_of:
            anns_of[a["image_id"]].append(a)

    pixels, targets, kept, scales, gt_images, gt_anns = [], [], [], [], [], []
    for rec in records:
        file = folder / rec["file_name"]
        try:
            with Image.open(file) as im:
                im = im.convert("RGB")
                w, h = im.size
                scale = size / max(w, h)
                nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
                im = im.resize((nw, nh), Image.BILINEAR)
                canvas = np.full((size, size, 3), PAD_VALUE, np.uint8)
                canvas[:nh, :nw] = np.asarray(im)
        except (OSError, ValueError, KeyError, Image.DecompressionBombError) as err:
            reason = "undecodable"
            if isinstance(err, FileNotFoundError):
                reason = "wrong_case" if _case_variant(file) else "missing_file"
            skips[reason] += 1
            examples.setdefault(reason, rec["file_name"])
            continue
        pixels.append(torch.from_numpy(canvas).permute(2, 0, 1))
        kept.append(rec["id"])
        scales.append(scale)
        gt_images.append({**rec, "width": w, "height": h})
        rows = []
        for a in anns_of[rec["id"]]:
            if a.get("category_id") not in known:
                skips["unknown_category"] += 1
                continue
            if a["category_id"] not in contiguous:
                continue  # a category the caller left out on purpose: not a skip
            if not _valid_bbox(a.get("bbox")):
                skips["bad_bbox"] += 1
                continue
            x, y, bw, bh = (float(v) for v in a["bbox"])
            x1, y1, x2, y2 = max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh)
            if x2 <= x1 or y2 <= y1:
                skips["outside_image"] += 1
                continue
            crowd = 1 if a.get("iscrowd", 0) else 0
            if not crowd and ((x2 - x1) * scale < 1 or (y2 - y1) * scale < 1):
                skips["too_small"] += 1  # no training target can hold it: the oracle could not find it
                continue
            box = [x1, y1, x2 - x1, y2 - y1]
            area = a.get("area")
            if box != [x, y, bw, bh] or not _finite_number(area) or area <= 0:
                area = box[2] * box[3]  # clipped (or no usable area): the visible box's
            # renumbered: pycocotools keeps one annotation per id and reads id 0 as "unmatched"
            gt_anns.append({**a, "id": len(gt_anns) + 1, "bbox": box, "area": float(area), "iscrowd": crowd})
            if not crowd:
                rows.append([contiguous[a["category_id"]], x1 * scale, y1 * scale, x2 * scale, y2 * scale])
        targets.append(torch.tensor(rows, dtype=torch.float32).reshape(-1, 5))

    images = torch.stack(pixels) if pixels else torch.zeros((0, 3, size, size), dtype=torch.uint8)
    gt = {
        "info": copy.deepcopy(raw.get("info", {})),
        "images": gt_images,
        "annotations": gt_anns,
        "categories": copy.deepcopy(cats),
    }
    return Split(images, targets, kept, torch.tensor(scales, dtype=torch.float32), gt)


def _case_variant(file: Path) -> bool:
    """Whether the folder of a missing ``file`` holds a name that differs from it only in case."""
    try:
        want = file.name.lower()
        return any(n.lower() == want for n in os.listdir(file.parent))
    except OSError:
        return False


def _finite_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _valid_bbox(bbox: Any) -> bool:
    """Four finite real numbers (not booleans) with positive width and height."""
    return (
        isinstance(bbox, list | tuple)
        and len(bbox) == 4
        and all(_finite_number(v) for v in bbox)
        and bbox[2] > 0
        and bbox[3] > 0
    )
