"""The LayerGraph IR: the single source of truth for cost, metrics and the torch module.

A LayerGraph is a DAG of ops in construction (= topological, = forward) order. Every node
carries its output channel count and spatial size, so cost and metrics never look at the
config that produced the graph. Nodes are created through :class:`LayerGraph` methods, which
check shapes as they go (a wrong graph fails at compile time, not inside torch).

Ops:

``input``     the image tensor.
``conv``      Conv2d (+ BatchNorm + SiLU unless ``bn``/``act`` are off; ``bias`` for the
              prediction convs of the head). A *layer*: it has weights.
``linear``    fully connected (with bias). A layer.
``concat``    channel concatenation.
``add``       residual add; *partial* when ``dst``/``src`` ranges are given: only channels
              ``dst`` of the first input receive channels ``src`` of the second (PRN's masked
              and asymmetric residual). The output has the first input's channels.
``split``     channel slice ``[lo, hi)`` (CSP's cross-stage split).
``maxpool``   max pooling (``k``, ``stride``, padding ``k // 2``), e.g. SPP.
``gap``       global average pool + flatten (classifier).
``flatten``   flatten C×H×W to C·H·W features (a classifier without global pooling, e.g. VGG).
``upsample``  nearest-neighbour ×``scale``.
``mul``       a merge of two feature maps, e.g. a gate ``x * sigmoid(fc(pool(x)))`` (SE, attention):
              the elementwise product (``fn="mul"``, or a broadcast sum/quotient ``fn="add"``/``"div"``)
              of ``x`` with ``y``, where ``y`` has ``x``'s channels or 1 channel and ``x``'s size or 1×1
              (broadcast). Both operands receive gradient.
``reduce``    a mean/max/sum over the channels to 1 channel (CBAM's spatial attention input): every
              input channel receives the gradient of the one output channel.
``detach``    stop-gradient (the paper's Figure 9 ablation).
``output``    marks a tensor that feeds the loss; every output feeds it.

Parameter-free ops pass gradient without lengthening a gradient path.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from nas.core.errors import GradpathError

LAYER_OPS = frozenset({"conv", "linear"})
OPS = frozenset(
    {
        "input",
        "conv",
        "linear",
        "concat",
        "add",
        "split",
        "maxpool",
        "gap",
        "flatten",
        "upsample",
        "mul",
        "reduce",
        "detach",
        "output",
    }
)


class GraphError(GradpathError):
    """A graph that cannot be built: shapes that do not fit, unknown inputs."""


@dataclass(slots=True)
class Node:
    """One op of the IR. ``channels``/``size`` describe its output tensor (``size`` is (H, W);
    a flat vector has size (1, 1) and ``flat=True``)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    channels: int
    size: tuple[int, int]
    attrs: dict[str, Any] = field(default_factory=dict)
    scope: str = ""
    flat: bool = False

    @property
    def is_layer(self) -> bool:
        return self.op in LAYER_OPS


class LayerGraph:
    """An ordered DAG of :class:`Node`. Build it with the op methods; each returns the new
    node's name, which later ops take as input.

    >>> g = LayerGraph(3, (32, 32))
    >>> y = g.conv(g.input_name, 8, k=3, stride=2)
    >>> g.node(y).channels, g.node(y).size
    (8, (16, 16))
    """

    def __init__(self, in_channels: int = 3, size: tuple[int, int] = (640, 640)) -> None:
        self.nodes: dict[str, Node] = {}
        self.outputs: list[str] = []
        self._scope: list[str] = []
        self._counts: dict[str, int] = {}
        #: the batch size FLOPs are counted for (1 for configs, DESIGN §4; the traced N for ``nas analyze``)
        self.batch = 1
        #: a traced graph holds maps of H×W and the same positions as T tokens (``flatten(2)``): there,
        #: concat/add/mul compare sizes by their number of positions
        self.positions_only = False
        self.input_name = self._add("input", (), in_channels, tuple(size), {}, name="input")

    # -- construction helpers -------------------------------------------------------------
    def scope(self, name: str) -> _Scope:
        """Context manager prefixing node names (``backbone.stage3.unit0.cv1``)."""
        return _Scope(self, name)

    @property
    def current_scope(self) -> str:
        return ".".join(self._scope)

    def _add(
        self,
        op: str,
        inputs: tuple[str, ...],
        channels: int,
        size: tuple[int, int],
        attrs: dict[str, Any],
        name: str | None = None,
        flat: bool = False,
    ) -> str:
        scope = self.current_scope
        if name is None:
            name = op
        full = f"{scope}.{name}" if scope else name
        if full in self.nodes:
            n = self._counts.get(full, 1)
            while f"{full}{n}" in self.nodes:
                n += 1
            self._counts[full] = n + 1
            full = f"{full}{n}"
        for i in inputs:
            if i not in self.nodes:
                raise GraphError(f"node {full!r} takes unknown input {i!r}")
        if channels <= 0:
            raise GraphError(f"node {full!r} would have {channels} channels; channels must be positive")
        self.nodes[full] = Node(full, op, inputs, channels, size, attrs, scope, flat)
        return full

    def node(self, name: str) -> Node:
        return self.nodes[name]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes.values())

    def __len__(self) -> int:
        return len(self.nodes)

    def layers(self) -> list[Node]:
        """The weighted ops, in forward order."""
        return [n for n in self.nodes.values() if n.op in LAYER_OPS]

    # -- ops ------------------------------------------------------------------------------
    def conv(
        self,
        x: str,
        channels: int,
        k: int = 1,
        stride: int = 1,
        groups: int = 1,
        *,
        bn: bool = True,
        act: bool = True,
        bias: bool = False,
        name: str | None = None,
    ) -> str:
        src = self.nodes[x]
        if src.channels % groups or channels % groups:
            raise GraphError(f"conv {name or 'conv'}: groups={groups} must divide {src.channels} and {channels}")
        h, w = ((d + 2 * (k // 2) - k) // stride + 1 for d in src.size)
        attrs = {"k": k, "stride": stride, "groups": groups, "bn": bn, "act": act, "bias": bias}
        return self._add("conv", (x,), channels, (h, w), attrs, name)

    def linear(self, x: str, features: int, name: str | None = None) -> str:
        src = self.nodes[x]
        if not src.flat:
            raise GraphError("linear needs a flat input (use gap first)")
        return self._add("linear", (x,), features, (1, 1), {"bias": True}, name, flat=True)

    def _size_key(self, size: tuple[int, int]) -> Any:
        return size[0] * size[1] if self.positions_only else size

    def concat(self, xs: list[str], name: str | None = None) -> str:
        sizes = {self.nodes[x].size for x in xs}
        if self.positions_only and len({self._size_key(z) for z in sizes}) == 1:
            sizes = {self.nodes[xs[0]].size}
        if len(sizes) != 1:
            raise GraphError(f"concat of tensors with different sizes {sorted(sizes)}")
        flat = all(self.nodes[x].flat for x in xs)
        return self._add("concat", tuple(xs), sum(self.nodes[x].channels for x in xs), sizes.pop(), {}, name, flat=flat)

    def add(
        self,
        x: str,
        y: str,
        dst: tuple[int, int] | None = None,
        src: tuple[int, int] | None = None,
        name: str | None = None,
    ) -> str:
        """``x + y``; with ``dst``/``src`` only ``x[:, dst] += y[:, src]`` (partial add)."""
        a, b = self.nodes[x], self.nodes[y]
        if self._size_key(a.size) != self._size_key(b.size):
            raise GraphError(f"add of tensors with different sizes {a.size} and {b.size}")
        dst = tuple(dst or (0, a.channels))
        src = tuple(src or (0, b.channels))
        if not (0 <= dst[0] < dst[1] <= a.channels and 0 <= src[0] < src[1] <= b.channels):
            raise GraphError(f"add ranges {dst} / {src} outside {a.channels} / {b.channels} channels")
        if dst[1] - dst[0] != src[1] - src[0]:
            raise GraphError(f"add ranges {dst} and {src} differ in width")
        full = dst == (0, a.channels) and src == (0, b.channels)
        attrs = {"dst": tuple(dst), "src": tuple(src), "full": full}
        return self._add("add", (x, y), a.channels, a.size, attrs, name, flat=a.flat)

    def split(self, x: str, lo: int, hi: int, name: str | None = None) -> str:
        src = self.nodes[x]
        if not 0 <= lo < hi <= src.channels:
            raise GraphError(f"split [{lo}, {hi}) outside {src.channels} channels")
        return self._add("split", (x,), hi - lo, src.size, {"lo": lo, "hi": hi}, name, flat=src.flat)

    def maxpool(self, x: str, k: int, stride: int = 1, name: str | None = None) -> str:
        src = self.nodes[x]
        h, w = ((d + 2 * (k // 2) - k) // stride + 1 for d in src.size)
        return self._add("maxpool", (x,), src.channels, (h, w), {"k": k, "stride": stride}, name)

    def gap(self, x: str, name: str | None = None) -> str:
        return self._add("gap", (x,), self.nodes[x].channels, (1, 1), {}, name, flat=True)

    def flatten(self, x: str, name: str | None = None) -> str:
        """C×H×W -> C·H·W flat features; channel ``c`` becomes features ``[c·H·W, (c+1)·H·W)``."""
        src = self.nodes[x]
        hw = src.size[0] * src.size[1]
        return self._add("flatten", (x,), src.channels * hw, (1, 1), {"hw": hw}, name, flat=True)

    def upsample(self, x: str, scale: int = 2, name: str | None = None) -> str:
        src = self.nodes[x]
        size = (src.size[0] * scale, src.size[1] * scale)
        return self._add("upsample", (x,), src.channels, size, {"scale": scale}, name)

    def mul(self, x: str, y: str, fn: str = "mul", name: str | None = None) -> str:
        """A merge ``x ∘ y`` of two feature maps (gate): ``y`` may broadcast from 1 channel or 1×1."""
        a, b = self.nodes[x], self.nodes[y]
        if b.channels not in (a.channels, 1) or self._size_key(b.size) not in (
            self._size_key(a.size),
            self._size_key((1, 1)),
        ):
            raise GraphError(
                f"mul of {a.channels}×{a.size} by {b.channels}×{b.size}: the second operand must have the first's "
                "channels or 1, and its size or 1×1"
            )
        return self._add("mul", (x, y), a.channels, a.size, {"fn": fn}, name, flat=a.flat)

    def reduce(self, x: str, fn: str = "mean", name: str | None = None) -> str:
        """Channels -> 1 channel (``x.mean(1, keepdim=True)``)."""
        src = self.nodes[x]
        return self._add("reduce", (x,), 1, src.size, {"fn": fn}, name, flat=src.flat)

    def detach(self, x: str, name: str | None = None) -> str:
        src = self.nodes[x]
        return self._add("detach", (x,), src.channels, src.size, {}, name, flat=src.flat)

    def output(self, x: str, stride: int | None = None, name: str | None = None) -> str:
        src = self.nodes[x]
        out = self._add("output", (x,), src.channels, src.size, {"stride": stride}, name, flat=src.flat)
        self.outputs.append(out)
        return out

    # -- views ----------------------------------------------------------------------------
    def consumers(self) -> dict[str, list[str]]:
        """Map node -> the nodes that read it, in forward order."""
        cons: dict[str, list[str]] = {n: [] for n in self.nodes}
        for node in self.nodes.values():
            for i in node.inputs:
                cons[i].append(node.name)
        return cons

    def to_networkx(self):  # noqa: ANN201 - networkx is imported lazily
        """The data graph as a ``networkx.DiGraph`` (node attribute ``node`` holds the Node)."""
        import networkx as nx

        g = nx.DiGraph()
        for node in self.nodes.values():
            g.add_node(node.name, node=node)
            for i in node.inputs:
                g.add_edge(i, node.name)
        return g


class _Scope:
    def __init__(self, graph: LayerGraph, name: str) -> None:
        self.graph, self.name = graph, name

    def __enter__(self) -> LayerGraph:
        self.graph._scope.append(self.name)
        return self.graph

    def __exit__(self, *exc: object) -> None:
        self.graph._scope.pop()
