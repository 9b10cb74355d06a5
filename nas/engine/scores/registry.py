"""The cheap scores: one registry of the quality estimates the cheap stage ranks candidates by.

A score is a function of a candidate's cost and network-level gradient-path metrics (and, for
the zero-cost baselines, of a value measured on the proxy-scale model); higher is better. A new
score is one decorated function::

    @register_score("my-score")
    def my_score(c: Candidate) -> float:
        return -c.flops

The default, ``fitted``, is a ridge-on-ranks model fitted on the gradient-path table; its weights
are read from a versioned data file (:data:`FITTED_SCORE_FILE`) that ``python -m
benchmarks.gp_analysis --heldout --ship`` writes (only past its held-out test), never copied by hand.

>>> sorted(SCORES)
['fitted', 'flops', 'gradpath', 'naswot', 'params', 'synflow']
>>> round(cheap_score("gradpath", 0, 0, {"gradient_combinations": 100, "max_shortest_gradient_path": 1}), 3)
4.605
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The fitted score's weights (written by ``benchmarks.gp_analysis --heldout --ship``, earlier by
#: ``benchmarks.rank_study --ship``).
FITTED_SCORE_FILE = Path(__file__).parent / "data" / "fitted_score.json"
FITTED_SCORE_FORMAT = 1
DEFAULT_CHEAP_SCORE = "fitted"


@dataclasses.dataclass(frozen=True)
class Candidate:
    """What a score may look at: full-size cost, network-level metrics, optional zero-cost values."""

    flops: int
    params: int
    metrics: dict[str, Any]
    zero_cost: dict[str, float] | None = None


@dataclasses.dataclass(frozen=True)
class CheapScore:
    name: str
    fn: Callable[[Candidate], float]
    #: a zero-cost proxy measured on the proxy-scale model (seconds per candidate, not ms)
    zero_cost: bool = False


SCORES: dict[str, CheapScore] = {}


def register_score(name: str, zero_cost: bool = False) -> Callable[[Callable[[Candidate], float]], Callable]:
    """Register ``fn(candidate) -> float`` as the cheap score ``name`` (higher is better)."""

    def deco(fn: Callable[[Candidate], float]) -> Callable[[Candidate], float]:
        if name in SCORES:
            raise ValueError(f"cheap score {name!r} is registered twice")
        SCORES[name] = CheapScore(name, fn, zero_cost)
        return fn

    return deco


def cheap_score(
    kind: str, flops: int, params: int, metrics: dict[str, Any], zero_cost: dict[str, float] | None = None
) -> float:
    """The cheap score ``kind`` of one candidate (see :data:`SCORES`)."""
    return SCORES[kind].fn(Candidate(flops, params, metrics, zero_cost))


@functools.cache
def fitted_weights(path: Path = FITTED_SCORE_FILE) -> dict[str, Any]:
    """The fitted score's data file, checked: ``features`` maps a feature to its weight, the
    mean and std it was standardised with, and whether it enters as a log."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("format") != FITTED_SCORE_FORMAT or not data.get("features"):
        raise ValueError(f"{path}: not a fitted-score file of format {FITTED_SCORE_FORMAT}")
    return data


def save_fitted_weights(
    path: Path, fit: dict[str, dict[str, float]], version: str, source: str, log_features: tuple[str, ...], **extra: Any
) -> dict[str, Any]:
    """Write a fitted-score file from a rank study's fit (feature -> weight/mean/std, features
    named as the study names them, ``gp.`` for gradient-path metrics); returns what it wrote."""
    from nas.core.runio import atomic_write_json

    features = {
        name.removeprefix("gp."): {
            "weight": round(float(f["weight"]), 6),
            "mean": round(float(f["mean"]), 6),
            "std": round(float(f["std"]), 6),
            "log": name in log_features,
        }
        for name, f in fit.items()
    }
    data = {"format": FITTED_SCORE_FORMAT, "name": "fitted", "version": version, "source": source, **extra}
    data["features"] = features
    atomic_write_json(path, data)
    fitted_weights.cache_clear()
    return data


def fitted_feature(name: str, c: Candidate) -> float:
    """The raw value of feature ``name`` (a cost or a network-level metric)."""
    if name in ("flops", "params"):
        return float(getattr(c, name))
    return float(c.metrics[name] or 0)


def linear_rank_score(c: Candidate, features: dict[str, Any]) -> float:
    """Σ weight × (feature − mean) / std, features as logs where marked: the ridge-on-ranks model
    that ``benchmarks.lib.stats.fit_rank_linear`` fits, applied to one candidate."""
    total = 0.0
    for name, f in features.items():
        x = fitted_feature(name, c)
        x = math.log(max(1.0, x)) if f["log"] else x
        total += f["weight"] * (x - f["mean"]) / f["std"]
    return total


@register_score("gradpath")
def gradpath(c: Candidate) -> float:
    """The paper's argument as a number: log of the gradient combinations minus the log of the
    longest shortest gradient path (rich combinations and short paths learn well)."""
    comb = max(1, c.metrics["gradient_combinations"])
    sgp = max(1, c.metrics["max_shortest_gradient_path"] or 1)
    return math.log(comb) - math.log(sgp)


@register_score("fitted")
def fitted(c: Candidate) -> float:
    """The gradient-path table's fitted combination of the six network-level metrics and FLOPs:
    at equal FLOPs, shorter gradient paths and richer combinations rank higher (held-out τ 0.67
    against 0.44 for FLOPs: docs/results.md, "The gradient-path table")."""
    return linear_rank_score(c, fitted_weights()["features"])


@register_score("flops")
def flops(c: Candidate) -> float:
    """Plain size baseline: more FLOPs, more capacity."""
    return float(c.flops)


@register_score("params")
def params(c: Candidate) -> float:
    """Plain size baseline: more parameters."""
    return float(c.params)


def _zero_cost(kind: str) -> Callable[[Candidate], float]:
    def score(c: Candidate) -> float:
        if not c.zero_cost or kind not in c.zero_cost:
            raise ValueError(f"cheap score {kind!r} needs its zero-cost value (score_candidate computes it)")
        return float(c.zero_cost[kind])

    score.__doc__ = f"The zero-cost proxy {kind} of the proxy-scale model (evaluators.zero_cost)."
    return score


register_score("synflow", zero_cost=True)(_zero_cost("synflow"))
register_score("naswot", zero_cost=True)(_zero_cost("naswot"))
