"""The studies' statistics: rank correlation with bootstrap CIs, ridge on ranks and its
cross-validation, ICC(1), partial τ, hypervolume. The search needs none of them (it keeps
``ranks``, ``kendall_tau`` and ``pareto_fronts`` in :mod:`nas.engine.stats`), so they live here,
with the benchmarks that report them.

Plain numpy functions over sequences: each says what it computes and its cost.

>>> round(spearman_rho([1, 2, 3, 4], [10, 20, 40, 30]), 3)
0.8
>>> hypervolume([(0.5, 50.0)], budget=100.0)
0.25
>>> sem([1.0, 3.0])
1.0
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nas.engine.stats import kendall_tau, ranks


# -- rank correlation --------------------------------------------------------------------------------
def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ: Pearson correlation of average ranks. NaN when either side is constant."""
    ra, rb = ranks(x), ranks(y)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def partial_tau(x: Sequence[float], y: Sequence[float], z: Sequence[float]) -> float:
    """Kendall's partial τ of x and y given z:
    (τ_xy − τ_xz τ_yz) / √((1 − τ_xz²)(1 − τ_yz²)); NaN when z orders x or y completely.

    >>> x = [1, 2, 3, 4, 5, 6]; z = [1, 2, 3, 4, 5, 6]
    >>> math.isnan(partial_tau(x, [6, 5, 4, 3, 2, 1], z))
    True
    >>> round(partial_tau([1, 3, 2, 5, 4, 6], [2, 1, 4, 3, 6, 5], [1, 2, 3, 4, 5, 6]), 3)
    -0.196
    """
    txy, txz, tyz = kendall_tau(x, y), kendall_tau(x, z), kendall_tau(y, z)
    den = (1 - txz**2) * (1 - tyz**2)
    return (txy - txz * tyz) / math.sqrt(den) if den > 1e-12 else float("nan")


# -- the bootstrap -----------------------------------------------------------------------------------
def bootstrap_quantiles(
    stat: Callable[[np.ndarray], float], n: int, quantiles: Sequence[float], n_boot: int = 1000, seed: int = 0
) -> list[float] | None:
    """Percentile bootstrap: the ``quantiles`` of ``stat(idx)`` over ``n_boot`` resamples ``idx``
    of ``n`` items (indices drawn with replacement); resamples where the statistic is undefined
    (all ties) are skipped; None when none is defined. The one resampling loop of the CIs below
    and of the benchmarks'.

    >>> bootstrap_quantiles(lambda i: float(i.mean()), 1, [0.5])
    [0.0]
    """
    rng = np.random.default_rng(seed)
    vals = [v for v in (stat(rng.integers(0, n, n)) for _ in range(n_boot)) if math.isfinite(v)]
    return [float(q) for q in np.quantile(vals, quantiles)] if vals else None


def bootstrap_ci(
    x: Sequence[float],
    y: Sequence[float],
    stat: Callable[[Sequence[float], Sequence[float]], float],
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``stat(x, y)``, resampling pairs (candidates) with replacement;
    resamples where the statistic is undefined (all ties) are skipped."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    q = bootstrap_quantiles(lambda i: stat(a[i], b[i]), len(a), [(1 - level) / 2, 1 - (1 - level) / 2], n_boot, seed)
    return (float("nan"), float("nan")) if q is None else (q[0], q[1])


def bootstrap_tau_difference(
    a: Sequence[float], b: Sequence[float], y: Sequence[float], n_boot: int = 1000, seed: int = 0
) -> list[float] | None:
    """Percentile 95 % CI of τ(b, y) − τ(a, y), resampling designs (a, b and y together): the
    paired comparison of two scores on the same designs; None when no resample is defined."""
    a, b, y = (np.asarray(v, dtype=float) for v in (a, b, y))
    return bootstrap_quantiles(
        lambda i: kendall_tau(b[i], y[i]) - kendall_tau(a[i], y[i]), len(y), [0.025, 0.975], n_boot, seed
    )


def correlation(x: Sequence[float], y: Sequence[float], n_boot: int = 1000) -> dict[str, Any]:
    """τ and ρ with their bootstrap 95 % CIs (one dict per predictor in the report)."""
    return {
        "n": len(x),
        "kendall_tau": kendall_tau(x, y),
        "kendall_tau_ci95": bootstrap_ci(x, y, kendall_tau, n_boot),
        "spearman_rho": spearman_rho(x, y),
        "spearman_rho_ci95": bootstrap_ci(x, y, spearman_rho, n_boot),
    }


# -- rank models (the fitted cheap score's) -------------------------------------------------------------
def _standardise(train: np.ndarray, x: np.ndarray) -> np.ndarray:
    mu, sd = train.mean(axis=0), train.std(axis=0)
    return (x - mu) / np.where(sd > 0, sd, 1.0)


def fit_rank_linear(features: np.ndarray, target: np.ndarray, ridge: float = 1.0) -> np.ndarray:
    """Ridge regression of the target's standardised ranks on standardised features: it fits
    the ordering (what selection uses), not AP's scale; the ridge keeps 5–7 weights sane on
    a few dozen points. Weights refer to features standardised with the training data (the model
    :func:`nas.engine.scores.registry.linear_rank_score` applies to one candidate)."""
    x = _standardise(features, features)
    r = ranks(target)
    y = (r - r.mean()) / (r.std() or 1.0)
    return np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ y)


def predict_rank_linear(train: np.ndarray, weights: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Score rows (one or many) with a model fitted on ``train``: continuous, so no ties."""
    return _standardise(train, test) @ weights


def cv_tau(
    features: np.ndarray,
    target: np.ndarray,
    folds: int = 3,
    repeats: int = 50,
    seed: int = 0,
    ridge: float = 1.0,
    baselines: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Repeated k-fold cross-validation of the fitted rank model, scored *within* each held-out
    fold (τ of its predictions on the fold vs the fold's target), so refits on other folds never
    mix scales. ``baselines`` (raw predictors, no fitting) are scored on the very same folds,
    giving a paired comparison: mean τ and the share of folds the fitted model wins."""
    n = len(target)
    rng = np.random.default_rng(seed)
    taus: list[float] = []
    base: dict[str, list[float]] = {k: [] for k in baselines or {}}
    for _ in range(repeats):
        perm = rng.permutation(n)
        for f in range(folds):
            test = perm[f::folds]
            train = np.setdiff1d(perm, test)
            w = fit_rank_linear(features[train], target[train], ridge)
            t = kendall_tau(predict_rank_linear(features[train], w, features[test]), target[test])
            if not math.isfinite(t):
                continue
            taus.append(t)
            for k, v in (baselines or {}).items():
                base[k].append(kendall_tau(v[test], target[test]))
    out: dict[str, Any] = {
        "cv_kendall_tau": float(np.mean(taus)),
        "cv_kendall_tau_range95": [float(v) for v in np.quantile(taus, [0.025, 0.975])],
        "folds": folds,
        "repeats": repeats,
    }
    for k, v in base.items():
        b = np.nan_to_num(np.array(v), nan=0.0)
        out[f"same_folds_tau.{k}"] = float(b.mean())
        out[f"wins_vs.{k}"] = float(np.mean(np.array(taus) > b))
        out[f"losses_vs.{k}"] = float(np.mean(np.array(taus) < b))
    return out


# -- reliability -------------------------------------------------------------------------------------
def icc1(groups: list[list[float]]) -> dict[str, float]:
    """One-way random-effects ICC(1) of ``groups`` (one list of seed scores per design, any
    lengths ≥ 1; designs with one score add to the between-design term only through n0).

    >>> round(icc1([[1.0, 1.1], [2.0, 2.1], [3.0, 2.9]])["icc"], 3)
    0.994
    """
    groups = [g for g in groups if len(g) >= 1]
    a, n = len(groups), sum(len(g) for g in groups)
    grand = sum(sum(g) for g in groups) / n
    msb = sum(len(g) * (statistics.fmean(g) - grand) ** 2 for g in groups) / max(1, a - 1)
    ssw = sum(sum((v - statistics.fmean(g)) ** 2 for v in g) for g in groups)
    msw = ssw / max(1, n - a)
    n0 = (n - sum(len(g) ** 2 for g in groups) / n) / max(1, a - 1)
    between = max(0.0, (msb - msw) / n0) if n0 else 0.0
    icc = (msb - msw) / (msb + (n0 - 1) * msw) if msb + (n0 - 1) * msw > 0 else float("nan")
    return {"icc": icc, "seed_sd": math.sqrt(msw), "design_sd": math.sqrt(between)}


def sem(v: Sequence[float]) -> float:
    """Standard error of the mean (0 for a single value)."""
    a = np.asarray(v, dtype=float)
    return float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else 0.0


# -- fronts ------------------------------------------------------------------------------------------
def hypervolume(points: Sequence[tuple[float, float]], budget: float) -> float:
    """2-D hypervolume of (AP ↑, cost ↓) points w.r.t. the reference (0, budget), the cost as a
    share of the budget: the area the front dominates, in [0, max AP]. O(n log n)."""
    pts = sorted((f / budget, ap) for ap, f in points if f < budget and ap > 0)
    hv, best = 0.0, 0.0
    for i, (f, ap) in enumerate(pts):  # sweep by cost ascending; each step adds a slab
        best = max(best, ap)
        f_next = pts[i + 1][0] if i + 1 < len(pts) else 1.0
        hv += best * (f_next - f)
    return hv
