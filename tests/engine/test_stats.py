"""The shared statistics (``nas.engine.stats``) on synthetic data with known answers, and the rank
study's candidate list."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from benchmarks.lib.designs import BUDGET, candidate
from benchmarks.lib.stats import (
    bootstrap_ci,
    cv_tau,
    fit_rank_linear,
    predict_rank_linear,
    spearman_rho,
)
from nas.engine.stats import kendall_tau


def test_tau_and_rho_known_answers() -> None:
    x = [1, 2, 3, 4, 5]
    assert kendall_tau(x, x) == 1 and kendall_tau(x, x[::-1]) == -1
    assert spearman_rho(x, x) == pytest.approx(1) and spearman_rho(x, x[::-1]) == pytest.approx(-1)
    # one swapped pair out of 10: tau = (9 - 1) / 10
    assert kendall_tau([1, 2, 3, 4, 5], [2, 1, 3, 4, 5]) == pytest.approx(0.8)
    assert np.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))


def test_tau_and_rho_match_scipy_with_ties() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.integers(0, 6, 30), rng.normal(size=30)
        assert kendall_tau(a, b) == pytest.approx(stats.kendalltau(a, b).statistic)
        assert spearman_rho(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)


def test_bootstrap_ci_covers_truth_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(1)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=n)
        return x, x + rng.normal(size=n)  # population tau = 2/pi * asin(1/sqrt(2)) = 0.5

    x, y = sample(200)
    lo, hi = bootstrap_ci(x, y, kendall_tau, n_boot=300)
    assert lo < 0.5 < hi
    x2, y2 = sample(50)
    lo2, hi2 = bootstrap_ci(x2, y2, kendall_tau, n_boot=300)
    assert hi2 - lo2 > hi - lo
    assert bootstrap_ci([1, 2, 3, 4], [1, 2, 3, 4], kendall_tau, n_boot=100) == (1.0, 1.0)


def test_rank_fit_recovers_the_informative_feature() -> None:
    rng = np.random.default_rng(2)
    n = 60
    signal, noise = rng.normal(size=n), rng.normal(size=n)
    y = signal + 0.3 * rng.normal(size=n)
    x = np.column_stack([noise, signal])
    w = fit_rank_linear(x, y)
    assert abs(w[1]) > 5 * abs(w[0])
    cv = cv_tau(x, y, repeats=5, baselines={"noise": noise})
    assert cv["cv_kendall_tau"] > 0.6 and cv["wins_vs.noise"] > 0.9
    assert abs(cv_tau(noise[:, None], y, repeats=5)["cv_kendall_tau"]) < 0.25
    # a single new row is scored by its rank within the training data
    pred = predict_rank_linear(x, w, np.array([[0.0, signal.max() + 1], [0.0, signal.min() - 1]]))
    assert pred[0] > pred[1]


def test_candidates_are_feasible_deterministic_and_stratified() -> None:
    from nas.core.cost import cost
    from search_spaces import compile_config

    first = [candidate(i) for i in range(16)]
    assert [c.key() for c in first[:3]] == [candidate(i).key() for i in range(3)]
    assert len({(c.backbone.block, c.neck.block) for c in first}) == 16
    assert all(cost(compile_config(c)).flops < BUDGET for c in first)


def test_fitted_cheap_score_directions() -> None:
    from nas.engine import SCORES, cheap_score, score_candidate

    assert "fitted" in SCORES
    from search_spaces import load_config

    m = score_candidate(load_config("yolor-csp"), "flops")["metrics"]
    base = cheap_score("fitted", 5e10, 0, m)
    assert cheap_score("fitted", 1e11, 0, m) > base  # more FLOPs: higher
    assert cheap_score("fitted", 5e10, 0, {**m, "max_shortest_gradient_path": 6}) > base  # shorter paths
    assert cheap_score("fitted", 5e10, 0, {**m, "longest_gradient_path": m["longest_gradient_path"] - 10}) > base


def test_a_shipped_fit_is_the_score_the_search_uses(tmp_path) -> None:  # noqa: ANN001
    """``save_fitted_weights`` (what the one ``--ship`` path calls) writes a fit; the score read back
    from that file equals the ridge model applied by hand."""
    from benchmarks.lib.features import LOG_FEATURES
    from nas.engine.scores.registry import Candidate, fitted_weights, linear_rank_score, save_fitted_weights

    fit = {
        "gp.max_shortest_gradient_path": {"weight": -0.5, "mean": 10.0, "std": 3.0},
        "flops": {"weight": 0.6, "mean": 25.0, "std": 0.5},
    }
    path = tmp_path / "fitted.json"
    save_fitted_weights(path, fit, version="t", source="test", log_features=LOG_FEATURES)
    data = fitted_weights(path)
    assert data["features"]["flops"]["log"] and not data["features"]["max_shortest_gradient_path"]["log"]
    c = Candidate(flops=10**11, params=1, metrics={"max_shortest_gradient_path": 7})
    by_hand = -0.5 * (7 - 10.0) / 3.0 + 0.6 * (np.log(1e11) - 25.0) / 0.5
    assert linear_rank_score(c, data["features"]) == pytest.approx(by_hand)


def test_the_shipped_score_file_gives_the_pinned_preset_ranking() -> None:
    """The shipped weights load and rank the paper's presets as the rank study's fit did."""
    from nas.engine import score_candidate
    from search_spaces import load_config

    s = {n: score_candidate(load_config(n))["score"] for n in ("yolor-v3", "yolor-elan-1-1", "yolor-prn")}
    assert s["yolor-v3"] > s["yolor-elan-1-1"]  # more FLOPs and a shorter SGP both favour v3
    assert s["yolor-prn"] > s["yolor-elan-1-1"]
