"""``nas analyze FILE.py:FACTORY [B.py:G ...] [--input-shape 1,3,H,W] [--json]``: gradient-path metrics
of any ``nn.Module``, traced by torch.fx (:func:`nas.core.fx.analyze`).

``FACTORY`` is a zero-argument callable defined in ``FILE.py`` that returns the module; the file's
folder goes on ``sys.path`` first, as Python does for a script, so it can import the files next to it.
The JSON object is the one :func:`nas.core.fx.analyze` returns (a list of them for several models); the
human output is, for one model, a table with one row per layer in forward order (``*`` marks the
layers at the max shortest gradient path) and a per-stage summary; for several, one row per model.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nas.cli.format import fmt_flops, fmt_int, fmt_metric, format_table, print_json
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
        "target",
        nargs="+",
        metavar="FILE.py:FACTORY",
        help="python file and the zero-argument callable returning the model; several compare side by side",
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
    folder = str(path.resolve().parent)
    if folder not in sys.path:  # as for a script: the factory may import the files next to it
        sys.path.insert(0, folder)
    try:
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"not a python file: {path_s}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        module_spec.loader.exec_module(module)
    except (Exception, SystemExit, KeyboardInterrupt) as e:  # noqa: BLE001 - the user's file: report, do not crash
        # a module that calls sys.exit() or is interrupted while imported is a file that cannot be
        # loaded, not a reason for `nas` to exit silently with that module's status
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
    except (Exception, SystemExit, KeyboardInterrupt) as e:  # noqa: BLE001
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


def _mflops(f: int) -> str:
    return f"{f / 1e6:.2f}"


def _stages(layers: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Layers grouped by their top-level module (the second level when there is only one)."""
    for depth in (1, 2):
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in layers:
            groups.setdefault(".".join(r["name"].split(".")[:depth]), []).append(r)
        if len(groups) > 1 or depth == 2:
            return list(groups.items())
    return []  # pragma: no cover


def print_table(out: dict[str, Any], title: str) -> None:
    """The human output of ``nas analyze`` for one model."""
    print(f"{title}: {fmt_int(out['params'])} params, {fmt_flops(out['flops'])}FLOPs, {out.get('mode', '?')} mode")
    if out.get("other_inputs"):
        print(f"  other inputs (not analysed): {', '.join(out['other_inputs'])}")
    for key, label in (
        ("max_shortest_gradient_path", "max shortest gradient path"),
        ("longest_gradient_path", "longest gradient path"),
        ("gradient_combinations", "gradient combinations"),
        ("distinct_gradient_combinations", "distinct gradient combinations"),
        ("duplicate_gradient_ratio", "duplicate gradient ratio"),
        ("gradient_overlap", "gradient overlap"),
    ):
        print(f"  {label}: {fmt_metric(out[key])}")
    layers = out["layers"]
    top = out["max_shortest_gradient_path"]
    rows = []
    for r in layers:
        name = r["name"] + (" *" if top is not None and r["shortest_gradient_path"] == top else "")
        comb = sum(u["gradient_combinations"] for u in r["units"])
        rows.append(
            [name, r.get("channels", "-"), _mflops(r.get("flops", 0))]
            + [fmt_metric(r[k]) for k in ("shortest_gradient_path", "longest_gradient_path")]
            + [len(r["units"]), fmt_metric(comb), _ranges(r["gradient_timestamps"])]
        )
    header = ["layer", "ch", "MFLOPs", "SGP", "LGP", "units", "comb", "timestamps"]
    print(format_table(header, rows, "<>>>>>><"))
    print(f"* = a layer at the max shortest gradient path ({top})")
    stage_rows = []
    for key, rs in _stages(layers):
        sgps = [r["shortest_gradient_path"] for r in rs if r["shortest_gradient_path"] is not None]
        stage_rows.append([key, len(rs), _mflops(sum(r.get("flops", 0) for r in rs)), max(sgps) if sgps else "-"])
    print(format_table(["stage", "layers", "MFLOPs", "max SGP"], stage_rows, "<>>>"))


def print_comparison(outs: list[dict[str, Any]], labels: list[str]) -> None:
    """Several models side by side: one row each."""
    cols = [
        ("params", "params"),
        ("GFLOPs", "flops"),
        ("maxSGP", "max_shortest_gradient_path"),
        ("LGP", "longest_gradient_path"),
        ("comb", "gradient_combinations"),
        ("distinct", "distinct_gradient_combinations"),
        ("dup", "duplicate_gradient_ratio"),
        ("overlap", "gradient_overlap"),
    ]
    rows = []
    for out, label in zip(outs, labels, strict=True):
        rows.append([label] + [f"{out[k] / 1e9:.3f}" if k == "flops" else fmt_metric(out[k]) for _, k in cols])
    print(format_table(["model"] + [h for h, _ in cols], rows, "<" + ">" * len(cols)))


def cmd_analyze(args: argparse.Namespace) -> int:
    """``nas analyze``: a thin shell over :func:`nas.core.fx.analyze`."""
    from nas.core.fx import analyze

    shape = parse_input_shape(args.input_shape)
    targets = args.target if isinstance(args.target, list) else [args.target]
    outs, labels = [], []
    for target in targets:
        model, label = build_model(target)
        outs.append(analyze(model, shape, name=label))
        labels.append(label)
    if args.json:
        print_json(outs[0] if len(outs) == 1 else outs)
    elif len(outs) == 1:
        print_table(outs[0], f"{labels[0]} @ {'x'.join(map(str, shape))}")
    else:
        print(f"@ {'x'.join(map(str, shape))}")
        print_comparison(outs, labels)
    return 0
