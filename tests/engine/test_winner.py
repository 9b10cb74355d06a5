"""The robust winner: ``best.yaml`` by the rank average of mean AP and mean val loss, and its AP
with a t interval from the run's pooled seed noise (nas.engine.record.report)."""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nas.engine.record.report import AP_RULE, ROBUST_RULE, ap_interval, choose_winner, format_winner

values = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
candidates = st.lists(st.tuples(values, st.floats(min_value=1.0, max_value=9.0), values), min_size=1, max_size=12)


@given(candidates)
def test_the_winner_is_never_beaten_on_both_ap_and_val_loss(items):
    """No candidate has both a strictly higher AP and a strictly lower val loss than the winner
    (its rank sum would be strictly larger): the rule never picks a dominated design."""
    rows = [(i, ap, loss, cost) for i, (ap, loss, cost) in enumerate(items)]
    number, rule = choose_winner(rows)
    assert rule == ROBUST_RULE
    _, ap, loss, _ = rows[number]
    assert not any(a > ap and v < loss for _, a, v, _ in rows)


@given(candidates)
def test_without_a_val_loss_the_winner_is_the_highest_ap(items):
    rows = [(i, ap, None if i == 0 else loss, cost) for i, (ap, loss, cost) in enumerate(items)]
    number, rule = choose_winner(rows)
    assert rule == AP_RULE and rows[number][1] == max(r[1] for r in rows)


def test_a_clearly_lower_val_loss_outweighs_a_hair_more_ap():
    rows = [(0, 0.300, 4.00, 90.0), (1, 0.302, 4.60, 95.0), (2, 0.250, 4.80, 60.0), (3, 0.280, 4.30, 70.0)]
    assert choose_winner(rows) == (0, ROBUST_RULE)
    assert choose_winner([]) is None


@given(
    st.lists(st.lists(values, min_size=2, max_size=2), min_size=2, max_size=8),
)
def test_the_interval_is_the_t_interval_of_the_pooled_seed_sd(groups):
    """Cross-checked against statistics.variance: for equal groups of 2, the pooled variance is
    the mean of the groups' variances, with one degree of freedom per pick."""
    from scipy import stats as scipy_stats

    winner = {"AP": sum(groups[0]) / 2, "AP_seeds": groups[0]}
    out = ap_interval(winner, [{"AP_seeds": g} for g in groups])
    sd = statistics.mean(statistics.variance(g) for g in groups) ** 0.5
    assert out["df"] == len(groups) and out["seed_sd"] == pytest.approx(sd, abs=1e-12)
    half = (out["AP_ci95"][1] - out["AP_ci95"][0]) / 2
    assert out["AP_ci95"][0] + half == pytest.approx(winner["AP"])
    assert half == pytest.approx(scipy_stats.t.ppf(0.975, len(groups)) * sd / 2**0.5, rel=2e-3, abs=1e-12)


def test_one_seed_per_pick_gives_no_interval_and_the_line_says_so():
    out = ap_interval({"AP": 0.3, "AP_seeds": [0.3]}, [{"AP_seeds": [0.3]}, {"AP_seeds": None}])
    assert out["AP_ci95"] is None and out["df"] == 0
    line = format_winner({"winner": {"trial": 4, "method": AP_RULE, **out}})
    assert line == "best.yaml: trial 4 by highest mean AP; AP 0.300 (1 seed)"
