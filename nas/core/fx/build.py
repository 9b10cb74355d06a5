"""The fx front end's builder: walks a captured fx graph node by node and emits the LayerGraph
(:mod:`nas.core.fx` is the entry point). The walk dispatches each fx node to its handler: layers,
pools, reductions and pass-throughs here, channel routing in :mod:`nas.core.fx.routing`, the
lowering of symbolic values to IR nodes in :mod:`nas.core.fx.lower`."""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
import torch.fx as fx
from torch import nn

from nas.core.fx.ops import (
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
    _arg,
    _op_name,
)
from nas.core.fx.routing import _Routing
from nas.core.fx.trace import CaptureFailure, capture
from nas.core.fx.values import _CONST, _Value
from nas.core.ir import GraphError, LayerGraph


def _trace(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[fx.Graph, list[str]]:
    """Capture ``model`` at ``input_shape`` (:mod:`nas.core.fx.trace`); failures become one-line TraceErrors
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
class _Builder(_Routing):
    """The walk: one handler per kind of fx node (:class:`~nas.core.fx.routing._Routing` moves channels)."""

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

    def softmax(self, n: fx.Node, args: Any, kwargs: Any, shape: tuple[int, ...] | None) -> Any:
        x, dim = args[0], _arg(n, args, kwargs, 1, "dim")
        if not isinstance(x, _Value) or not isinstance(dim, int) or dim % len(x.shape) in x.cdims:
            raise self.unsupported(_op_name(n), "a softmax over the channel dim mixes channels without weights")
        return self.passthrough(x, shape)

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
