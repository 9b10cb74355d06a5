"""Live calibration of the cheap score on a search's own measured APs (the fidelity ledger).

The shipped ``fitted`` score was fitted on another run's space and recipe; whether it ranks
*this* search's candidates is only known once some are trained. After each rung the score is
refitted by ridge on ranks (the model ``benchmarks.lib.stats.fit_rank_linear`` fits for the shipped score) on the rung's
measured APs, shrunk toward the shipped weights: with a handful of trainings the prior
dominates, with many the data. The refit re-ranks the untrained pool and breaks promotion ties.

>>> import numpy as np
>>> prior = {"flops": {"weight": 1.0, "mean": 0.0, "std": 1.0, "log": False}}
>>> rows = [{"flops": float(f)} for f in (1, 2, 3, 4, 5, 6)]
>>> cal = calibrate(rows, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [1, 2, 3, 4, 5, 6], prior)
>>> cal["n"], cal["kendall_tau"], cal["kendall_tau_calibrated"], cal["misleading"]
(6, 1.0, 1.0, False)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from nas.engine.stats import kendall_tau, ranks

#: the prior's weight, in candidates of unit feature variance: below about this many trainings
#: the shipped weights dominate the refit
PRIOR_STRENGTH = 8.0
#: from this many trainings on, a negative τ of the cheap score is taken as evidence it misleads
MISLEADING_MIN_N = 6


def features_of(flops: float, params: float, metrics: dict[str, Any]) -> dict[str, float]:
    """A candidate's raw features as the fitted score names them (costs and network metrics)."""
    return {"flops": float(flops), "params": float(params), **{k: float(v or 0) for k, v in metrics.items()}}


def design_matrix(rows: Sequence[dict[str, float]], prior: dict[str, Any]) -> np.ndarray:
    """Rows standardised as the shipped score standardises them (logs where marked), so that the
    refit's weights are on the prior's scale."""
    cols = []
    for name, f in prior.items():
        x = np.array([r[name] for r in rows], dtype=float)
        if f["log"]:
            x = np.log(np.maximum(x, 1.0))
        cols.append((x - f["mean"]) / (f["std"] or 1.0))
    return np.stack(cols, axis=1) if cols else np.zeros((len(rows), 0))


def fit_with_prior(
    x: np.ndarray, target: Sequence[float], w0: np.ndarray, strength: float = PRIOR_STRENGTH
) -> np.ndarray:
    """argmin ‖y − X̃w‖² + strength·‖w − w0‖²: ridge on the target's standardised ranks (X̃ the
    rows centred on their mean, y the ranks standardised), shrunk toward ``w0``, not toward 0."""
    xc = x - x.mean(axis=0)
    r = ranks(target)
    y = (r - r.mean()) / (r.std() or 1.0)
    a = xc.T @ xc + strength * np.eye(x.shape[1])
    return np.linalg.solve(a, xc.T @ y + strength * w0)


def _tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    t = kendall_tau(x, y) if len(x) >= 2 else float("nan")
    return round(t, 4) if math.isfinite(t) else None


def calibrate(
    rows: Sequence[dict[str, float]],
    ap: Sequence[float],
    cheap: Sequence[float],
    prior: dict[str, Any],
    strength: float = PRIOR_STRENGTH,
) -> dict[str, Any]:
    """One ledger entry from a rung's trained candidates: their features (``rows``), measured
    APs and the run's cheap scores. ``kendall_tau`` is the cheap score's τ with AP,
    ``kendall_tau_calibrated`` the refit's leave-one-out τ (each candidate scored by a refit on
    the others), ``weights`` the refit on all of them (the prior's when nothing varies). τ is
    ``None`` where undefined (fewer than 2, or AP all equal)."""
    w0 = np.array([prior[k]["weight"] for k in prior], dtype=float)
    n = len(ap)
    entry: dict[str, Any] = {"n": n, "kendall_tau": _tau(cheap, ap), "kendall_tau_calibrated": None}
    weights = w0
    if n >= 2 and len(set(ap)) > 1:
        x = design_matrix(rows, prior)
        weights = fit_with_prior(x, ap, w0, strength)
        if n >= 3:
            loo = [
                float(x[i] @ fit_with_prior(np.delete(x, i, 0), np.delete(np.asarray(ap), i), w0, strength))
                for i in range(n)
            ]
            entry["kendall_tau_calibrated"] = _tau(loo, ap)
    entry["weights"] = {k: round(float(w), 4) for k, w in zip(prior, weights, strict=True)}
    tau = entry["kendall_tau"]
    entry["misleading"] = bool(tau is not None and tau < 0 and n >= MISLEADING_MIN_N)
    return entry


def score_rows(rows: Sequence[dict[str, float]], prior: dict[str, Any], weights: dict[str, float]) -> list[float]:
    """The calibrated score of candidates (higher is better): the prior's standardisation, the refit's weights."""
    if not rows:
        return []
    x = design_matrix(rows, prior)
    return [float(v) for v in x @ np.array([weights[k] for k in prior], dtype=float)]
