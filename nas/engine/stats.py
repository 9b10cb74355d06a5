"""Statistics shared by the search and the benchmarks: rank correlation with bootstrap CIs,
ridge on ranks (the fitted cheap score and its live calibration), Pareto fronts and hypervolume.

Plain numpy functions over sequences, in the style of networkx's algorithms: each says what it
computes and its cost.

>>> kendall_tau([1, 2, 3, 4], [10, 20, 40, 30])
0.6666666666666666
>>> pareto_fronts([(0.3, 10.0), (0.2, 5.0), (0.1, 20.0)])
[[1, 0], [2]]
>>> hypervolume([(0.5, 50.0)], budget=100.0)
0.25
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


# -- rank correlation --------------------------------------------------------------------------------
def ranks(x: Sequence[float]) -> np.ndarray:
    """Average ranks (ties share the mean rank), as scipy.stats.rankdata."""
    a = np.asarray(x, dtype=float)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a))
    ranks[order] = np.arange(1, len(a) + 1)
    for v in np.unique(a):
        tie = a == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's τ-b (tie-corrected), O(n²): n is tens here. NaN when either side is constant."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    i, j = np.triu_indices(len(a), 1)
    da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    n_a, n_b = np.count_nonzero(da), np.count_nonzero(db)
    if not n_a or not n_b:
        return float("nan")
    return float((da * db).sum() / math.sqrt(n_a * n_b))


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's ρ: Pearson correlation of average ranks. NaN when either side is constant."""
    ra, rb = ranks(x), ranks(y)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


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


# -- rank models (the fitted cheap score) ------------------------------------------------------------------------------
LOG_FEATURES = ("flops", "params", "gp.gradient_combinations", "gp.distinct_gradient_combinations")


def transform(name: str, value: float) -> float:
    """Heavy-tailed counts enter a fitted model as logs (synflow/naswot are logs already)."""
    return math.log(max(value, 1e-12)) if name in LOG_FEATURES else float(value)


def _standardise(train: np.ndarray, x: np.ndarray) -> np.ndarray:
    mu, sd = train.mean(axis=0), train.std(axis=0)
    return (x - mu) / np.where(sd > 0, sd, 1.0)


def fit_rank_linear(features: np.ndarray, target: np.ndarray, ridge: float = 1.0) -> np.ndarray:
    """Ridge regression of the target's standardised ranks on standardised features: it fits
    the ordering (what selection uses), not AP's scale; the ridge keeps 5–7 weights sane on
    a few dozen points. Weights refer to features standardised with the training data."""
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


# -- fronts ------------------------------------------------------------------------------------
def pareto_fronts(points: Sequence[tuple[float, float]]) -> list[list[int]]:
    """Non-dominated sorting for (maximise a, minimise b): peel fronts with a sorted sweep,
    O(n log n) per front. Equal points share a front."""
    remaining = list(range(len(points)))
    fronts = []
    while remaining:
        remaining.sort(key=lambda i: (points[i][1], -points[i][0]))
        front, rest, best = [], [], -math.inf
        for i in remaining:
            if points[i][0] > best or (front and points[i] == points[front[-1]]):  # equal points tie
                front.append(i)
                best = points[i][0]
            else:
                rest.append(i)
        fronts.append(front)
        remaining = rest
    return fronts


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


def sem(v: Sequence[float]) -> float:
    """Standard error of the mean (0 for a single value)."""
    a = np.asarray(v, dtype=float)
    return float(a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else 0.0
