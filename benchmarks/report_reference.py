"""Write the reference data ``report.html`` reads (``nas/engine/view/data/reference.json``) from
the committed benchmark data, so the product never reads ``benchmarks/`` at run time and the file
is reproducible:

- per recipe the project has measured (its version, epochs, image size, images, width and data),
  the paper's presets measured there (``benchmarks/data/winner_vs_presets.json``: recipe v2 at the
  reduced scale, 2 seeds each; ``benchmarks.readme_figure.MEASURED_AP``: recipe v1 at the
  default scale, 1 seed), the gradient-path table's designs measured there (2-seed means,
  ``benchmarks/data/gp_table_results.jsonl``) and the recipe's measured noise: the single-run
  ICC(1), seed and design sd over the table's seed pairs at that recipe;
- the table's 120 designs with their FLOPs, params and network-level metrics (the report scores
  them with the run's cheap score and overlays them on the cheap stage's candidates).

    .venv/bin/python -m benchmarks.report_reference            # writes the shipped file
    .venv/bin/python -m benchmarks.report_reference --check    # exit 1 if it is not up to date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.gp_table import load_table
from benchmarks.lib.recipes import SCALES
from benchmarks.lib.stats import icc1
from benchmarks.readme_figure import MEASURED_AP as V1_DEFAULT_AP
from evaluators.recipe import Recipe
from nas.core.runio import atomic_write_text
from nas.engine.record.trials import design

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "nas" / "engine" / "view" / "data" / "reference.json"
#: the presets and the searches' winners retrained at recipe v2, reduced scale (benchmarks.winner_vs_presets --data)
WINNER_VS_PRESETS = ROOT / "benchmarks" / "data" / "winner_vs_presets.json"
FORMAT = 1
#: the recipe fields a run's ``search.json`` records and a reference must match, plus ``data``
MATCH_FIELDS = ("version", "epochs", "img_size", "images", "width_mult")


def recipe_key(version: str, scale: str) -> dict[str, Any]:
    """The matched recipe values of ``version`` at ``benchmarks.lib.recipes.SCALES[scale]``."""
    r = Recipe.named(version, **SCALES[scale])
    return {**{f: getattr(r, f) for f in MATCH_FIELDS}, "data": "shapes"}


def _label(version: str, scale: str) -> str:
    r = Recipe.named(version, **SCALES[scale])
    return f"recipe {version}, {scale} scale ({r.img_size} px, {r.epochs} epochs, {r.images} images, width ×{r.width_mult:g})"


def _gflops(name: str) -> float:
    from nas.core.cost import cost
    from search_spaces import compile_config, load_config

    return cost(compile_config(load_config(name))).flops / 1e9


def table_entry(table: list[dict[str, Any]], scale: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The table's designs measured at ``scale`` (2-seed mean AP) and the noise of one training
    there (ICC(1), seed sd, design sd over the designs with both seeds)."""
    points, groups = [], []
    for d in table:
        full = d["trainings"].get("full", {})
        aps = [full[s]["AP"] for s in sorted(full)]
        if len(aps) < 2:
            continue
        groups.append(aps)
        points.append(
            {
                "id": d["id"],
                "GFLOPs": round(d["flops"] / 1e9, 3),
                "AP": round(sum(aps) / len(aps), 5),
                "seeds": len(aps),
                "design": design(d["pattern"]),
            }
        )
    if len(groups) < 3:
        return points, None
    noise = icc1(groups)
    return points, {
        "icc": round(noise["icc"], 3),
        "seed_sd": round(noise["seed_sd"], 4),
        "design_sd": round(noise["design_sd"], 4),
        "designs": len(groups),
        "trainings": sum(len(g) for g in groups),
        "source": f"the gradient-path table at this recipe: {len(groups)} designs x 2 seeds "
        "(benchmarks/data/gp_table_results.jsonl), one-way ICC(1)",
    }


def reference() -> dict[str, Any]:
    """The whole file (deterministic: same data in, same bytes out)."""
    table = load_table(scale="reduced")
    recipes = []
    for version, scale in (("v2", "reduced"), ("v2", "default"), ("v1", "default")):
        # the table was trained with recipe v2 only
        points, noise = table_entry(load_table(scale=scale), scale) if version == "v2" else ([], None)
        recipes.append(
            {
                "id": f"{version}-{scale}",
                "label": _label(version, scale),
                "recipe": recipe_key(version, scale),
                "presets": [],
                "table": points,
                "noise": noise,
            }
        )
    by_id = {r["id"]: r for r in recipes}
    wvp = json.loads(WINNER_VS_PRESETS.read_text())
    assert (wvp["recipe"]["version"], wvp["recipe"]["name"]) == ("v2", "reduced"), wvp["recipe"]
    by_id["v2-reduced"]["presets"] = [
        {
            "name": r["design"],
            "GFLOPs": round(r["GFLOPs"], 3),
            "AP": round(r["AP"], 5),
            "seeds": len(r["seed_APs"]),
            "source": "benchmarks/data/winner_vs_presets.json (2 seeds each)",
        }
        for r in wvp["rows"]
        if "config" not in r  # the searches' winners carry their config; the presets do not
    ]
    by_id["v1-default"]["presets"] = [
        {
            "name": name,
            "GFLOPs": round(_gflops(name), 3),
            "AP": ap,
            "seeds": 1,
            "source": "benchmarks/readme_figure.py (docs/results.md, the paper at proxy scale: 1 seed, one NVIDIA H200)",
        }
        for name, ap in V1_DEFAULT_AP.items()
    ]
    designs = [
        {
            "id": d["id"],
            "split": d["split"],
            "flops": d["flops"],
            "params": d["params"],
            "metrics": d["metrics"],
            "design": design(d["pattern"]),
        }
        for d in table
    ]
    return {
        "format": FORMAT,
        "generated_by": "python -m benchmarks.report_reference",
        "match_fields": [*MATCH_FIELDS, "data"],
        "recipes": recipes,
        "table_designs": designs,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--check", action="store_true", help="exit 1 if the file differs from what would be written")
    args = p.parse_args(argv)
    text = json.dumps(reference(), indent=1, sort_keys=True) + "\n"
    if args.check:
        same = args.out.is_file() and args.out.read_text() == text
        print(f"{args.out}: {'up to date' if same else 'OUT OF DATE: run python -m benchmarks.report_reference'}")
        return 0 if same else 1
    atomic_write_text(args.out, text)
    print(f"{args.out}: {len(text) / 1e3:.0f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
