"""Gradient-path metrics of a :class:`~nas.core.ir.LayerGraph` (docs/metrics.md; Wang, Liao, Yeh §2.2–3.3).

Definitions
-----------
The **backward graph** is the data graph with every edge reversed, starting at the *loss*:
every ``output`` node feeds it, and ``detach`` edges carry no gradient. A **layer** is a
``conv`` or ``linear`` node; every other op is parameter-free and channel-wise, so gradient is
tracked per *channel segment*.

- A layer's output channels split into **units**: maximal channel ranges that every consumer
  treats alike. A slice (CSP split), a partial add's ``dst``/``src`` range or a concat boundary
  downstream cuts a range; cuts propagate back through every parameter-free op (``concat``,
  ``split``, ``add``, ``maxpool``, ``gap``, ``flatten``, ``upsample``, ``detach``, ``output``)
  and stop at layers, which mix their input channels (a grouped conv cuts its input at the group
  boundaries where the set of output units it feeds changes).
- The **gradient path length** of a path from the loss to a layer is the number of layers on it,
  the layer itself included: the last conv before the loss has length 1; parameter-free ops
  count 0. ``shortest_gradient_path(L)`` / ``longest_gradient_path(L)`` are the min / max over
  all paths reaching any unit of ``L``.
- **Gradient timestamps** of a unit: the set of distinct path lengths reaching it (the paper's
  breadth-first "gradient sequence", Fig. 7).
- **Gradient sources** of a unit: the units of downstream layers, or the loss, that pass gradient
  to it directly, i.e. through parameter-free ops only (Fig. 8).
- **Gradient combination** of a unit: the set of (timestamp, source) pairs over all paths
  reaching it.

Network level: ``max_shortest_gradient_path`` = max over layers of the shortest (the paper's
"longest shortest gradient path"); ``longest_gradient_path`` = max over layers of the longest;
``gradient_combinations`` = the channel-weighted sum of the units' combination-set sizes;
``distinct_gradient_combinations`` = the number of different combination sets among units;
``duplicate_gradient_ratio`` = the share of channels whose combination set equals that of a
unit of *another* layer (the duplicated gradient information that CSP's transitions truncate);
``gradient_overlap`` = the channel-weighted mean over units of the share of a unit's (timestamp,
source) pairs whose source also passes gradient to a layer *downstream* of the unit: gradient the unit
receives directly through a shortcut although it also reaches the layers the unit feeds (CSPNet's
"duplicated gradient information" of residual and dense connections; docs/metrics.md).

A layer that receives no gradient at all (everything downstream is detached, or nothing reads
it) has no timestamps: its ``shortest_gradient_path`` and ``longest_gradient_path`` are
``None`` and its units report empty timestamps and zero sources and combinations. Such layers
and units are left out of the network-level maxima, of the distinct/duplicate counts and of the
ratio's denominator (which counts the channels that receive gradient); they add 0 to
``gradient_combinations``. A network in which no layer receives gradient reports ``None`` for
both maxima and ``0.0`` for the ratio.

Algorithm
---------
One pass of dynamic programming over the DAG in reverse topological order (``graph.nodes`` is
already topological). Every tensor carries a list of channel segments ``(lo, hi, payload)``;
a payload maps each gradient source to a bitmask of timestamps (bit ``d``: a path that has
passed ``d`` layers since the loss), so a union of timestamp sets is an ``|`` and "one more
layer" is a ``<< 1``. A node overlays the segment lists its consumers pushed to it (the union
of their cuts, payloads or-ed), and pushes its own list, mapped through its op, to its inputs.

Complexity: O(E · S · K) dictionary operations on machine-size or bounded-size ints, where
E is the number of edges, S the number of segments per tensor and K the number of gradient
sources per segment (both small constants for the paper's networks); timestamp masks have at
most ``depth + 1`` bits. Paths are never enumerated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nas.core.ir import LayerGraph, Node

__all__ = ["GradientPathMetrics", "LayerMetrics", "UnitMetrics", "gradient_path_metrics"]

LOSS = 0
"""Source id of the loss (layer units are numbered from 1)."""

_Payload = dict[int, int]  # source id -> timestamp bitmask
_Seg = tuple[int, int, "_Payload | None"]
# per layer (by node index): its units as (lo, hi, payload, tsmask, uid)
_UnitRows = dict[int, list[tuple[int, int, "_Payload | None", int, int]]]


@dataclass(frozen=True, slots=True)
class UnitMetrics:
    """One unit of a layer: output channels ``[start, stop)`` treated alike downstream.
    ``timestamp_mask`` holds the gradient timestamps as bits (bit ``t`` set: timestamp ``t``)."""

    channels: tuple[int, int]
    timestamp_mask: int
    gradient_sources: int
    gradient_combinations: int
    _payload: dict[int, int] | None = field(default=None, repr=False, compare=False)

    @property
    def gradient_timestamps(self) -> tuple[int, ...]:
        """The distinct gradient path lengths reaching the unit, ascending."""
        return _bits(self.timestamp_mask)

    def to_dict(self) -> dict[str, Any]:
        return {
            "channels": list(self.channels),
            "gradient_timestamps": list(_bits(self.timestamp_mask)),
            "gradient_sources": self.gradient_sources,
            "gradient_combinations": self.gradient_combinations,
        }


@dataclass(frozen=True, slots=True)
class LayerMetrics:
    """Gradient-path metrics of one layer (a ``conv`` or ``linear`` node); ``None`` path lengths
    for a layer that receives no gradient. ``timestamp_mask``: the union of its units' masks."""

    name: str
    shortest_gradient_path: int | None
    longest_gradient_path: int | None
    timestamp_mask: int
    units: tuple[UnitMetrics, ...]

    @property
    def gradient_timestamps(self) -> tuple[int, ...]:
        """The distinct gradient path lengths reaching any unit of the layer, ascending."""
        return _bits(self.timestamp_mask)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shortest_gradient_path": self.shortest_gradient_path,
            "longest_gradient_path": self.longest_gradient_path,
            "gradient_timestamps": list(_bits(self.timestamp_mask)),
            "units": [u.to_dict() for u in self.units],
        }


@dataclass(frozen=True, slots=True)
class GradientPathMetrics:
    """Network-level gradient-path metrics and one :class:`LayerMetrics` per layer, in forward
    order. ``to_dict()`` is the JSON object of ``nas show --json`` / ``nas analyze --json``
    (less ``params`` and ``flops``)."""

    max_shortest_gradient_path: int | None
    longest_gradient_path: int | None
    gradient_combinations: int
    distinct_gradient_combinations: int
    duplicate_gradient_ratio: float
    layers: tuple[LayerMetrics, ...]
    gradient_overlap: float = 0.0
    _source_names: dict[int, str] = field(default_factory=dict, repr=False, compare=False)

    def to_dict(self, layers: bool = True) -> dict[str, Any]:
        """The JSON object; ``layers=False`` leaves out the per-layer records (the network-level
        fields cost nothing, the per-layer lists about as much as the metrics themselves)."""
        out: dict[str, Any] = {
            "max_shortest_gradient_path": self.max_shortest_gradient_path,
            "longest_gradient_path": self.longest_gradient_path,
            "gradient_combinations": self.gradient_combinations,
            "distinct_gradient_combinations": self.distinct_gradient_combinations,
            "duplicate_gradient_ratio": self.duplicate_gradient_ratio,
            "gradient_overlap": self.gradient_overlap,
        }
        if layers:
            out["layers"] = [layer.to_dict() for layer in self.layers]
        return out

    def layer(self, name: str) -> LayerMetrics:
        """The record of the layer called ``name``. O(layers)."""
        for rec in self.layers:
            if rec.name == name:
                return rec
        raise KeyError(name)

    def gradient_combination(self, name: str, unit: int = 0) -> frozenset[tuple[int, str]]:
        """The gradient combination of unit ``unit`` of layer ``name``: its (timestamp, source)
        pairs, a source named ``"loss"`` or ``"layer[start:stop]"``."""
        payload = self.layer(name).units[unit]._payload or {}
        return frozenset((t + 1, self._source_names[s]) for s, mask in payload.items() for t in _bits(mask))


_BYTE_BITS = tuple(tuple(t for t in range(8) if b >> t & 1) for b in range(256))


def _bits(mask: int) -> tuple[int, ...]:
    """Positions of the set bits of ``mask``, ascending (a byte at a time)."""
    if mask < 256:
        return _BYTE_BITS[mask]
    out: list[int] = []
    for k, byte in enumerate(mask.to_bytes((mask.bit_length() + 7) >> 3, "little")):
        if byte:
            base = k << 3
            out.extend(base + t for t in _BYTE_BITS[byte])
    return tuple(out)


def _union(a: _Payload | None, b: _Payload | None) -> _Payload | None:
    if a is None:
        return b
    if b is None or a is b:
        return a
    d = a.copy()
    get = d.get
    for s, m in b.items():
        d[s] = get(s, 0) | m
    return d


def _overlay(lists: list[list[_Seg]], c: int) -> list[_Seg]:
    """Merge the segment lists pushed by a node's consumers into one list covering ``[0, c)``:
    every boundary of every list is a cut, payloads of overlapping segments are or-ed."""
    if len(lists) == 1:
        segs = lists[0]
        if len(segs) == 1:
            lo, hi, p = segs[0]
            if lo == 0 and hi == c:
                return segs
        out: list[_Seg] = []
        pos = 0
        for lo, hi, p in segs:
            if lo > pos:
                out.append((pos, lo, None))
            out.append((lo, hi, p))
            pos = hi
        if pos < c:
            out.append((pos, c, None))
        return out
    whole = True
    for segs in lists:
        if len(segs) != 1 or segs[0][0] != 0 or segs[0][1] != c:
            whole = False
            break
    if whole:
        p = None
        for segs in lists:
            p = _union(p, segs[0][2])
        return [(0, c, p)]
    cuts = {0, c}
    for segs in lists:
        for lo, hi, _ in segs:
            cuts.add(lo)
            cuts.add(hi)
    points = sorted(cuts)
    index = {x: k for k, x in enumerate(points)}
    pay: list[_Payload | None] = [None] * (len(points) - 1)
    for segs in lists:
        for lo, hi, p in segs:
            if p is None:
                continue
            for k in range(index[lo], index[hi]):
                pay[k] = _union(pay[k], p)
    return [(points[k], points[k + 1], pay[k]) for k in range(len(pay))]


def _window(segs: list[_Seg], lo: int, hi: int, shift: int) -> list[_Seg]:
    """The part of ``segs`` inside ``[lo, hi)``, moved by ``shift``."""
    out = []
    for a, b, p in segs:
        if b <= lo or a >= hi:
            continue
        out.append(((a if a > lo else lo) + shift, (b if b < hi else hi) + shift, p))
    return out


def _cut(segs: list[_Seg], points: tuple[int, ...]) -> list[_Seg]:
    out = []
    for a, b, p in segs:
        for x in points:
            if a < x < b:
                out.append((a, x, p))
                a = x
        out.append((a, b, p))
    return out


def _grouped_input(units: list[tuple[int, int, int, int]], c_out: int, c_in: int, groups: int) -> list[_Seg]:
    """Payload reaching the input of a grouped layer: group ``g`` of the input receives from the
    output units overlapping output group ``g``. ``units`` are (lo, hi, uid, tsmask); uid 0 for a
    unit without gradient (it still cuts)."""
    go, gi = c_out // groups, c_in // groups
    spans = [(lo // go, (hi - 1) // go + 1, uid, ts) for lo, hi, uid, ts in units]
    cuts = sorted({0, groups, *(s for s, _, _, _ in spans), *(e for _, e, _, _ in spans)})
    out: list[_Seg] = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        p = {uid: ts for s, e, uid, ts in spans if uid and s < b and e > a}
        out.append((a * gi, b * gi, p or None))
    return out


def gradient_path_metrics(
    graph: LayerGraph, within: str | None = None, outputs: tuple[str, ...] | None = None
) -> GradientPathMetrics:
    """The gradient-path metrics of ``graph`` (definitions in the module docstring).

    ``within`` (a scope prefix such as ``backbone.stage3``) scores that part as a network of its
    own: only its nodes take part, and every tensor it hands to a node outside it (or to an
    output) feeds the loss, so path lengths count the part's own layers only (the per-stage
    features of :mod:`nas.core.stage_paths`). ``outputs`` (names of ``output`` nodes) keeps only
    those outputs' losses: the gradient one detection level alone sends back.

    One reverse-topological pass of dynamic programming over channel segments; O(E · S · K)
    for E edges, S segments per tensor and K gradient sources per segment. Never enumerates paths.

    >>> g = LayerGraph(3, (8, 8))
    >>> x = g.conv(g.input_name, 4, name="stem")
    >>> y = g.conv(g.conv(x, 2, name="cv1"), 4, k=3, name="cv2")
    >>> _ = g.output(g.add(y, x))
    >>> m = gradient_path_metrics(g)
    >>> [(r.name, r.shortest_gradient_path, r.longest_gradient_path) for r in m.layers]
    [('stem', 1, 3), ('cv1', 2, 2), ('cv2', 1, 1)]
    >>> m.layer("stem").gradient_timestamps, m.max_shortest_gradient_path
    ((1, 3), 2)
    >>> sorted(m.gradient_combination("stem"))
    [(1, 'loss'), (3, 'cv1[0:2]')]
    """
    nodes, unit_rows, uid_of = _backward(graph, within, outputs)
    return _assemble(nodes, unit_rows, uid_of)


def _backward(
    graph: LayerGraph, within: str | None, outputs: tuple[str, ...] | None
) -> tuple[list[Node], _UnitRows, list[tuple[int, int]]]:
    """The reverse-topological pass of :func:`gradient_path_metrics`: the nodes in forward order,
    each layer's units (cut by the segments its consumers pushed) and ``uid -> (layer node index,
    unit index)`` (uid 0 is the loss)."""
    nodes = list(graph.nodes.values())
    index = {n.name: i for i, n in enumerate(nodes)}
    pushed: list[list[list[_Seg]] | None] = [None] * len(nodes)
    loss_payload: _Payload = {LOSS: 1}
    if outputs is not None and not set(outputs) <= {n.name for n in nodes if n.op == "output"}:
        raise ValueError(f"gradient_path_metrics: {sorted(outputs)} are not all output nodes")
    inside: list[bool] | None = None
    if within is not None:
        prefix = within + "."
        inside = [n.name.startswith(prefix) for n in nodes]
        if not any(inside):
            raise ValueError(f"gradient_path_metrics: no node in scope {within!r}")
        leaving = {i for j, n in enumerate(nodes) if not inside[j] for i in (index[x] for x in n.inputs)}
    unit_rows: _UnitRows = {}
    uid_of: list[tuple[int, int]] = [(-1, -1)]  # uid -> (layer node index, unit index)
    next_uid = 1

    def push(name: str, segs: list[_Seg]) -> None:
        if not segs:
            return
        j = index[name]
        lst = pushed[j]
        if lst is None:
            pushed[j] = [segs]
        else:
            lst.append(segs)

    for i in range(len(nodes) - 1, -1, -1):
        node = nodes[i]
        op = node.op
        c = node.channels
        if inside is not None and not inside[i]:
            continue
        lists = pushed[i]
        if (op == "output" and (outputs is None or node.name in outputs)) or (inside is not None and i in leaving):
            lists = (lists or []) + [[(0, c, loss_payload)]]
        if op == "conv" or op == "linear":
            segs = _overlay(lists, c) if lists else [(0, c, None)]
            rows = []
            for lo, hi, p in segs:
                if p is None:
                    rows.append((lo, hi, None, 0, 0))
                    continue
                m = 0
                for v in p.values():
                    m |= v
                rows.append((lo, hi, p, m << 1, next_uid))
                uid_of.append((i, len(rows) - 1))
                next_uid += 1
            unit_rows[i] = rows
            src = node.inputs[0]
            c_in = nodes[index[src]].channels
            groups = node.attrs.get("groups", 1) if op == "conv" else 1
            if groups == 1:
                pin = {uid: ts for _, _, _, ts, uid in rows if uid}
                push(src, [(0, c_in, pin or None)])
            else:
                push(src, _grouped_input([(lo, hi, uid, ts) for lo, hi, _, ts, uid in rows], c, c_in, groups))
            continue
        if not lists:
            continue  # nothing reads this tensor: no gradient, no cuts
        segs = _overlay(lists, c)
        if op == "concat":
            off = 0
            for x in node.inputs:
                w = nodes[index[x]].channels
                push(x, _window(segs, off, off + w, -off))
                off += w
        elif op == "add":
            x, y = node.inputs
            if node.attrs.get("full", True):
                push(x, segs)
                push(y, segs)
            else:
                (dlo, dhi), (slo, _) = node.attrs["dst"], node.attrs["src"]
                push(x, _cut(segs, (dlo, dhi)))
                push(y, _window(segs, dlo, dhi, slo - dlo))
        elif op == "mul":  # a gate: the gradient reaches both operands (a 1-channel one from every channel)
            x, y = node.inputs
            push(x, segs)
            if nodes[index[y]].channels == c:
                push(y, segs)
            else:
                p = None
                for _, _, q in segs:
                    p = _union(p, q)
                push(y, [(0, 1, p)])
        elif op == "reduce":  # channels -> 1: every input channel gets the one channel's gradient
            src = node.inputs[0]
            push(src, [(0, nodes[index[src]].channels, segs[0][2])])
        elif op == "split":
            lo = node.attrs["lo"]
            push(node.inputs[0], [(a + lo, b + lo, p) for a, b, p in segs])
        elif op == "detach":
            push(node.inputs[0], [(a, b, None) for a, b, _ in segs])
        elif op == "flatten":
            hw = node.attrs["hw"]
            mapped = [(a // hw, -(-b // hw), p) for a, b, p in segs]
            if all(s[1] <= t[0] for s, t in zip(mapped, mapped[1:], strict=False)):
                push(node.inputs[0], mapped)
            else:  # a cut inside one channel's features: overlay them
                for s in mapped:
                    push(node.inputs[0], [s])
        elif op in ("maxpool", "gap", "upsample", "output"):
            for x in node.inputs:
                push(x, segs)
        elif op == "input":
            pass
        else:
            raise ValueError(f"gradient_path_metrics: node {node.name!r} has unknown op {op!r}")
    return nodes, unit_rows, uid_of


def _assemble(nodes: list[Node], unit_rows: _UnitRows, uid_of: list[tuple[int, int]]) -> GradientPathMetrics:
    """The metrics from :func:`_backward`'s units, in forward order."""
    source_names = {LOSS: "loss"}
    for uid in range(1, len(uid_of)):
        li, ui = uid_of[uid]
        lo, hi = unit_rows[li][ui][0], unit_rows[li][ui][1]
        source_names[uid] = f"{nodes[li].name}[{lo}:{hi}]"
    layers: list[LayerMetrics] = []
    total = 0
    seen: dict[frozenset[tuple[int, int]], int] = {}  # combination set -> first layer index
    dup_keys: set[frozenset[tuple[int, int]]] = set()
    keyed: list[tuple[frozenset[tuple[int, int]], int]] = []
    grad_channels = 0
    max_short: int | None = None
    max_long: int | None = None
    for i in sorted(unit_rows):
        rows = unit_rows[i]
        units = []
        layer_mask = 0
        for lo, hi, p, ts, _ in rows:
            if p is None:
                units.append(UnitMetrics((lo, hi), 0, 0, 0, None))
                continue
            layer_mask |= ts
            n_comb = 0
            for v in p.values():
                n_comb += v.bit_count()
            width = hi - lo
            total += n_comb * width
            grad_channels += width
            key = frozenset(p.items())
            first = seen.setdefault(key, i)
            if first != i:
                dup_keys.add(key)
            keyed.append((key, width))
            units.append(UnitMetrics((lo, hi), ts, len(p), n_comb, p))
        if layer_mask:
            short = (layer_mask & -layer_mask).bit_length() - 1
            long_ = layer_mask.bit_length() - 1
            if max_short is None or short > max_short:
                max_short = short
            if max_long is None or long_ > max_long:
                max_long = long_
            layers.append(LayerMetrics(nodes[i].name, short, long_, layer_mask, tuple(units)))
        else:
            layers.append(LayerMetrics(nodes[i].name, None, None, 0, tuple(units)))
    dup_channels = sum(w for key, w in keyed if key in dup_keys)
    # gradient_overlap: below[uid] = bits of the sources of every layer unit downstream of unit uid
    below = [0] * len(uid_of)
    overlap_sum = overlap_w = 0
    for uid in range(1, len(uid_of)):  # uids are handed out from the loss backwards: sources first
        li, ui = uid_of[uid]
        lo, hi, p, _, _ = unit_rows[li][ui]
        acc = 0
        for src in p:
            if src != LOSS:
                sp = unit_rows[uid_of[src][0]][uid_of[src][1]][2]
                for s2 in sp:
                    acc |= 1 << s2
                acc |= below[src]
        below[uid] = acc
        n_all = n_dup = 0
        for src, mask in p.items():
            k = mask.bit_count()
            n_all += k
            if acc >> src & 1:
                n_dup += k
        overlap_sum += (hi - lo) * n_dup / n_all
        overlap_w += hi - lo
    return GradientPathMetrics(
        max_shortest_gradient_path=max_short,
        longest_gradient_path=max_long,
        gradient_combinations=total,
        distinct_gradient_combinations=len(seen),
        duplicate_gradient_ratio=dup_channels / grad_channels if grad_channels else 0.0,
        layers=tuple(layers),
        gradient_overlap=overlap_sum / overlap_w if overlap_w else 0.0,
        _source_names=source_names,
    )
