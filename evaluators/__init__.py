"""Proxy-task evaluators: COCO-format data, the anchor-free P3–P5 detection head's loss and
decoder, pycocotools evaluation and the single proxy training loop.

Imports point down only (docs/architecture.md): ``evaluators`` uses ``nas.core`` and
``search_spaces``, and is used by ``nas.engine`` and ``nas.cli``. Heavy submodules (torch,
pycocotools) are imported by the modules that need them, so ``import evaluators`` is cheap.
"""

from __future__ import annotations

from evaluators.errors import DataError

__all__ = ["DataError"]
