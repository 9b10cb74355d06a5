"""The builder's state and its lowering: where a symbolic value (:mod:`nas.core.fx.values`) becomes
IR nodes — whole tensors, slices, sums, concats and one partial ``add`` — created on first use and
cached, plus the checks every handler shares and the error that names the fx node. Split from the
walk (:mod:`nas.core.fx.build`) and the channel routing (:mod:`nas.core.fx.routing`), which build on it."""

from __future__ import annotations

import math
from typing import Any

import torch.fx as fx
from torch import nn

from nas.core.fx.ops import TraceError, UnsupportedOpError, _op_name
from nas.core.fx.trace import module_where
from nas.core.fx.values import _CONST, _Segment, _Value
from nas.core.ir import LayerGraph


class _Lowering:
    """What every handler of the walk works with: the IR being built (``g``), the fx node being
    visited (``n``) and the symbolic values made so far, and how a value becomes IR nodes."""

    def __init__(self, model: nn.Module, graph: fx.Graph, input_shape: tuple[int, ...]) -> None:
        self.graph = graph
        self.modules = dict(model.named_modules())
        if len(input_shape) == 4:
            self.g = LayerGraph(input_shape[1], (input_shape[2], input_shape[3]))
        else:
            self.g = LayerGraph(input_shape[1], (1, 1))
            self.g.node(self.g.input_name).flat = True
        self.g.batch = input_shape[0]
        self.g.positions_only = True
        self.batch = input_shape[0]
        self.env: dict[fx.Node, Any] = {}
        self.cache: dict[tuple[_Segment, ...], str] = {}
        self.layer_of: dict[fx.Node, str] = {}  # conv fx node (or the BN after it) -> IR layer
        self.calls: dict[str, int] = {}
        self.placeholders = 0
        self.n: fx.Node | None = None

    # errors
    def unsupported(self, what: str, why: str = "") -> UnsupportedOpError:
        n = self.n
        where = f"fx node {n.name!r}" if n is not None else "the model"
        if n is not None and n.op == "call_module":
            where += f" (module {n.target!r})"
        loc = module_where(n) if n is not None else None
        if loc is not None and not (n.op == "call_module" and loc[0] == n.target):
            where += f" in {loc[0]} ({loc[1]})"
        elif loc is not None:
            where += f" ({loc[1]})"
        return UnsupportedOpError(f"cannot map {what} at {where} to the LayerGraph IR{': ' + why if why else ''}")

    # IR helpers
    def whole(self, name: str, shape: tuple[int, ...], like: _Value | None = None) -> _Value:
        v = _Value(((self.g.node(name).channels, ((name, 0),)),), shape)
        if like is not None:
            v.cdims, v.cstrides = like.cdims, like.cstrides
        return v

    def fit(self, name: str, shape: tuple[int, ...] | None, cdim: int = 1) -> str:
        """Give IR node ``name`` the traced size: the dims other than batch and channels."""
        node = self.g.node(name)
        if shape is None:
            return name
        if shape[cdim] != node.channels:  # pragma: no cover - a bug, not a user error
            raise TraceError(f"internal: IR node {name} has {node.channels} channels, traced {shape[cdim]}")
        rest = [d for i, d in enumerate(shape) if i not in (0, cdim)]
        positions = math.prod(shape) // (shape[cdim] * self.batch) if shape[0] != self.batch else math.prod(rest)
        if not rest:
            node.size, node.flat = (1, 1), True
        elif math.prod(rest) != positions:  # the batch dim was merged with others (windows)
            node.size, node.flat = (max(1, positions), 1), False
        elif len(rest) == 1:
            node.size, node.flat = (rest[0], 1), False
        else:
            node.size, node.flat = (math.prod(rest[:-1]), rest[-1]), False
        return name

    def piece(self, node: str, off: int, w: int) -> str:
        if off == 0 and w == self.g.node(node).channels:
            return node
        key = ((w, ((node, off),)),)
        if key not in self.cache:
            self.cache[key] = self.g.split(node, off, off + w, name="fx:split")
        return self.cache[key]

    def materialize(self, v: _Value) -> str:
        """The IR node holding ``v`` (created on first use, cached)."""
        key = v.segs
        if len(key) == 1 and len(key[0][1]) == 1:
            ((w, ((node, off),)),) = key
            return self.piece(node, off, w)
        name = self.cache.get(key)
        if name is None:
            name = self._build(v)
            self.cache[key] = name
        # from now on the value *is* that node: later slices and sums refer to it, as the IR would
        v.segs = ((self.g.node(name).channels, ((name, 0),)),)
        return name

    def _build(self, v: _Value) -> str:
        name = self._partial_add(v)
        if name is None:
            parts = []
            for w, terms in v.segs:
                nodes = [self.piece(n, off, w) for n, off in terms]
                x = nodes[0]
                for y in nodes[1:]:
                    x = self.g.add(x, y, name="fx:add")
                parts.append(x)
            name = parts[0] if len(parts) == 1 else self.g.concat(parts, name="fx:concat")
        return name

    def _partial_add(self, v: _Value) -> str | None:
        """``a`` with ``b[:, s:t]`` added on ``[lo, hi)`` (one IR add), if ``v`` is exactly that:
        at most three segments ``a[:lo] | a[lo:hi] + b[s:t] | a[hi:]``."""
        segs, width = v.segs, v.channels
        summed = [k for k, (_, terms) in enumerate(segs) if len(terms) > 1]
        if len(summed) != 1 or len(segs[summed[0]][1]) != 2 or len(segs) > 3:
            return None
        k = summed[0]
        lo = sum(w for w, _ in segs[:k])
        w = segs[k][0]
        for base, other in (segs[k][1], segs[k][1][::-1]):
            a, a_off = base
            if a_off != lo or self.g.node(a).channels != width:
                continue
            pos, ok = 0, True
            for j, (sw, terms) in enumerate(segs):
                if j != k and terms != ((a, pos),):
                    ok = False
                pos += sw
            if ok and len(segs) == 1 + (lo > 0) + (lo + w < width):
                b, s = other
                return self.g.add(a, b, dst=(lo, lo + w), src=(s, s + w), name="fx:add")
        return None

    # checks shared by the handlers
    def single(self, x: _Value, what: str) -> int:
        """The channel dim of ``x`` (refused while the channels are split over several dims)."""
        if x.cdim is None:
            raise self.unsupported(
                what,
                f"its channels are split over dims {list(x.cdims)} of shape {list(x.shape)} "
                "(a reshape must merge them back first)",
            )
        return x.cdim

    def channel_dim(self, x: _Value, dim: Any) -> None:
        cdim = self.single(x, _op_name(self.n))
        if not isinstance(dim, int) or dim % len(x.shape) != cdim:
            raise self.unsupported(
                _op_name(self.n), f"only the channel dim {cdim} of shape {list(x.shape)} is supported, got dim={dim}"
            )

    def passthrough(self, x: Any, shape: tuple[int, ...] | None) -> Any:
        if not isinstance(x, _Value):
            return _CONST
        if shape is not None and shape != x.shape:
            raise self.unsupported(_op_name(self.n), f"it changes the shape {list(x.shape)} -> {list(shape)}")
        return x
