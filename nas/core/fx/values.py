"""Symbolic channels of the fx front end: a traced tensor as segments of IR channel ranges, so
slices, concats and partial sums map to exact channel routing (:mod:`nas.core.fx`)."""

from __future__ import annotations

from typing import Any


class _Const:
    """A value that is not derived from the input image (a parameter, a shape, a number)."""


_CONST = _Const()

# A segment is (width, terms); a term (ir_node, offset) is the slice [offset, offset + width) of
# an IR tensor; a segment with several terms is their sum.
_Term = tuple[str, int]
_Segment = tuple[int, tuple[_Term, ...]]


class _Value:
    """An fx tensor as channel segments of IR tensors (lazy: no IR node until something reads it).

    ``cdims``/``cstrides`` say where the channels are: channel ``c = Σ index[cdims[k]] · cstrides[k]``.
    Normally one dim (``(1,)``, or the last dim after ``permute(0, 2, 3, 1)``); several while a reshape
    has split the channels into factors (a channel shuffle's ``view(N, g, C/g, H, W)``)."""

    __slots__ = ("segs", "shape", "cdims", "cstrides")

    def __init__(
        self,
        segs: tuple[_Segment, ...],
        shape: tuple[int, ...],
        cdims: tuple[int, ...] = (1,),
        cstrides: tuple[int, ...] = (1,),
    ) -> None:
        self.segs = segs
        self.shape = shape
        self.cdims = cdims
        self.cstrides = cstrides

    @property
    def channels(self) -> int:
        return sum(w for w, _ in self.segs)

    @property
    def cdim(self) -> int | None:
        """The channel dim, or None while the channels are split over several dims."""
        return self.cdims[0] if len(self.cdims) == 1 else None

    def like(self, segs: tuple[_Segment, ...], shape: tuple[int, ...]) -> _Value:
        return _Value(segs, shape, self.cdims, self.cstrides)

    def slice(self, lo: int, hi: int, shape: tuple[int, ...]) -> _Value:
        out: list[_Segment] = []
        pos = 0
        for w, terms in self.segs:
            a, b = max(pos, lo), min(pos + w, hi)
            if a < b:
                out.append((b - a, tuple((n, off + a - pos) for n, off in terms)))
            pos += w
        return self.like(tuple(out), shape)

    def permuted(self, perm: list[int], shape: tuple[int, ...], cdim: int) -> _Value:
        """Channel ``i`` of the result is channel ``perm[i]`` of ``self`` (runs are kept together)."""
        per: list[tuple[_Term, ...]] = []
        for w, terms in self.segs:
            per.extend(tuple((n, off + k) for n, off in terms) for k in range(w))
        out: list[list[Any]] = []
        for src in perm:
            terms = per[src]
            if out and tuple((n, off + 1) for n, off in out[-1][2]) == terms:
                out[-1][0] += 1
                out[-1][2] = terms
            else:
                out.append([1, terms, terms])
        return _Value(tuple((w, first) for w, first, _ in out), shape, (cdim,), (1,))


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
    return a.like(tuple(out), shape)
