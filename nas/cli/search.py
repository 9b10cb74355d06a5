"""CLI shells for ``nas search``, ``nas export`` and ``nas dashboard``."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from nas.cli.train import add_recipe_flags, recipe_flags
from nas.core.cost import parse_flops
from nas.core.errors import UsageError
from nas.engine import SCORES, SearchOptions, search
from nas.engine.export import export, export_config, export_onnx
from nas.engine.options import SEARCH_SCALE
from nas.engine.record.dashboard import dashboard
from nas.engine.record.trials import parse_ms
from search_spaces import load_config

D = SearchOptions(budget=1)


def add_search_parsers(sub: Any) -> None:
    p = sub.add_parser("search", help="two-stage search under a FLOPs (and latency) budget")
    p.add_argument(
        "--budget", required=True, help="FLOPs budget at full size, with its unit: 150GFLOPs, 150G or 1.5e11FLOPs"
    )
    p.add_argument("--name", default=D.name, help="run name: outputs go to runs/NAME (default: %(default)s)")
    p.add_argument("--space", default=D.space, help="search space (default: %(default)s)")
    p.add_argument("--candidates", type=int, default=D.candidates, help="cheap-stage candidates (default: %(default)s)")
    p.add_argument(
        "--trials",
        type=int,
        default=D.trials,
        help="proxy training budget: the compute of K full trainings (see --proxy-stage); 0: the cheap stage "
        "and the selection only, print the picks (default: %(default)s)",
    )
    p.add_argument(
        "--proxy-stage",
        default=D.proxy_stage,
        help="select (train the K best picks in full) | halving (the same compute by successive halving over "
        "more candidates on shorter schedules); docs/gp-features.md has the comparison (default: %(default)s)",
    )
    p.add_argument("--data", default=D.data, help="shapes (embedded) or a COCO-format annotation file/folder")
    p.add_argument("--workers", type=int, default=D.workers, help="concurrent proxy trainings (default: %(default)s)")
    p.add_argument("--ray-address", default=None, help="join an existing Ray cluster (default: $RAY_ADDRESS or local)")
    p.add_argument(
        "--ray-storage",
        default=None,
        metavar="PATH|URI",
        help="where Ray Tune keeps the trainings' checkpoints and results, under NAME; on a cluster a folder "
        "every node mounts at the same path, or s3://…, gs://… (default: runs/NAME/ray)",
    )
    p.add_argument("--storage", default=None, help="Optuna storage URL (default: runs/NAME/optuna.journal)")
    add_recipe_flags(p, SEARCH_SCALE)
    p.add_argument(
        "--seeds",
        type=int,
        default=D.seeds,
        help="trainings per pick, with seeds --seed, --seed + 1, …: a pick's AP and val loss are their means, "
        "and the winner is chosen on them (default: %(default)s)",
    )
    p.add_argument(
        "--trust-region",
        default=D.trust_region,
        help="none | table: pick only among candidates inside the gradient-path table's support, where the "
        "fitted score was tested (default: %(default)s)",
    )
    p.add_argument(
        "--picks",
        default=D.picks,
        help="front | top | families: spread the picks over the FLOPs range, one per band (the AP-vs-FLOPs "
        "front); put them all at 75%% of the budget or more, where best.yaml comes from; or the same, one per "
        "block family (res, csp, elan, prn) (default: %(default)s)",
    )
    p.add_argument(
        "--cheap-score",
        default=D.cheap_score,
        help=f"{' | '.join(SCORES)} (default: %(default)s)",
    )
    p.add_argument(
        "--cost",
        default=D.cost,
        help="cost objective of the cheap stage and the proxy study: flops (GFLOPs) | latency (predicted "
        "latency_ms on --device) (default: %(default)s)",
    )
    p.add_argument(
        "--latency-budget",
        default=None,
        help="also require a predicted latency (batch 1, on --device) of at most this, with its unit: 30ms, 0.03s, "
        "500us (default: none)",
    )
    p.add_argument(
        "--device",
        default=D.device,
        help="cpu | cuda: the device latency is predicted for; its table is measured once and cached under "
        "runs/latency/ (default: %(default)s)",
    )
    p.add_argument("--runs-dir", default=D.runs_dir, help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_search)

    p = sub.add_parser("export", help="write a search's winner (or a preset/config) as a config or model file")
    p.add_argument("run", metavar="SOURCE", help="runs/NAME of a search, a preset name or a config YAML")
    p.add_argument(
        "--format",
        default="yaml",
        help="yaml (our ArchConfig), yolov7 / yolov9 (the authors' model YAML, for their train.py), "
        "torch (a standalone model.py), onnx (default: %(default)s)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--trial", type=int, help="proxy-study trial number")
    g.add_argument(
        "--max-flops", help="best AP within this many FLOPs, with its unit: 120G (default: the search budget)"
    )
    p.add_argument("-o", "--out", help="output file (default: arch.yaml, model.yaml, model.py or model.onnx)")
    p.add_argument("--onnx", help="also write the full-size model as ONNX")
    p.add_argument(
        "--weights",
        metavar="proxy",
        help="with --format torch on a run folder: model.py is the proxy-scale network the trial trained "
        "(width x recipe width_mult, its image size and classes) and OUT with .pt its scored weights "
        "(the weight average under recipe v2); not a full-size initialisation",
    )
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(func=run_export)

    p = sub.add_parser("dashboard", help="optuna-dashboard on a search's storage")
    p.add_argument("run", help="runs/NAME of a search")
    p.add_argument("--port", type=int, default=8080, help="the port to serve on (default: %(default)s)")
    p.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default: %(default)s, this machine only)"
    )
    p.add_argument(
        "--allow-edit", action="store_true", help="let viewers change or delete studies (default: read-only)"
    )
    p.set_defaults(func=run_dashboard)


#: what ``--budget`` and ``--max-flops`` accept: :func:`~nas.core.cost.parse_flops`'s forms that name a unit
FLOPS_ACCEPTED = (
    "a positive FLOPs count with its unit (a K/M/G/T prefix, a FLOPs suffix, or both), "
    "such as 150GFLOPs, 150G or 1.5e11FLOPs"
)
LATENCY_ACCEPTED = "a positive time with its unit, such as 30ms, 0.03s or 500us"
_BARE = re.compile(r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")


def _shown(text: str) -> str:
    """The value as typed; quoted when empty or padded, so the message shows it."""
    return text if text and text.strip() == text else repr(text)


def _unit_checked(text: str, flag: str, accepted: str) -> None:
    """A negative value or a bare number (``150``: FLOPs? GFLOPs?) is refused, naming the units."""
    if text.strip().startswith("-"):
        raise UsageError(f"{flag}: {_shown(text)} is negative; accepted: {accepted}")
    if _BARE.fullmatch(text):
        raise UsageError(f"{flag}: {_shown(text)} has no unit; accepted: {accepted}")


def _flops(text: str, flag: str = "--budget") -> int:
    """``--budget`` / ``--max-flops``: a FLOPs count with its unit (a bare number is refused)."""
    _unit_checked(text, flag, FLOPS_ACCEPTED)
    try:
        value = parse_flops(text)
    except ValueError as e:
        why = "is out of range" if "out of range" in str(e) else "is not a FLOPs count"
        raise UsageError(f"{flag}: {_shown(text)} {why}; accepted: {FLOPS_ACCEPTED}") from None
    if value <= 0:  # "0.1FLOPs" rounds to 0
        raise UsageError(f"{flag}: {_shown(text)} is out of range; accepted: {FLOPS_ACCEPTED}")
    return value


def _ms(text: str) -> float:
    """``--latency-budget``: a time with its unit, in ms."""
    _unit_checked(text, "--latency-budget", LATENCY_ACCEPTED)
    return parse_ms(text)


def run_search(args: argparse.Namespace) -> int:
    opts = SearchOptions(
        budget=_flops(args.budget),
        name=args.name,
        space=args.space,
        candidates=args.candidates,
        trials=args.trials,
        proxy_stage=args.proxy_stage,
        seeds=args.seeds,
        trust_region=args.trust_region,
        picks=args.picks,
        data=args.data,
        recipe=recipe_flags(args),  # validated with the other options
        workers=args.workers,
        cheap_score=args.cheap_score,
        cost=args.cost,
        latency_budget_ms=_ms(args.latency_budget) if args.latency_budget is not None else None,
        device=args.device,
        ray_address=args.ray_address,
        ray_storage=args.ray_storage,
        storage=args.storage,
        runs_dir=args.runs_dir,
    )
    log = (lambda s: print(s, file=sys.stderr)) if args.json else print
    # with --json, stdout is the summary only: Ray's own notices (e.g. "(raylet) A worker died")
    # are printed to stdout from its threads, so they go to stderr while the search runs
    with contextlib.redirect_stdout(sys.stderr) if args.json else contextlib.nullcontext():
        summary = search(opts, progress=not args.no_progress and sys.stderr.isatty(), log=log)
    if args.json:
        json.dump(summary, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    return 0


_DEFAULT_OUT = {
    "yaml": "arch.yaml",
    "yolov7": "model.yaml",
    "yolov9": "model.yaml",
    "torch": "model.py",
    "onnx": "model.onnx",
}


def run_export(args: argparse.Namespace) -> int:
    out = args.out or _DEFAULT_OUT.get(args.format, "model")  # an unknown format is refused before any read
    if not Path(args.run).is_dir():
        if args.trial is not None or args.max_flops is not None:
            raise UsageError(f"--trial/--max-flops: {args.run} is not a run folder; they pick a trial of a search")
        if args.weights is not None:
            raise UsageError(
                f"--weights: {args.run} is not a run folder, so no trained trial; accepted: runs/NAME of a search"
            )
        result = export_config(args.run, out, args.format)
        if args.onnx:
            result["onnx"] = str(export_onnx(load_config(args.run), args.onnx))
        label = f"{result['source']} ({result['flops'] / 1e9:.1f} GFLOPs)"
    else:
        max_flops = _flops(args.max_flops, "--max-flops") if args.max_flops is not None else None
        result = export(
            args.run, out, trial=args.trial, max_flops=max_flops, onnx=args.onnx, fmt=args.format, weights=args.weights
        )
        label = f"trial {result['trial']} (AP {result['AP']:.3f}, {result['flops'] / 1e9:.1f} GFLOPs)"
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif "weights" in result:
        print(f"{label} -> {result['out']} + {result['weights']} (torch, {result['scale']})")
    else:
        print(f"{label} -> {result['out']} ({args.format})")
        if result.get("proxy_checkpoint"):
            print(
                f"  full size, fresh weights; the trial's trained proxy-scale weights: add --weights proxy "
                f"(from {result['proxy_checkpoint']})"
            )
    return 0


def run_dashboard(args: argparse.Namespace) -> int:
    dashboard(args.run, port=args.port, host=args.host, allow_edit=args.allow_edit)
    return 0
