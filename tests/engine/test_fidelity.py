"""The proxy stage's budget plan (successive halving over complete short schedules)."""

from __future__ import annotations

import itertools
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from nas.engine.proxy.fidelity import ETA, ladder, plan_cost, plan_proxy, plan_rungs


def test_the_lead_and_issue_examples():
    assert [(r.epochs, r.n) for r in plan_rungs(4, 6)] == [(2, 6), (6, 2)]  # make search: 8 distinct, 4 units
    assert [(r.epochs, r.n) for r in plan_rungs(2, 3)] == [(1, 3), (3, 1)]  # the tiny search: 3 > --trials 2
    assert plan_cost(plan_rungs(4, 6)) == 4 and plan_cost(plan_rungs(2, 3)) == 2


def test_one_epoch_or_one_unit_is_plain_full_training():
    assert [(r.epochs, r.n) for r in plan_rungs(5, 1)] == [(1, 5)]
    assert [(r.epochs, r.n) for r in plan_rungs(1, 6)] == [(6, 1)]
    assert plan_rungs(0, 6) == [] and plan_rungs(4, 6, pool=0) == []


def test_a_small_pool_is_trained_at_full_fidelity_not_spread_over_rungs():
    # 3 candidates and the compute of 4: all 3 at full fidelity beats 3 low + 3 full
    assert [(r.epochs, r.n) for r in plan_rungs(4, 6, pool=3)] == [(6, 3)]


def test_ladder_is_rounded_divisions_by_eta_strictly_increasing():
    assert ladder(6) == [[6], [2, 6]]
    assert ladder(27, min_epochs=1) == [[27], [9, 27], [3, 9, 27], [1, 3, 9, 27]]
    assert ladder(2) == [[2], [1, 2]]


@settings(max_examples=300, deadline=None)
@given(
    units=st.integers(1, 40),
    epochs=st.integers(1, 30),
    pool=st.one_of(st.none(), st.integers(1, 200)),
    min_epochs=st.one_of(st.none(), st.just(1)),
)
def test_plan_invariants(units, epochs, pool, min_epochs):
    plan = plan_rungs(units, epochs, pool=pool, min_epochs=min_epochs)
    assert plan, "a positive budget always trains something"
    assert plan_cost(plan) <= units  # never more compute than K full trainings
    assert plan[-1].epochs == epochs and plan[-1].n >= 1  # at least one full-fidelity training
    assert all(a.epochs < b.epochs for a, b in itertools.pairwise(plan))  # fidelity rises
    assert all(a.n >= b.n for a, b in itertools.pairwise(plan))  # rungs shrink
    assert plan[0].n <= (pool if pool is not None else plan[0].n)
    assert plan[0].n >= min(units, pool or units)  # never fewer distinct candidates than plain K trainings


def _brute_force_two_rungs(units: int, epochs: int, low: int) -> int:
    """The most distinct candidates any two-rung plan (n0 at ``low``, n1 >= max(1, units // 2)
    at full) buys within the budget: an independent enumeration."""
    best = 0
    for n1 in range(max(1, units // 2), units + 1):
        for n0 in range(n1, 10 * units * epochs + 1):
            if Fraction(n0 * low, epochs) + n1 <= units:
                best = max(best, n0)
    return best


@settings(max_examples=60, deadline=None)
@given(units=st.integers(2, 12), epochs=st.integers(3, 12))
def test_more_distinct_candidates_than_trials_whenever_the_epochs_allow(units, epochs):
    plan = plan_rungs(units, epochs)
    low = max(1, round(epochs / ETA))
    possible = _brute_force_two_rungs(units, epochs, low)
    if possible > units:  # some two-rung plan beats K full trainings: ours does too
        assert plan[0].n > units
    else:
        assert plan[0].n == units


@given(units=st.integers(1, 40), epochs=st.integers(1, 30), pool=st.one_of(st.none(), st.integers(1, 60)))
def test_select_is_one_full_rung_of_the_picks_and_halving_is_plan_rungs(units, epochs, pool):
    """``--proxy-stage select`` trains min(K, pool) picks in full, nothing below full fidelity;
    ``halving`` is :func:`plan_rungs` unchanged."""
    (rung,) = plan_proxy("select", units, epochs, pool=pool)
    assert (rung.epochs, rung.of, rung.n) == (epochs, epochs, min(units, pool or units))
    assert plan_proxy("halving", units, epochs, pool=pool) == plan_rungs(units, epochs, pool=pool)
