"""``nas report runs/NAME``: the run's ``report.html`` (re)written from its files; and the per-stage
drawing and comparison of ``nas show DESIGN --svg FILE`` / ``nas show A --compare B``
(:mod:`nas.engine.view`)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from nas.cli.format import format_table, print_json
from nas.core.errors import UsageError


def add_report_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="write a search's report.html: the front, the cheap stage, the winner beside the best preset",
        description="Write RUN/report.html, one self-contained page (no request leaves it) drawn from the run's "
        "summary.json, search.json and optuna.journal; nas search writes it at its end too.",
    )
    p.add_argument("run", metavar="RUN", help="runs/NAME of a search")
    p.add_argument("-o", "--out", metavar="FILE", help="where to write the page (default: RUN/report.html)")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="the Optuna storage of a search run with --storage URL (default: RUN's journal)",
    )
    p.add_argument("--json", action="store_true", help="print {path, bytes, seconds} as JSON")
    p.set_defaults(func=run_report)


def run_report(args: argparse.Namespace) -> int:
    from nas.engine.view import write_report

    out = write_report(args.run, storage=args.storage, out=args.out)  # nas.report, with --storage
    if args.json:
        print_json(out)
    else:
        print(f"report: {out['path']} ({out['bytes'] / 1e3:.0f} kB, {out['seconds']:.1f} s)")
    return 0


def add_show_drawing_flags(p: argparse.ArgumentParser) -> None:
    """``--svg FILE`` and ``--compare B`` of ``nas show``."""
    p.add_argument(
        "--svg",
        metavar="FILE",
        help="draw the design stage by stage (block, FLOPs share, gradient paths) as SVG and print it part by part",
    )
    p.add_argument(
        "--compare",
        metavar="PRESET|FILE.yaml",
        help="a table of the per-stage differences against this design (with --svg: both drawn)",
    )


def wants_drawing(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "svg", None) or getattr(args, "compare", None))


def _config(spec: str, img_size: int | None) -> Any:
    from search_spaces import load_config, validate

    cfg = load_config(spec)
    return validate(dataclasses.replace(cfg, img_size=img_size)) if img_size is not None else cfg


def show_drawing(args: argparse.Namespace) -> int:
    """``nas show A [--compare B] [--svg FILE]``: the comparison table (or A's per-stage table)
    and the drawing."""
    from nas.engine.view.anatomy import anatomy, compare
    from nas.engine.view.figures import anatomy_figure

    if args.all or args.space is not None or not args.config:
        raise UsageError("nas show --svg/--compare: give one PRESET or FILE.yaml (not --all or --space)")
    a_cfg = _config(args.config, args.img_size)
    designs, names = [anatomy(a_cfg)], [_name(args.config)]
    if args.compare:
        b_cfg = _config(args.compare, args.img_size)
        if len(b_cfg.pattern()) != len(a_cfg.pattern()) or a_cfg.family != b_cfg.family:
            raise UsageError(
                f"--compare: {args.config} ({a_cfg.family}) and {args.compare} ({b_cfg.family}) have different "
                "stages; accepted: two designs of the same family"
            )
        designs.append(anatomy(b_cfg))
        names.append(_name(args.compare))
    if args.svg:
        path = Path(args.svg)
        if path.is_dir():
            raise UsageError(f"--svg: {path} is a folder; accepted: a file path such as design.svg")
        from nas.core.runio import atomic_write_text

        atomic_write_text(path, anatomy_figure(designs, names, key="design"))
    rows = compare(designs[0], designs[1]) if len(designs) == 2 else None
    if args.json:
        print_json({"designs": dict(zip(names, designs, strict=True)), "compare": rows, "svg": args.svg})
        return 0
    if rows is not None:
        print(f"{names[0]} against {names[1]}, part by part (Δ = {names[0]} − {names[1]}):")
        cells = [
            [
                "≠" if r["differs"] else "",
                r["label"],
                r["a"],
                r["b"],
                ", ".join(r["differs"]) or "-",
                f"{100 * r['d_flops_share']:+.1f}",
                _signed(r["d_shortest_path"]),
                _signed(r["d_longest_path"]),
            ]
            for r in rows
        ]
        header = ["", "part", names[0], names[1], "differs in", "Δ FLOPs %", "Δ SGP", "Δ LGP"]
        print(format_table(header, cells, "<<<<<>>>"))
        print(f"{sum(bool(r['differs']) for r in rows)} of {len(rows)} parts differ")
    else:
        a = designs[0]
        cells = [
            [
                p["label"],
                p["design"],
                p["channels"],
                f"{100 * p['flops_share']:.1f}",
                p["shortest_path"],
                p["longest_path"],
            ]
            for p in a["parts"]
        ]
        print(f"{names[0]}: {a['flops'] / 1e9:.2f} GFLOPs, part by part")
        print(format_table(["part", "design", "channels", "FLOPs %", "SGP", "LGP"], cells, "<<>>>>"))
    if args.svg:
        print(f"per-stage drawing -> {args.svg}")
    return 0


def _name(spec: str) -> str:
    return Path(spec).stem if spec.endswith((".yaml", ".yml")) else spec


def _signed(v: int | None) -> str:
    return "-" if v is None else f"{v:+d}"
