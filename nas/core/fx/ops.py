"""The op tables of the fx front end: which modules, functions and methods map to which IR op,
the errors for what does not map, and how an fx node's op and arguments are read
(:mod:`nas.core.fx` is the entry point)."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from nas.core.errors import GradpathError


class TraceError(GradpathError):
    """A model that torch.fx cannot trace or whose shapes cannot be propagated (one line)."""


class UnsupportedOpError(TraceError):
    """An op of the traced model that the IR cannot express; the message names the op and the
    fx node (one line)."""


# -- what maps to what ------------------------------------------------------------------------
_LAYER_MODULES = (nn.Conv2d, nn.Linear)
# norms keep channel identity (per-channel affine; their statistics couple channels, as BN couples the batch)
_NORM_MODULES = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.SyncBatchNorm,
    nn.InstanceNorm2d,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)
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
_FLATTEN_FUNCTIONS: set[Any] = {torch.flatten, torch.reshape, torch.unflatten, torch.squeeze, torch.unsqueeze}
_FLATTEN_METHODS = {"flatten", "view", "reshape", "unflatten", "squeeze", "unsqueeze", "view_as", "reshape_as"}
_PERMUTE_FUNCTIONS: set[Any] = {torch.permute, torch.transpose, torch.swapaxes, torch.swapdims, torch.movedim, torch.t}
_PERMUTE_METHODS = {"permute", "transpose", "swapaxes", "swapdims", "movedim", "moveaxis", "t"}
_NORM_FUNCTIONS: set[Any] = {F.layer_norm, F.group_norm, F.local_response_norm, F.normalize, torch.layer_norm}
_NORM_METHODS: set[str] = set()
_SOFTMAX_FUNCTIONS: set[Any] = {F.softmax, F.log_softmax, torch.softmax, torch.log_softmax}
_SOFTMAX_METHODS = {"softmax", "log_softmax"}
_MATMUL_FUNCTIONS: set[Any] = {
    operator.matmul,
    torch.matmul,
    torch.bmm,
    torch.mm,
    torch.einsum,
    F.scaled_dot_product_attention,
}
_MATMUL_METHODS = {"matmul", "bmm", "mm"}
_META_METHODS = {"size", "dim"}  # non-tensor results


# -- reading an fx node -----------------------------------------------------------------------
def _arg(n: fx.Node, args: Sequence[Any], kwargs: dict[str, Any], pos: int, name: str, default: Any = None) -> Any:
    if len(args) > pos:
        return args[pos]
    return kwargs.get(name, default)


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
