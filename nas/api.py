"""``nas show``'s functions behind the facade (:func:`nas.show`); each returns the same object
that ``--json`` prints."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from nas.core.cost import cost_by_scope
from nas.core.memory import peak_memory_bytes
from nas.core.summary import summarize


def _resolve(spec: Any, img_size: int | None = None):  # noqa: ANN202
    from search_spaces import ArchConfig, load_config, validate

    cfg = spec if isinstance(spec, ArchConfig) else load_config(spec)
    if img_size is not None:
        cfg = validate(dataclasses.replace(cfg, img_size=img_size))
    return cfg


def show(spec: Any, img_size: int | None = None) -> dict[str, Any]:
    """Describe a preset name, YAML path or ArchConfig: params, FLOPs, per-stage summary and
    gradient-path metrics.

    >>> show("darknet53")["params"]
    41609928
    """
    from search_spaces import compile_config

    cfg = _resolve(spec, img_size)
    graph = compile_config(cfg)
    out = {"name": Path(str(spec)).stem if not hasattr(spec, "family") else "config", "img_size": cfg.img_size}
    out.update(summarize(graph))
    out["peak_memory_bytes"] = peak_memory_bytes(graph)
    out["stages"] = [
        {"stage": k, "params": v.params, "flops": v.flops} for k, v in cost_by_scope(graph, depth=2).items()
    ]
    out["config"] = cfg.to_dict()
    return out


def show_all(img_size: int | None = None) -> list[dict[str, Any]]:
    """``show`` for every preset (classifiers keep their own image size unless one is given)."""
    from search_spaces import preset_names

    return [show(name, img_size) for name in preset_names()]
