"""``nas show``: params, FLOPs, per-stage summary and gradient-path metrics of a preset or config
(a thin shell over :func:`nas.show`)."""

from __future__ import annotations

import argparse
from typing import Any

from nas import api
from nas.cli.format import METRIC_COLUMNS, fmt_flops, fmt_int, fmt_metric, format_table, print_json
from nas.cli.report import add_show_drawing_flags, show_drawing, wants_drawing
from nas.core.errors import UsageError


def add_show_parser(sub: Any) -> None:
    p = sub.add_parser("show", help="params, FLOPs and gradient-path metrics of a preset or config")
    p.add_argument("config", nargs="?", help="preset name or YAML file")
    p.add_argument("--all", action="store_true", help="a table of every preset")
    p.add_argument("--img-size", type=int, help="image size for FLOPs (default: the config's)")
    p.add_argument("--space", metavar="NAME", help="the size and knobs of a search space (yolor, yolor-uniform)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_show_drawing_flags(p)
    p.set_defaults(func=cmd_show)


def cmd_show(args: argparse.Namespace) -> int:
    if wants_drawing(args):  # --svg FILE, --compare B: the per-stage drawing and differences
        return show_drawing(args)
    if args.space is not None:
        if args.config or args.all or args.img_size is not None:
            raise UsageError("nas show --space NAME: give no PRESET, FILE.yaml, --all or --img-size with it")
        return _show_space(args.space, args.json)
    if args.all == bool(args.config):
        raise UsageError("nas show: give one PRESET or FILE.yaml, or --all, or --space NAME")
    if args.all:
        rows = api.show_all(args.img_size)
        if args.json:
            print_json([{k: v for k, v in r.items() if k != "layers"} for r in rows])
            return 0
        cols = [("name", "preset"), ("img_size", "img"), ("params", "params"), ("flops", "FLOPs")]
        cols += [(k, h) for k, h in METRIC_COLUMNS if k in rows[0]]
        fmt = {"params": fmt_int, "flops": fmt_flops, "name": str, "img_size": str}
        cells = [[fmt.get(k, fmt_metric)(r[k]) for k, _ in cols] for r in rows]
        print(format_table([h for _, h in cols], cells, "<" + ">" * (len(cols) - 1)))
        return 0
    out = api.show(args.config, args.img_size)
    if args.json:
        print_json(out)
        return 0
    print(
        f"{args.config} @ {out['img_size']}x{out['img_size']}: {fmt_int(out['params'])} params, {fmt_flops(out['flops'])}FLOPs"
    )
    for k, h in METRIC_COLUMNS + (
        ("distinct_gradient_combinations", "distinct grad comb"),
        ("duplicate_gradient_ratio", "dup grad ratio"),
    ):
        if k in out:
            print(f"  {h}: {fmt_metric(out[k])}")
    print(f"  peak activation memory: {out['peak_memory_bytes'] / 2**20:.1f} MiB (batch 1, fp32)")
    rows = [
        [s["stage"], s.get("knob", ""), s.get("design", ""), s.get("repeats", ""), s.get("channels", "")]
        + [fmt_int(s["params"]), fmt_flops(s["flops"])]
        for s in out["stages"]
    ]
    print(format_table(["stage", "knob", "design", "repeats", "channels", "params", "FLOPs"], rows, "<<<>>>>"))
    return 0


def _show_space(name: str, as_json: bool) -> int:
    out = api.show_space(name)
    if as_json:
        print_json(out)
        return 0
    kind = "per-stage" if out["per_stage"] else "uniform: one choice per backbone and neck"
    print(f"space {out['space']} ({kind}; family {out['family']} @ {out['img_size']})")
    print(f"size: {out['size']:,} configs (10^{out['size_log10']})")
    print("global knobs:")
    rows = [["", knob, ", ".join(map(str, values))] for knob, values in out["global_knobs"].items()]
    print(format_table(None, rows, "<<<"))
    stages = out["stages"]
    print(f"each of {len(stages)} stages ({', '.join(stages)}) chooses, {out['configs_per_stage']:,} ways:")
    rows = [
        ["", k["knob"], ", ".join(map(str, k["values"])), "" if k["when"] == "always" else f"({k['when']})"]
        for k in out["stage_knobs"]
    ]
    print(format_table(None, rows, "<<<<"))
    return 0
