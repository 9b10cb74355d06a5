"""One graph's numbers in the shape ``nas show --json`` and ``nas analyze --json`` print them."""

from __future__ import annotations

from typing import Any

from nas.core.cost import cost
from nas.core.ir import LayerGraph
from nas.core.metrics import gradient_path_metrics


def summarize(graph: LayerGraph) -> dict[str, Any]:
    """Params, FLOPs and gradient-path metrics of a graph (network level and per layer).

    >>> g = LayerGraph(3, (32, 32))
    >>> g.output(g.conv(g.input_name, 8, 3), name="out") and None
    >>> s = summarize(g)
    >>> s["params"], s["flops"], s["max_shortest_gradient_path"]
    (232, 442368, 1)
    """
    c = cost(graph)
    out: dict[str, Any] = {"params": c.params, "flops": c.flops}
    out.update(gradient_path_metrics(graph).to_dict())
    return out
