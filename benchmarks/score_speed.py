"""How fast is the cheap stage? Compile + cost + all gradient-path metrics per candidate, and the
torch.fx path (trace + shape propagation + metrics) for comparison.

    .venv/bin/python -m benchmarks.score_speed [--random 200] [--hetero 200] [--repeats 5] [--fx-random 20]

Candidates: every preset (at its own image size) and ``--random`` configs drawn from the uniform
search space (640×640); ``--hetero`` per-stage configs from the default space ``yolor`` are timed
apart (target ≤ 2 ms median: compile + cost + all metrics), with ``ArchConfig.key()``. Each candidate is scored ``--repeats`` times; its time is the median of
those, and the figures are the median / p90 / max over candidates. Target (docs/architecture.md, the cheap stage):
≤ 5 ms median per candidate on one core, i.e. ≥ 200 candidates/s. Writes
``runs/bench/score_speed.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.lib.common import write_json
from nas.core.cost import cost
from nas.core.metrics import gradient_path_metrics
from search_spaces import ConfigError, compile_config, load_config, preset_names
from search_spaces.config import _key
from search_spaces.space import SPACES, SearchSpace

TARGET_MS = 5.0
HETERO_TARGET_MS = 2.0


def _stats(ms: list[float]) -> dict[str, float]:
    ms = sorted(ms)
    return {
        "median_ms": round(statistics.median(ms), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "p90_ms": round(ms[min(len(ms) - 1, int(0.9 * len(ms)))], 3),
        "max_ms": round(ms[-1], 3),
    }


def candidates(n_random: int, seed: int) -> tuple[list[tuple[str, Any]], int]:
    out = [(name, load_config(name)) for name in preset_names()]
    rng, space, skipped = random.Random(seed), SearchSpace(), 0
    while len(out) < len(preset_names()) + n_random:
        cfg = space.sample(rng)
        try:
            compile_config(cfg)
        except ConfigError:
            skipped += 1
            continue
        out.append((f"random{len(out) - len(preset_names())}", cfg))
    return out, skipped


def hetero_candidates(n: int, seed: int) -> list[tuple[str, Any]]:
    """Per-stage configs that compile (the space's repeat/width multipliers keep channels whole)."""
    rng, out = random.Random(f"hetero-{seed}"), []
    while len(out) < n:
        cfg = SPACES["yolor"].sample(rng)
        compile_config(cfg)
        out.append((f"hetero{len(out)}", cfg))
    return out


def time_keys(cands: list[tuple[str, Any]]) -> dict[str, float]:
    """``key()`` uncached (its memo cleared) and cached (the same config asked again)."""
    fresh, cached = [], []
    for _, c in cands:
        _key.cache_clear()
        t0 = time.perf_counter()
        c.key()
        t1 = time.perf_counter()
        c.key()
        t2 = time.perf_counter()
        fresh.append((t1 - t0) * 1e3)
        cached.append((t2 - t1) * 1e3)
    return {
        "uncached_median_ms": round(statistics.median(fresh), 4),
        "cached_median_ms": round(statistics.median(cached), 4),
    }


def time_cheap_stage(cands: list[tuple[str, Any]], repeats: int) -> dict[str, Any]:
    total, metrics_only, with_json, nodes = [], [], [], []
    for _, cfg in cands:
        runs, mruns, jruns = [], [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            g = compile_config(cfg)
            cost(g)
            t1 = time.perf_counter()
            m = gradient_path_metrics(g)
            t2 = time.perf_counter()
            m.to_dict()
            t3 = time.perf_counter()
            runs.append((t2 - t0) * 1e3)
            mruns.append((t2 - t1) * 1e3)
            jruns.append((t3 - t0) * 1e3)
        total.append(statistics.median(runs))
        metrics_only.append(statistics.median(mruns))
        with_json.append(statistics.median(jruns))
        nodes.append(len(g))
    out = {"compile_cost_metrics": _stats(total), "metrics_only": _stats(metrics_only)}
    out["compile_cost_metrics_to_dict"] = _stats(with_json)
    out["candidates_per_s"] = round(1e3 / out["compile_cost_metrics"]["median_ms"], 1)
    out["nodes"] = {"median": statistics.median(nodes), "max": max(nodes)}
    big = [t for t, n in zip(total, nodes, strict=True) if n >= 180]
    if big:
        out["yolor_size_ge_180_nodes"] = {"count": len(big), **_stats(big)}
    return out


def time_fx_path(cands: list[tuple[str, Any]], img: int) -> dict[str, Any]:
    import torch

    import nas
    from nas.core.fx import from_module

    torch.set_num_threads(1)
    trace, total = [], []
    warm = compile_config(dataclasses.replace(cands[0][1], img_size=img))
    with torch.device("meta"):
        from_module(nas.build(warm), (1, 3, img, img))  # one-off warm-up of the meta kernels
    for _, cfg in cands:
        g = compile_config(dataclasses.replace(cfg, img_size=img))
        with torch.device("meta"):
            model = nas.build(g)
        t0 = time.perf_counter()
        back = from_module(model, (1, 3, img, img))
        t1 = time.perf_counter()
        gradient_path_metrics(back)
        t2 = time.perf_counter()
        trace.append((t1 - t0) * 1e3)
        total.append((t2 - t0) * 1e3)
    return {"count": len(cands), "trace_shapeprop_ir": _stats(trace), "trace_and_metrics": _stats(total)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--random", type=int, default=200, help="random configs besides the presets (default 200)")
    ap.add_argument("--hetero", type=int, default=200, help="per-stage configs of space yolor (default 200)")
    ap.add_argument("--repeats", type=int, default=5, help="timings per candidate; its median counts (default 5)")
    ap.add_argument("--fx-random", type=int, default=20, help="random configs for the fx path (default 20)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/bench/score_speed.json")
    args = ap.parse_args(argv)

    cands, skipped = candidates(args.random, args.seed)
    cheap = time_cheap_stage(cands, args.repeats)
    het_cands = hetero_candidates(args.hetero, args.seed)
    hetero = time_cheap_stage(het_cands, args.repeats) if het_cands else {}
    if het_cands:
        hetero["key"] = time_keys(het_cands)
        hetero["uniform_key"] = time_keys(cands)
        hetero["meets_target"] = hetero["compile_cost_metrics"]["median_ms"] <= HETERO_TARGET_MS
    fx_cands = cands[: len(preset_names()) + args.fx_random]
    fxp = time_fx_path(fx_cands, img=640)
    result = {
        "benchmark": "score_speed",
        "candidates": {
            "presets": len(preset_names()),
            "random": args.random,
            "hetero": args.hetero,
            "invalid_skipped": skipped,
        },
        "repeats": args.repeats,
        "target_ms": TARGET_MS,
        "cheap_stage": cheap,
        "meets_target": cheap["compile_cost_metrics"]["median_ms"] <= TARGET_MS,
        "hetero_target_ms": HETERO_TARGET_MS,
        "heterogeneous": hetero,
        "fx_path": fxp,
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "loadavg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        },
    }
    c = cheap["compile_cost_metrics"]
    print(f"cheap stage, {len(cands)} candidates (median of {args.repeats} runs each):")
    print(
        f"  compile + cost + metrics: median {c['median_ms']:.2f} ms, p90 {c['p90_ms']:.2f} ms, max {c['max_ms']:.2f} ms "
        f"-> {cheap['candidates_per_s']:.0f} candidates/s (target <= {TARGET_MS} ms: {'met' if result['meets_target'] else 'MISSED'})"
    )
    print(
        f"  metrics alone: median {cheap['metrics_only']['median_ms']:.2f} ms; with to_dict(): median "
        f"{cheap['compile_cost_metrics_to_dict']['median_ms']:.2f} ms"
    )
    if "yolor_size_ge_180_nodes" in cheap:
        y = cheap["yolor_size_ge_180_nodes"]
        print(
            f"  candidates with >= 180 nodes ({y['count']}): median {y['median_ms']:.2f} ms, max {y['max_ms']:.2f} ms"
        )
    if hetero:
        h = hetero["compile_cost_metrics"]
        print(
            f"heterogeneous (per-stage) configs, {len(het_cands)}: compile + cost + metrics median {h['median_ms']:.2f} ms, "
            f"p90 {h['p90_ms']:.2f} ms, max {h['max_ms']:.2f} ms (target <= {HETERO_TARGET_MS} ms: "
            f"{'met' if hetero['meets_target'] else 'MISSED'}); key() {hetero['key']['uncached_median_ms']:.3f} ms "
            f"uncached, {hetero['key']['cached_median_ms']:.4f} ms cached (schema-1 key "
            f"{hetero['uniform_key']['uncached_median_ms']:.3f} ms)"
        )
    f = fxp["trace_and_metrics"]
    print(
        f"fx path, {fxp['count']} candidates at 640: trace + shape prop + IR + metrics median {f['median_ms']:.1f} ms, "
        f"p90 {f['p90_ms']:.1f} ms"
    )
    out = Path(args.out)
    write_json(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
