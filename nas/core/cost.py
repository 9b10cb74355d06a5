"""Exact params and FLOPs from the IR.

Convention (docs/architecture.md, "Cost"): FLOPs = 2 × multiply-accumulates of convolutions and linear layers,
one forward pass, batch 1 (``graph.batch`` for a traced model) — what ``torch.utils.flop_counter`` counts, darknet's BFLOPs and the
YOLO repos' "GFLOPs". Params = every trainable parameter, BatchNorm's affine ones included.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.core.ir import LayerGraph, Node


@dataclass(frozen=True)
class Cost:
    params: int
    flops: int

    @property
    def gflops(self) -> float:
        return self.flops / 1e9


def node_cost(node: Node, in_channels: int) -> tuple[int, int]:
    """(params, flops) of one node given its input channel count; zero for parameter-free ops."""
    if node.op == "conv":
        a = node.attrs
        kh, kw = a.get("kernel") or (a["k"], a["k"])  # a traced conv may be kh×kw; dilation only moves taps
        fan_in = in_channels // a["groups"] * kh * kw
        params = fan_in * node.channels + (2 * node.channels if a["bn"] else 0) + (node.channels if a["bias"] else 0)
        return params, 2 * fan_in * node.channels * node.size[0] * node.size[1]
    if node.op == "linear":
        return in_channels * node.channels + node.channels, 2 * in_channels * node.channels
    return 0, 0


def cost(graph: LayerGraph) -> Cost:
    """Params and FLOPs of ``graph``. O(nodes).

    >>> g = LayerGraph(3, (8, 8))
    >>> _ = g.conv(g.input_name, 4, k=3)
    >>> cost(g)
    Cost(params=116, flops=13824)
    """
    params = flops = 0
    nodes = graph.nodes
    for node in nodes.values():
        if node.op == "conv" or node.op == "linear":
            p, f = node_cost(node, nodes[node.inputs[0]].channels)
            params += p
            flops += f
    return Cost(params, flops * graph.batch)


def cost_by_scope(graph: LayerGraph, depth: int = 2) -> dict[str, Cost]:
    """Cost summed per scope prefix (``backbone.stage3``), in forward order — the per-stage table."""
    out: dict[str, list[int]] = {}
    for node in graph:
        if node.op not in ("conv", "linear"):
            continue
        key = ".".join(node.name.split(".")[:depth]) if "." in node.name else node.name
        p, f = node_cost(node, graph.nodes[node.inputs[0]].channels)
        acc = out.setdefault(key, [0, 0])
        acc[0] += p
        acc[1] += f * graph.batch
    return {k: Cost(p, f) for k, (p, f) in out.items()}


_UNITS = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def parse_flops(text: str) -> int:
    """A FLOPs budget as the CLI accepts it: ``150GFLOPs``, ``150G``, ``1.5e11``, ``900MFLOPs``,
    ``0.15TFLOPs`` (case-insensitive, ``FLOPs``/``FLOP`` suffix optional).

    >>> parse_flops("150GFLOPs"), parse_flops("0.15TFLOPs"), parse_flops("1.5e11")
    (150000000000, 150000000000, 150000000000)
    >>> try:  # a budget under one FLOP would round to 0: nothing fits it
    ...     parse_flops("0.1FLOPs")
    ... except ValueError as e:
    ...     print(str(e).split(";")[0])
    budget: '0.1FLOPs' is out of range
    """
    import re

    accepted = "a number of at least 1 FLOP with an optional K/M/G/T prefix and FLOPs suffix, e.g. 150GFLOPs, 150G, 1.5e11, 900MFLOPs"
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgGtT]?)(?:flops?)?\s*", text, re.IGNORECASE)
    if m is None:
        raise ValueError(f"budget: {text!r} is not a FLOPs amount; accepted: {accepted}")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not 1 <= value < 1e18:
        raise ValueError(f"budget: {text!r} is out of range; accepted: {accepted}")
    return int(round(value))
