"""LayerGraph -> torch.nn.Module. The module executes the graph node by node, so it is exactly
the IR (same layers, same channel ranges) and it stays traceable by torch.fx: every partial add,
split and detach appears in the trace as the slicing/cat/add/detach it is."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.core.ir import LayerGraph, Node


class ConvBNAct(nn.Module):
    """Conv2d (+ BatchNorm2d + SiLU). The conv is the layer; BN and SiLU pass gradient through."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        k: int | tuple[int, int],
        stride: int,
        groups: int,
        bn: bool,
        act: bool,
        bias: bool,
    ):
        super().__init__()
        kh, kw = (k, k) if isinstance(k, int) else k
        self.conv = nn.Conv2d(c_in, c_out, (kh, kw), stride, (kh // 2, kw // 2), groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03) if bn else nn.Identity()
        self.act = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class GraphNet(nn.Module):
    """The network of a LayerGraph. Submodules are nested by the node names' scopes, so
    ``named_modules()`` reads ``backbone.stage3.unit0.cv1.conv``.

    ``forward`` returns the outputs as a list (one per ``output`` node, in order) — for the
    detector family that is [P3, P4, P5]."""

    def __init__(self, graph: LayerGraph):
        super().__init__()
        self.graph = graph
        self._plan: list[tuple[Node, nn.Module | None]] = []
        for node in graph:
            module = None
            if node.op == "conv":
                a = node.attrs
                c_in = graph.node(node.inputs[0]).channels
                k = tuple(a["kernel"]) if a.get("kernel") else a["k"]
                module = ConvBNAct(c_in, node.channels, k, a["stride"], a["groups"], a["bn"], a["act"], a["bias"])
            elif node.op == "linear":
                module = nn.Linear(graph.node(node.inputs[0]).channels, node.channels)
            if module is not None:
                self._register(node.name, module)
            self._plan.append((node, module))

    def _register(self, name: str, module: nn.Module) -> None:
        parent: nn.Module = self
        *path, leaf = name.split(".")
        for part in path:
            if not hasattr(parent, part):
                parent.add_module(part, nn.Module())
            parent = getattr(parent, part)
        parent.add_module(leaf, module)

    def head_convs(self) -> list[tuple[int, nn.Conv2d]]:
        """(stride, prediction conv) per output: lets a trainer initialise the head's biases."""
        out = []
        for name in self.graph.outputs:
            node = self.graph.node(name)
            src = self.graph.node(node.inputs[0])
            if src.op == "conv":
                out.append((node.attrs["stride"], self.get_submodule(src.name).conv))
        return out

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        values: dict[str, torch.Tensor] = {}
        outputs = []
        for node, module in self._plan:
            op = node.op
            if op == "input":
                y = x
            elif module is not None:
                y = module(values[node.inputs[0]])
            elif op == "concat":
                y = torch.cat([values[i] for i in node.inputs], 1)
            elif op == "add":
                y = _add(values[node.inputs[0]], values[node.inputs[1]], node)
            elif op == "split":
                y = values[node.inputs[0]][:, node.attrs["lo"] : node.attrs["hi"]]
            elif op == "maxpool":
                k = node.attrs["k"]
                y = F.max_pool2d(values[node.inputs[0]], k, node.attrs["stride"], k // 2)
            elif op == "gap":
                y = torch.flatten(F.adaptive_avg_pool2d(values[node.inputs[0]], 1), 1)
            elif op == "flatten":
                y = torch.flatten(values[node.inputs[0]], 1)
            elif op == "upsample":
                y = F.interpolate(values[node.inputs[0]], scale_factor=node.attrs["scale"], mode="nearest")
            elif op == "mul":
                a, b = values[node.inputs[0]], values[node.inputs[1]]
                if b.dim() == 2 and a.dim() == 4:
                    b = b[:, :, None, None]
                fn = node.attrs["fn"]
                y = a * b if fn == "mul" else a + b if fn == "add" else a - b if fn == "sub" else a / b
            elif op == "reduce":
                v, fn = values[node.inputs[0]], node.attrs["fn"]
                y = (
                    v.amax(1, keepdim=True)
                    if fn == "max"
                    else v.sum(1, keepdim=True)
                    if fn == "sum"
                    else v.mean(1, keepdim=True)
                )
            elif op == "detach":
                y = values[node.inputs[0]].detach()
            elif op == "output":
                y = values[node.inputs[0]]
                outputs.append(y)
            else:  # pragma: no cover - the IR rejects unknown ops
                raise ValueError(f"unknown op {op}")
            values[node.name] = y
        return outputs


def _add(a: torch.Tensor, b: torch.Tensor, node: Node) -> torch.Tensor:
    if node.attrs["full"]:
        return a + b
    (lo, hi), (slo, shi) = node.attrs["dst"], node.attrs["src"]
    parts = []
    if lo > 0:
        parts.append(a[:, :lo])
    parts.append(a[:, lo:hi] + b[:, slo:shi])
    if hi < node.channels:
        parts.append(a[:, hi:])
    return torch.cat(parts, 1)


def build(graph: LayerGraph) -> GraphNet:
    """The torch module of ``graph`` (weights freshly initialised; use ``torch.device('meta')``
    as a context manager to build without allocating, e.g. for FLOP counting)."""
    return GraphNet(graph)
