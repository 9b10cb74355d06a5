"""The proxy recipe: the one place for its defaults and their accepted ranges.

A :class:`Recipe` is passed whole, from the CLI flags (``nas train``, ``nas search``) through
the search's options and its Ray workers into :func:`evaluators.train.train_proxy`; every caller
validates through :meth:`Recipe.validate`, so a value is accepted or refused the same way
everywhere. Torch-free, so that the CLI can show the defaults without importing torch.

>>> Recipe().epochs, Recipe().img_size, Recipe().precision, Recipe().version
(6, 160, 'auto', 'v2')
>>> RECIPES["v1"].ema_decay, RECIPES["v1"].val_images, RECIPES["v2"].val_images
(0.0, None, 1000)
>>> Recipe(img_size=100).validate()
Traceback (most recent call last):
...
evaluators.recipe.RecipeError: --img-size: 100 is not accepted; accepted: a multiple of 32 from 64 to 2048
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from nas.core.errors import GradpathError


class RecipeError(GradpathError):
    """A recipe value out of its accepted range (named by its CLI flag)."""


#: The smallest and largest proxy image size (a multiple of 32: the head's largest stride).
#: 64 is the smallest image the proxy data accepts; 2048 keeps one batch in memory.
IMG_SIZE_RANGE = (64, 2048)
#: field -> (lowest, highest) accepted value of the recipe's integer and float knobs
RANGES: dict[str, tuple[float, float]] = {
    "epochs": (1, 1000),
    "images": (8, 10**7),
    "width_mult": (0.03, 4),
    "seed": (0, 2**31 - 1),
    "batch_size": (1, 4096),
    "lr": (1e-8, 10.0),
    "weight_decay": (0.0, 10.0),
    "warmup_iters": (0, 10**7),
    "min_lr_ratio": (0.0, 1.0),
    "grad_clip": (1e-6, 1e6),
    "val_images": (1, 10**6),
    "epoch_val_images": (1, 10**6),
    "ema_decay": (0.0, 0.99999),
    "bn_images": (0, 10**6),
}
#: ``schedule`` values: ``cosine`` from 1 to ``min_lr_ratio`` (v1, v2), ``linear`` decay to ``min_lr_ratio``
SCHEDULES = ("cosine", "linear")
#: recipe fields that may be None (v1's val split follows ``images``)
OPTIONAL = ("val_images", "epoch_val_images")
#: ``precision`` values: ``auto`` = fp16 AMP on CUDA, fp32 on CPU; ``bf16`` = bf16 autocast
#: (see :func:`evaluators.train.resolve_runtime`).
PRECISIONS = ("auto", "fp32", "bf16")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a candidate is trained on the proxy task: a yolor-size preset at width ×0.25 trains in
    about 3 minutes on 2 idle CPU cores (``python -m benchmarks.proxy``). AdamW at a high rate
    with small batches: on CPU the number of updates, not the batch size, limits how far a few
    minutes get. ``seed`` fixes the initialisation, data order and flips. ``precision`` chooses the
    arithmetic (``auto``: fp32 on CPU, AMP on CUDA; ``bf16`` is opt-in: up to 1.6x faster on an
    AMX CPU, but it moved the ranking more than a seed does, ``python -m benchmarks.proxy
    --ranking-check --precision bf16``).

    Recipes are named and versioned (:data:`RECIPES`); every result records its ``version`` and
    nothing resumes across versions. ``v2`` (the default) trains exactly as ``v1`` and scores
    the training better: in the proxy-noise study (docs/results.md, "Proxy noise") v1's
    120–200-image val split carried a quarter of a design's seed variance, and scoring the same
    trainings this way raised the single-run ICC from 0.67 to 0.73 on 30 designs at the same
    CPU cost; the training-side levers (``fresh_images``, ``schedule: linear``) narrowed the
    spread between designs as much as they cut the noise. So:

    - ``val_images``: a fixed val set, independent of ``images`` (v1: a quarter of them), scored
      whole at the end; each earlier epoch scores its first ``epoch_val_images`` (the history);
    - ``ema_decay``: the scored weights are an exponential moving average, their BatchNorm
      statistics recomputed on ``bn_images`` training images.

    ``fresh_images`` (every epoch on new images) and ``schedule: linear`` (decay to
    ``min_lr_ratio``) stay available as knobs; the study measured them and left them off.
    """

    epochs: int = 6
    img_size: int = 160
    width_mult: float = 0.25
    images: int = 800
    seed: int = 0
    batch_size: int = 8
    lr: float = 4e-3
    weight_decay: float = 0.05
    warmup_iters: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 10.0
    flip: bool = True
    precision: str = "auto"
    version: str = "v2"
    schedule: str = "cosine"
    val_images: int | None = 1000
    epoch_val_images: int | None = 100
    ema_decay: float = 0.99
    bn_images: int = 512
    fresh_images: bool = False

    def validate(self) -> Recipe:
        """``self`` when every value is in range, else a :class:`RecipeError` naming the flag."""
        lo, hi = IMG_SIZE_RANGE
        if _bad_int(self.img_size) or self.img_size % 32 or not lo <= self.img_size <= hi:
            raise RecipeError(
                f"--img-size: {self.img_size} is not accepted; accepted: a multiple of 32 from {lo} to {hi}"
            )
        if self.version not in RECIPES:
            raise RecipeError(f"--recipe: {self.version!r} is not accepted; accepted: {', '.join(RECIPES)}")
        if self.schedule not in SCHEDULES:
            raise RecipeError(f"schedule: {self.schedule!r} is not accepted; accepted: {', '.join(SCHEDULES)}")
        for name, (low, high) in RANGES.items():
            value = getattr(self, name)
            if value is None and name in OPTIONAL:
                continue
            integer = name in OPTIONAL or isinstance(getattr(DEFAULT, name), int)
            bad = _bad_int(value) if integer else _bad_float(value)
            if bad or not low <= value <= high:
                kind = "an integer" if integer else "a number"
                raise RecipeError(
                    f"{_flag(name)}: {value} is out of range; accepted: {kind} from {_num(low)} to {_num(high)}"
                )
        for name in ("flip", "fresh_images"):
            if not isinstance(getattr(self, name), bool):
                raise RecipeError(f"{name}: {getattr(self, name)!r} is not accepted; accepted: true or false")
        if self.precision not in PRECISIONS:
            raise RecipeError(f"--precision: {self.precision!r} is not accepted; accepted: {', '.join(PRECISIONS)}")
        return self

    def replace(self, **changes: Any) -> Recipe:
        """A validated copy with ``changes`` (``None`` values keep the current one)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None}).validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def train_pool(self) -> int:
        """Distinct training images the recipe asks for: ``images`` per epoch, new each epoch
        with ``fresh_images``."""
        return self.images * (self.epochs if self.fresh_images else 1)

    @classmethod
    def named(cls, version: str, **changes: Any) -> Recipe:
        """Recipe ``version`` of :data:`RECIPES` with ``changes`` (``None`` keeps its value), validated.

        >>> Recipe.named("v1", epochs=3).epochs, Recipe.named("v2").ema_decay
        (3, 0.99)
        """
        if version not in RECIPES:
            raise RecipeError(f"--recipe: {version!r} is not accepted; accepted: {', '.join(RECIPES)}")
        return RECIPES[version].replace(**changes)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) >= 1 else f"{x:g}"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _bad_int(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def _bad_float(value: Any) -> bool:
    return isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)


DEFAULT = Recipe()
#: The named recipes. ``v1``: the recipe before the proxy-noise study (the last weights scored on
#: a val split of a quarter of ``images``); kept so that its runs resume and its results
#: reproduce. ``v2``: :class:`Recipe`'s defaults, the same training scored on a fixed 1,000-image
#: val set with averaged weights.
RECIPES: dict[str, Recipe] = {
    "v2": DEFAULT,
    "v1": dataclasses.replace(
        DEFAULT, version="v1", val_images=None, epoch_val_images=None, ema_decay=0.0, bn_images=0
    ),
}
