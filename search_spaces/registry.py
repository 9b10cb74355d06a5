"""The registries of the search space: blocks and families, one place each (timm's
``register_model`` is the model). A new block is one decorated function plus its knobs::

    @register_block("my-block", knobs=("split_ratio",), describe=lambda p: f"r={p.split_ratio}")
    def my_block(g, x, c, n, p, part, depth):
        ...  # add ops to the LayerGraph g; return the name of the block's output

and every consumer (config validation, canonical keys, the Optuna space, the printed summaries)
picks it up. ``search_spaces/__init__.py`` imports the modules that register, so the registries
are full whenever ``search_spaces`` is imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: build(g, x, c, n, part_config, part_name, depth) -> output node name
BlockBuilder = Callable[..., str]


@dataclass(frozen=True)
class BlockSpec:
    """One design strategy: its builder, the PartConfig knobs it reads (the others are reset by
    ``PartConfig.canonical``) and how a summary line shows those knobs."""

    name: str
    build: BlockBuilder
    knobs: tuple[str, ...]
    describe: Callable[[Any], str]


BLOCKS: dict[str, BlockSpec] = {}
FAMILIES: dict[str, Callable[[Any], Any]] = {}


def register_block(
    name: str, knobs: tuple[str, ...] = (), describe: Callable[[Any], str] = lambda p: ""
) -> Callable[[BlockBuilder], BlockBuilder]:
    """Register a block builder under ``name`` with the knobs it reads."""

    def deco(fn: BlockBuilder) -> BlockBuilder:
        if name in BLOCKS:
            raise ValueError(f"block {name!r} is registered twice")
        BLOCKS[name] = BlockSpec(name, fn, tuple(knobs), describe)
        return fn

    return deco


def register_family(name: str) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """Register a topology ``ArchConfig -> LayerGraph`` under ``name``."""

    def deco(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        if name in FAMILIES:
            raise ValueError(f"family {name!r} is registered twice")
        FAMILIES[name] = fn
        return fn

    return deco


def block_names() -> tuple[str, ...]:
    return tuple(BLOCKS)


def family_names() -> tuple[str, ...]:
    return tuple(FAMILIES)
