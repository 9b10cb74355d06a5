"""torch.fx front end: any ``nn.Module`` -> :class:`~nas.core.ir.LayerGraph`, so that every gradient-path
metric (and the cost) works on models this project did not write.

``from_module(model, input_shape)`` traces ``model`` with :func:`torch.fx.symbolic_trace` (a
tracer that keeps ``Conv2d``/``Linear`` subclasses as leaves), propagates shapes with
:class:`torch.fx.passes.shape_prop.ShapeProp` on a *meta* tensor (weights are swapped for meta
copies per call, so nothing is computed, allocated or changed on the model), then maps the fx
graph to the IR:

- ``Conv2d`` -> ``conv`` (``bn=True`` when its only user is an affine ``BatchNorm2d``, so the
  IR's params count the BN), ``Linear`` -> ``linear``: the *layers*, named by their qualified
  module name (``backbone.stage3.unit0.cv1.conv``); a module called twice gives a second layer
  ``name#1``.
- BatchNorm / InstanceNorm, activations, dropout, ``contiguous``/``clone``, scaling by a constant
  -> pass-through (no IR node: they neither lengthen a gradient path nor move channels).
- max / avg / adaptive pooling -> ``maxpool`` (the traced output size); ``upsample`` /
  ``interpolate`` -> ``upsample``; global mean or flatten of a 1×1 map -> ``gap``, flatten /
  view / reshape of a C×H×W map into a vector -> ``flatten``; ``detach`` -> ``detach``.
- Channel routing (``torch.cat``, slicing ``x[:, a:b]``, ``chunk``, ``split``, ``narrow`` on dim 1,
  ``+``/``add``/``iadd``/``sub``) is resolved *symbolically*: every fx value is a list of channel
  segments, each the sum of slices of IR tensors, and only becomes IR nodes when a layer, a
  pool, a detach or an output reads it. ``torch.cat([a[:, :lo], a[:, lo:hi] + b[:, s:t],
  a[:, hi:]], 1)`` therefore comes out as one partial ``add`` with ``dst=(lo, hi)``,
  ``src=(s, t)``; other mixtures become ``split``/``add``/``concat`` nodes with the same channel
  ranges (the same units and metrics).
- Every tensor returned by ``forward`` (tuple, list, dict, nested) feeds the loss (``output``).

Anything else raises :class:`UnsupportedOpError` naming the op and the fx node. Known limits:
multiplying two feature maps (attention, squeeze-excitation), GroupNorm/LayerNorm/softmax over
channels, transposed/1-d/3-d convolutions and ops on other dims than channels are unsupported;
non-square kernels are costed as square (``kh × kh``); parameters of a BatchNorm that does not
follow a conv are not in the IR's params (``analyze`` counts the module's own parameters).
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import operator
from collections.abc import Sequence
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from nas.core.errors import GradpathError
from nas.core.ir import GraphError, LayerGraph

__all__ = ["TraceError", "UnsupportedOpError", "analyze", "from_module"]


class TraceError(GradpathError):
    """A model that torch.fx cannot trace or whose shapes cannot be propagated (one line)."""


class UnsupportedOpError(TraceError):
    """An op of the traced model that the IR cannot express; the message names the op and the
    fx node (one line)."""


# -- what maps to what ------------------------------------------------------------------------
_LAYER_MODULES = (nn.Conv2d, nn.Linear)
_NORM_MODULES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm, nn.InstanceNorm2d)
_ACT_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.SiLU,
    nn.LeakyReLU,
    nn.PReLU,
    nn.GELU,
    nn.ELU,
    nn.CELU,
    nn.SELU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Softplus,
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
    nn.AlphaDropout,
)
_POOL_MODULES = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_UPSAMPLE_MODULES = (nn.Upsample,)
# shape-keeping leaves: ShapeProp skips running them (BatchNorm on meta tensors is slow)
_SHAPE_KEEPING = _NORM_MODULES + _ACT_MODULES

_PASS_FUNCTIONS: set[Any] = {
    F.relu,
    F.relu_,
    F.relu6,
    F.silu,
    F.leaky_relu,
    F.gelu,
    F.elu,
    F.selu,
    F.celu,
    F.mish,
    F.hardswish,
    F.hardsigmoid,
    F.hardtanh,
    F.softplus,
    F.sigmoid,
    F.tanh,
    F.dropout,
    F.dropout2d,
    F.batch_norm,
    F.instance_norm,
    torch.relu,
    torch.relu_,
    torch.sigmoid,
    torch.tanh,
    torch.clamp,
}
_PASS_METHODS = {
    "relu",
    "relu_",
    "sigmoid",
    "sigmoid_",
    "tanh",
    "tanh_",
    "clamp",
    "clamp_",
    "contiguous",
    "clone",
    "float",
    "half",
    "to",
    "type_as",
}
_ADD_FUNCTIONS: set[Any] = {operator.add, operator.iadd, operator.sub, operator.isub, torch.add, torch.sub}
_ADD_METHODS = {"add", "add_", "sub", "sub_"}
_SCALE_FUNCTIONS: set[Any] = {operator.mul, operator.imul, operator.truediv, operator.itruediv, torch.mul, torch.div}
_SCALE_METHODS = {"mul", "mul_", "div", "div_"}
_CAT_FUNCTIONS: set[Any] = {torch.cat, torch.concat, torch.concatenate}
_POOL_FUNCTIONS: set[Any] = {F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d}
_UPSAMPLE_FUNCTIONS: set[Any] = {F.interpolate, F.upsample, F.upsample_nearest}
_FLATTEN_FUNCTIONS: set[Any] = {torch.flatten, torch.reshape}
_FLATTEN_METHODS = {"flatten", "view", "reshape"}
_META_METHODS = {"size", "dim"}  # non-tensor results


class _Const:
    """A value that is not derived from the input image (a parameter, a shape, a number)."""


_CONST = _Const()

# A segment is (width, terms); a term (ir_node, offset) is the slice [offset, offset + width) of
# an IR tensor; a segment with several terms is their sum.
_Term = tuple[str, int]
_Segment = tuple[int, tuple[_Term, ...]]


class _Value:
    """An fx tensor as channel segments of IR tensors (lazy: no IR node until something reads it)."""

    __slots__ = ("segs", "shape")

    def __init__(self, segs: tuple[_Segment, ...], shape: tuple[int, ...]) -> None:
        self.segs = segs
        self.shape = shape

    @property
    def channels(self) -> int:
        return self.shape[1]

    def slice(self, lo: int, hi: int, shape: tuple[int, ...]) -> _Value:
        out: list[_Segment] = []
        pos = 0
        for w, terms in self.segs:
            a, b = max(pos, lo), min(pos + w, hi)
            if a < b:
                out.append((b - a, tuple((n, off + a - pos) for n, off in terms)))
            pos += w
        return _Value(tuple(out), shape)


def _cut_points(v: _Value) -> list[int]:
    pts, pos = [], 0
    for w, _ in v.segs:
        pos += w
        pts.append(pos)
    return pts


def _sum(a: _Value, b: _Value, shape: tuple[int, ...]) -> _Value:
    """Channel-aligned sum of two values of equal width."""
    cuts = sorted(set(_cut_points(a)) | set(_cut_points(b)))
    out: list[_Segment] = []
    lo = 0
    for hi in cuts:
        ta = a.slice(lo, hi, shape).segs[0][1]
        tb = b.slice(lo, hi, shape).segs[0][1]
        out.append((hi - lo, ta + tb))
        lo = hi
    return _Value(tuple(out), shape)


# -- tracing and shapes -----------------------------------------------------------------------
class _Tracer(fx.Tracer):
    """Keeps ``Conv2d``/``Linear`` (and subclasses, e.g. weight-standardised convs) as leaves."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, _LAYER_MODULES + _NORM_MODULES) or super().is_leaf_module(m, module_qualified_name)


class _MetaShapeProp(ShapeProp):
    """ShapeProp on meta tensors, run on the traced graph with the model as root (no GraphModule
    codegen). Layers run on meta copies of their weights, other modules with parameters through
    ``torch.func.functional_call`` on meta copies: the model is neither run nor changed.
    Shape-keeping leaves (norms, activations, dropout) are not run at all."""

    def __init__(self, root: nn.Module, graph: fx.Graph) -> None:  # noqa: D107
        fx.Interpreter.__init__(self, root, graph=graph)
        # what ShapeProp.__init__ sets when it has no fake mode
        self.fake_module = None
        self.fake_mode = None
        self.real_module = self.module

    def run_node(self, n: fx.Node) -> Any:
        self.current = n
        return super().run_node(n)

    def get_attr(self, target: Any, args: Any, kwargs: Any) -> Any:
        v = super().get_attr(target, args, kwargs)
        return v.to("meta") if isinstance(v, torch.Tensor) else v

    def call_module(self, target: Any, args: Any, kwargs: Any) -> Any:
        m = self.fetch_attr(target)
        x = args[0] if args else None
        if isinstance(x, torch.Tensor) and not kwargs and len(args) == 1:
            if isinstance(m, _SHAPE_KEEPING):
                return x
            if type(m) is nn.Conv2d:
                bias = None if m.bias is None else m.bias.to("meta")
                return m._conv_forward(x, m.weight.to("meta"), bias)
            if type(m) is nn.Linear:
                return F.linear(x, m.weight.to("meta"), None if m.bias is None else m.bias.to("meta"))
        tensors = {n: t.to("meta") for n, t in (*m.named_parameters(), *m.named_buffers())}
        if not tensors:
            return m(*args, **kwargs)
        return torch.func.functional_call(m, tensors, tuple(args), dict(kwargs))


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".strip()


def _trace(model: nn.Module) -> fx.Graph:
    concrete: dict[str, Any] = {}
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    inputs = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for p in inputs[1:]:
        if p.default is p.empty:
            raise TraceError(
                f"{type(model).__name__}.forward takes inputs {[q.name for q in inputs]}; only one image tensor is supported"
            )
        concrete[p.name] = p.default
    tracer = _Tracer()
    try:
        graph = tracer.trace(model, concrete_args=concrete or None)
    except Exception as e:  # noqa: BLE001 - any trace failure is reported as one line
        raise TraceError(f"torch.fx cannot trace {type(model).__name__}: {_one_line(e)}") from None
    return graph


def _propagate(model: nn.Module, graph: fx.Graph, input_shape: tuple[int, ...]) -> None:
    x = torch.zeros(input_shape, device="meta")
    prop = _MetaShapeProp(model, graph)
    try:
        # ShapeProp prints a traceback before it re-raises: keep the user's terminal to one line
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            prop.propagate(x)
    except Exception as e:  # noqa: BLE001
        n = getattr(prop, "current", None)
        where = f" at fx node {n.name!r} ({_op_name(n)})" if n is not None else ""
        cause = e.__cause__ if e.__cause__ is not None else e
        raise TraceError(
            f"shape propagation with input {list(input_shape)} failed{where}: {_one_line(cause)}"
        ) from None


def _shape(n: fx.Node) -> tuple[int, ...] | None:
    meta = n.meta.get("tensor_meta")
    shape = getattr(meta, "shape", None)
    return tuple(int(d) for d in shape) if shape is not None else None


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
        return UnsupportedOpError(f"cannot map {what} at {where} to the LayerGraph IR{': ' + why if why else ''}")

    # IR helpers
    def whole(self, name: str, shape: tuple[int, ...]) -> _Value:
        return _Value(((self.g.node(name).channels, ((name, 0),)),), shape)

    def fit(self, name: str, shape: tuple[int, ...] | None) -> str:
        node = self.g.node(name)
        if shape is None:
            return name
        if shape[1] != node.channels:  # pragma: no cover - a bug, not a user error
            raise TraceError(f"internal: IR node {name} has {node.channels} channels, traced {shape[1]}")
        if len(shape) == 4:
            node.size, node.flat = (shape[2], shape[3]), False
        else:
            node.size, node.flat = (1, 1), True
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
            if self.placeholders > 1:  # an optional argument, traced with its default
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
        if (method and target in _ADD_METHODS) or (not method and target in _ADD_FUNCTIONS):
            return self.add(args[0], _arg(n, args, kwargs, 1, "other"), shape)
        if (method and target in _SCALE_METHODS) or (not method and target in _SCALE_FUNCTIONS):
            if len(values) > 1:
                raise self.unsupported(
                    f"{_op_name(n)} of two feature maps", "only scaling by a constant is channel routing"
                )
            return self.passthrough(values[0], shape)
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
            return self.whole(self.g.detach(self.materialize(args[0]), name=f"fx:{n.name}"), shape)
        if not method and target in _POOL_FUNCTIONS:
            return self.pool(
                args[0], shape, _arg(n, args, kwargs, 1, "kernel_size", None), _arg(n, args, kwargs, 2, "stride", None)
            )
        if not method and target in _UPSAMPLE_FUNCTIONS:
            return self.upsample(args[0], shape)
        if (method and target in _FLATTEN_METHODS) or (not method and target in _FLATTEN_FUNCTIONS):
            return self.flatten(args[0], shape)
        if target == "mean" or (not method and target is torch.mean):
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
            if len(x.shape) != 2:
                raise self.unsupported(
                    "Linear on a tensor of shape " + str(list(x.shape)), "flatten to (N, features) first"
                )
            name = self.layer_name(n.target)
            out = self.g.linear(self.materialize(x), m.out_features, name=name)
            self.g.node(out).attrs["bias"] = m.bias is not None
            self.layer_of[n] = out
            return self.whole(self.fit(out, shape), shape)
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
        if isinstance(m, _POOL_MODULES):
            return self.pool(x, shape, getattr(m, "kernel_size", None), getattr(m, "stride", None), n.target)
        if isinstance(m, _UPSAMPLE_MODULES):
            return self.upsample(x, shape, n.target)
        if isinstance(m, nn.Flatten):
            return self.flatten(x, shape)
        raise self.unsupported(f"module {type(m).__name__}")

    def layer_name(self, target: str) -> str:
        k = self.calls.get(target, 0)
        self.calls[target] = k + 1
        return target if k == 0 else f"{target}#{k}"

    def conv(self, n: fx.Node, m: nn.Conv2d, x: _Value, shape: tuple[int, ...] | None) -> _Value:
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
        if (kh, kw) != (kh, kh) or m.stride[0] != m.stride[1]:
            self.g.node(out).attrs.update(kernel=(kh, kw), strides=tuple(m.stride))
        self.layer_of[n] = out
        return self.whole(self.fit(out, shape), shape)

    def passthrough(self, x: Any, shape: tuple[int, ...] | None) -> Any:
        if not isinstance(x, _Value):
            return _CONST
        if shape is not None and shape != x.shape:
            raise self.unsupported(_op_name(self.n), f"it changes the shape {list(x.shape)} -> {list(shape)}")
        return x

    def channel_dim(self, x: _Value, dim: Any) -> None:
        if not isinstance(dim, int) or dim % len(x.shape) != 1:
            raise self.unsupported(_op_name(self.n), f"only the channel dim 1 is supported, got dim={dim}")

    def add(self, a: Any, b: Any, shape: tuple[int, ...] | None) -> Any:
        """``a + b`` (or ``a - b``, ``alpha·b``: the same routing); a constant operand passes."""
        if not isinstance(a, _Value) or not isinstance(b, _Value):
            v = a if isinstance(a, _Value) else b
            return self.passthrough(v, shape)
        if a.shape != b.shape:
            raise self.unsupported(
                _op_name(self.n), f"adds tensors of shapes {list(a.shape)} and {list(b.shape)} (broadcast)"
            )
        return _sum(a, b, shape or a.shape)

    def cat(self, xs: Any, dim: Any, shape: tuple[int, ...] | None) -> _Value:
        xs = list(xs)
        if not all(isinstance(x, _Value) for x in xs):
            raise self.unsupported(_op_name(self.n), "concatenates a tensor not derived from the input")
        self.channel_dim(xs[0], dim)
        if len({x.shape[:1] + x.shape[2:] for x in xs}) != 1:
            raise self.unsupported(_op_name(self.n), "concatenates maps of different sizes")
        segs = tuple(s for x in xs for s in x.segs)
        return _Value(segs, shape or (xs[0].shape[0], sum(x.channels for x in xs), *xs[0].shape[2:]))

    def getitem(self, x: Any, idx: Any, shape: tuple[int, ...] | None) -> Any:
        if isinstance(x, (tuple, list)):
            return x[idx]
        if not isinstance(x, _Value):
            return _CONST
        idx = idx if isinstance(idx, tuple) else (idx,)
        if idx and idx[0] is Ellipsis and len(idx) == 1:
            return x
        ok = len(idx) >= 1 and idx[0] == slice(None)
        ch = idx[1] if len(idx) > 1 else slice(None)
        rest = idx[2:]
        if (
            not ok
            or not isinstance(ch, slice)
            or ch.step not in (None, 1)
            or any(r not in (slice(None), Ellipsis) for r in rest)
        ):
            raise self.unsupported(f"indexing {idx!r}", "only slices of the channel dim x[:, a:b] are supported")
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
            out.append(x.slice(lo, lo + w, (x.shape[0], w, *x.shape[2:])))
            lo += w
        return tuple(out)

    def pool(self, x: Any, shape: tuple[int, ...] | None, k: Any, stride: Any, name: str | None = None) -> _Value:
        if not isinstance(x, _Value) or len(x.shape) != 4 or shape is None:
            raise self.unsupported(_op_name(self.n), "pooling needs an N×C×H×W feature map")
        k = k[0] if isinstance(k, (tuple, list)) else k
        stride = stride[0] if isinstance(stride, (tuple, list)) else stride
        k = int(k) if isinstance(k, int) else max(1, math.ceil(x.shape[2] / max(1, shape[2])))
        stride = int(stride) if isinstance(stride, int) else k
        out = self.g.maxpool(self.materialize(x), k, stride, name=f"fx:{name or self.n.name}")
        self.g.node(out).attrs["traced"] = _op_name(self.n)
        return self.whole(self.fit(out, shape), shape)

    def upsample(self, x: Any, shape: tuple[int, ...] | None, name: str | None = None) -> _Value:
        if not isinstance(x, _Value) or len(x.shape) != 4 or shape is None:
            raise self.unsupported(_op_name(self.n), "upsampling needs an N×C×H×W feature map")
        scale = max(1, shape[2] // max(1, x.shape[2]))
        out = self.g.upsample(self.materialize(x), scale, name=f"fx:{name or self.n.name}")
        return self.whole(self.fit(out, shape), shape)

    def flatten(self, x: Any, shape: tuple[int, ...] | None) -> _Value:
        if not isinstance(x, _Value) or shape is None:
            raise self.unsupported(_op_name(self.n))
        if shape == x.shape:
            return x
        if len(x.shape) == 4 and len(shape) == 2 and shape[0] == x.shape[0] and shape[1] == math.prod(x.shape[1:]):
            src = self.materialize(x)
            if x.shape[2] * x.shape[3] == 1:
                return self.whole(self.g.gap(src, name=f"fx:{self.n.name}"), shape)
            return self.whole(self.g.flatten(src, name=f"fx:{self.n.name}"), shape)
        raise self.unsupported(
            _op_name(self.n), f"reshapes {list(x.shape)} -> {list(shape)}; only flattening C×H×W is supported"
        )

    def mean(self, n: fx.Node, args: Any, kwargs: Any, shape: tuple[int, ...] | None) -> _Value:
        x = args[0]
        dims = _arg(n, args, kwargs, 1, "dim")
        dims = (
            tuple(sorted(d % 4 for d in (dims if isinstance(dims, (tuple, list)) else [dims])))
            if dims is not None
            else ()
        )
        if not isinstance(x, _Value) or len(x.shape) != 4 or dims != (2, 3) or shape is None:
            raise self.unsupported(_op_name(n), "only the global mean over H, W is supported")
        if len(shape) == 2:
            return self.whole(self.g.gap(self.materialize(x), name=f"fx:{n.name}"), shape)
        return self.pool(x, shape, None, None)

    def outputs(self, obj: Any) -> None:
        for leaf in _leaves(obj):
            if isinstance(leaf, _Value):
                self.g.output(self.materialize(leaf), name="fx:output")


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


def _check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if len(shape) not in (2, 4) or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise TraceError(f"input shape {list(shape)}: expected positive integers N,C,H,W (or N,F)")
    return shape


def from_module(model: nn.Module, input_shape: Sequence[int] = (1, 3, 224, 224)) -> LayerGraph:
    """The LayerGraph of ``model`` for an input of ``input_shape`` (N, C, H, W), via torch.fx.

    Raises :class:`UnsupportedOpError` for an op the IR cannot express and :class:`TraceError`
    when the model cannot be traced. The model is not run (shapes come from meta tensors) and not
    changed. O(fx nodes) after tracing.

    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1))
    >>> g = from_module(net, (1, 3, 16, 16))
    >>> [(n.name, n.channels, n.size) for n in g.layers()]
    [('0', 8, (16, 16)), ('3', 4, (16, 16))]
    """
    shape = _check_shape(input_shape)
    graph = _trace(model)
    _propagate(model, graph, shape)
    return _Builder(model, graph, shape).build()


def analyze(model: nn.Module, input_shape: Sequence[int] = (1, 3, 224, 224)) -> dict[str, Any]:
    """Params, FLOPs and gradient-path metrics of ``model`` — the object ``nas analyze --json``
    prints. ``params`` is the module's own parameter count; ``flops`` and the metrics come from
    the traced LayerGraph (FLOPs at ``input_shape``, docs/architecture.md "Cost").

    >>> out = analyze(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1)), (1, 3, 8, 8))
    >>> out["params"], out["max_shortest_gradient_path"], out["longest_gradient_path"]
    (260, 2, 2)
    """
    from nas.core.summary import summarize

    out = summarize(from_module(model, input_shape))
    out["params"] = sum(p.numel() for p in model.parameters())
    return out
