"""Where benchmark results go and how they are written: one place for ``runs/bench/*.json``
and the timing median every speed benchmark takes."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.core.runio import atomic_write_text

#: every result and every study's trainings (relative: a benchmark run from elsewhere keeps its own)
BENCH_DIR = Path("runs/bench")


def median_seconds(fn: Callable[[], Any], repeat: int = 21) -> float:
    """Median wall seconds of ``fn()`` over ``repeat`` calls, after one warm-up call."""
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def write_json(path: Path, doc: Any, indent: int = 2, default: Callable[[Any], Any] | None = None) -> None:
    """Write ``doc`` as indented JSON with a final newline, atomically (a killed run never
    leaves a truncated file behind); ``default`` as :func:`json.dumps` takes it."""
    atomic_write_text(path, json.dumps(doc, indent=indent, default=default) + "\n")


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``runs/bench/<name>.json`` atomically, with the machine it ran on."""
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, **result}
    path = BENCH_DIR / f"{name}.json"
    write_json(path, result)
    return path
