"""Shared helpers for benchmark scripts: timing medians and writing runs/bench/*.json."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path("runs/bench")


def median_seconds(fn: Callable[[], Any], repeat: int = 21) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``runs/bench/<name>.json`` atomically, with the machine it ran on."""
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, **result}
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    path = BENCH_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, path)
    return path
