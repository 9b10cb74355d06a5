"""Channel routing in the fx front end: sums, gates, concats, slices, chunks, permutes and reshapes
of feature maps. Most only rearrange a value's channel segments (no IR node until something reads
them); a gate or broadcast sum becomes an IR ``mul``, a flatten an IR ``flatten`` or ``gap``. Split
from the walk (:mod:`nas.core.fx.build`), which dispatches to these."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.fx as fx

from nas.core.fx.lower import _Lowering
from nas.core.fx.ops import _arg, _op_name
from nas.core.fx.values import _CONST, _sum, _Value
from nas.core.ir import GraphError


class _Routing(_Lowering):
    """The handlers that move channels (:class:`~nas.core.fx.lower._Lowering` holds the state)."""

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
