"""How well the latency model predicts measured latency on held-out configs, against FLOPs and
params as predictors: MAPE and Kendall τ (goal: MAPE ≤ 10 %, τ ≥ 0.9, better than FLOPs), the
presets (within 25 %, τ ≥ 0.7), and the prediction time per candidate (goal ≤ 1 ms).

Held-out configs: random configs of the space (seed 7, never the table's seed), 30 of them
spread evenly over the FLOPs range, each at 320 and 640 px; measured with ONNX Runtime on
``--threads`` (default 1) after one warm-up, median of 3 — by the wall clock and, for one
thread, by the thread's CPU time (the same runs without the other load of a shared machine).

    python -m benchmarks.latency_model [--n 30] [--sizes 320,640] [--threads 1] [--presets]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import statistics
import time

import nas
from benchmarks.lib.common import median_seconds, write_result
from nas.core.memory import peak_memory_bytes
from nas.engine.latency import (
    TABLE_RANDOM_CONFIGS,
    TABLE_SEED,
    latency_model,
    measure_latency,
    predict_latency_ms,
    table_hit_rate,
)
from nas.engine.stats import kendall_tau
from search_spaces import compile_config, load_config, preset_names, validate
from search_spaces.space import SearchSpace

HELD_OUT_SEED = 7


def held_out_configs(n: int) -> list:
    """``n`` random configs spread evenly over FLOPs, none of them in the table's sample."""
    seen_rng = random.Random(TABLE_SEED)
    table_cfgs = {SearchSpace().sample(seen_rng) for _ in range(TABLE_RANDOM_CONFIGS)}
    rng = random.Random(HELD_OUT_SEED)
    pool = {c for c in (SearchSpace().sample(rng) for _ in range(20 * n)) if c not in table_cfgs}
    pool = sorted(pool, key=lambda c: (nas.core.cost(compile_config(c)).flops, repr(c)))
    return [pool[round(i * (len(pool) - 1) / (n - 1))] for i in range(n)]


def mape(pred: list[float], meas: list[float]) -> float:
    return 100 * statistics.fmean(abs(p - m) / m for p, m in zip(pred, meas, strict=True))


def evaluate(rows: list[dict], key: str = "measured_ms") -> dict:
    pred, meas = [r["predicted_ms"] for r in rows], [r[key] for r in rows]
    return {
        "against": key,
        "n": len(rows),
        "mape_percent": mape(pred, meas),
        "max_abs_error_percent": 100 * max(abs(p - m) / m for p, m in zip(pred, meas, strict=True)),
        "tau_predicted": kendall_tau(pred, meas),
        "tau_flops": kendall_tau([r["flops"] for r in rows], meas),
        "tau_params": kendall_tau([r["params"] for r in rows], meas),
    }


def row(graph, cfg, model, threads: int, name: str) -> dict:  # noqa: ANN001
    c = nas.core.cost(graph)
    r = {
        "config": name,
        "img_size": cfg.img_size,
        "flops": c.flops,
        "params": c.params,
        "peak_memory_bytes": peak_memory_bytes(graph),
        "table_hit_rate": table_hit_rate(graph, model),
        "predicted_ms": predict_latency_ms(graph, model),
    }
    m = measure_latency(graph, "cpu", threads=threads, warmup=1, runs=3)
    r["measured_ms"], r["measured_cpu_ms"] = m["wall_ms"], m["cpu_ms"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--sizes", default="320,640")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--presets", action="store_true", help="also the yolor presets at 320 px")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    load = os.getloadavg()
    t0 = time.perf_counter()
    model = latency_model("cpu", args.threads)
    print(
        f"table {model.fingerprint} v{model.version}: {len(model.table)} ops, scale {model.scale:.3f}, "
        f"offset {model.offset_ms:.2f} ms; load average {load[0]:.2f}"
    )
    cfgs = held_out_configs(args.n)
    graphs = [compile_config(c) for c in cfgs]
    per_candidate = median_seconds(lambda: [predict_latency_ms(g, model) for g in graphs], repeat=11) / len(graphs)
    with_compile = median_seconds(lambda: [predict_latency_ms(compile_config(c), model) for c in cfgs], 5) / len(cfgs)
    print(f"prediction: {per_candidate * 1e3:.3f} ms per candidate ({with_compile * 1e3:.3f} ms with compile)")
    result: dict = {
        "fingerprint": model.fingerprint,
        "table_version": model.version,
        "threads": args.threads,
        "load_average_start": load,
        "predict_ms_per_candidate": per_candidate * 1e3,
        "predict_with_compile_ms_per_candidate": with_compile * 1e3,
    }
    all_rows = []
    for size in sizes:
        rows = []
        for i, cfg in enumerate(cfgs):
            cfg = validate(dataclasses.replace(cfg, img_size=size))
            r = row(compile_config(cfg), cfg, model, args.threads, f"heldout{i}")
            rows.append(r)
            print(
                f"{size:4d} {r['config']:10s} {r['flops'] / 1e9:7.1f} GFLOPs  pred {r['predicted_ms']:8.1f} ms  "
                f"meas {r['measured_ms']:8.1f} ms  ({(r['predicted_ms'] / r['measured_ms'] - 1):+.0%}, "
                f"table hits {r['table_hit_rate']:.0%})",
                flush=True,
            )
        result[f"heldout_{size}"] = evaluate(rows)
        if args.threads == 1:
            result[f"heldout_{size}_cpu_time"] = evaluate(rows, "measured_cpu_ms")
        all_rows += rows
    result["heldout_all"] = evaluate(all_rows)
    if args.threads == 1:
        result["heldout_all_cpu_time"] = evaluate(all_rows, "measured_cpu_ms")
    if args.presets:
        rows = []
        for name in (p for p in preset_names() if p.startswith("yolor")):
            cfg = validate(dataclasses.replace(load_config(name), img_size=320))
            rows.append(row(compile_config(cfg), cfg, model, args.threads, name))
            print(f"preset {name:24s} pred {rows[-1]['predicted_ms']:7.1f} ms meas {rows[-1]['measured_ms']:7.1f} ms")
        result["presets_320"] = evaluate(rows)
        if args.threads == 1:
            result["presets_320_cpu_time"] = evaluate(rows, "measured_cpu_ms")
        all_rows += rows
    result["rows"] = all_rows
    result["load_average_end"] = os.getloadavg()
    result["wall_seconds"] = time.perf_counter() - t0
    for k, v in result.items():
        if isinstance(v, dict) and "n" in v:
            print(
                f"{k:14s} n={v['n']:3d}  MAPE {v['mape_percent']:5.1f} %  max {v['max_abs_error_percent']:5.1f} %  "
                f"tau pred {v['tau_predicted']:.3f}  tau FLOPs {v['tau_flops']:.3f}  tau params {v['tau_params']:.3f}"
            )
    print(
        f"load average {result['load_average_end'][0]:.2f}, {result['wall_seconds']:.0f} s; "
        f"wrote {write_result('latency_model', result)}"
    )


if __name__ == "__main__":
    main()
