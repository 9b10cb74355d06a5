"""LayerGraph -> the model YAML of WongKinYiu/yolov7 (``cfg/training/*.yaml``) or WongKinYiu/yolov9
(``models/detect/*.yaml``), read by their ``models/yolo.py`` (``Model(cfg)`` / ``parse_model``) unchanged.

Rows are ``[from, number, module, args]`` using only modules both parsers know: ``Conv`` (conv + BN +
SiLU, padding k//2, no bias: our ``conv``), ``Concat``, ``Shortcut`` (``x[0] + x[1]``), ``SP`` (max
pooling, padding k//2), ``nn.Upsample``; the detector head is the repository's own (``IDetect`` /
``DDetect``) on the three features our prediction convs read.

Neither parser has a channel slice. A conv whose output is sliced (a CSP/ELAN split, the identity share
of a PRN partial residual) is written as one conv per slice on the same input — the same weights,
params and FLOPs, as YOLOv7's own ELAN rows are written. The cut points a conv needs are found by a
fixed point over the graph: a slice cuts its input, a concat passes cuts to its parts, an add aligns
its own cuts to both operands and cuts them at a partial add's range (an operand in several pieces is
concatenated into one ``Shortcut`` input, so a full add never splits a conv), pooling and upsampling
pass them through. A concat emits no row until a conv (or the head) reads several pieces.
Every channel count must be a multiple of 8 (``parse_model`` rounds each conv's width up to one).
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.core.errors import GradpathError
from nas.core.ir import LayerGraph, Node

FLAVOURS = ("yolov7", "yolov9")
#: YOLOv7's P3–P5 anchors (cfg/training/yolov7.yaml): IDetect needs anchors; the search has none
YOLOV7_ANCHORS = ((12, 16, 19, 36, 40, 28), (36, 75, 76, 55, 72, 146), (142, 110, 192, 243, 459, 401))
HEADS = {"yolov7": "IDetect", "yolov9": "DDetect"}
_SUPPORTED = frozenset({"input", "conv", "concat", "add", "split", "maxpool", "upsample", "output"})


class ExportError(GradpathError):
    """A graph the target format cannot express (said in one line, nothing written)."""


@dataclass(frozen=True)
class Piece:
    """A whole row's output standing for channels of an IR tensor."""

    row: int
    width: int


@dataclass(frozen=True)
class Head:
    """What the repository's detector head replaces: our prediction convs, and the features they read."""

    preds: tuple[str, ...]
    features: tuple[str, ...]


def split_head(graph: LayerGraph) -> Head:
    """The prediction convs (bias, no BN, read by an output) and the neck features under them."""
    preds, feats = [], []
    for out in graph.outputs:
        pred = graph.node(graph.node(out).inputs[0])
        if pred.op != "conv" or pred.attrs["bn"] or not pred.attrs["bias"]:
            raise ExportError(f"output {out} is not read through a prediction conv; accepted: a detector (yolor)")
        preds.append(pred.name)
        feats.append(pred.inputs[0])
    strides = [graph.node(o).attrs.get("stride") for o in graph.outputs]
    if strides != [8, 16, 32]:
        raise ExportError(f"outputs at strides {strides}; accepted: a detector with P3–P5 outputs (8, 16, 32)")
    return Head(tuple(preds), tuple(feats))


def check_exportable(graph: LayerGraph, flavour: str) -> Head:
    """Refuse what ``flavour``'s parser cannot express, in one line; returns the head to replace."""
    if flavour not in FLAVOURS:
        raise ExportError(f"unknown YOLO format {flavour!r}; accepted: {', '.join(FLAVOURS)}")
    ops = {n.op for n in graph}
    if "detach" in ops:
        raise ExportError(
            f"{flavour}: stop-gradient variants need a detach module that {flavour}'s models/common.py lacks; "
            "accepted: configs without stop_gradient (export them with --format torch)"
        )
    other = sorted(ops - _SUPPORTED)
    if other:
        raise ExportError(f"{flavour}: ops {', '.join(other)} have no {flavour} module; accepted: the yolor family")
    return split_head(graph)


def cut_points(graph: LayerGraph, body: set[str]) -> dict[str, set[int]]:
    """Interior channel boundaries each tensor must be written in pieces at (fixed point, O(nodes × passes))."""
    cuts: dict[str, set[int]] = {n: set() for n in body}
    order = [graph.node(n) for n in graph.nodes if n in body]
    changed = True
    while changed:
        changed = False

        def need(name: str, points: set[int] | list[int]) -> None:
            nonlocal changed
            c = graph.node(name).channels
            new = {p for p in points if 0 < p < c} - cuts[name]
            if new:
                cuts[name] |= new
                changed = True

        for node in reversed(order):
            own = cuts[node.name]
            if node.op == "split":
                lo, hi = node.attrs["lo"], node.attrs["hi"]
                need(node.inputs[0], [lo, hi, *(lo + p for p in own)])
            elif node.op == "concat":
                off = 0
                for i in node.inputs:
                    w = graph.node(i).channels
                    need(i, [p - off for p in own if off < p < off + w])
                    off += w
            elif node.op in ("maxpool", "upsample"):
                need(node.inputs[0], own)
            elif node.op == "add":
                a, b = node.inputs
                (d0, d1), (s0, s1) = node.attrs["dst"], node.attrs["src"]
                need(a, [*own, d0, d1])
                need(b, [s0, s1, *(p - d0 + s0 for p in own if d0 < p < d1)])
    return cuts


class _Writer:
    def __init__(self, graph: LayerGraph, flavour: str) -> None:
        self.graph, self.flavour = graph, flavour
        self.rows: list[tuple[object, str, list[object], str]] = []  # (from, module, args, comment)
        self.section: list[str] = []
        self.pieces: dict[str, list[Piece]] = {}
        self._concats: dict[tuple[int, ...], int] = {}

    def emit(self, src: object, module: str, args: list[object], node: Node) -> int:
        self.rows.append((src, module, args, node.name))
        self.section.append("backbone" if node.name.startswith("backbone") else "head")
        return len(self.rows) - 1

    def one(self, name: str, reader: Node) -> int:
        """A row holding all of ``name``'s channels: its piece, or a Concat of its pieces."""
        return self.joined(self.pieces[name], reader)

    def joined(self, pieces: list[Piece], reader: Node) -> int:
        """One row holding ``pieces`` in order (a Concat, parameter-free, when there are several)."""
        rows = tuple(p.row for p in pieces)
        if len(rows) == 1:
            return rows[0]
        if rows not in self._concats:
            self._concats[rows] = self.emit(list(rows), "Concat", [1], reader)
        return self._concats[rows]

    def source(self, name: str, reader: Node) -> int:
        row = self.one(name, reader)
        if row < 0 and self.rows:
            raise ExportError(f"{self.flavour}: the image is read by {reader.name}, not only by the first row")
        return row


def _window(pieces: list[Piece], lo: int, hi: int, what: str) -> list[Piece]:
    out, off = [], 0
    for p in pieces:
        if off >= lo and off + p.width <= hi:
            out.append(p)
        elif off < hi and off + p.width > lo:  # pragma: no cover - cut_points guarantees alignment
            raise ExportError(f"internal: {what} [{lo}, {hi}) is not aligned with the pieces")
        off += p.width
    return out


def to_rows(graph: LayerGraph, flavour: str) -> tuple[list[tuple[object, str, list[object], str]], list[str], int]:
    """(rows, their sections, number of rows before the head) for ``flavour``."""
    head = check_exportable(graph, flavour)
    skip = set(head.preds) | set(graph.outputs)
    body = {n for n in graph.nodes if n not in skip}
    cuts = cut_points(graph, body)
    w = _Writer(graph, flavour)
    for node in graph:
        if node.name in skip:
            continue
        if node.op == "input":
            w.pieces[node.name] = [Piece(-1, node.channels)]
        elif node.op == "conv":
            a = node.attrs
            src = w.source(node.inputs[0], node)
            bounds = [0, *sorted(cuts[node.name]), node.channels]
            pieces = []
            for lo, hi in zip(bounds, bounds[1:], strict=False):
                if (hi - lo) % 8:
                    raise ExportError(
                        f"{flavour}: conv {node.name} writes channels [{lo}, {hi}) as one conv of {hi - lo}, which "
                        f"{flavour}'s parse_model rounds up to a multiple of 8; accepted: configs whose channels, "
                        "splits and identity shares are multiples of 8"
                    )
                args: list[object] = [hi - lo, a["k"], a["stride"]]
                if a["groups"] != 1:
                    args += [None, a["groups"]]
                pieces.append(Piece(w.emit(src, "Conv", args, node), hi - lo))
            w.pieces[node.name] = pieces
        elif node.op == "concat":
            w.pieces[node.name] = [p for i in node.inputs for p in w.pieces[i]]
        elif node.op == "split":
            w.pieces[node.name] = _window(w.pieces[node.inputs[0]], node.attrs["lo"], node.attrs["hi"], node.name)
        elif node.op in ("maxpool", "upsample"):
            if node.op == "maxpool":
                module, args = "SP", [node.attrs["k"], node.attrs["stride"]]
            else:
                module, args = "nn.Upsample", [None, node.attrs["scale"], "nearest"]
            w.pieces[node.name] = [
                Piece(w.emit(p.row, module, list(args), node), p.width) for p in w.pieces[node.inputs[0]]
            ]
        elif node.op == "add":
            a, b = node.inputs
            (d0, d1), (s0, _) = node.attrs["dst"], node.attrs["src"]
            pa, pb = w.pieces[a], w.pieces[b]
            # one Shortcut per range the add's own readers cut (usually one): operands in several
            # pieces are concatenated first, so no conv is split for an add alone
            bounds = sorted({d0, d1} | {p for p in cuts[node.name] if d0 < p < d1})
            added = []
            for lo, hi in zip(bounds, bounds[1:], strict=False):
                x = w.joined(_window(pa, lo, hi, node.name), node)
                y = w.joined(_window(pb, lo - d0 + s0, hi - d0 + s0, node.name), node)
                added.append(Piece(w.emit([x, y], "Shortcut", [1], node), hi - lo))
            c = graph.node(a).channels
            w.pieces[node.name] = _window(pa, 0, d0, node.name) + added + _window(pa, d1, c, node.name)
    feats = [w.one(f, graph.node(f)) for f in head.features]
    n_body = len(w.rows)
    args = [graph_classes(graph)] + (["anchors"] if flavour == "yolov7" else [])
    w.rows.append((feats, HEADS[flavour], args, "head"))
    w.section.append("head")
    return w.rows, w.section, n_body


def graph_classes(graph: LayerGraph) -> int:
    """The number of classes our prediction convs predict (4 box + 1 objectness + classes)."""
    return graph.node(split_head(graph).preds[0]).channels - 5


def _fmt(v: object) -> str:
    if v is None:
        return "None"
    if isinstance(v, str):
        return v if v == "anchors" else f"'{v}'"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def to_yaml(graph: LayerGraph, flavour: str, title: str = "") -> str:
    """The model YAML text for ``flavour`` (``yolov7`` or ``yolov9``)."""
    rows, sections, _ = to_rows(graph, flavour)
    nc = graph_classes(graph)
    lines = [f"# {title or 'gradpath-nas export'}: {flavour} model config, written by nas export", ""]
    lines += [f"nc: {nc}", "depth_multiple: 1.0", "width_multiple: 1.0", ""]
    if flavour == "yolov7":
        lines.append("anchors:")
        lines += [f"  - [{', '.join(map(str, a))}]  # P{3 + i}/{8 << i}" for i, a in enumerate(YOLOV7_ANCHORS)]
    else:
        lines.append("anchors: 3")
    for section in ("backbone", "head"):
        lines += ["", f"{section}:"]
        for i, ((src, module, args, where), sec) in enumerate(zip(rows, sections, strict=True)):
            if sec == section:
                lines.append(f"  - [{_fmt(src)}, 1, {module}, {_fmt(args)}]  # {i} {where}")
    return "\n".join(lines) + "\n"


def body_graph(graph: LayerGraph) -> LayerGraph:
    """``graph`` without our head: the backbone + neck, its outputs the features the prediction convs
    read (what an export must reproduce exactly, whatever head the target repository puts on it)."""
    head = split_head(graph)
    drop = set(head.preds) | set(graph.outputs)
    body = LayerGraph(graph.node(graph.input_name).channels, graph.node(graph.input_name).size)
    body.nodes = {k: v for k, v in graph.nodes.items() if k not in drop}
    for f, out in zip(head.features, graph.outputs, strict=True):
        body.output(f, stride=graph.node(out).attrs.get("stride"), name=f"feature_{out}")
    return body
