"""The ``nas`` command: one thin subcommand per public function. User errors print one line on
stderr and exit 2 — never a traceback."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from nas.errors import SearchError, UsageError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _fmt_int(n: float) -> str:
    return f"{n / 1e6:.2f}M"


def _fmt_flops(n: float) -> str:
    return f"{n / 1e9:.2f}G"


def _print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


METRIC_COLUMNS = (
    ("max_shortest_gradient_path", "max SGP"),
    ("longest_gradient_path", "LGP"),
    ("gradient_combinations", "grad comb"),
)


def cmd_show(args: argparse.Namespace) -> int:
    from nas import api

    if args.all == bool(args.config):
        raise UsageError("nas show: give one PRESET or FILE.yaml, or --all")
    if args.all:
        rows = api.show_all(args.img_size)
        if args.json:
            _print_json([{k: v for k, v in r.items() if k != "layers"} for r in rows])
            return 0
        cols = [
            ("name", "preset", "<24"),
            ("img_size", "img", ">5"),
            ("params", "params", ">9"),
            ("flops", "FLOPs", ">9"),
        ]
        cols += [(k, h, ">10") for k, h in METRIC_COLUMNS if k in rows[0]]
        print("  ".join(f"{h:{a}}" for _, h, a in cols))
        for r in rows:
            cells = []
            for k, _, a in cols:
                v = r[k]
                v = _fmt_int(v) if k == "params" else _fmt_flops(v) if k == "flops" else v
                cells.append(f"{v:{a}}")
            print("  ".join(cells))
        return 0
    out = api.show(args.config, args.img_size)
    if args.json:
        _print_json(out)
        return 0
    print(
        f"{args.config} @ {out['img_size']}x{out['img_size']}: {_fmt_int(out['params'])} params, {_fmt_flops(out['flops'])}FLOPs"
    )
    for k, h in METRIC_COLUMNS + (
        ("distinct_gradient_combinations", "distinct grad comb"),
        ("duplicate_gradient_ratio", "dup grad ratio"),
    ):
        if k in out:
            print(f"  {h}: {out[k]}")
    print(f"  peak activation memory: {out['peak_memory_bytes'] / 2**20:.1f} MiB (batch 1, fp32)")
    print(f"{'stage':<24}{'params':>10}{'FLOPs':>10}")
    for s in out["stages"]:
        print(f"{s['stage']:<24}{_fmt_int(s['params']):>10}{_fmt_flops(s['flops']):>10}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nas", description="Gradient-path guided neural architecture search.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, required=True)
    p = sub.add_parser("show", help="params, FLOPs and gradient-path metrics of a preset or config")
    p.add_argument("config", nargs="?", help="preset name or YAML file")
    p.add_argument("--all", action="store_true", help="a table of every preset")
    p.add_argument("--img-size", type=int, help="image size for FLOPs (default: the config's)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_show)
    for register in _plugins():
        register(sub)
    return parser


def _plugins() -> list[Callable[[Any], None]]:
    """Subcommands that live beside their implementation (analyze, train, search, ...). Imported
    directly: a broken plugin must fail loudly, not silently drop its subcommand."""
    from evaluators.train_cli import add_train_parser
    from nas.analyze_cli import add_analyze_parser
    from nas.latency_cli import add_latency_parser
    from nas.search_cli import add_search_parsers

    return [add_analyze_parser, add_train_parser, add_search_parsers, add_latency_parser]


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message is meant for the user."""
    from nas.ir import GraphError
    from search_spaces.config import ConfigError

    errs: list[type[BaseException]] = [UsageError, ConfigError, GraphError, SearchError]
    fx = sys.modules.get("nas.fx")  # its errors exist only once it is imported (keeps torch out of here)
    if fx is not None:
        errs += [fx.UnsupportedOpError, fx.TraceError]
    from evaluators.errors import DataError

    errs.append(DataError)
    return tuple(errs)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except user_errors() as e:
        msg = " ".join(str(e).split())
        print(f"error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:  # disk full, permission denied, a file where a folder must be: not a bug
        print(f"error: {_os_error(e)}", file=sys.stderr)
        return EXIT_USAGE


def _os_error(e: OSError) -> str:
    """``[Errno 28] No space left on device: 'runs/x/summary.json'`` as one line."""
    where = " -> ".join(repr(str(f)) for f in (e.filename, e.filename2) if f is not None)
    text = f"{e.strerror or str(e) or type(e).__name__}" + (f": {where}" if where else "")
    return " ".join(text.split())


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    # run the imported module's entry, so exception classes are the ones other modules raise
    from nas.cli import entry as _entry

    _entry()
