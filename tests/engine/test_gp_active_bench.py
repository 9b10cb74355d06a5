"""benchmarks/gp_active.py and the table's round runner: a round's registered designs are new to
the table and recompute, and a round trains only under a fit commit of HEAD's history."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from benchmarks import gp_active as ga
from benchmarks import gp_table as gt
from search_spaces import from_dict


def _git(*args: str) -> str:
    who = {f"GIT_{r}_{k}": v for r in ("AUTHOR", "COMMITTER") for k, v in (("NAME", "test"), ("EMAIL", "t@localhost"))}
    run = subprocess.run(
        ["git", "-C", str(gt.ROOT), *args], capture_output=True, text=True, check=True, env={**os.environ, **who}
    )
    return run.stdout.strip()


def test_a_fit_commit_must_be_an_ancestor_of_head_holding_a_fit_file() -> None:
    doc = json.loads(gt.round_file(1).read_text())
    assert gt._fit_commit_ok(doc["score"]["fit_commit"])  # the commit round 1 names
    assert gt._fit_commit_ok(_git("rev-parse", "HEAD"))
    root = _git("rev-list", "--max-parents=0", "HEAD").split()[0]
    assert not gt._fit_commit_ok(root)  # in the history, but before any fit file
    # a commit that holds the fit files but is not in HEAD's history (as on a branch never merged)
    stray = _git("commit-tree", "HEAD^{tree}", "-m", "stray fit, not an ancestor")
    assert not gt._fit_commit_ok(stray)
    assert not gt._fit_commit_ok("0" * 40)


def test_round_one_is_new_to_the_table_and_its_records_recompute() -> None:
    doc = json.loads(gt.round_file(1).read_text())
    designs = doc["a1"]["designs"]
    assert len(designs) == ga.PER_BUDGET * len(ga.BUDGETS_G) == 32
    assert [d["id"] for d in designs] == [f"a1-{i:02d}" for i in range(32)]
    keys = [from_dict(d["config"]).key() for d in designs]
    assert len(set(keys)) == 32 and not set(keys) & ga.table_keys(0)
    for budget in ga.BUDGETS_G:  # 8 per budget, each within it
        mine = [d for d in designs if d["budget_g"] == budget]
        assert len(mine) == 8 and all(d["flops"] <= budget * 1e9 for d in mine)
    for d in designs[::11]:  # what was recorded is what the design compiles to
        again = gt.design_record(from_dict(d["config"]), d["id"], d["band"])
        assert json.loads(json.dumps(again)) == {k: v for k, v in d.items() if k not in ("budget_g", "cheap_score")}


def test_the_round_runner_refuses_an_unregistered_round_and_a_stray_fit_commit(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        gt.main(["--round", "99"])
    assert e.value.code == 2 and "round 99 is not registered" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        gt.main(["--round", "1", "--fit-commit", "0" * 40, "--designs", "1"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: --round needs --fit-commit") and len(err.splitlines()) == 1


def test_round_two_is_proposed_by_the_refit_committed_after_round_one(monkeypatch) -> None:
    """The refit is the shipped model on every design through round 1, and the registered score
    that proposes round 2 is that file, scored as gp_analysis scores a fit."""
    from benchmarks.gp_analysis import apply_fit, fit_model
    from nas.engine import cheap_score
    from nas.engine.scores import registry
    from nas.engine.scores.registry import fitted_weights

    monkeypatch.setattr(registry, "SCORES", dict(registry.SCORES))  # the round's score stays in this test

    doc = fitted_weights(ga.fit_file(1))
    table = [d for d in gt.load_table(rounds=1) if d["AP"] is not None]
    assert doc["designs"] == len(table) == 152
    refit = fit_model(table, "gp_all+flops")
    assert {k.removeprefix("gp."): round(v["weight"], 6) for k, v in refit.items()} == {
        k: v["weight"] for k, v in doc["features"].items()
    }
    name = ga.proposing_score(2)
    assert name == "fitted-r1" and ga.proposing_score(1) == "fitted"
    for d in table[::37]:
        mine = cheap_score(name, d["flops"], d["params"], d["metrics"])
        assert mine == pytest.approx(apply_fit(d, refit), abs=1e-4)


def test_each_round_is_re_scored_by_what_the_registered_decision_on_the_round_before_ships() -> None:
    """Rounds 1-3 were proposed by the steering score alone: after round 2 the decision shipped
    linear-net, which is the steering refit itself. After round 3 it ships the forest."""
    assert ga.decision_after(1)["ships"] is False
    after_two = ga.decision_after(2)
    assert after_two["ships"] and after_two["best_fitted"] == "linear-net"
    assert [ga.rescoring_model(r) for r in (1, 2, 3)] == [None, None, None]
    after_three = ga.decision_after(3)
    assert after_three["ships"] and ga.rescoring_model(4) == after_three["best_fitted"] == "forest"


def test_rescoring_reads_the_top_of_each_flops_band_and_scores_them_by_the_model(monkeypatch, tmp_path) -> None:
    import optuna

    from nas.core.cost import parse_flops
    from nas.engine import SearchOptions, cheap_stage
    from nas.engine.cheap.select import feasible_pool
    from nas.engine.record.trials import config_of, flops_of
    from search_spaces import parse_yaml

    class ByParams:  # a stand-in surrogate: its score is a design's params
        def predict(self, records):
            self.records = records
            return [float(r["params"]) for r in records], None

    monkeypatch.setattr(ga, "TOP_PER_BAND", 5)
    budget = parse_flops("150G")
    opts = SearchOptions(budget=budget, name="rescore", candidates=120, runs_dir=str(tmp_path))
    trials = cheap_stage(optuna.storages.InMemoryStorage(), opts, False).get_trials(deepcopy=False)
    model = ByParams()
    out = ga.rescore(trials, budget, model)
    pool = feasible_pool(trials, budget)
    low = min(flops_of(t) for t in pool)
    band = {t.number: min(3, int((flops_of(t) - low) / ((budget - low) / 4))) for t in pool}
    for b in set(band.values()):  # per band: its 5 best by the steering score, no other
        mine = sorted((t for t in pool if band[t.number] == b), key=lambda t: (-t.values[0], t.number))
        assert {t.number for t in out if band[t.number] == b} == {t.number for t in mine[:5]}
    by_number = {t.number: t for t in pool}
    for s, r in zip(out, model.records, strict=True):
        t = by_number[s.number]
        assert s.values == [r["params"], t.values[1]] and s.user_attrs is t.user_attrs
        assert r["config"] == parse_yaml(config_of(t)).to_dict() == parse_yaml(config_of(s)).to_dict()


def test_round_four_is_tested_on_the_model_that_chose_it_as_the_surrogate_comparison_reads_it(monkeypatch) -> None:
    from benchmarks.gp_surrogate import prospective_report
    from nas.engine.scores import registry

    monkeypatch.setattr(registry, "SCORES", dict(registry.SCORES))  # the rounds' scores stay in this test

    doc = json.loads(gt.round_file(4).read_text())
    assert doc["score"]["rescored_by"] == "forest" and ga.prospective(3, n_boot=50)["rescored_by"] is None
    mine = ga.prospective(4, n_boot=50)["rescored_by"]
    table = gt.load_table(rounds=4)
    theirs = prospective_report(
        [d for d in table if d["split"] != "a4"], [d for d in table if d["split"] == "a4"], n_boot=50
    )["models"]["forest"]
    assert mine["model"] == "forest" and mine["tau"] == pytest.approx(theirs["tau"])
    assert mine["partial_tau_given_flops"] == pytest.approx(theirs["partial_tau_given_flops"])


def test_the_equal_flops_gain_is_the_residual_from_the_earlier_rounds_line() -> None:
    rng = np.random.default_rng(1)
    flops = rng.uniform(20e9, 150e9, 40)
    table = [{"split": "a1", "flops": f, "AP": 0.02 * np.log(f) - 0.3 + rng.normal(0, 0.005)} for f in flops[:20]]
    table += [{"split": "a2", "flops": f, "AP": 0.02 * np.log(f) - 0.3 + 0.01} for f in flops[20:]]
    gain = ga.equal_flops_gain(table, 2, n_boot=200)
    assert gain["mean"] == pytest.approx(0.01, abs=0.004) and gain["ci95"][0] < gain["mean"] < gain["ci95"][1]
    assert ga.equal_flops_gain(table, 1) is None
