"""``nas show``'s functions behind the facade (:func:`nas.show`); each returns the same object
that ``--json`` prints."""

from __future__ import annotations

import dataclasses
import math
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
    from search_spaces.families import stage_plan

    cfg = _resolve(spec, img_size)
    graph = compile_config(cfg)
    out = {"name": Path(str(spec)).stem if not hasattr(spec, "family") else "config", "img_size": cfg.img_size}
    out.update(summarize(graph))
    out["peak_memory_bytes"] = peak_memory_bytes(graph)
    plan = {row["scope"]: row for row in stage_plan(cfg)}
    out["stages"] = []
    for k, v in cost_by_scope(graph, depth=2).items():
        row = {"stage": k, "params": v.params, "flops": v.flops}
        if k in plan:  # a searched stage: its knob prefix, design, repeats and channels
            row.update({f: plan[k][f] for f in ("knob", "design", "repeats", "channels")})
        out["stages"].append(row)
    out["config"] = cfg.to_dict()
    return out


def show_space(name: str) -> dict[str, Any]:
    """Describe a registered search space: its exact size (JSON key ``size``), the global knobs,
    and each stage's knobs with their values and the block they apply to.

    >>> show_space("yolor-uniform")["size"]
    12544
    """
    from search_spaces import ConfigError
    from search_spaces.registry import BLOCKS
    from search_spaces.space import SPACES

    if name not in SPACES:
        raise ConfigError(f"--space: {name!r} is unknown; accepted: {', '.join(SPACES)}")
    space = SPACES[name]
    size = space.size()
    per_stage = space.part_count() * (len(space.stage_repeats) * len(space.stage_widths) if space.per_stage else 1)
    values = space.knob_values()
    prefixes = list(space.stage_prefixes()) or ["backbone", "neck"]
    stage_knobs = [{"knob": "block", "values": list(space.blocks), "when": "always"}]
    for knob, vals in values.items():
        users = [b for b in space.blocks if knob in BLOCKS[b].knobs]
        if users:
            stage_knobs.append({"knob": knob, "values": list(vals), "when": "block in " + "|".join(users)})
    if space.per_stage:
        stage_knobs.append({"knob": "repeats", "values": list(space.stage_repeats), "when": "always"})
        stage_knobs.append({"knob": "width", "values": list(space.stage_widths), "when": "always"})
    return {
        "space": name,
        "size": size,
        "size_log10": round(math.log10(size), 2),
        "per_stage": space.per_stage,
        "family": space.family,
        "img_size": space.img_size,
        "global_knobs": {"width": list(space.widths), "depth": list(space.depths)},
        "stages": prefixes,
        "stage_knobs": stage_knobs,
        "configs_per_stage": per_stage,
    }


def show_all(img_size: int | None = None) -> list[dict[str, Any]]:
    """``show`` for every preset (classifiers keep their own image size unless one is given)."""
    from search_spaces import preset_names

    return [show(name, img_size) for name in preset_names()]
