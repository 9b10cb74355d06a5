"""The table's support and the search's trust region (nas.engine.scores.support,
``--trust-region table``): distances cross-checked by brute force, the shipped file the table's,
and the picks of a trust-region search all inside."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.core.cost import parse_flops
from nas.engine import SearchOptions, cheap_stage
from nas.engine.cheap.select import feasible_pool, inside_support, select_candidates
from nas.engine.record.trials import flops_of, metrics_of, params_of
from nas.engine.scores.calibration import features_of
from nas.engine.scores.support import SUPPORT_FILE, fit_support, support


def _brute_distance(row: dict[str, float], s) -> float:  # noqa: ANN001
    """The nearest table design by a plain loop over the raw rows (no matrix algebra)."""
    z = [
        ((math.log(max(row[f], 1e-12)) if lg else row[f]) - m) / sd
        for f, lg, m, sd in zip(s.features, s.log, s.mean, s.sd, strict=True)
    ]
    return min(math.dist(z, p) for p in s.points.tolist())


def test_every_table_design_is_inside_and_about_95_percent_of_its_own_neighbours_too():
    s = support()
    raw = s.points_raw
    assert np.allclose(s.distances(raw), 0.0, atol=1e-6) and s.inside(raw).all()
    loo = []
    for i in range(len(raw)):  # leave-one-out by brute force
        others = [p for j, p in enumerate(s.points.tolist()) if j != i]
        loo.append(min(math.dist(s.points[i].tolist(), p) for p in others))
    assert 0.93 <= np.mean(np.array(loo) <= s.radius) <= 0.97


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=0, max_value=119), st.lists(st.floats(-3.0, 3.0), min_size=7, max_size=7))
def test_distances_agree_with_a_brute_force_loop(design, shift):
    """A table design moved by up to 3 of its feature's sd on every input."""
    s = support()
    base = s.points_raw[design]
    moved = zip(base.items(), shift, s.log, s.sd, strict=True)
    row = {f: (v * math.exp(d * sd) if lg else v + d * sd) for (f, v), d, lg, sd in moved}
    assert s.distances([row])[0] == pytest.approx(_brute_distance(row, s), rel=1e-6, abs=1e-6)


def test_the_shipped_support_is_the_tables_written_by_its_command():
    """Stale after the table grew: rerun ``python -m benchmarks.gp_active --write-support R``."""
    from benchmarks.gp_table import load_table
    from nas.engine.scores.registry import fitted_weights

    doc = json.loads(SUPPORT_FILE.read_text())
    w = fitted_weights()["features"]
    table = [d for d in load_table(rounds=doc["rounds"]) if d["AP"] is not None]
    rows = [features_of(d["flops"], d["params"], d["metrics"]) for d in table]
    again = fit_support(rows, list(w), [w[n]["log"] for n in w])
    assert doc["features"] == list(w), "the score's inputs changed: python -m benchmarks.gp_active --write-support R"
    assert np.allclose(doc["points"], again["points"]) and doc["radius"] == pytest.approx(again["radius"]), (
        f"stale: python -m benchmarks.gp_active --write-support {doc['rounds']}"
    )


def test_a_trust_region_search_picks_only_inside_the_support(tmp_path):
    opts = SearchOptions(budget=parse_flops("150G"), name="tr", candidates=300, runs_dir=str(tmp_path))
    trials = cheap_stage(optuna.storages.InMemoryStorage(), opts, False).get_trials(deepcopy=False)
    inside = inside_support(feasible_pool(trials, opts.budget))
    pool = feasible_pool(trials, opts.budget)
    outside = {t.number for t in pool} - inside
    assert inside and outside  # the cheap stage proposes on both sides of the boundary
    s = support()
    for t in pool:  # the set is the brute-force distance within the radius
        row = features_of(flops_of(t), params_of(t), metrics_of(t))
        assert (t.number in inside) == (_brute_distance(row, s) <= s.radius + 1e-9)
    picks = select_candidates(trials, 4, opts.budget, only=inside) + select_candidates(
        trials, 12, opts.budget, only=inside
    )
    assert picks and {t.number for t in picks} <= inside
    assert select_candidates(trials, 4, opts.budget, only=set()) == []
