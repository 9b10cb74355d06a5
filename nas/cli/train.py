"""``nas train``: a thin shell over :func:`evaluators.train.train_from_config`.

The flags are the fields of :class:`~evaluators.recipe.Recipe` and are validated by it, exactly
as ``nas search`` validates them. Bad input raises a one-line
:class:`~nas.core.errors.GradpathError` (the CLI prints it and exits 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from evaluators.coco_eval import METRICS
from evaluators.recipe import DEFAULT, RECIPES, Recipe, RecipeError
from nas.cli.format import format_table
from nas.core.errors import UsageError


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``train`` subcommand on an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "train",
        help="train a config on the proxy task and report COCO box AP",
        description="Train a preset or ArchConfig YAML on the proxy task (width scaled by "
        "--width-mult, small images, few epochs) and report COCO box AP on the held-out split. "
        "Re-running the same command resumes from the last finished epoch.",
    )
    p.add_argument("config", metavar="PRESET|FILE.yaml", help="preset name or ArchConfig YAML")
    p.add_argument(
        "--data",
        default="shapes",
        metavar="shapes|PATH",
        help="'shapes' (embedded synthetic set, default), a COCO annotation JSON, or a folder "
        "with instances_val*.json [and instances_train*.json] (in it or annotations/)",
    )
    add_recipe_flags(p)
    p.add_argument("--threads", type=int, default=None, metavar="T", help="default: all cores")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="default runs/train/<name>")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_train)
    return p


def add_recipe_flags(p: argparse.ArgumentParser, scale: dict[str, Any] | None = None) -> None:
    """The proxy recipe's flags, shared by ``nas train`` and ``nas search``: ``--recipe`` names
    the base (:data:`evaluators.recipe.RECIPES`), the others override its fields. ``scale``: the
    fields a command changes on every named recipe (``nas search``'s proxy scale), shown as its defaults."""
    shown = dataclasses.replace(DEFAULT, **(scale or {}))  # the defaults the help gives
    p.set_defaults(recipe_scale=scale or {})
    p.add_argument(
        "--recipe",
        default=shown.version,
        metavar="|".join(RECIPES),
        help="named proxy recipe; v1: the recipe before the proxy-noise study, for old runs (default: %(default)s)",
    )
    p.add_argument("--epochs", type=int, default=None, metavar="E", help=f"proxy epochs (default: {shown.epochs})")
    p.add_argument(
        "--img-size", type=int, default=None, metavar="S", help=f"proxy image size (default: {shown.img_size})"
    )
    p.add_argument(
        "--width-mult",
        type=float,
        default=None,
        metavar="W",
        help=f"proxy width multiplier (default: {shown.width_mult})",
    )
    p.add_argument(
        "--images",
        type=int,
        default=None,
        metavar="N",
        help=f"training images (default: {shown.images})",
    )
    p.add_argument(
        "--val-images",
        type=int,
        default=None,
        metavar="N",
        help=f"val images, fixed whatever --images is (default: {shown.val_images}; v1: a quarter of --images)",
    )
    p.add_argument(
        "--precision",
        default=None,
        metavar="auto|fp32|bf16",
        help=f"proxy arithmetic; auto: fp32 on CPU (bf16: opt-in, see README), AMP on CUDA (default: {shown.precision})",
    )
    p.add_argument("--seed", type=int, default=None, metavar="S", help=f"(default: {shown.seed})")


def default_out_dir(args: argparse.Namespace) -> Path:
    """``runs/train/<config>-<data>[-<digest8>]-w<W>-<S>px-n<N>-e<E>-s<seed>``: one folder per
    distinct run. ``digest8`` (not for ``shapes``, whose name is its arguments) is the start of
    :func:`~evaluators.coco_data.dataset_digest`: two sets in folders of the same name differ."""
    config = Path(args.config).stem if str(args.config).endswith((".yaml", ".yml")) else args.config
    data = "shapes" if args.data == "shapes" else Path(args.data).stem or Path(args.data).name
    if args.data != "shapes":
        from evaluators.coco_data import dataset_digest

        data = f"{data}-{dataset_digest(args.data)[:8]}"
    r = recipe_flags(args)
    name = f"{config}-{data}-w{r.width_mult:g}-{r.img_size}px-n{r.images}-e{r.epochs}-s{r.seed}"
    if r.version != "v1":  # v1 folders keep their names, so that they resume
        name += f"-{r.version}"
    return Path("runs") / "train" / name


def run_train(args: argparse.Namespace) -> int:
    """Run ``nas train``; 0 when training finished, 1 when it failed (e.g. non-finite loss)."""
    from evaluators.train import train_from_config

    recipe = check_args(args)
    out = args.out or default_out_dir(args)
    result = train_from_config(
        args.config,
        recipe,
        data=args.data,
        out_dir=out,
        num_threads=args.threads,
        progress=not args.json,
    )
    result = {**result, "out_dir": str(out)}
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(_table(result))
    if result["status"] != "ok":
        print(f"error: training {result['status']}: {result['reason']}", file=sys.stderr)
        return 1
    return 0


def recipe_flags(args: argparse.Namespace) -> Recipe:
    """The recipe the proxy flags ask for (``nas train`` and ``nas search`` share them), not yet
    validated: the named ``--recipe`` with every flag given."""
    if args.recipe not in RECIPES:
        raise RecipeError(f"--recipe: {args.recipe!r} is not accepted; accepted: {', '.join(RECIPES)}")
    names = ("epochs", "img_size", "width_mult", "images", "val_images", "seed", "precision")
    given = {k: getattr(args, k) for k in names}
    scale = getattr(args, "recipe_scale", None) or {}
    return dataclasses.replace(RECIPES[args.recipe], **{**scale, **{k: v for k, v in given.items() if v is not None}})


def recipe_of(args: argparse.Namespace) -> Recipe:
    """The recipe the flags ask for, validated (one line naming the flag when a value is refused)."""
    return recipe_flags(args).validate()


def check_args(args: argparse.Namespace) -> Recipe:
    """Reject bad options before anything is loaded or written: each becomes one line, exit 2
    (a GradpathError is a ValueError, for callers of ``run_train``). Returns the recipe."""
    recipe = recipe_of(args)
    if args.threads is not None and not 1 <= args.threads <= 1024:
        raise UsageError(f"--threads: {args.threads} is out of range; accepted: an integer from 1 to 1024")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out: {args.out} is a file; accepted: a folder (made if missing)")
    return recipe


def _table(result: dict[str, Any]) -> str:
    cols = ("epoch", "loss", *METRICS, "epoch_time_s")
    rows = [["-" if e.get(c) is None else f"{e[c]:.4g}" for c in cols] for e in result["history"]]
    lines = [format_table(cols, rows, ">" * len(cols))]
    flops = result.get("flops")
    lines.append(
        f"{result['status']}: AP {_fmt(result.get('AP'))}  AP50 {_fmt(result.get('AP50'))}  "
        f"{result['wall_time_s']:.0f} s  {result.get('images_per_s') or 0:.1f} img/s"
        + (" (no detections)" if result.get("detections") == 0 else "")
        + (f"  {flops / 1e9:.3g} GFLOPs" if flops else "")
        + f"  -> {result['out_dir']}"
    )
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"
