"""benchmarks/gp_explore.py: in-run learning simulated on the committed gradient-path table. Every
arm trains K distinct offered designs, never a table design; the explore round is one-round's
selection in every other band; the refit is the shipped model's fit (cross-checked against
``gp_analysis.fit_model``) with the run's rows repeated by their weight; the CLI writes what it
prints, and bad input is one line."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from benchmarks import gp_explore as ge
from benchmarks.gp_analysis import apply_fit, fit_model
from benchmarks.gp_search import Lab, build_pool
from benchmarks.gp_table import load_table
from benchmarks.lib.stats import fit_rank_linear, predict_rank_linear


@pytest.fixture(scope="module")
def table() -> tuple[list[dict], object, ge.Scorer]:
    rows = [d for d in load_table(rounds=ge.rounds_committed()) if d["AP"] is not None]
    return rows, build_pool(rows, {}), ge.Scorer(rows)


def test_the_pool_holds_the_table_and_every_committed_round(table) -> None:
    rows, pool, _ = table
    splits = {d["split"] for d in rows}
    assert {"fit", "heldout", "a1", "a2"} <= splits and len(pool.designs) == len(rows)
    assert [d.true_ap for d in pool.designs] == [d["AP"] for d in rows]


def test_the_fit_is_the_shipped_models_and_run_rows_count_by_their_weight(table) -> None:
    rows, pool, scorer = table
    train = {i: rows[i]["AP"] for i in range(0, len(rows), 2)}
    by_model = fit_model([rows[i] for i in train], ge.MODEL)
    ours = scorer.scores(train)
    theirs = np.array([apply_fit(d, by_model) for d in rows])
    assert np.allclose(ours, theirs)
    run = {1: 0.3, 3: 0.01}
    idx = [*train, 1, 1, 1, 3, 3, 3]
    y = np.array([*train.values(), 0.3, 0.3, 0.3, 0.01, 0.01, 0.01])
    expected = predict_rank_linear(scorer.x[idx], fit_rank_linear(scorer.x[idx], y), scorer.x)
    assert np.allclose(scorer.fit_run(train, run, 3), expected)
    assert not np.allclose(scorer.fit_run(train, run, 3), ours)


@pytest.mark.parametrize("k", [4, 8])
def test_every_arm_trains_k_distinct_offered_designs_and_explores_one_rounds_odd_bands(table, k) -> None:
    rows, pool, scorer = table
    rng = random.Random(k)
    chosen = set(rng.sample(range(len(rows)), len(rows) // 2))
    offered = [d for d in pool.designs if d.index in chosen]
    tab = {d.index: d.true_ap for d in pool.designs if d.index not in chosen}
    base = scorer.scores(tab)
    one = ge.one_round(Lab(pool, random.Random(0)), offered, base, k)
    assert [t.design for t in one] == [d.index for d in ge.pick(offered, base, k)]
    for weighted in (False, True):
        ee = ge.explore_exploit(Lab(pool, random.Random(0)), offered, scorer, tab, base, k, weighted)
        designs = [t.design for t in ee]
        assert len(designs) == len(set(designs)) == k and set(designs) <= chosen
        assert designs[: k // 2] == [t.design for t in one][0::2]
        for t in ee:  # a training observes one of the design's own seeds
            assert dict(pool.designs[t.design].full)[t.seed] == t.AP


def test_the_simulation_is_deterministic_and_one_round_is_its_own_reference(table) -> None:
    _, pool, scorer = table
    a = [ge.simulate(pool, scorer, 4, s, 0.5) for s in range(3)]
    assert a == [ge.simulate(pool, scorer, 4, s, 0.5) for s in range(3)]
    summary = ge.summarise(a)
    assert list(summary) == list(ge.ARMS)
    assert summary["one-round"]["vs_one-round"]["best_AP"] == {"mean": 0.0, "ci95": [0.0, 0.0]}


def test_the_cli_writes_what_it_prints_and_bad_input_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert ge.main(["--seeds", "3", "--k", "4"]) == 0
    printed = capsys.readouterr().out
    out = json.loads((tmp_path / "runs" / "bench" / "gp_explore.json").read_text())
    s = out["results"]["K=4"]
    assert out["seeds"] == 3 and out["rounds"] == ge.rounds_committed()
    for arm in ge.ARMS:
        assert f"{arm:18s} best AP {s[arm]['best_AP']['mean']:.4f}" in printed
    for argv in (["--offered", "1.5"], ["--k", "1"], ["--seeds", "0"], ["--k", "500"]):
        with pytest.raises(SystemExit) as e:
            ge.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, argv
