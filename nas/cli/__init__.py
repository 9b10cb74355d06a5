"""The ``nas`` command: one thin subcommand per public function, one module per subcommand
(``nas.cli.show``, ``.analyze``, ``.train``, ``.search``). User errors — every
:class:`~nas.core.errors.GradpathError` — print one line on stderr and exit 2, never a traceback."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from nas.cli.analyze import add_analyze_parser
from nas.cli.latency import add_latency_parser
from nas.cli.report import add_report_parser
from nas.cli.search import add_search_parsers
from nas.cli.show import add_show_parser
from nas.cli.train import add_train_parser
from nas.core.errors import GradpathError, UsageError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")

    def parse_known_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:
        """argparse takes ``-5G`` after ``--budget`` for another option ("expected one argument");
        joined as ``--budget=-5G`` it reaches the flag's own check, which names what is accepted."""
        return super().parse_known_args(
            _attach_negative_values(self, sys.argv[1:] if args is None else args), namespace
        )


_NEGATIVE = re.compile(r"-\.?[0-9]")


def _attach_negative_values(parser: argparse.ArgumentParser, args: Sequence[str]) -> list[str]:
    """``[--budget, -5G]`` -> ``[--budget=-5G]`` for each option of ``parser`` that takes one value."""
    out: list[str] = []
    i = 0
    while i < len(args):
        action = parser._option_string_actions.get(args[i])
        if action is not None and action.nargs is None and i + 1 < len(args) and _NEGATIVE.match(args[i + 1]):
            out.append(f"{args[i]}={args[i + 1]}")
            i += 2
            continue
        if args[i] == "--":  # the rest are positionals
            return out + list(args[i:])
        out.append(args[i])
        i += 1
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nas", description="Gradient-path guided neural architecture search.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, required=True)
    for register in (
        add_show_parser,
        add_analyze_parser,
        add_train_parser,
        add_search_parsers,
        add_latency_parser,
        add_report_parser,
    ):
        register(sub)
    return parser


def package_version() -> str:
    """The installed distribution's version (what ``pip show gradpath-nas`` says), so a bug
    report names the code it ran; ``unknown`` when run from a tree that was never installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gradpath-nas")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except GradpathError as e:
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
