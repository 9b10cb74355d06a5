"""Per-stage gradient-path features of a :class:`~nas.core.ir.LayerGraph` (docs/gp-features.md).

A network-level maximum is set by the worst stage and says little about the rest, so each
*part* (a graph scope such as ``backbone.stage3`` or ``neck.top4``) is scored as a network of its
own: :func:`~nas.core.metrics.gradient_path_metrics` with ``within=scope``, where every tensor the
part hands on feeds the loss and path lengths count the part's own layers. Per part:

- ``max_shortest_gradient_path``: the largest shortest gradient path among its layers (within it);
- ``longest_gradient_path``: its longest gradient path (within it);
- ``gradient_combinations`` and ``gradient_overlap``: as at network level, over its units;
- ``network_max_shortest_gradient_path``: the largest *network-level* shortest path among its
  layers (from the real loss: what the part adds to the network's maximum);
- ``flops`` (its layers', one image) and ``resolution`` (the side of its output feature map).

:func:`level_max_shortest` scores each detection level alone: the largest shortest gradient path
among the layers that feed output ``p`` when only ``p``'s loss sends gradient back.
:func:`aggregate` combines the parts by FLOPs, by resolution and by fixed weights (MAE-DET's
per-stage α) and averages the levels. All exact, by the same dynamic programming as the
network-level metrics (one pass per part and per output: milliseconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from nas.core.cost import node_cost
from nas.core.ir import LayerGraph
from nas.core.metrics import GradientPathMetrics, gradient_path_metrics

__all__ = ["PART_FEATURES", "StagePaths", "aggregate", "level_max_shortest", "stage_paths"]

#: the per-part features that :func:`aggregate` combines, in report order
PART_FEATURES = ("max_shortest_gradient_path", "longest_gradient_path", "gradient_combinations", "gradient_overlap")


@dataclass(frozen=True, slots=True)
class StagePaths:
    """The gradient-path features of one part (scope) of a network; see the module docstring."""

    scope: str
    layers: int
    flops: int
    resolution: int
    max_shortest_gradient_path: int | None
    longest_gradient_path: int | None
    gradient_combinations: int
    gradient_overlap: float
    network_max_shortest_gradient_path: int | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def stage_paths(
    graph: LayerGraph, scopes: Sequence[str], network: GradientPathMetrics | None = None
) -> list[StagePaths]:
    """One :class:`StagePaths` per scope (a name prefix: ``backbone.stage3`` holds
    ``backbone.stage3.*``). ``network``: the graph's metrics if already computed.

    >>> g = LayerGraph(3, (8, 8))
    >>> with g.scope("a"):
    ...     x = g.conv(g.conv(g.input_name, 4), 4)
    >>> with g.scope("b"):
    ...     y = g.conv(x, 4)
    ...     x = g.add(g.conv(y, 4), y)
    >>> _ = g.output(g.conv(x, 4, name="head"))
    >>> [(s.scope, s.max_shortest_gradient_path, s.longest_gradient_path, s.network_max_shortest_gradient_path)
    ...  for s in stage_paths(g, ["a", "b"])]
    [('a', 2, 2, 4), ('b', 1, 2, 2)]
    """
    network = network if network is not None else gradient_path_metrics(graph)
    shortest = {rec.name: rec.shortest_gradient_path for rec in network.layers}
    out = []
    for scope in scopes:
        prefix = scope + "."
        nodes = [n for n in graph if n.name.startswith(prefix)]
        part = gradient_path_metrics(graph, within=scope)
        lengths = [shortest[n.name] for n in nodes if n.is_layer and shortest[n.name] is not None]
        out.append(
            StagePaths(
                scope=scope,
                layers=sum(n.is_layer for n in nodes),
                flops=sum(node_cost(n, graph.nodes[n.inputs[0]].channels)[1] for n in nodes if n.is_layer),
                resolution=nodes[-1].size[0],
                max_shortest_gradient_path=part.max_shortest_gradient_path,
                longest_gradient_path=part.longest_gradient_path,
                gradient_combinations=part.gradient_combinations,
                gradient_overlap=part.gradient_overlap,
                network_max_shortest_gradient_path=max(lengths) if lengths else None,
            )
        )
    return out


def level_max_shortest(graph: LayerGraph) -> dict[str, int | None]:
    """Per output (detection level): the largest shortest gradient path among the layers that
    feed it, when only that output's loss sends gradient back (``None``: no layer feeds it).

    >>> g = LayerGraph(3, (8, 8))
    >>> x = g.conv(g.input_name, 4)
    >>> _ = g.output(g.conv(x, 4), name="p3")
    >>> _ = g.output(g.conv(g.conv(x, 4), 4), name="p4")
    >>> level_max_shortest(g)
    {'p3': 2, 'p4': 3}
    """
    names = [n.name for n in graph if n.op == "output"]
    return {p: gradient_path_metrics(graph, outputs=(p,)).max_shortest_gradient_path for p in names}


def aggregate(
    stages: Sequence[StagePaths], levels: Mapping[str, int | None], alpha: Mapping[str, float]
) -> dict[str, float | None]:
    """The aggregates of docs/gp-features.md: each of :data:`PART_FEATURES` as a mean over the
    parts weighted (a) by FLOPs (``flops_w.*``) and (b) by resolution (``res_w.*``), and (c) as the
    sum weighted by the fixed ``alpha`` (scope -> weight, absent = 0; ``alpha.*``); (d) the mean of
    ``levels`` (``level.max_shortest_gradient_path``). Parts whose value is ``None`` (no gradient)
    are left out and the weights of the rest renormalised; ``None`` if nothing is left.

    >>> s = [StagePaths("a", 2, 30, 4, 2, 2, 8, 0.0, 4), StagePaths("b", 2, 10, 2, 1, 2, 10, 0.5, 2)]
    >>> agg = aggregate(s, {"p3": 2, "p4": 3}, {"b": 6.0})
    >>> agg["flops_w.max_shortest_gradient_path"], agg["res_w.gradient_overlap"], agg["alpha.gradient_combinations"]
    (1.75, 0.16666666666666666, 60.0)
    >>> agg["level.max_shortest_gradient_path"]
    2.5
    """
    out: dict[str, float | None] = {}
    for feature in PART_FEATURES:
        values = [(s, getattr(s, feature)) for s in stages]
        values = [(s, float(v)) for s, v in values if v is not None]
        for key, weight in (("flops_w", lambda s: s.flops), ("res_w", lambda s: s.resolution)):
            total = sum(weight(s) for s, _ in values)
            out[f"{key}.{feature}"] = sum(weight(s) * v for s, v in values) / total if total else None
        out[f"alpha.{feature}"] = sum(alpha.get(s.scope, 0.0) * v for s, v in values) if values else None
    known = [v for v in levels.values() if v is not None]
    out["level.max_shortest_gradient_path"] = sum(known) / len(known) if known else None
    return out
