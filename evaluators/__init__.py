"""Proxy-task evaluators: COCO-format data, the anchor-free P3–P5 detection head's loss and
decoder, pycocotools evaluation and the single proxy training loop.

Data flows one way: ``search_spaces`` → ``nas`` → ``evaluators``. Heavy submodules (torch,
pycocotools) are imported lazily by the functions that need them, so ``import evaluators`` is cheap.
"""

from __future__ import annotations

from evaluators.errors import DataError

__all__ = ["DataError"]
