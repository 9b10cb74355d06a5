"""Capture for :mod:`nas.core.fx`: a torch.fx tracer whose proxies carry the *meta* tensor they stand for.

Plain :func:`torch.fx.symbolic_trace` cannot run Python that looks at a value: ``list(x.chunk(2, 1))``
then a loop that extends the list (YOLOv9's ``RepNCSPELAN4``), ``if x.shape[-1] > 32``, ``B, C, H, W =
x.shape``. Here every proxy also holds the result of its op on meta tensors (weights swapped for meta
copies, so nothing is computed, allocated or changed on the model), and ``shape``/``size()``/``dim()``,
``len()`` and iteration answer from it: the trace is specialised to the input shape, as
``torch.export`` specialises to its example input. Module leaves and qualified names stay as fx gives
them, which is what the IR builder needs (layers named by module path, BatchNorm folded into its conv).

Why not ``torch.export`` or ``make_fx``: both capture the two patterns too
(``tests/core/test_analyze_models.py::test_export_and_make_fx_capture_what_symbolic_trace_cannot``), but they
lower to ATen (``aten.convolution``, decomposed BatchNorm and ``chunk``), lose the module leaves the
builder names layers by and folds BN with, and are slower. Measured (2 shared CPUs under load, median):
YOLOv9's ``RepNCSPELAN4`` 130 ms for this capture *plus* the IR build, against 645 ms for ``make_fx`` and
564 ms for ``torch.export`` alone; a GELAN-C backbone 2.4 s against 15.1 s and 9.1 s. Only a
value-dependent branch (``if x.sum() > 0``) cannot be captured; it is refused naming the module.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

__all__ = ["CaptureFailure", "MetaTracer", "meta_call", "module_where"]

# attributes of a traced tensor that are answered concretely (the trace specialises on them)
_CONCRETE_ATTRS = frozenset(
    {
        "shape",
        "dtype",
        "device",
        "ndim",
        "is_cuda",
        "layout",
        "size",
        "dim",
        "numel",
        "nelement",
        "element_size",
        "is_contiguous",
        "get_device",
        "is_floating_point",
        "is_complex",
    }
)


# the tracer patches nn.Module.__call__/__getattr__ while it runs; meta values are computed with these
_MODULE_CALL = nn.Module.__call__
_MODULE_GETATTR = nn.Module.__getattr__


@contextlib.contextmanager
def _unpatched() -> Iterator[None]:
    saved = nn.Module.__call__, nn.Module.__getattr__
    nn.Module.__call__, nn.Module.__getattr__ = _MODULE_CALL, _MODULE_GETATTR
    try:
        yield
    finally:
        nn.Module.__call__, nn.Module.__getattr__ = saved


class CaptureFailure(Exception):
    """Tracing failed (internal: :mod:`nas.core.fx` turns it into a user-facing ``TraceError``); ``kind`` is ``"shape"`` (an op failed on the meta input) or ``"trace"``, ``where``
    the innermost module (qualified name, class) the failure sits in."""

    def __init__(self, kind: str, message: str, where: tuple[str, str] | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.where = kind, message, where


class _ValueDependent(Exception):
    pass


class _MetaProxy(fx.Proxy):
    """An fx proxy that knows its meta value (``node.meta["val"]``)."""

    def __getattr__(self, k: str) -> Any:
        if k in ("node", "tracer") or k.startswith("__"):
            raise AttributeError(k)
        if k in _CONCRETE_ATTRS:
            val = self.node.meta.get("val")
            if isinstance(val, torch.Tensor):
                return getattr(val, k)
        return super().__getattr__(k)

    def __len__(self) -> int:
        val = self.node.meta.get("val")
        if isinstance(val, torch.Tensor) and val.dim() > 0:
            return val.shape[0]
        if isinstance(val, (tuple, list)):
            return len(val)
        raise _ValueDependent(f"len() of {self.node.name}")

    def __iter__(self) -> Any:
        return iter([self[i] for i in range(len(self))])

    def __bool__(self) -> bool:
        val = self.node.meta.get("val")
        if isinstance(val, (bool, int, float)):
            return bool(val)
        raise _ValueDependent("Python control flow depends on the values of a tensor (only shapes are known)")


def meta_call(m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``m(*args, **kwargs)`` on meta copies of its weights (the model is neither run nor changed)."""
    x = args[0] if args else None
    if isinstance(x, torch.Tensor) and not kwargs and len(args) == 1:
        if type(m) is nn.Conv2d:
            bias = None if m.bias is None else m.bias.to("meta")
            return m._conv_forward(x, m.weight.to("meta"), bias)
        if type(m) is nn.Linear:
            return F.linear(x, m.weight.to("meta"), None if m.bias is None else m.bias.to("meta"))
        if isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.Dropout, nn.Identity)):
            return torch.empty_like(x)  # shape-keeping; BatchNorm on meta tensors is slow
    tensors = {n: t.to("meta") for n, t in (*m.named_parameters(), *m.named_buffers())}
    if not tensors:
        return m(*args, **kwargs)
    return torch.func.functional_call(m, tensors, tuple(args), dict(kwargs))


def module_where(n: fx.Node) -> tuple[str, str] | None:
    """(qualified name, class name) of the innermost module an fx node was traced in."""
    stack = n.meta.get("nn_module_stack")
    if not stack:
        return None
    path, cls = list(stack.values())[-1]
    return str(path), getattr(cls, "__name__", str(cls))


class MetaTracer(fx.Tracer):
    """A tracer that keeps ``leaf`` module types as leaves and specialises on the input's shape."""

    def __init__(self, leaves: tuple[type, ...], x_meta: torch.Tensor) -> None:
        super().__init__()
        self.leaves = leaves
        self.x_meta = x_meta
        self.placeholder_vals: list[Any] = []
        self.where: tuple[str, str] | None = None

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, self.leaves) or super().is_leaf_module(m, module_qualified_name)

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _MetaProxy(node, self)

    def call_module(self, m: nn.Module, forward: Any, args: Any, kwargs: Any) -> Any:
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.where is None:  # the innermost module sees the failure first
                try:
                    self.where = (self.path_of_module(m), type(m).__name__)
                except NameError:
                    self.where = ("", type(m).__name__)
            raise

    def create_proxy(self, kind: str, target: Any, args: Any, kwargs: Any, *rest: Any, **kw: Any) -> fx.Proxy:
        p = super().create_proxy(kind, target, args, kwargs, *rest, **kw)
        if isinstance(p, fx.Proxy):
            p.node.meta["val"] = self._meta(p.node)
        return p

    def _val(self, a: fx.Node) -> Any:
        if "val" not in a.meta and a.op == "get_attr":  # a tensor constant made by create_arg
            a.meta["val"] = self._meta(a)
        return a.meta.get("val")

    def _meta(self, n: fx.Node) -> Any:
        if n.op == "placeholder":
            k = len(self.placeholder_vals)
            val = self.x_meta if k == 0 else self.placeholder_vals_default(n)
            self.placeholder_vals.append(val)
            return val
        if n.op == "get_attr":
            obj: Any = self.root
            with _unpatched():
                for part in str(n.target).split("."):
                    obj = getattr(obj, part)
            return obj.to("meta") if isinstance(obj, torch.Tensor) else obj
        if n.op == "call_function" and getattr(n.target, "__module__", "").startswith("torch.fx"):
            return None  # fx's own guards (_assert_is_none)
        args = fx.node.map_arg(n.args, self._val)
        kwargs = fx.node.map_arg(n.kwargs, self._val)
        try:
            with torch.no_grad(), _unpatched():
                if n.op == "call_module":
                    return meta_call(self.root.get_submodule(str(n.target)), tuple(args), dict(kwargs))
                if n.op == "call_method":
                    return getattr(args[0], n.target)(*args[1:], **kwargs)
                return n.target(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - reported as one line with the module
            where = module_where(n)
            raise CaptureFailure("shape", _one_line(e), where) from None

    def placeholder_vals_default(self, n: fx.Node) -> Any:
        """A second required input gets a tensor like the first (it is not analysed)."""
        return torch.zeros_like(self.x_meta)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".strip()


def capture(model: nn.Module, leaves: tuple[type, ...], x_meta: torch.Tensor) -> tuple[fx.Graph, list[str]]:
    """The fx graph of ``model`` at the input ``x_meta`` and the names of ``forward``'s other inputs
    (required ones are fed a tensor like the first, optional ones their default; neither is analysed)."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    inputs = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    concrete = {p.name: p.default for p in inputs[1:] if p.default is not p.empty}
    tracer = MetaTracer(leaves, x_meta)
    try:
        graph = tracer.trace(model, concrete_args=concrete or None)
    except CaptureFailure as e:
        e.where = e.where or tracer.where
        raise
    except _ValueDependent as e:
        raise CaptureFailure("trace", str(e), tracer.where) from None
    except Exception as e:  # noqa: BLE001 - any trace failure is reported as one line
        raise CaptureFailure("trace", _one_line(e), tracer.where) from None
    return graph, [p.name for p in inputs[1:]]
