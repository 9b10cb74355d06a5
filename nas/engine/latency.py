"""Latency on the user's own device: a per-op lookup table measured once per device, a small
calibration fitted on whole-model measurements, and a prediction from the IR alone.

FLOPs rank detectors poorly by milliseconds (HW-NAS-Bench), and published latency tables are for
someone else's device. So:

1. **Table.** Every op of the IR has a *signature* (op kind, in/out channels, kernel, stride,
   groups, spatial size, ...). The table holds the median time of each signature that the
   presets and a fixed sample of the search space contain, each op exported alone and run by the
   same runtime as the whole model (ONNX Runtime on CPU, torch + CUDA events on CUDA). It is
   cached under ``runs/latency/<device fingerprint>.json``.
2. **Fallback.** A signature not in the table (another width, another image size) is predicted
   by a per-op-kind least-squares fit ``ms = c0 + c1·FLOPs + c2·bytes`` on the table's entries.
3. **Calibration.** The sum over ops misses what a whole graph does differently (fusion, caches,
   scheduling): ``ms = scale · Σ op ms + offset`` fitted on whole-model measurements.

:func:`predict_latency_ms` is a dictionary walk over the graph's nodes (well under 1 ms per
candidate), so the cheap stage of a search can price every candidate. Measurements pin the
thread count (default 1) and say so. With one thread, the table and calibration are timed by the
thread's CPU time rather than the wall clock: on a shared machine the wall clock also counts
other processes' time slices, which no model of this device's speed should learn.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.core.cost import node_cost
from nas.core.errors import UsageError
from nas.core.extras import require
from nas.core.ir import LayerGraph, Node
from nas.core.memory import BYTES_PER_ELEMENT

TABLE_FORMAT = 1
DEVICES = ("cpu", "cuda")
DEFAULT_IMG_SIZES = (320, 640)
TABLE_SEED = 20261201  # the space sample whose ops the table measures (benchmarks hold out other seeds)
TABLE_RANDOM_CONFIGS = 16
CALIBRATION_CONFIGS = 6
FREE_OPS = frozenset({"input", "output", "detach"})  # no kernel runs: exported as nothing


class LatencyError(UsageError):
    """A latency request that cannot be served (no GPU, bad option, unreadable table)."""


Signature = tuple


def op_signature(graph: LayerGraph, node: Node) -> Signature | None:
    """The lookup key of ``node``: what its run time depends on (``None`` for ops that run nothing).

    >>> g = LayerGraph(3, (64, 64))
    >>> op_signature(g, g.node(g.conv(g.input_name, 16, k=3, stride=2)))
    ('conv', 3, 16, 3, 2, 1, True, True, False, 64, 64)
    """
    op = node.op
    if op in FREE_OPS:
        return None
    src = graph.nodes[node.inputs[0]]
    h, w = src.size
    a = node.attrs
    if op == "conv":
        return (
            "conv",
            src.channels,
            node.channels,
            a["k"],
            a["stride"],
            a["groups"],
            a["bn"],
            a["act"],
            a["bias"],
            h,
            w,
        )
    if op == "linear":
        return ("linear", src.channels, node.channels)
    if op == "concat":
        return ("concat", tuple(graph.nodes[i].channels for i in node.inputs), h, w)
    if op == "add":
        return ("add", src.channels, graph.nodes[node.inputs[1]].channels, a["dst"], a["src"], h, w)
    if op == "split":
        return ("split", src.channels, a["lo"], a["hi"], h, w)
    if op == "maxpool":
        return ("maxpool", src.channels, a["k"], a["stride"], h, w)
    if op == "upsample":
        return ("upsample", src.channels, a["scale"], h, w)
    if op in ("gap", "flatten"):
        return (op, src.channels, h, w)
    raise LatencyError(f"op {op!r} has no latency signature")  # pragma: no cover - the IR has no other ops


def _group(sig: Signature) -> str:
    """Ops that share one fallback fit: convs by kernel and stride, the rest by kind."""
    return f"conv{sig[3]}s{sig[4]}" if sig[0] == "conv" else sig[0]


def _features(graph: LayerGraph, node: Node) -> tuple[float, float]:
    """(GFLOPs, MB read + written) of one op: what the fallback fit regresses on."""
    _, flops = node_cost(node, graph.nodes[node.inputs[0]].channels)
    elems = node.channels * node.size[0] * node.size[1]
    elems += sum(graph.nodes[i].channels * graph.nodes[i].size[0] * graph.nodes[i].size[1] for i in node.inputs)
    return flops / 1e9, elems * BYTES_PER_ELEMENT / 1e6


@dataclass
class LatencyModel:
    """A device's latency table, fallback fits and calibration (one ``runs/latency/*.json``)."""

    fingerprint: str
    device: str
    threads: int
    table: dict[Signature, float]
    fallback: dict[str, list[float]]
    scale: float = 1.0
    offset_ms: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """Format and content hash: a study records it so a rebuilt table is visible."""
        blob = json.dumps([sorted(map(_to_json, self.table.items())), self.fallback, self.scale, self.offset_ms])
        return f"{TABLE_FORMAT}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"

    def op_ms(self, graph: LayerGraph, node: Node) -> float:
        """Uncalibrated time of one op: the table entry, else the fallback fit of its kind."""
        sig = op_signature(graph, node)
        if sig is None:
            return 0.0
        hit = self.table.get(sig)
        if hit is not None:
            return hit
        c = self.fallback.get(_group(sig)) or self.fallback["all"]
        gflops, mb = _features(graph, node)
        return c[0] + c[1] * gflops + c[2] * mb

    def to_json(self) -> dict[str, Any]:
        return {
            "format": TABLE_FORMAT,
            "fingerprint": self.fingerprint,
            "device": self.device,
            "threads": self.threads,
            "scale": self.scale,
            "offset_ms": self.offset_ms,
            "fallback": self.fallback,
            "info": self.info,
            "table": [_to_json(kv) for kv in self.table.items()],
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> LatencyModel:
        if obj.get("format") != TABLE_FORMAT:
            raise ValueError(f"format {obj.get('format')!r}, expected {TABLE_FORMAT}")
        table = {_to_tuple(sig): float(ms) for sig, ms in obj["table"]}
        return cls(
            obj["fingerprint"],
            obj["device"],
            int(obj["threads"]),
            table,
            {k: [float(x) for x in v] for k, v in obj["fallback"].items()},
            float(obj["scale"]),
            float(obj["offset_ms"]),
            dict(obj.get("info", {})),
        )


def _to_json(item: tuple[Signature, float]) -> list[Any]:
    sig, ms = item
    return [[list(x) if isinstance(x, tuple) else x for x in sig], ms]


def _to_tuple(x: Any) -> Any:
    return tuple(_to_tuple(v) for v in x) if isinstance(x, list) else x


def raw_latency_ms(graph: LayerGraph, model: LatencyModel) -> float:
    """Σ of the ops' uncalibrated times (batch 1)."""
    return sum(model.op_ms(graph, node) for node in graph.nodes.values())


def predict_latency_ms(graph: LayerGraph, model: LatencyModel, batch: int = 1) -> float:
    """Predicted latency of one forward of ``graph`` on ``model``'s device, in ms, from the IR
    alone. ``batch`` > 1 scales the batch-1 prediction linearly (the table is measured at batch 1).

    >>> g = LayerGraph(3, (32, 32))
    >>> _ = g.output(g.conv(g.input_name, 8, k=3))
    >>> m = LatencyModel("toy", "cpu", 1, {op_signature(g, g.node("conv")): 0.5}, {"all": [0, 0, 0]}, 2.0, 1.0)
    >>> predict_latency_ms(g, m)
    2.0
    """
    return model.scale * batch * raw_latency_ms(graph, model) + model.offset_ms


def table_hit_rate(graph: LayerGraph, model: LatencyModel) -> float:
    """Share of the graph's (timed) ops whose signature is in the table — how much the fallback fit decides."""
    sigs = [s for s in (op_signature(graph, n) for n in graph.nodes.values()) if s is not None]
    return sum(s in model.table for s in sigs) / max(1, len(sigs))


# -- devices ----------------------------------------------------------------------------------
def check_device(device: str) -> None:
    """A clear error for a device that is not known or not present, or (CPU) whose runtime is not
    installed: the CPU table is timed in ONNX Runtime on an ONNX export, both the ``onnx`` extra."""
    if device not in DEVICES:
        raise LatencyError(f"--device: {device!r} is not known; accepted: {', '.join(DEVICES)}")
    if device == "cpu":
        for module in ("onnxruntime", "onnx"):
            require(module, "latency on --device cpu")
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise LatencyError("--device cuda: no CUDA GPU is visible to torch on this machine; accepted: --device cpu")


def device_fingerprint(device: str, threads: int = 1) -> str:
    """A file-name-safe name of the device and runtime whose measurements a table holds."""
    check_device(device)
    if device == "cuda":
        import torch

        name, runtime = torch.cuda.get_device_name(0), f"torch{torch.__version__.split('+')[0]}"
    else:
        onnxruntime = require("onnxruntime", "latency on --device cpu")
        name, runtime = _cpu_name(), f"ort{onnxruntime.__version__}-t{threads}"
    slug = re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-")
    return f"{device}-{slug}-{runtime}"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown-cpu"


# -- measurement ------------------------------------------------------------------------------
def _median_ms(fn: Callable[[], Any], warmup: int, runs: int, clock: Callable[[Callable[[], Any]], float]) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(clock(fn) for _ in range(runs))


def _wall_ms(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def _thread_cpu_ms(fn: Callable[[], Any]) -> float:
    """CPU time of the calling thread: with one intra-op thread ONNX Runtime computes on it, so
    this is the run's cost without the time slices other processes of a shared machine take."""
    t = time.thread_time()
    fn()
    return (time.thread_time() - t) * 1e3


def _clock(device: str, threads: int) -> Callable[[Callable[[], Any]], float]:
    """What the table and calibration are timed with: CUDA events; one-thread CPU time; else wall time."""
    return _cuda_ms if device == "cuda" else _thread_cpu_ms if threads == 1 else _wall_ms


def _cuda_ms(fn: Callable[[], Any]) -> float:
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end)


def _runner(module: Any, shapes: list[tuple[int, ...]], device: str, threads: int) -> Callable[[], Any]:
    """A zero-argument call that runs ``module`` once on zeros of ``shapes`` on ``device``."""
    import torch

    module = module.eval()
    xs = [torch.zeros(s) for s in shapes]
    if device == "cuda":
        module, xs = module.cuda(), [x.cuda() for x in xs]

        def run() -> Any:
            with torch.no_grad():
                return module(*xs)

        return run
    import io

    ort = require("onnxruntime", "latency on --device cpu")
    require("onnx", "latency on --device cpu")  # torch.onnx.export needs it
    torch.set_num_threads(threads)
    buf = io.BytesIO()
    names = [f"x{i}" for i in range(len(xs))]
    with torch.no_grad():
        torch.onnx.export(module, tuple(xs), buf, input_names=names, opset_version=17, dynamo=False)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
    feed = {n: x.numpy() for n, x in zip(names, xs, strict=True)}
    return lambda: sess.run(None, feed)


def measure_latency(
    graph: LayerGraph, device: str = "cpu", batch: int = 1, threads: int = 1, warmup: int = 2, runs: int = 5
) -> dict[str, float | None]:
    """Measured latency of the built model, median of ``runs`` after ``warmup``: ONNX Runtime with
    ``threads`` intra-op threads on CPU, torch with CUDA events on CUDA. ``wall_ms`` is the wall
    clock (CUDA events); ``cpu_ms``, for one-thread CPU runs, the same runs' thread CPU time —
    what the run costs without a shared machine's other load."""
    import contextlib
    import warnings

    from nas.core.module import build

    check_device(device)
    h, w = graph.node(graph.input_name).size
    with warnings.catch_warnings(), contextlib.redirect_stderr(open(os.devnull, "w")):  # noqa: SIM115
        warnings.simplefilter("ignore")
        run = _runner(build(graph), [(batch, graph.node(graph.input_name).channels, h, w)], device, threads)
    if device == "cuda":
        return {"wall_ms": _median_ms(run, warmup, runs, _cuda_ms), "cpu_ms": None}
    for _ in range(warmup):
        run()
    wall, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.thread_time()
        run()
        cpu.append((time.thread_time() - c) * 1e3)
        wall.append((time.perf_counter() - t) * 1e3)
    return {"wall_ms": statistics.median(wall), "cpu_ms": statistics.median(cpu) if threads == 1 else None}


def _op_module(graph: LayerGraph, node: Node) -> tuple[Any, list[tuple[int, ...]]]:
    """``node`` alone as a torch module, and the shapes of its inputs (batch 1)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from nas.core.module import ConvBNAct, _add

    srcs = [graph.nodes[i] for i in node.inputs]
    shapes = [(1, s.channels) if s.flat else (1, s.channels, *s.size) for s in srcs]
    a, op = node.attrs, node.op
    if op == "conv":
        return ConvBNAct(
            srcs[0].channels, node.channels, a["k"], a["stride"], a["groups"], a["bn"], a["act"], a["bias"]
        ), shapes
    if op == "linear":
        return nn.Linear(srcs[0].channels, node.channels), shapes
    fns: dict[str, Callable[..., Any]] = {
        "concat": lambda *xs: torch.cat(xs, 1),
        "add": lambda x, y: _add(x, y, node),
        "split": lambda x: x[:, a["lo"] : a["hi"]],
        "maxpool": lambda x: F.max_pool2d(x, a["k"], a["stride"], a["k"] // 2),
        "gap": lambda x: torch.flatten(F.adaptive_avg_pool2d(x, 1), 1),
        "flatten": lambda x: torch.flatten(x, 1),
        "upsample": lambda x: F.interpolate(x, scale_factor=a["scale"], mode="nearest"),
    }

    class Op(nn.Module):
        def forward(self, *xs: Any) -> Any:
            return fns[op](*xs)

    return Op(), shapes


def _table_graphs(img_sizes: Iterable[int]) -> list[LayerGraph]:
    """The graphs whose ops the table measures: every preset and a fixed sample of the space."""
    import dataclasses

    from search_spaces import compile_config, load_config, preset_names, validate
    from search_spaces.space import SearchSpace

    rng = random.Random(TABLE_SEED)
    cfgs = [load_config(p) for p in preset_names()] + [SearchSpace().sample(rng) for _ in range(TABLE_RANDOM_CONFIGS)]
    return [compile_config(validate(dataclasses.replace(c, img_size=s))) for s in img_sizes for c in cfgs]


def calibration_graphs(img_sizes: Iterable[int]) -> list[LayerGraph]:
    """Whole models the calibration is fitted on: the first space samples of the table's seed."""
    import dataclasses

    from search_spaces import compile_config, validate
    from search_spaces.space import SearchSpace

    rng = random.Random(TABLE_SEED)
    cfgs = [SearchSpace().sample(rng) for _ in range(CALIBRATION_CONFIGS)]
    return [compile_config(validate(dataclasses.replace(c, img_size=s))) for s in img_sizes for c in cfgs]


def _lstsq_nonneg(rows: list[list[float]], ys: list[float]) -> list[float]:
    """Least squares in relative error with non-negative coefficients (drop the most negative
    feature and refit): a time is never decreased by more work."""
    import numpy as np

    x, y = np.asarray(rows, float), np.asarray(ys, float)
    wt = 1.0 / np.maximum(y, 1e-6)
    active = list(range(x.shape[1]))
    coef = np.zeros(x.shape[1])
    while active:
        sol, *_ = np.linalg.lstsq(x[:, active] * wt[:, None], y * wt, rcond=None)
        if (sol >= 0).all():
            coef[active] = sol
            break
        active.pop(int(np.argmin(sol)))
    return [float(c) for c in coef]


def fit_fallback(entries: list[tuple[Signature, tuple[float, float], float]]) -> dict[str, list[float]]:
    """Per op kind, ``ms = c0 + c1·GFLOPs + c2·MB`` over the measured (signature, features, ms);
    ``all`` fits every entry (kinds with fewer than 4 entries use it)."""
    groups: dict[str, list[tuple[tuple[float, float], float]]] = {"all": []}
    for sig, feats, ms in entries:
        groups.setdefault(_group(sig), []).append((feats, ms))
        groups["all"].append((feats, ms))
    out = {}
    for g, items in groups.items():
        if len(items) >= 4:
            out[g] = _lstsq_nonneg([[1.0, f, b] for (f, b), _ in items], [ms for _, ms in items])
    return out


def fit_calibration(raw: list[float], measured: list[float]) -> tuple[float, float]:
    """``measured ≈ scale · raw + offset`` (relative least squares, offset ≥ 0)."""
    scale_offset = _lstsq_nonneg([[r, 1.0] for r in raw], measured)
    return scale_offset[0] or 1.0, scale_offset[1]


def build_latency_model(
    device: str = "cpu",
    threads: int = 1,
    img_sizes: Iterable[int] = DEFAULT_IMG_SIZES,
    runs_dir: str | Path = "runs",
    progress: bool = True,
    graphs: list[LayerGraph] | None = None,
    calibration: list[LayerGraph] | None = None,
) -> LatencyModel:
    """Measure every op signature of ``graphs`` (default: presets + a fixed space sample at
    ``img_sizes``) on ``device``, fit the fallback and the calibration, and cache the result
    under ``runs_dir/latency/<fingerprint>.json``. About 5 min on one thread of a 2-core CPU."""
    import warnings

    from tqdm import tqdm

    from nas.core.runio import atomic_write_json

    check_device(device)
    img_sizes = tuple(img_sizes)
    t0 = time.perf_counter()
    graphs = _table_graphs(img_sizes) if graphs is None else graphs
    calibration = calibration_graphs(img_sizes) if calibration is None else calibration
    todo: dict[Signature, tuple[LayerGraph, Node]] = {}
    for g in graphs:
        for node in g.nodes.values():
            sig = op_signature(g, node)
            if sig is not None and sig not in todo:
                todo[sig] = (g, node)
    clock = _clock(device, threads)
    table: dict[Signature, float] = {}
    entries = []
    bar = tqdm(
        todo.items(),
        desc=f"latency table ({device}, {threads} thread{'s' * (threads > 1)})",
        unit="op",
        disable=not progress,
        file=sys.stderr,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for sig, (g, node) in bar:
            module, shapes = _op_module(g, node)
            run = _runner(module, shapes, device, threads)
            first = clock(run)
            ms = min(first, _median_ms(run, 0, 5 if first < 20 else 3, clock))
            table[sig] = ms
            entries.append((sig, _features(g, node), ms))
    fallback = fit_fallback(entries)
    model = LatencyModel(device_fingerprint(device, threads), device, threads, table, fallback)
    raw, measured = [], []
    for g in tqdm(calibration, desc="calibration (whole models)", unit="model", disable=not progress, file=sys.stderr):
        raw.append(raw_latency_ms(g, model))
        m = measure_latency(g, device, threads=threads, warmup=1, runs=3)
        measured.append(m["cpu_ms"] if clock is _thread_cpu_ms else m["wall_ms"])
    model.scale, model.offset_ms = fit_calibration(raw, measured)
    model.info = {
        "img_sizes": list(img_sizes),
        "ops": len(table),
        "calibration": [{"raw_ms": r, "measured_ms": m} for r, m in zip(raw, measured, strict=True)],
        "build_seconds": round(time.perf_counter() - t0, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write_json(table_path(model.fingerprint, runs_dir), model.to_json())
    return model


def table_path(fingerprint: str, runs_dir: str | Path = "runs") -> Path:
    return Path(runs_dir) / "latency" / f"{fingerprint}.json"


def load_latency_model(device: str = "cpu", threads: int = 1, runs_dir: str | Path = "runs") -> LatencyModel:
    """The cached table of this device (see :func:`build_latency_model`); a LatencyError if none."""
    path = table_path(device_fingerprint(device, threads), runs_dir)
    if not path.is_file():
        raise LatencyError(
            f"no latency table for this device at {path}; accepted: build it once with "
            f"nas latency CONFIG --device {device} --threads {threads} (about 5 minutes)"
        )
    try:
        return LatencyModel.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, IndexError) as e:
        raise LatencyError(
            f"{path}: unreadable latency table ({type(e).__name__}: {e}); accepted: delete it, or rebuild with --rebuild-table"
        ) from None


def latency_model(
    device: str = "cpu", threads: int = 1, runs_dir: str | Path = "runs", rebuild: bool = False, progress: bool = True
) -> LatencyModel:
    """The cached table of this device, built (and cached) first if there is none."""
    if not rebuild and table_path(device_fingerprint(device, threads), runs_dir).is_file():
        return load_latency_model(device, threads, runs_dir)
    return build_latency_model(device, threads, runs_dir=runs_dir, progress=progress)
