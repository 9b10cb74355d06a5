"""``nas latency CONFIG [--device cpu|cuda] [--img-size N] [--batch N] [--measure] [--json]``:
predicted (and with ``--measure`` measured) latency of a preset or config on this device.

The first call on a device builds its latency table (a progress bar on stderr, ~5 min on one
CPU thread) and caches it under ``runs/latency/<device fingerprint>.json``; later calls predict
in milliseconds. :func:`latency` is the Python function behind it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nas.cli.format import print_json
from nas.engine.latency import DEVICES, LatencyError


def add_latency_parser(subparsers: Any) -> None:
    """Register the ``latency`` subcommand on the ``nas`` parser's subparsers."""
    p = subparsers.add_parser(
        "latency",
        help="predicted (and measured) latency of a preset or config on this device",
        description="Predict the latency of CONFIG from its IR and this device's latency table (built and cached "
        "on first use); --measure also runs the built model (ONNX Runtime on CPU, CUDA events on CUDA).",
    )
    p.add_argument("config", help="preset name or YAML file")
    p.add_argument("--device", default="cpu", help=f"one of {', '.join(DEVICES)} (default: %(default)s)")
    p.add_argument("--img-size", type=int, help="image size, a multiple of 32 (default: the config's)")
    p.add_argument("--batch", type=int, default=1, help="batch size (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads, pinned (default: %(default)s)")
    p.add_argument("--measure", action="store_true", help="also measure the built model")
    p.add_argument("--rebuild-table", action="store_true", help="measure this device's table again")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--runs-dir", default="runs", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_latency)


def latency(
    spec: Any,
    device: str = "cpu",
    img_size: int | None = None,
    batch: int = 1,
    measure: bool = False,
    threads: int = 1,
    runs_dir: str | Path = "runs",
    rebuild_table: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Predicted and (``measure``) measured latency in ms of a preset, YAML path or ArchConfig;
    the object ``nas latency --json`` prints."""
    from nas.api import _resolve
    from nas.core.memory import peak_memory_bytes
    from nas.engine.latency import check_device, latency_model, measure_latency, predict_latency_ms, table_hit_rate
    from search_spaces import compile_config

    check_device(device)
    if not 1 <= batch <= 1024:
        raise LatencyError(f"--batch: {batch} is out of range; accepted: an integer from 1 to 1024")
    if not 1 <= threads <= 256:
        raise LatencyError(f"--threads: {threads} is out of range; accepted: an integer from 1 to 256")
    cfg = _resolve(spec, img_size)
    graph = compile_config(cfg)
    model = latency_model(device, threads, runs_dir, rebuild=rebuild_table, progress=progress)
    m = measure_latency(graph, device, batch, threads) if measure else {"wall_ms": None, "cpu_ms": None}
    return {
        "config": str(spec) if not hasattr(spec, "family") else "config",
        "predicted_ms": round(predict_latency_ms(graph, model, batch), 3),
        "measured_ms": None if m["wall_ms"] is None else round(m["wall_ms"], 3),
        "measured_cpu_ms": None if m["cpu_ms"] is None else round(m["cpu_ms"], 3),
        "device": device,
        "img_size": cfg.img_size,
        "batch": batch,
        "threads": threads if device == "cpu" else None,
        "runtime": "onnxruntime" if device == "cpu" else "torch+cuda-events",
        "fingerprint": model.fingerprint,
        "table_version": model.version,
        "table_hit_rate": round(table_hit_rate(graph, model), 3),
        "peak_memory_bytes": peak_memory_bytes(graph, batch),
    }


def cmd_latency(args: argparse.Namespace) -> int:
    out = latency(
        args.config,
        args.device,
        args.img_size,
        args.batch,
        args.measure,
        args.threads,
        args.runs_dir,
        args.rebuild_table,
    )
    if args.json:
        print_json(out)
        return 0
    where = f"{out['device']}, {out['threads']} thread(s)" if out["device"] == "cpu" else out["device"]
    print(f"{out['config']} @ {out['img_size']}x{out['img_size']}, batch {out['batch']} on {where} ({out['runtime']})")
    print(f"  predicted: {out['predicted_ms']:.1f} ms  (table {out['fingerprint']} v{out['table_version']})")
    if out["measured_ms"] is not None:
        err = (out["predicted_ms"] - out["measured_ms"]) / out["measured_ms"]
        print(
            f"  measured:  {out['measured_ms']:.1f} ms wall clock (median of 5 after 2 warm-up; prediction {err:+.0%})"
        )
        if out["measured_cpu_ms"] is not None:
            print(f"             {out['measured_cpu_ms']:.1f} ms thread CPU time (the same runs without other load)")
    print(f"  peak activation memory: {out['peak_memory_bytes'] / 2**20:.1f} MiB")
    return 0
