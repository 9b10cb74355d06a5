"""What a run is compared with: the references the project has measured (shipped as
``data/reference.json``, written by ``python -m benchmarks.report_reference`` from
``benchmarks/data/``), matched to the run by its recipe values; the paper's presets within the
run's budget; the best of them by a stated rule; and whether an AP difference is beyond the
recipe's measured noise.

>>> from evaluators.recipe import Recipe
>>> from nas.engine.options import SearchOptions
>>> match(SearchOptions(budget=150 * 10**9))["id"], match(SearchOptions(budget=1, recipe=Recipe(epochs=3))) is None
('v2-reduced', True)
>>> gap(0.22, 0.15, seed_sd=0.02)["beyond"], gap(0.16, 0.15, seed_sd=0.02)["beyond"]
(True, False)
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

from nas.engine.options import SearchOptions
from nas.engine.scores.registry import SCORES, cheap_score

__all__ = ["REFERENCE_FILE", "best_preset", "gap", "match", "presets_within", "recipe_values", "reference"]

REFERENCE_FILE = Path(__file__).parent / "data" / "reference.json"
REFERENCE_FORMAT = 1
#: an AP difference counts as beyond the noise when it exceeds this many sd of such a difference
#: (the verdict rule of the paper-ablation study, docs/results.md)
NOISE_SDS = 2.0


@functools.cache
def reference(path: Path = REFERENCE_FILE) -> dict[str, Any]:
    """The shipped reference file, checked for its format."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("format") != REFERENCE_FORMAT:
        raise ValueError(f"{path}: not a reference file of format {REFERENCE_FORMAT}")
    return data


def recipe_values(opts: SearchOptions) -> dict[str, Any]:
    """The values a reference must share with the run: recipe version, epochs, image size,
    images, width, and the data (the references were all measured on the embedded ``shapes``)."""
    r = opts.recipe
    return {
        "version": r.version,
        "epochs": r.epochs,
        "img_size": r.img_size,
        "images": r.images,
        "width_mult": r.width_mult,
        "data": opts.data,
    }


def match(opts: SearchOptions) -> dict[str, Any] | None:
    """The reference entry measured at exactly the run's recipe, or ``None``."""
    want = recipe_values(opts)
    return next((e for e in reference()["recipes"] if e["recipe"] == want), None)


def presets_within(opts: SearchOptions, latency_model: Any = None) -> list[dict[str, Any]]:
    """The detector presets (family ``yolor``) within the run's FLOPs budget, and its latency
    budget when it has one and ``latency_model`` predicts it: name, FLOPs, params, metrics,
    the run's cheap score (``None`` for a zero-cost score) and the predicted latency."""
    from nas.core.cost import cost
    from nas.core.metrics import gradient_path_metrics
    from search_spaces import compile_config, load_config, preset_names

    out = []
    for name in preset_names():
        cfg = load_config(name)
        if cfg.family != "yolor":
            continue
        graph = compile_config(cfg)
        c = cost(graph)
        if c.flops > opts.budget:
            continue
        latency = None
        if latency_model is not None:
            from nas.engine.latency import predict_latency_ms

            latency = predict_latency_ms(graph, latency_model)
            if opts.latency_budget_ms is not None and latency > opts.latency_budget_ms:
                continue
        metrics = gradient_path_metrics(graph).to_dict(layers=False)
        zero = SCORES[opts.cheap_score].zero_cost if opts.cheap_score in SCORES else True
        score = None if zero else cheap_score(opts.cheap_score, c.flops, c.params, metrics)
        out.append(
            {
                "name": name,
                "flops": c.flops,
                "params": c.params,
                "metrics": metrics,
                "score": score,
                "latency_ms": latency,
            }
        )
    return out


def best_preset(opts: SearchOptions, presets: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The preset the winner is drawn beside, and the rule that chose it (said on the page):

    1. the preset within the budget with the best AP measured at the run's recipe;
    2. else the best measured at another scale of the same recipe version (its AP is not
       comparable with the run's, its ranking is the best evidence there is);
    3. else the preset the run's cheap score ranks highest.

    ``AP`` is set only in case 1 (an AP at this recipe); ``None`` when no preset fits the budget."""
    if not presets:
        return None
    names = {p["name"] for p in presets}
    here = match(opts)
    measured = [m for m in (here or {}).get("presets", []) if m["name"] in names]
    if measured:
        best = max(measured, key=lambda m: m["AP"])
        return {
            "name": best["name"],
            "AP": best["AP"],
            "seeds": best["seeds"],
            "rule": f"the preset within the budget with the best proxy AP measured at this recipe "
            f"({len(measured)} presets measured, {best['seeds']} seed(s) each; {best['source']})",
        }
    for entry in reference()["recipes"]:
        if entry is here or entry["recipe"]["version"] != opts.recipe.version:
            continue
        other = [m for m in entry["presets"] if m["name"] in names]
        if other:
            best = max(other, key=lambda m: m["AP"])
            return {
                "name": best["name"],
                "AP": None,
                "seeds": 0,
                "rule": f"no preset has been measured at this recipe; the preset within the budget with the best "
                f"proxy AP measured at {entry['label']} (AP {best['AP']:.3f} there, not comparable with this run's "
                f"APs: only its ranking carries over)",
            }
    scored = [p for p in presets if p["score"] is not None]
    if not scored:
        return {"name": presets[0]["name"], "AP": None, "seeds": 0, "rule": "the first preset within the budget"}
    best = max(scored, key=lambda p: p["score"])
    return {
        "name": best["name"],
        "AP": None,
        "seeds": 0,
        "rule": f"no preset has been measured at recipe {opts.recipe.version}; the preset within the budget "
        f"that the run's cheap score ({opts.cheap_score}) ranks highest",
    }


def gap(ap_a: float, ap_b: float, seed_sd: float, n_a: int = 1, n_b: int = 1) -> dict[str, Any]:
    """``ap_a − ap_b`` read against the noise: the sd of such a difference when ``ap_a`` is the
    mean of ``n_a`` trainings and ``ap_b`` of ``n_b`` (each of seed sd ``seed_sd``), and whether
    it exceeds :data:`NOISE_SDS` of them."""
    sd = seed_sd * math.sqrt(1 / n_a + 1 / n_b)
    diff = ap_a - ap_b
    return {"diff": diff, "sd": sd, "sds": diff / sd if sd else math.inf, "beyond": abs(diff) > NOISE_SDS * sd}
