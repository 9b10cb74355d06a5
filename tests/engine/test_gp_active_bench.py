"""benchmarks/gp_active.py and the table's round runner: a round's registered designs are new to
the table and recompute, and a round trains only under a fit commit of HEAD's history."""

from __future__ import annotations

import json
import os
import subprocess

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
