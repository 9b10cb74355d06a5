"""Median time of compile + cost for the yolor presets, beside torch's FlopCounterMode on a
meta-device build of the same model. Target: compile + cost <= 2 ms.

    python -m benchmarks.cost_speed
"""

from __future__ import annotations

import statistics

import torch
from torch.utils.flop_counter import FlopCounterMode

import nas
from benchmarks.lib.common import median_seconds, write_result
from search_spaces import compile_config, load_config, preset_names


def flop_counter(cfg) -> int:  # noqa: ANN001
    with torch.device("meta"):
        model = nas.build(compile_config(cfg))
        x = torch.empty(1, 3, cfg.img_size, cfg.img_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    for name in [n for n in preset_names() if n.startswith("yolor")]:
        cfg = load_config(name)
        ir = median_seconds(lambda cfg=cfg: nas.cost(compile_config(cfg)), repeat=51)
        fc = median_seconds(lambda cfg=cfg: flop_counter(cfg), repeat=3)
        graph = compile_config(cfg)
        assert nas.cost(graph).flops == flop_counter(cfg)
        rows.append({"preset": name, "nodes": len(graph), "ir_ms": ir * 1e3, "flop_counter_ms": fc * 1e3})
        print(
            f"{name:24s} nodes={len(graph):4d}  compile+cost {ir * 1e3:7.3f} ms   FlopCounterMode(meta) {fc * 1e3:8.1f} ms"
        )
    ir_med = statistics.median(r["ir_ms"] for r in rows)
    fc_med = statistics.median(r["flop_counter_ms"] for r in rows)
    print(
        f"median: compile+cost {ir_med:.3f} ms (target <= 2 ms), FlopCounterMode {fc_med:.1f} ms, ratio {fc_med / ir_med:.0f}x"
    )
    path = write_result(
        "cost_speed",
        {"presets": rows, "median_compile_cost_ms": ir_med, "median_flop_counter_ms": fc_med, "target_ms": 2.0},
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
