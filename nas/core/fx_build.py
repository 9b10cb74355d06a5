"""The fx front end's builder: walks a captured fx graph node by node and emits the LayerGraph
(:mod:`nas.core.fx` is the entry point)."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from nas.core.fx_ops import (
    _ACT_MODULES,
    _ADD_FUNCTIONS,
    _ADD_METHODS,
    _CAT_FUNCTIONS,
    _FLATTEN_FUNCTIONS,
    _FLATTEN_METHODS,
    _LAYER_MODULES,
    _MATMUL_FUNCTIONS,
    _MATMUL_METHODS,
    _META_METHODS,
    _NORM_FUNCTIONS,
    _NORM_METHODS,
    _NORM_MODULES,
    _PASS_FUNCTIONS,
    _PASS_METHODS,
    _PERMUTE_FUNCTIONS,
    _PERMUTE_METHODS,
    _POOL_FUNCTIONS,
    _POOL_MODULES,
    _SCALE_FUNCTIONS,
    _SCALE_METHODS,
    _SOFTMAX_FUNCTIONS,
    _SOFTMAX_METHODS,
    _UPSAMPLE_FUNCTIONS,
    _UPSAMPLE_MODULES,
    TraceError,
    UnsupportedOpError,
)
from nas.core.fx_trace import CaptureFailure, capture, module_where
from nas.core.fx_values import (
    _CONST,
    _Segment,
    _sum,
    _Value,
)
from nas.core.ir import GraphError, LayerGraph


def _trace(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[fx.Graph, list[str]]:
    """Capture ``model`` at ``input_shape`` (:mod:`nas.core.fx_trace`); failures become one-line TraceErrors
    that name the module and class they sit in."""
    try:
        return capture(model, _LAYER_MODULES + _NORM_MODULES, torch.zeros(input_shape, device="meta"))
    except CaptureFailure as e:
        where = f" in {e.where[0] or '<root>'} ({e.where[1]})" if e.where else ""
        if e.kind == "shape":
            raise TraceError(f"shape propagation with input {list(input_shape)} failed{where}: {e.message}") from None
        raise TraceError(f"torch.fx cannot trace {type(model).__name__}{where}: {e.message}") from None


def _shape(n: fx.Node) -> tuple[int, ...] | None:
    val = n.meta.get("val")
    return tuple(int(d) for d in val.shape) if isinstance(val, torch.Tensor) else None


# -- the builder ------------------------------------------------------------------------------
def _arg(n: fx.Node, args: Sequence[Any], kwargs: dict[str, Any], pos: int, name: str, default: Any = None) -> Any:
    if len(args) > pos:
        return args[pos]
    return kwargs.get(name, default)


class _Builder:
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

    # the walk
    def build(self) -> LayerGraph:
        for n in self.graph.nodes:
            self.n = n
            self.env[n] = self.visit(n)
        if not self.g.outputs:
            self.n = None
            raise TraceError("forward returns no tensor derived from the input; nothing feeds the loss")
        return self.g

    def visit(self, n: fx.Node) -> Any:
        if n.op == "placeholder":
            self.placeholders += 1
            if self.placeholders > 1:  # another input (its default, or a tensor like the first): not analysed
                return _CONST
            return self.whole(self.g.input_name, _shape(n) or ())
        if n.op == "get_attr":
            return _CONST
        args = fx.node.map_arg(n.args, self.env.__getitem__)
        kwargs = fx.node.map_arg(n.kwargs, self.env.__getitem__)
        if n.op == "output":
            self.outputs(args[0])
            return None
        values = [a for a in _leaves((args, kwargs)) if isinstance(a, _Value)]
        if not values:
            return _CONST  # shapes, numbers, parameters: nothing to route
        if n.op == "call_module":
            return self.module(n, self.modules[n.target], args, kwargs)
        target = n.target
        method = n.op == "call_method"
        shape = _shape(n)
        if (method and target in _PASS_METHODS) or (not method and target in _PASS_FUNCTIONS):
            return self.passthrough(args[0], shape)
        if (method and target in _NORM_METHODS) or (not method and target in _NORM_FUNCTIONS):
            return self.passthrough(args[0], shape)
        if (method and target in _SOFTMAX_METHODS) or (not method and target in _SOFTMAX_FUNCTIONS):
            return self.softmax(n, args, kwargs, shape)
        if (method and target in _ADD_METHODS) or (not method and target in _ADD_FUNCTIONS):
            fn = "sub" if "sub" in getattr(target, "__name__", str(target)) else "add"
            return self.add(args[0], _arg(n, args, kwargs, 1, "other"), shape, fn)
        if (method and target in _SCALE_METHODS) or (not method and target in _SCALE_FUNCTIONS):
            a, b = args[0], _arg(n, args, kwargs, 1, "other")
            if isinstance(a, _Value) and isinstance(b, _Value):
                fn = "div" if "div" in getattr(target, "__name__", str(target)) else "mul"
                return self.merge(a, b, shape, fn)
            return self.passthrough(values[0], shape)
        if (method and target in _MATMUL_METHODS) or (not method and target in _MATMUL_FUNCTIONS):
            raise self.unsupported(
                f"{_op_name(n)} of feature maps",
                "a matrix product over tokens or channels (attention) is not channel routing and has no IR op",
            )
        if not method and target in _CAT_FUNCTIONS:
            return self.cat(args[0], _arg(n, args, kwargs, 1, "dim", 0), shape)
        if not method and target is operator.getitem:
            return self.getitem(args[0], args[1], shape)
        if target in ("chunk", "split") or (not method and target in (torch.chunk, torch.split)):
            return self.chunk(n, args, kwargs)
        if target == "narrow" or (not method and target is torch.narrow):
            x, dim = args[0], _arg(n, args, kwargs, 1, "dim")
            start, length = _arg(n, args, kwargs, 2, "start"), _arg(n, args, kwargs, 3, "length")
            self.channel_dim(x, dim)
            start %= x.channels
            return x.slice(start, start + length, shape or x.shape)
        if target == "detach" or (not method and target is torch.detach):
            return self.whole(self.g.detach(self.materialize(args[0]), name=f"fx:{n.name}"), shape, args[0])
        if not method and target in _POOL_FUNCTIONS:
            return self.pool(
                args[0], shape, _arg(n, args, kwargs, 1, "kernel_size", None), _arg(n, args, kwargs, 2, "stride", None)
            )
        if not method and target in _UPSAMPLE_FUNCTIONS:
            return self.upsample(args[0], shape)
        if (method and target in _PERMUTE_METHODS) or (not method and target in _PERMUTE_FUNCTIONS):
            return self.permute(n, args, kwargs, shape)
        if (method and target in _FLATTEN_METHODS) or (not method and target in _FLATTEN_FUNCTIONS):
            return self.reshape(args[0], shape)
        if target in ("mean", "amax", "sum", "max") or (
            not method and target in (torch.mean, torch.amax, torch.sum, torch.max)
        ):
            return self.mean(n, args, kwargs, shape)
        if (method and target in _META_METHODS) or (not method and target is getattr):
            return _CONST
        raise self.unsupported(_op_name(n))

    def module(self, n: fx.Node, m: nn.Module, args: Any, kwargs: Any) -> Any:
        shape = _shape(n)
        x = args[0] if args else None
        if not isinstance(x, _Value):
            raise self.unsupported(type(m).__name__, "its input is not a feature map")
        if isinstance(m, nn.Conv2d):
            return self.conv(n, m, x, shape)
        if isinstance(m, nn.Linear):
            return self.linear(n, m, x, shape)
        if isinstance(m, _NORM_MODULES):
            src = n.args[0]
            conv = self.layer_of.get(src) if isinstance(src, fx.Node) else None
            if conv is not None and len(src.users) == 1 and isinstance(m, nn.BatchNorm2d) and m.affine:
                self.g.node(conv).attrs["bn"] = True
                self.layer_of[n] = conv
            return self.passthrough(x, shape)
        if isinstance(m, _ACT_MODULES):
            src = n.args[0]
            conv = self.layer_of.get(src) if isinstance(src, fx.Node) else None
            if conv is not None and len(src.users) == 1 and not isinstance(m, (nn.Identity, nn.Dropout)):
                self.g.node(conv).attrs["act"] = True
            return self.passthrough(x, shape)
        if isinstance(m, nn.ChannelShuffle) and x.cdims == (1,) and shape == x.shape:
            g, c = m.groups, x.channels  # out channel i = in channel (i mod g)·C/g + i div g
            return x.permuted([(i % g) * (c // g) + i // g for i in range(c)], shape, 1)
        if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
            return self.softmax(n, (x, m.dim), {}, shape)
        if isinstance(m, _POOL_MODULES):
            return self.pool(x, shape, getattr(m, "kernel_size", None), getattr(m, "stride", None), n.target)
        if isinstance(m, _UPSAMPLE_MODULES):
            return self.upsample(x, shape, n.target)
        if isinstance(m, (nn.Flatten, nn.Unflatten)):
            return self.reshape(x, shape)
        raise self.unsupported(f"module {type(m).__name__}")

    def layer_name(self, target: str) -> str:
        k = self.calls.get(target, 0)
        self.calls[target] = k + 1
        return target if k == 0 else f"{target}#{k}"

    def single(self, x: _Value, what: str) -> int:
        """The channel dim of ``x`` (refused while the channels are split over several dims)."""
        if x.cdim is None:
            raise self.unsupported(
                what,
                f"its channels are split over dims {list(x.cdims)} of shape {list(x.shape)} "
                "(a reshape must merge them back first)",
            )
        return x.cdim

    def conv(self, n: fx.Node, m: nn.Conv2d, x: _Value, shape: tuple[int, ...] | None) -> _Value:
        if self.single(x, type(m).__name__) != 1 or len(x.shape) != 4:
            raise self.unsupported(
                type(m).__name__, f"its input {list(x.shape)} has the channels in dim {x.cdim}, not N×C×H×W"
            )
        kh, kw = m.kernel_size
        name = self.layer_name(n.target)
        try:
            out = self.g.conv(
                self.materialize(x),
                m.out_channels,
                kh,
                m.stride[0],
                m.groups,
                bn=False,
                act=False,
                bias=m.bias is not None,
                name=name,
            )
        except GraphError as e:
            raise self.unsupported("Conv2d", str(e)) from None
        if out != name:  # pragma: no cover - a layer name taken by another node
            raise TraceError(f"internal: layer {name} renamed to {out}")
        # the traced output size already holds stride, padding and dilation; FLOPs need kh×kw
        if kh != kw or m.stride[0] != m.stride[1] or tuple(m.dilation) != (1, 1):
            self.g.node(out).attrs.update(kernel=(kh, kw), strides=tuple(m.stride), dilation=tuple(m.dilation))
        self.layer_of[n] = out
        return self.whole(self.fit(out, shape), shape)

    def linear(self, n: fx.Node, m: nn.Linear, x: _Value, shape: tuple[int, ...] | None) -> _Value:
        cdim = self.single(x, "Linear")
        if cdim != len(x.shape) - 1:
            raise self.unsupported(
                "Linear on a tensor of shape " + str(list(x.shape)),
                f"its features are dim {cdim}, not the last dim; flatten to (N, features) or permute first",
            )
        name = self.layer_name(n.target)
        src = self.materialize(x)
        if len(x.shape) == 2:
            out = self.g.linear(src, m.out_features, name=name)
            self.g.node(out).attrs["bias"] = m.bias is not None
            self.layer_of[n] = out
            return self.whole(self.fit(out, shape), shape)
        # a Linear over channels-last tokens (ViT, ConvNeXt's pointwise MLP) is a 1×1 conv per position
        out = self.g.conv(src, m.out_features, 1, bn=False, act=False, bias=m.bias is not None, name=name)
        self.g.node(out).attrs["linear"] = True
        self.layer_of[n] = out
        self.fit(out, shape, len(shape) - 1)
        return _Value(((m.out_features, ((out, 0),)),), shape, (len(shape) - 1,), (1,))

    def passthrough(self, x: Any, shape: tuple[int, ...] | None) -> Any:
        if not isinstance(x, _Value):
            return _CONST
        if shape is not None and shape != x.shape:
            raise self.unsupported(_op_name(self.n), f"it changes the shape {list(x.shape)} -> {list(shape)}")
        return x

    def softmax(self, n: fx.Node, args: Any, kwargs: Any, shape: tuple[int, ...] | None) -> Any:
        x, dim = args[0], _arg(n, args, kwargs, 1, "dim")
        if not isinstance(x, _Value) or not isinstance(dim, int) or dim % len(x.shape) in x.cdims:
            raise self.unsupported(_op_name(n), "a softmax over the channel dim mixes channels without weights")
        return self.passthrough(x, shape)

    def channel_dim(self, x: _Value, dim: Any) -> None:
        cdim = self.single(x, _op_name(self.n))
        if not isinstance(dim, int) or dim % len(x.shape) != cdim:
            raise self.unsupported(
                _op_name(self.n), f"only the channel dim {cdim} of shape {list(x.shape)} is supported, got dim={dim}"
            )

    def add(self, a: Any, b: Any, shape: tuple[int, ...] | None, fn: str = "add") -> Any:
        """``a + b`` (or ``a - b``, ``alpha·b``: the same routing); a constant operand passes; a
        broadcast operand (N×C×1×1, N×1×H×W) makes a merge (:meth:`merge`)."""
        if not isinstance(a, _Value) or not isinstance(b, _Value):
            v = a if isinstance(a, _Value) else b
            return self.passthrough(v, shape)
        if a.shape != b.shape:
            return self.merge(a, b, shape, fn)
        if a.cdims != b.cdims or a.cstrides != b.cstrides:
            raise self.unsupported(_op_name(self.n), "adds tensors whose channels lie in different dims")
        return _sum(a, b, shape or a.shape)

    def merge(self, a: _Value, b: _Value, shape: tuple[int, ...] | None, fn: str) -> _Value:
        """A gate ``a * b`` (SE, attention; or a broadcast ``+``/``-``/``/``): an IR ``mul`` whose two
        operands both receive the gradient. One operand must have the output's shape, the other may
        broadcast from 1 channel and/or 1×1."""
        shape = shape or a.shape
        if a.shape != shape:
            a, b = b, a
        what = f"{_op_name(self.n)} of two feature maps"
        if a.shape != shape:
            raise self.unsupported(what, f"both operands {list(a.shape)}, {list(b.shape)} broadcast")
        cdim = self.single(a, what)
        if b.cdims != a.cdims and b.channels != 1 or len(b.shape) != len(a.shape):
            raise self.unsupported(what, f"operands {list(a.shape)} and {list(b.shape)} have their channels apart")
        ok = b.shape[cdim] in (1, a.shape[cdim]) and all(
            bd in (1, ad) for i, (ad, bd) in enumerate(zip(a.shape, b.shape, strict=True)) if i != cdim
        )
        rest_b = [d for i, d in enumerate(b.shape) if i not in (0, cdim)]
        rest_a = [d for i, d in enumerate(a.shape) if i not in (0, cdim)]
        if not ok or (rest_b != rest_a and any(d != 1 for d in rest_b)):
            raise self.unsupported(
                what,
                f"{list(b.shape)} broadcasts to {list(a.shape)} along only some of its dims; accepted: the "
                "same shape, 1 channel and/or size 1 in every dim but batch and channels",
            )
        if a.shape == b.shape and fn in ("add", "sub"):
            return _sum(a, b, shape)
        try:
            out = self.g.mul(self.materialize(a), self.materialize(b), fn=fn, name=f"fx:{self.n.name}")
        except GraphError as e:
            raise self.unsupported(what, str(e)) from None
        return self.whole(out, shape, a)

    def cat(self, xs: Any, dim: Any, shape: tuple[int, ...] | None) -> _Value:
        xs = list(xs)
        if not all(isinstance(x, _Value) for x in xs):
            raise self.unsupported(_op_name(self.n), "concatenates a tensor not derived from the input")
        self.channel_dim(xs[0], dim)
        cdim = xs[0].cdim
        if any(x.cdims != xs[0].cdims for x in xs) or len({x.shape[:cdim] + x.shape[cdim + 1 :] for x in xs}) != 1:
            raise self.unsupported(_op_name(self.n), "concatenates maps of different sizes")
        segs = tuple(s for x in xs for s in x.segs)
        out_shape = shape or (*xs[0].shape[:cdim], sum(x.channels for x in xs), *xs[0].shape[cdim + 1 :])
        return xs[0].like(segs, out_shape)

    def getitem(self, x: Any, idx: Any, shape: tuple[int, ...] | None) -> Any:
        if isinstance(x, (tuple, list)):
            return x[idx]
        if not isinstance(x, _Value):
            return _CONST
        idx = idx if isinstance(idx, tuple) else (idx,)
        if idx and idx[0] is Ellipsis and len(idx) == 1:
            return x
        cdim = x.cdim if x.cdim is not None else -1
        if idx and idx[0] is Ellipsis and len(idx) == 2 and cdim == len(x.shape) - 1:
            idx = (slice(None),) * cdim + idx[1:]  # x[..., a:b] on channels-last
        ch = idx[cdim] if 0 <= cdim < len(idx) else slice(None)
        others = [r for i, r in enumerate(idx) if i != cdim]
        if (
            cdim < 0
            or not isinstance(ch, slice)
            or ch.step not in (None, 1)
            or any(r not in (slice(None), Ellipsis) for r in others)
        ):
            raise self.unsupported(
                f"indexing {idx!r}", f"only slices of the channel dim {cdim} (x[:, a:b] for N×C×H×W) are supported"
            )
        lo, hi, _ = ch.indices(x.channels)
        return x.slice(lo, hi, shape or x.shape)

    def chunk(self, n: fx.Node, args: Any, kwargs: Any) -> tuple[_Value, ...]:
        x = args[0]
        is_chunk = n.target in ("chunk", torch.chunk)
        size = _arg(n, args, kwargs, 1, "chunks" if is_chunk else "split_size_or_sections")
        if size is None:
            size = kwargs.get("split_size")
        dim = _arg(n, args, kwargs, 2, "dim", 0)
        self.channel_dim(x, dim)
        cdim = x.cdim
        c = x.channels
        if is_chunk:
            step = math.ceil(c / size)
            sizes = [min(step, c - lo) for lo in range(0, c, step)]
        elif isinstance(size, int):
            sizes = [min(size, c - lo) for lo in range(0, c, size)]
        else:
            sizes = list(size)
        out, lo = [], 0
        for w in sizes:
            out.append(x.slice(lo, lo + w, (*x.shape[:cdim], w, *x.shape[cdim + 1 :])))
            lo += w
        return tuple(out)

    def pool(self, x: Any, shape: tuple[int, ...] | None, k: Any, stride: Any, name: str | None = None) -> _Value:
        if not isinstance(x, _Value) or len(x.shape) != 4 or shape is None or x.cdims != (1,):
            raise self.unsupported(_op_name(self.n), "pooling needs an N×C×H×W feature map")
        k = k[0] if isinstance(k, (tuple, list)) else k
        stride = stride[0] if isinstance(stride, (tuple, list)) else stride
        k = int(k) if isinstance(k, int) else max(1, math.ceil(x.shape[2] / max(1, shape[2])))
        stride = int(stride) if isinstance(stride, int) else k
        out = self.g.maxpool(self.materialize(x), k, stride, name=f"fx:{name or self.n.name}")
        self.g.node(out).attrs["traced"] = _op_name(self.n)
        return self.whole(self.fit(out, shape), shape)

    def upsample(self, x: Any, shape: tuple[int, ...] | None, name: str | None = None) -> _Value:
        if not isinstance(x, _Value) or len(x.shape) != 4 or shape is None or x.cdims != (1,):
            raise self.unsupported(_op_name(self.n), "upsampling needs an N×C×H×W feature map")
        scale = max(1, shape[2] // max(1, x.shape[2]))
        out = self.g.upsample(self.materialize(x), scale, name=f"fx:{name or self.n.name}")
        return self.whole(self.fit(out, shape), shape)

    def permute(self, n: fx.Node, args: Any, kwargs: Any, shape: tuple[int, ...] | None) -> _Value:
        """``permute``/``transpose``/``movedim``/``.mT``-like: the channel dims move, nothing else."""
        x = args[0]
        nd = len(x.shape)
        t = n.target
        name = getattr(t, "__name__", t)
        if name == "permute":
            dims = (
                args[1:]
                if len(args) > 2 or not isinstance(args[1] if len(args) > 1 else None, (tuple, list))
                else args[1]
            )
            dims = kwargs.get("dims", dims)
            order = [int(d) % nd for d in dims]
        elif name in ("transpose", "swapaxes", "swapdims"):
            d0, d1 = (int(d) % nd for d in (_arg(n, args, kwargs, 1, "dim0"), _arg(n, args, kwargs, 2, "dim1")))
            order = list(range(nd))
            order[d0], order[d1] = order[d1], order[d0]
        elif name in ("movedim", "moveaxis"):
            src, dst = _arg(n, args, kwargs, 1, "source"), _arg(n, args, kwargs, 2, "destination")
            src = [src] if isinstance(src, int) else list(src)
            dst = [dst] if isinstance(dst, int) else list(dst)
            order = [None] * nd
            for s_, d_ in zip(src, dst, strict=True):
                order[d_ % nd] = s_ % nd
            rest = iter(d for d in range(nd) if d not in {s_ % nd for s_ in src})
            order = [o if o is not None else next(rest) for o in order]
        else:  # t(): a 2-d transpose
            order = list(range(nd))[::-1]
        cdims = tuple(order.index(d) for d in x.cdims)
        return _Value(x.segs, shape or tuple(x.shape[d] for d in order), cdims, x.cstrides)

    def reshape(self, x: Any, shape: tuple[int, ...] | None) -> _Value:
        """``view``/``reshape``/``flatten``/``unflatten``/``squeeze``/``unsqueeze``. Channel identity is
        followed when the reshape keeps the channel dim (same size, same product of the dims before it),
        splits it into factors (``view(N, g, C/g, H, W)``) or merges factors back (a channel shuffle:
        a permutation of channels); a flatten of C×H×W into (N, C·H·W) features is the IR ``flatten``.
        Anything else mixes channels with other dims and is refused."""
        if not isinstance(x, _Value) or shape is None:
            raise self.unsupported(_op_name(self.n))
        if shape == x.shape:
            return x
        old = x.shape
        what = _op_name(self.n)
        if x.cdim is not None:
            cd = x.cdim
            before, c = math.prod(old[:cd]), old[cd]
            j = _dim_at(shape, before, c)
            if j is not None:
                if len(shape) == 2 and j == 1 and len(old) > 2 and cd == 1 and math.prod(old[2:]) == 1:
                    return self.whole(self.g.gap(self.materialize(x), name=f"fx:{self.n.name}"), shape)
                return _Value(x.segs, shape, (j,), (1,))
            if cd == 1 and len(shape) == 2 and shape[0] == old[0] and shape[1] == math.prod(old[1:]) and len(old) > 2:
                src = self.materialize(x)
                if math.prod(self.g.node(src).size) != math.prod(old[2:]):
                    self.g.node(src).size = (math.prod(old[2:]), 1)
                return self.whole(self.g.flatten(src, name=f"fx:{self.n.name}"), shape)
            split = _factor_dims(shape, before, c)
            if split is not None:
                dims = tuple(range(*split))
                strides = tuple(math.prod(shape[d + 1 : split[1]]) for d in dims)
                return _Value(x.segs, shape, dims, strides)
        else:
            dims = sorted(x.cdims)
            if dims == list(range(dims[0], dims[-1] + 1)):
                before, c = math.prod(old[: dims[0]]), x.channels
                j = _dim_at(shape, before, c)
                if j is not None and math.prod(old[dims[-1] + 1 :]) == math.prod(shape[j + 1 :]):
                    stride_of = dict(zip(x.cdims, x.cstrides, strict=True))
                    perm = []
                    for i in range(c):
                        ch, rem = 0, i
                        for d in reversed(dims):
                            ch += (rem % old[d]) * stride_of[d]
                            rem //= old[d]
                        perm.append(ch)
                    return x.permuted(perm, shape, j)
        raise self.unsupported(
            what,
            f"reshapes {list(old)} -> {list(shape)} and mixes the channels (dims {list(x.cdims)}) with other dims; "
            "accepted: reshapes that keep, split or re-merge the channel dim, and flattening C×H×W",
        )

    def mean(self, n: fx.Node, args: Any, kwargs: Any, shape: tuple[int, ...] | None) -> Any:
        x = args[0]
        dims = _arg(n, args, kwargs, 1, "dim")
        fn = getattr(n.target, "__name__", n.target)
        if fn == "max" and isinstance(n.meta.get("val"), tuple):  # x.max(dim, keepdim) -> (values, indices)
            val = n.meta["val"]
            shape = tuple(val[0].shape)
            out = self.mean_values(n, x, dims, shape, "max")
            return (out, _CONST)
        return self.mean_values(n, x, dims, shape, {"amax": "max"}.get(fn, fn))

    def mean_values(self, n: fx.Node, x: Any, dims: Any, shape: tuple[int, ...] | None, fn: str) -> _Value:
        """Reductions: over the channels to 1 channel (IR ``reduce``), over H×W (global pool), or over
        tokens channels-last."""
        if (
            isinstance(x, _Value)
            and x.cdim is not None
            and isinstance(dims, int)
            and dims % len(x.shape) == x.cdim
            and shape is not None
            and len(shape) == len(x.shape)
        ):
            out = self.g.reduce(self.materialize(x), fn, name=f"fx:{n.name}")
            return self.whole(out, shape, x)
        if fn != "mean" or dims is None:
            raise self.unsupported(_op_name(n), "only reductions over the channel dim (keepdim) or means over H, W")
        if isinstance(x, _Value) and x.cdim is not None and x.cdim != 1 and shape is not None:
            ds = {d % len(x.shape) for d in (dims if isinstance(dims, (tuple, list)) else [dims])}
            if x.cdim not in ds and 0 not in ds:  # a mean over tokens / positions, channels-last
                src = self.materialize(x)
                out = self.g.maxpool(src, 1, 1, name=f"fx:{self.n.name}")
                node = self.g.node(out)
                node.attrs["traced"] = _op_name(self.n)
                cd = x.cdim - sum(1 for d in ds if d < x.cdim) if len(shape) < len(x.shape) else x.cdim
                self.fit(out, shape, cd)
                return _Value(((x.channels, ((out, 0),)),), shape, (cd,), (1,))
        dims = (
            tuple(sorted(d % 4 for d in (dims if isinstance(dims, (tuple, list)) else [dims])))
            if dims is not None
            else ()
        )
        if not isinstance(x, _Value) or len(x.shape) != 4 or dims != (2, 3) or shape is None or x.cdims != (1,):
            raise self.unsupported(_op_name(n), "only the mean over H, W (or over tokens, channels-last) is supported")
        if len(shape) == 2:
            return self.whole(self.g.gap(self.materialize(x), name=f"fx:{self.n.name}"), shape)
        return self.pool(x, shape, None, None)

    def outputs(self, obj: Any) -> None:
        for leaf in _leaves(obj):
            if isinstance(leaf, _Value):
                self.g.output(self.materialize(leaf), name="fx:output")


def _dim_at(shape: tuple[int, ...], before: int, size: int) -> int | None:
    """The dim of ``shape`` of size ``size`` whose preceding dims multiply to ``before``."""
    pre = 1
    for j, d in enumerate(shape):
        if pre == before and d == size:
            return j
        pre *= d
        if pre > before:
            return None
    return None


def _factor_dims(shape: tuple[int, ...], before: int, size: int) -> tuple[int, int] | None:
    """Dims ``[j, k)`` of ``shape`` that multiply to ``size`` right after dims multiplying to ``before``."""
    pre, j = 1, 0
    while j < len(shape) and pre < before:
        pre *= shape[j]
        j += 1
    if pre != before:
        return None
    k, prod = j, 1
    while k < len(shape) and prod < size:
        prod *= shape[k]
        k += 1
    return (j, k) if prod == size and k - j > 1 else None


def _leaves(obj: Any) -> list[Any]:
    out: list[Any] = []

    def walk(o: Any) -> None:
        if isinstance(o, (list, tuple)):
            for x in o:
                walk(x)
        elif isinstance(o, dict):
            for x in o.values():
                walk(x)
        else:
            out.append(o)

    walk(obj)
    return out


def _op_name(n: fx.Node | None) -> str:
    if n is None:
        return "?"
    if n.op == "call_method":
        return f"Tensor.{n.target}"
    if n.op == "call_module":
        return str(n.target)
    t = n.target
    mod = getattr(t, "__module__", None) or ""
    name = getattr(t, "__name__", str(t))
    return f"{mod}.{name}" if mod and mod != "_operator" else name
