"""The features the studies correlate and fit on, by their analysis names (``flops``,
``params``, ``gp.<metric>``, ``agg.<aggregate>``), and which of them enter a fitted model as logs.

One list of log features serves the rank study and the gradient-path table: each reads only the
names it has (the rank study has no ``agg.*``).

>>> transform("flops", 1.0), transform("gp.longest_gradient_path", 12)
(0.0, 12.0)
>>> "agg.flops_w.gradient_combinations" in LOG_FEATURES
True
"""

from __future__ import annotations

import math

#: the network-level gradient-path metrics (``nas.core.metrics``), as the studies name them after ``gp.``
METRIC_KEYS = (
    "max_shortest_gradient_path",
    "longest_gradient_path",
    "gradient_combinations",
    "distinct_gradient_combinations",
    "duplicate_gradient_ratio",
    "gradient_overlap",
)
#: the gradient-path table's per-stage aggregates (``nas.engine.scores.features``), after ``agg.``
AGGREGATES = tuple(
    f"{w}.{f}"
    for f in ("max_shortest_gradient_path", "longest_gradient_path", "gradient_combinations", "gradient_overlap")
    for w in ("flops_w", "res_w", "alpha")
) + ("level.max_shortest_gradient_path",)
#: heavy-tailed counts enter a fitted model as logs, as in the shipped score
LOG_FEATURES = ("flops", "params", "gp.gradient_combinations", "gp.distinct_gradient_combinations") + tuple(
    f"agg.{a}" for a in AGGREGATES if a.endswith("gradient_combinations")
)


def transform(name: str, value: float) -> float:
    """A rank-study predictor as a fitted model takes it: log features as logs (floored at
    1e-12: the rank study's fits; synflow/naswot are logs already), the rest as they are. The
    gradient-path table floors at 1, as the shipped score reads its file
    (``benchmarks.gp_analysis.transform_feature``)."""
    return math.log(max(value, 1e-12)) if name in LOG_FEATURES else float(value)
