"""Per-stage gradient-path features of a config of the space (docs/gp-features.md).

Joins the space's stage plan (:func:`search_spaces.families.stage_plan`: each backbone stage's
and neck node's graph scope) to :mod:`nas.core.stage_paths`, with the fixed stage weights of the
MAE-DET-style aggregate (:data:`STAGE_ALPHA`). The gradient-path table
(``benchmarks/gp_table.py``) records this for every design; a cheap score may read it.
"""

from __future__ import annotations

from typing import Any

from nas.core.ir import LayerGraph
from nas.core.metrics import GradientPathMetrics
from nas.core.stage_paths import aggregate, level_max_shortest, stage_paths
from search_spaces import compile_config
from search_spaces.families import stage_plan

__all__ = ["STAGE_ALPHA", "stage_path_features"]

#: Fixed stage weights of aggregate (d), stated before any table is read. Backbone: MAE-DET's
#: α = [0, 0, 1, 1, 6] over its five downsampling stages (the last stage counts most, the two
#: high-resolution ones not at all). Neck: the three nodes that feed the head (out3/out4/out5)
#: 1 each, the top-down nodes 0. Absent scopes weigh 0.
STAGE_ALPHA: dict[str, float] = {
    "backbone.stage1": 0.0,
    "backbone.stage2": 0.0,
    "backbone.stage3": 1.0,
    "backbone.stage4": 1.0,
    "backbone.stage5": 6.0,
    "neck.top5": 0.0,
    "neck.top4": 0.0,
    "neck.out3": 1.0,
    "neck.out4": 1.0,
    "neck.out5": 1.0,
}


def stage_path_features(
    cfg: Any, graph: LayerGraph | None = None, network: GradientPathMetrics | None = None
) -> dict[str, Any]:
    """``{"stages": [...], "levels": {...}, "aggregates": {...}}`` of ``cfg``: one record per
    backbone stage and neck node (its knob prefix added), the per-detection-level largest
    shortest path, and the aggregates (``flops_w.*``, ``res_w.*``, ``alpha.*``, ``level.*``).
    ``graph`` / ``network``: the compiled graph and its metrics, if already at hand.

    >>> from search_spaces import load_config
    >>> f = stage_path_features(load_config("yolor-v3"))
    >>> [s["scope"] for s in f["stages"]][:2], sorted(f["levels"])
    (['backbone.stage1', 'backbone.stage2'], ['head.p3', 'head.p4', 'head.p5'])
    """
    graph = graph if graph is not None else compile_config(cfg)
    plan = stage_plan(cfg)
    parts = stage_paths(graph, [row["scope"] for row in plan], network)
    levels = level_max_shortest(graph)
    return {
        "stages": [{"knob": row["knob"], **p.to_dict()} for row, p in zip(plan, parts, strict=True)],
        "levels": levels,
        "aggregates": aggregate(parts, levels, STAGE_ALPHA),
    }
