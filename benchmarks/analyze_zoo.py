"""``nas analyze`` on a zoo of real architectures (benchmarks/zoo.py): per model, whether it traces,
whether its FLOPs equal ``torch.utils.flop_counter.FlopCounterMode`` on the same input (batch 2
included), the trace time and the gradient-path metrics. Writes runs/bench/analyze_zoo.json.

    python -m benchmarks.analyze_zoo
"""

from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.lib.common import write_result
from benchmarks.lib.features import METRIC_KEYS
from benchmarks.zoo import ZOO
from nas.core.fx import TraceError, analyze


def counted_flops(model: torch.nn.Module, shape: tuple[int, ...]) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty(shape, device="meta"))
    return counter.get_total_flops()


def main() -> None:
    rows = []
    for name, (make, shape) in ZOO.items():
        with torch.device("meta"):
            model = make().eval()
        ref = counted_flops(model, shape)
        t = time.perf_counter()
        try:
            out = analyze(model, shape, name=name)
        except TraceError as e:
            rows.append({"model": name, "traced": False, "error": str(e), "flops_ref": ref})
            print(f"{name:<22} refused  {str(e)[:150]}")
            continue
        dt = time.perf_counter() - t
        row = {
            "model": name,
            "traced": True,
            "flops": out["flops"],
            "flops_ref": ref,
            "flops_equal": out["flops"] == ref,
            "trace_s": round(dt, 3),
            "layers": len(out["layers"]),
            **{k: out[k] for k in METRIC_KEYS},
        }
        rows.append(row)
        print(
            f"{name:<22} traced   flops {'==' if row['flops_equal'] else '!='} ref ({out['flops'] / 1e9:.3f} G)  "
            f"{dt:5.2f} s  layers {row['layers']:>3}  maxSGP {row['max_shortest_gradient_path']:>3}  "
            f"LGP {row['longest_gradient_path']:>3}  dup {row['duplicate_gradient_ratio']:.3f}  "
            f"overlap {row['gradient_overlap']:.3f}"
        )
    ok = sum(1 for r in rows if r["traced"] and r["flops_equal"])
    print(f"{ok}/{len(rows)} traced with exact FLOPs ({100 * ok / len(rows):.1f} %)")
    write_result("analyze_zoo", {"models": rows, "exact": ok, "total": len(rows)})


if __name__ == "__main__":
    main()
