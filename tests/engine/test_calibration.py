"""Live calibration of the cheap score (the fidelity ledger), checked against independent routes."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from nas.engine.scores.calibration import MISLEADING_MIN_N, calibrate, design_matrix, fit_with_prior, score_rows
from nas.engine.scores.registry import cheap_score, fitted_weights

PRIOR = {
    "flops": {"weight": 0.6, "mean": 24.0, "std": 0.7, "log": True},
    "max_shortest_gradient_path": {"weight": -0.5, "mean": 10.0, "std": 3.0, "log": False},
}


def _rows(rng: np.random.Generator, n: int) -> list[dict[str, float]]:
    return [
        {"flops": float(math.exp(rng.normal(24, 0.7))), "max_shortest_gradient_path": float(rng.integers(4, 16))}
        for _ in range(n)
    ]


def _lstsq_with_prior(x: np.ndarray, target: np.ndarray, w0: np.ndarray, lam: float) -> np.ndarray:
    """The same penalised fit, as one least-squares problem on an augmented system."""
    xc = x - x.mean(axis=0)
    r = sps.rankdata(target)
    y = (r - r.mean()) / r.std()
    a = np.vstack([xc, math.sqrt(lam) * np.eye(x.shape[1])])
    b = np.concatenate([y, math.sqrt(lam) * w0])
    return np.linalg.lstsq(a, b, rcond=None)[0]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(3, 30), lam=st.floats(0.01, 100))
def test_fit_with_prior_is_the_penalised_least_squares_solution(seed, n, lam):
    rng = np.random.default_rng(seed)
    x = design_matrix(_rows(rng, n), PRIOR)
    ap = rng.random(n)
    w0 = np.array([0.6, -0.5])
    np.testing.assert_allclose(fit_with_prior(x, ap, w0, lam), _lstsq_with_prior(x, ap, w0, lam), atol=1e-8)


def test_few_trainings_keep_the_prior_many_move_toward_the_data():
    rng = np.random.default_rng(0)
    w0 = np.array([0.6, -0.5])
    big = _rows(rng, 400)
    x = design_matrix(big, PRIOR)
    ap = -x[:, 0] + 0.01 * rng.normal(size=400)  # AP falls with FLOPs here: the prior is wrong on flops
    w_small = fit_with_prior(x[:4], ap[:4], w0)
    w_big = fit_with_prior(x, ap, w0)
    assert np.linalg.norm(w_small - w0) < np.linalg.norm(w_big - w0)
    assert w_big[0] < 0 < w0[0]  # enough data overrules the prior's sign
    np.testing.assert_allclose(fit_with_prior(x[:5], ap[:5], w0, strength=1e9), w0, atol=1e-6)


def test_ledger_entry_matches_scipy_and_a_brute_force_leave_one_out():
    rng = np.random.default_rng(3)
    rows = _rows(rng, 9)
    ap = list(rng.random(9))
    cheap = list(rng.random(9))
    e = calibrate(rows, ap, cheap, PRIOR)
    assert e["n"] == 9
    assert e["kendall_tau"] == pytest.approx(sps.kendalltau(cheap, ap).statistic, abs=1e-4)
    x = design_matrix(rows, PRIOR)
    w0 = np.array([0.6, -0.5])
    loo = [x[i] @ _lstsq_with_prior(np.delete(x, i, 0), np.delete(np.array(ap), i), w0, 8.0) for i in range(9)]
    assert e["kendall_tau_calibrated"] == pytest.approx(sps.kendalltau(loo, ap).statistic, abs=1e-4)
    assert set(e["weights"]) == set(PRIOR)


def test_misleading_needs_a_negative_tau_and_enough_trainings():
    rng = np.random.default_rng(1)
    n = MISLEADING_MIN_N
    rows = _rows(rng, n)
    ap = [0.1 * i for i in range(n)]
    assert calibrate(rows, ap, [-a for a in ap], PRIOR)["misleading"]
    assert not calibrate(rows[:-1], ap[:-1], [-a for a in ap[:-1]], PRIOR)["misleading"]  # n = 5: too few
    assert not calibrate(rows, ap, ap, PRIOR)["misleading"]


def test_undefined_tau_is_none_and_the_weights_stay_the_prior():
    rows = _rows(np.random.default_rng(2), 4)
    e = calibrate(rows, [0.0] * 4, [1, 2, 3, 4], PRIOR)  # tiny runs: every AP 0
    assert e["kendall_tau"] is None and e["kendall_tau_calibrated"] is None
    assert e["weights"] == {"flops": 0.6, "max_shortest_gradient_path": -0.5}
    assert calibrate([], [], [], PRIOR)["n"] == 0


def test_prior_weights_reproduce_the_shipped_fitted_score():
    """Scored with the shipped weights unchanged, the calibration's model is the ``fitted`` score."""
    prior = fitted_weights()["features"]
    rng = np.random.default_rng(4)
    cands = []
    for _ in range(6):
        metrics = {  # every network-level metric a shipped score may read
            "max_shortest_gradient_path": int(rng.integers(4, 16)),
            "longest_gradient_path": int(rng.integers(30, 120)),
            "gradient_combinations": float(math.exp(rng.normal(13, 0.8))),
            "distinct_gradient_combinations": int(rng.integers(40, 120)),
            "duplicate_gradient_ratio": float(rng.uniform(0, 0.3)),
            "gradient_overlap": float(rng.uniform(0, 0.4)),
        }
        cands.append((int(math.exp(rng.normal(24.7, 0.6))), int(rng.integers(10**6, 10**8)), metrics))
    from nas.engine.scores.calibration import features_of

    rows = [features_of(f, p, m) for f, p, m in cands]
    weights = {k: v["weight"] for k, v in prior.items()}
    np.testing.assert_allclose(score_rows(rows, prior, weights), [cheap_score("fitted", *c) for c in cands], atol=1e-9)
