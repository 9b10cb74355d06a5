"""The proxy recipe's defaults, torch-free so that the CLI can show them without importing torch."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Default proxy recipe: a yolor-size preset at width ×0.25 trains in about 3 minutes on 2 idle
    CPU cores (measured by ``benchmarks/proxy.py``). AdamW at a high rate with small batches: on
    CPU the number of updates, not the batch size, limits how far a few minutes get."""

    epochs: int = 6
    img_size: int = 160
    width_mult: float = 0.25
    images: int = 800
    batch_size: int = 8
    lr: float = 4e-3
    weight_decay: float = 0.05
    warmup_iters: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 10.0
    flip: bool = True


DEFAULT = Recipe()
