"""benchmarks/gp_search.py: the search strategies simulated on the gradient-path table. On a
synthetic table (registered designs, made-up APs): every arm keeps to its budget and the offered
designs, observes one seed's AP and is judged by the 2-seed mean, is deterministic, and the
evolution's children are nearest untrained neighbours; the CLI's bad input is one line."""

from __future__ import annotations

import doctest
import json
import math
import random
import statistics
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from benchmarks import gp_search as gs
from benchmarks import pool_sim
from benchmarks.gp_table import DESIGNS_FILE, load_table
from nas.engine.proxy.fidelity import plan_rungs

DESIGNS = 30
LOW = 20  # the first 20 designs also have low-fidelity rows


def write_results(path: Path, aps: dict[str, tuple[float, float]], low: dict[str, tuple[float, float]]) -> Path:
    """A table's results file: two full seeds per design of ``aps``, two low seeds per design of ``low``."""
    rows = [
        {"scale": "reduced", "status": "ok", "design": d, "fidelity": fid, "epochs": epochs, "seed": s, "AP": ap}
        for fid, epochs, table in (("full", 5, aps), ("low", 2, low))
        for d, pair in table.items()
        for s, ap in zip((0, 1), pair, strict=True)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def fit_designs() -> list[dict]:
    return json.loads(DESIGNS_FILE.read_text())["fit"]["designs"][:DESIGNS]


def noisy_results(path: Path) -> Path:
    rng = random.Random(5)
    aps = {}
    for d in fit_designs():
        base = 0.05 + 0.1 * d["flops"] / 150e9 + rng.gauss(0, 0.02)
        aps[d["id"]] = (base + rng.gauss(0, 0.01), base + rng.gauss(0, 0.01))
    low = {i: (a * 0.5, b * 0.4) for i, (a, b) in list(aps.items())[:LOW]}
    return write_results(path, aps, low)


SCORES = {s: gs.shipped_score(s) for s in gs.BASE_SCORES}


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> gs.Pool:
    results = noisy_results(tmp_path_factory.mktemp("table") / "results.jsonl")
    return gs.build_pool(load_table(results=results), SCORES)


def test_docstring_examples() -> None:
    assert doctest.testmod(pool_sim).failed == 0


def test_the_pool_is_the_designs_with_both_full_seeds(tmp_path) -> None:
    aps = {d["id"]: (0.1, 0.2) for d in fit_designs()[:5]}
    results = write_results(tmp_path / "r.jsonl", aps, {"f00": (0.05, 0.06)})
    with results.open("a") as f:  # one seed only: not in the pool
        f.write(
            json.dumps(
                {
                    "scale": "reduced",
                    "status": "ok",
                    "design": "f09",
                    "fidelity": "full",
                    "epochs": 5,
                    "seed": 0,
                    "AP": 0.3,
                }
            )
            + "\n"
        )
    p = gs.build_pool(load_table(results=results), SCORES)
    assert [d.id for d in p.designs] == ["f00", "f01", "f02", "f03", "f04"]
    assert p.low_cost == Fraction(2, 5) and p.designs[0].low == ((0, 0.05), (1, 0.06)) and p.designs[1].low == ()
    assert all(d.true_ap == pytest.approx(0.15) for d in p.designs)
    assert [d.id for d in gs.build_pool(load_table(results=results), SCORES, require_low=True).designs] == ["f00"]


def test_every_arm_keeps_to_its_budget_and_the_offered_designs(pool: gs.Pool) -> None:
    names = gs.arm_names(list(SCORES))
    assert len(names) == 10
    for k in (4, 8, 16):
        for seed in range(3):
            offered = gs.offered_of(pool, seed)
            ids = {d.index for d in offered}
            for name in names:
                trainings = gs.make_arm(name, list(SCORES))(pool, offered, k, random.Random(seed))
                spent = sum(t.cost for t in trainings)
                assert spent <= k and {t.design for t in trainings} <= ids, (name, k)
                full = [t for t in trainings if t.fidelity == "full"]
                assert full, name
                for t in trainings:  # what a training observes is one of the design's own seeds
                    runs = dict(pool.designs[t.design].full if t.fidelity == "full" else pool.designs[t.design].low)
                    assert runs[t.seed] == t.AP
                if not name.startswith("today"):  # one full training per distinct design, K of them
                    assert spent == k == len(full) == len({t.design for t in full}), name


def test_today_follows_the_rung_plan_and_promotes_the_best_observed(pool: gs.Pool) -> None:
    offered = gs.offered_of(pool, 1)
    eligible = [d for d in offered if d.low]
    for k in (4, 8, 16):
        trainings = gs.today(pool, offered, k, random.Random(k))
        plan = plan_rungs(k, 5, pool=len(offered))
        if not plan[0].full and len(eligible) < plan[0].n:
            plan = plan_rungs(k, 5, pool=len(eligible))
        low = [t for t in trainings if t.fidelity == "low"]
        full = [t for t in trainings if t.fidelity == "full"]
        assert (len(low), len(full)) == (plan[0].n, plan[1].n), k
        assert all(pool.designs[t.design].low for t in low)
        ranked = sorted(low, key=lambda t: -t.AP)
        assert [t.design for t in full] == [t.design for t in ranked[: len(full)]]


def test_without_low_rows_today_trains_at_full_fidelity_only(tmp_path) -> None:
    aps = {d["id"]: (0.1 + i / 100, 0.1) for i, d in enumerate(fit_designs()[:12])}
    p = gs.build_pool(load_table(results=write_results(tmp_path / "r.jsonl", aps, {})), SCORES)
    trainings = gs.today(p, list(p.designs), 4, random.Random(0))
    assert [t.fidelity for t in trainings] == ["full"] * 4


def test_without_noise_and_ap_monotone_in_flops_the_flops_arms_find_the_best(tmp_path) -> None:
    designs = fit_designs()
    aps = {d["id"]: (d["flops"] / 150e9,) * 2 for d in designs}
    low = {d["id"]: (d["flops"] / 300e9,) * 2 for d in designs}
    p = gs.build_pool(load_table(results=write_results(tmp_path / "r.jsonl", aps, low)), SCORES)
    arms = {n: gs.make_arm(n, list(SCORES)) for n in ("select:flops", "today:flops", "random")}
    shares = []
    for seed in range(5):
        offered = gs.offered_of(p, seed)
        largest = max(offered, key=lambda d: d.flops)
        out = gs.simulate(p, 4, seed, arms)
        assert out["select:flops"]["best_AP"] == out["today:flops"]["best_AP"] == largest.true_ap
        assert out["select:flops"]["best_AP_share"] == 1.0
        shares.append(out["random"]["best_AP_share"])
    assert min(shares) < 1.0  # the test can tell an arm that misses the best


def hand_pool(full: list[tuple[float, float]], flops: list[float]) -> gs.Pool:
    designs = tuple(
        gs.Design(i, f"d{i}", f"k{i}", "res", f, sum(ap) / 2, ((0, ap[0]), (1, ap[1])), (), {"x": i}, {"fitted": 0.0})
        for i, (ap, f) in enumerate(zip(full, flops, strict=True))
    )
    n = len(designs)
    return gs.Pool(designs, np.ones((n, n), dtype=np.int32) - np.eye(n, dtype=np.int32), Fraction(0), 5, None)


def test_an_arm_reports_by_what_it_observed_and_is_judged_by_the_truth() -> None:
    # A: one lucky seed (true 0.5), B: steady 0.45, C: steady 0.3; A dominates B and C at true AP
    p = hand_pool([(0.9, 0.1), (0.45, 0.45), (0.3, 0.3)], [30e9, 60e9, 90e9])
    unlucky = [gs.Training(0, "full", 1, 0.1, Fraction(1)), gs.Training(1, "full", 0, 0.45, Fraction(1))]
    lucky = [gs.Training(0, "full", 0, 0.9, Fraction(1)), gs.Training(1, "full", 0, 0.45, Fraction(1))]
    # reported: B (observed 0.45 > 0.1), judged by B's true AP; the front by true APs: A alone,
    # 0.5 x (1 - 30/150) — observed APs would give 0.1 x 0.2 + 0.45 x 0.6 instead
    assert gs.judge(p, unlucky) == {"best_AP": 0.45, "hypervolume": pytest.approx(0.5 * 0.8)}
    assert gs.judge(p, lucky) == {"best_AP": 0.5, "hypervolume": pytest.approx(0.5 * 0.8)}
    # the lab draws one seed per training, the other one on the second training of the design
    seen = set()
    for seed in range(20):
        lab = gs.Lab(p, random.Random(seed))
        first, second = lab.train(p.designs[0], "full"), lab.train(p.designs[0], "full")
        assert {first, second} == {0.9, 0.1}
        seen.add(first)
        out = gs.judge(p, gs.random_arm(p, list(p.designs), 3, random.Random(seed)))
        assert out["best_AP"] in (0.5, 0.45)
    assert seen == {0.9, 0.1}
    with pytest.raises(ValueError, match="no low-fidelity training"):
        gs.Lab(p, random.Random(0)).train(p.designs[0], "low")


def test_the_simulation_is_deterministic_for_a_seed_and_an_arm_does_not_depend_on_the_others(pool: gs.Pool) -> None:
    names = ["today", "random", "evolution+front+screen", "optuna-tpe"]
    arms = {n: gs.make_arm(n, list(SCORES)) for n in names}
    a, b = gs.simulate(pool, 8, 3, arms), gs.simulate(pool, 8, 3, arms)
    assert a == b
    assert gs.simulate(pool, 8, 3, {"random": arms["random"]})["random"] == a["random"]
    assert gs.simulate(pool, 8, 4, arms) != a


def naive_distance(a: dict, b: dict) -> int:
    return sum(1 for n in set(a) | set(b) if a.get(n) != b.get(n))


@pytest.mark.parametrize("screen", [False, True])
def test_evolution_children_are_nearest_untrained_neighbours_of_a_population_member(pool, screen) -> None:
    """Each child after the first population: for some member of the population of the moment
    (the parent), no more than 0 (plain) or ``SCREEN - 1`` (screened) untrained offered designs
    are strictly nearer to it than the child; with ``screen`` it also out-scores those tied nearer."""
    for seed in range(4):
        offered = gs.offered_of(pool, seed)
        k = 16
        trainings = gs.evolution(pool, offered, k, random.Random(seed), screen=screen)
        size = max(2, k // 4)
        order = [pool.designs[t.design] for t in trainings]
        assert len(order) == k == len({d.index for d in order})
        for j in range(size, k):
            population, child = order[j - size : j], order[j]
            done = {d.index for d in order[:j]}
            untrained = [d for d in offered if d.index not in done]
            ok = False
            for parent in population:
                dist = {d.index: naive_distance(parent.knobs, d.knobs) for d in untrained}
                nearer = sum(v < dist[child.index] for v in dist.values())
                if nearer <= (gs.SCREEN - 1 if screen else 0):
                    ok = True
            assert ok, (seed, j)


def test_extra_scores_plug_in_as_arms(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    results = noisy_results(tmp_path / "results.jsonl")
    same_as_flops = {"gp": lambda row: float(row["flops"])}
    assert (
        gs.main(
            ["--results-file", str(results), "--seeds", "3", "--k", "4", "--arms", "select:gp", "select:flops"],
            same_as_flops,
        )
        == 0
    )
    out = json.loads((tmp_path / "runs" / "bench" / "gp_search.json").read_text())
    assert out["arms"] == ["today", "select:gp", "select:flops"]
    for r in out["results"]["K=4"]["per_seed"]:
        assert r["select:gp"] == r["select:flops"]
    assert "today:gp" in gs.arm_names(["fitted", "flops", "gp"])


def test_the_cli_writes_the_summary_it_prints(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    results = noisy_results(tmp_path / "results.jsonl")
    argv = ["--results-file", str(results), "--seeds", "6", "--k", "4", "40", "--arms", "random", "evolution"]
    assert gs.main(argv) == 0
    printed = capsys.readouterr().out
    out = json.loads((tmp_path / "runs" / "bench" / "gp_search.json").read_text())
    assert out["pool_size"] == DESIGNS and out["offered"] == round(0.75 * DESIGNS) and out["seeds"] == 6
    assert "skipped" in out["results"]["K=40"] and "K=40: skipped" in printed
    entry = out["results"]["K=4"]
    assert len(entry["per_seed"]) == 6 and list(entry["summary"]) == ["today", "random", "evolution"]
    for arm, s in entry["summary"].items():
        v = [r[arm]["hypervolume"] for r in entry["per_seed"]]
        half = 1.96 * statistics.stdev(v) / math.sqrt(len(v))
        assert s["hypervolume"]["mean"] == pytest.approx(statistics.fmean(v))
        assert s["hypervolume"]["ci95"] == pytest.approx([statistics.fmean(v) - half, statistics.fmean(v) + half])
        d = [r[arm]["best_AP"] - r["today"]["best_AP"] for r in entry["per_seed"]]
        assert s["vs_today"]["best_AP"]["mean"] == pytest.approx(statistics.fmean(d))
        assert f"{s['best_AP']['mean']:.4f}" in printed and s["units_max"] <= 4
    assert entry["summary"]["today"]["vs_today"]["hypervolume"] == {"mean": 0.0, "ci95": [0.0, 0.0]}
    assert gs.main([*argv[:4], "--k", "4", "--pool", "low", "--arms", "random"]) == 0
    assert json.loads((tmp_path / "runs" / "bench" / "gp_search.json").read_text())["pool_size"] == LOW


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    results = noisy_results(tmp_path / "results.jsonl")
    ok = ["--results-file", str(results)]
    for argv, says in (
        ([*ok, "--k", "0"], "error: --k '0' is not accepted; accepted: positive integers"),
        ([*ok, "--k", "4", "x"], "error: --k '4 x' is not accepted"),
        ([*ok, "--seeds", "-1"], "error: --seeds '-1' is not accepted; accepted: a positive integer"),
        ([*ok, "--arms", "hill-climb"], "error: arm 'hill-climb' is not accepted; accepted: random, optuna-tpe"),
        ([*ok, "--arms", "evolution:flops"], "error: arm 'evolution:flops' is not accepted"),
        ([*ok, "--arms", "select:gp"], "error: arm 'select:gp' is not accepted"),
        (["--results-file", str(tmp_path / "none.jsonl")], "error: "),
        ([*ok, "--scale", "huge"], "usage: "),
        ([*ok, "--score", "flops=nope.json"], "error: --score 'flops=nope.json' is not accepted"),
        ([*ok, "--gp-fit", str(tmp_path / "none.json")], "is missing; accepted: the file gp_analysis --write-fit"),
    ):
        with pytest.raises(SystemExit) as e:
            gs.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and says in err and (err.startswith("usage") or err.count("\n") == 1), argv
    write_results(results, {}, {})
    with pytest.raises(SystemExit) as e:
        gs.main(ok)
    assert e.value.code == 2 and "has 0 designs with both full seeds" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_a_fitted_score_file_is_a_score_and_the_committed_fit_is_the_shipped_one(tmp_path, monkeypatch) -> None:
    from benchmarks.gp_analysis import FIT_FILE
    from nas.engine.scores.registry import FITTED_SCORE_FILE, cheap_score

    monkeypatch.chdir(tmp_path)
    results = noisy_results(tmp_path / "results.jsonl")
    argv = ["--results-file", str(results), "--seeds", "3", "--k", "4", "--arms", "select:mine", "select:fitted"]
    assert gs.main([*argv, "--score", f"mine={FITTED_SCORE_FILE}"]) == 0
    out = json.loads((tmp_path / "runs" / "bench" / "gp_search.json").read_text())
    for r in out["results"]["K=4"]["per_seed"]:  # the shipped file read as a file: the same picks
        assert r["select:mine"] == r["select:fitted"]
    row = {
        "flops": 1e11,
        "params": 4e7,
        "metrics": json.loads(DESIGNS_FILE.read_text())["fit"]["designs"][0]["metrics"],
    }
    assert gs.file_score(FITTED_SCORE_FILE)(row) == pytest.approx(cheap_score("fitted", **row))
    # the simulation reads the shipped score out of fold on the real table because it is this fit
    assert gs.is_shipped(FIT_FILE)
