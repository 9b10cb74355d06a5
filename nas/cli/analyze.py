"""``nas analyze FILE.py:FACTORY [--input-shape 1,3,H,W] [--json]``: gradient-path metrics of any
``nn.Module``, traced by torch.fx (:func:`nas.core.fx.analyze`).

``FACTORY`` is a zero-argument callable defined in ``FILE.py`` that returns the module. The JSON
object is the one :func:`nas.core.fx.analyze` returns (the schema of ``nas show --json``); the human
output is a table with one row per layer in forward order.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nas.cli.format import fmt_flops, fmt_int, print_json
from nas.core.errors import UsageError

DEFAULT_INPUT_SHAPE = (1, 3, 224, 224)


def add_analyze_parser(subparsers: Any) -> None:
    """Register the ``analyze`` subcommand on the ``nas`` parser's subparsers."""
    p = subparsers.add_parser(
        "analyze",
        help="gradient-path metrics of any nn.Module (traced by torch.fx)",
        description="Trace the module returned by FACTORY (a zero-argument callable in FILE.py) with torch.fx and "
        "print its params, FLOPs and gradient-path metrics.",
    )
    p.add_argument(
        "target", metavar="FILE.py:FACTORY", help="python file and the zero-argument callable returning the model"
    )
    p.add_argument(
        "--input-shape",
        default=",".join(map(str, DEFAULT_INPUT_SHAPE)),
        metavar="N,C,H,W",
        help="input tensor shape for tracing and FLOPs (default: %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_analyze)


def parse_input_shape(text: str) -> tuple[int, ...]:
    """``"1,3,224,224"`` -> ``(1, 3, 224, 224)``; N,C,H,W or N,F of positive integers.

    >>> parse_input_shape("1, 3, 64, 64")
    (1, 3, 64, 64)
    """
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) not in (2, 4) or min(shape, default=0) <= 0:
        raise UsageError(
            f"--input-shape: {text!r} is not accepted; accepted: positive integers N,C,H,W, e.g. 1,3,224,224"
        )
    return shape


def load_factory(spec: str) -> tuple[Callable[[], Any], str]:
    """``"path/to/file.py:make_model"`` -> (the callable, a display name). Raises UsageError."""
    path_s, sep, attr = spec.rpartition(":")
    if not sep or not path_s or not attr:
        raise UsageError(f"nas analyze: {spec!r} is not accepted; accepted: FILE.py:FACTORY, e.g. models.py:resnet18")
    path = Path(path_s)
    if not path.is_file():
        raise UsageError(f"nas analyze: {path_s}: no such file")
    mod_name = f"_nas_analyze_{abs(hash(str(path.resolve())))}"
    try:
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"not a python file: {path_s}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        module_spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - the user's file: report, do not crash
        sys.modules.pop(mod_name, None)
        raise UsageError(f"nas analyze: cannot load {path_s}: {type(e).__name__}: {_first_line(e)}") from None
    factory = getattr(module, attr, None)
    if factory is None:
        names = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise UsageError(f"nas analyze: {path_s} defines no {attr!r}; callables there: {', '.join(names) or 'none'}")
    if not callable(factory):
        raise UsageError(f"nas analyze: {path_s}:{attr} is not callable")
    return factory, f"{path.name}:{attr}"


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else ""


def build_model(spec: str) -> tuple[Any, str]:
    """Load ``FILE.py:FACTORY`` and call the factory; the result must be an ``nn.Module``."""
    from torch import nn

    factory, label = load_factory(spec)
    try:
        model = factory()
    except Exception as e:  # noqa: BLE001
        raise UsageError(f"nas analyze: {label}() failed: {type(e).__name__}: {_first_line(e)}") from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"nas analyze: {label}() returned {type(model).__name__}; accepted: a torch.nn.Module")
    return model, label


def _ranges(ts: Sequence[int]) -> str:
    """``[1, 2, 3, 5]`` -> ``"1-3,5"``."""
    out, i = [], 0
    while i < len(ts):
        j = i
        while j + 1 < len(ts) and ts[j + 1] == ts[j] + 1:
            j += 1
        out.append(str(ts[i]) if i == j else f"{ts[i]}-{ts[j]}")
        i = j + 1
    return ",".join(out) or "-"


def print_table(out: dict[str, Any], title: str) -> None:
    """The human output of ``nas analyze``."""
    print(f"{title}: {fmt_int(out['params'])} params, {fmt_flops(out['flops'])}FLOPs")
    for key, label in (
        ("max_shortest_gradient_path", "max shortest gradient path"),
        ("longest_gradient_path", "longest gradient path"),
        ("gradient_combinations", "gradient combinations"),
        ("distinct_gradient_combinations", "distinct gradient combinations"),
        ("duplicate_gradient_ratio", "duplicate gradient ratio"),
    ):
        v = out[key]
        print(f"  {label}: {v:.4f}" if isinstance(v, float) else f"  {label}: {v}")
    layers = out["layers"]
    width = max([len("layer")] + [len(r["name"]) for r in layers])
    print(f"{'layer':<{width}}  {'SGP':>4}  {'LGP':>4}  {'units':>5}  {'comb':>6}  timestamps")
    for r in layers:
        sgp = "-" if r["shortest_gradient_path"] is None else r["shortest_gradient_path"]
        lgp = "-" if r["longest_gradient_path"] is None else r["longest_gradient_path"]
        comb = sum(u["gradient_combinations"] for u in r["units"])
        print(
            f"{r['name']:<{width}}  {sgp:>4}  {lgp:>4}  {len(r['units']):>5}  {comb:>6}  {_ranges(r['gradient_timestamps'])}"
        )


def cmd_analyze(args: argparse.Namespace) -> int:
    """``nas analyze``: a thin shell over :func:`nas.core.fx.analyze`."""
    from nas.core.fx import analyze

    shape = parse_input_shape(args.input_shape)
    model, label = build_model(args.target)
    out = analyze(model, shape)
    if args.json:
        print_json(out)
    else:
        print_table(out, f"{label} @ {'x'.join(map(str, shape))}")
    return 0
