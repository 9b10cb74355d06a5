"""The search: budget parsing, selection, the cheap stage's records and determinism under a kill,
and (slow) an end-to-end search with Ray, resume after SIGKILL in the proxy stage, export and
the dashboard's view of the storage."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.kill_resume import dashboard_api
from evaluators.recipe import Recipe
from nas.core.cost import parse_flops
from nas.engine import SearchOptions, cheap_stage, score_candidate, select_candidates
from nas.engine.cheap.select import feasible_pool, inside_support
from nas.engine.options import SearchError
from nas.engine.proxy.worker import trial_folder
from nas.engine.record.report import ROBUST_RULE
from nas.engine.record.storage import open_storage
from nas.engine.record.trials import config_of, flops_of, metrics_of
from nas.engine.stats import pareto_fronts
from search_spaces import parse_yaml
from tests.support.helpers import search_cmd, tiny_search


@pytest.mark.parametrize(
    ("text", "value"),
    [("150GFLOPs", 150e9), ("150G", 150e9), ("1.5e11", 150e9), ("900MFLOPs", 900e6), ("0.15TFLOPs", 150e9)],
)
def test_budget_units(text, value):
    assert parse_flops(text) == int(value)


@pytest.mark.parametrize("text", ["abc", "-5G", "0", "150GB", "", "G"])
def test_bad_budget_is_one_line_exit_2(text, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "nas.cli", "search", "--budget", text, "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "budget" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written for bad input


@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=40))
def test_pareto_fronts_match_brute_force(points):
    def dominates(a, b):
        return a[0] >= b[0] and a[1] <= b[1] and a != b

    fronts = pareto_fronts(points)
    assert sorted(i for f in fronts for i in f) == list(range(len(points)))
    first = {i for i, p in enumerate(points) if not any(dominates(q, p) for q in points)}
    assert set(fronts[0]) == first


def _fake(number, score, flops, key, bb="res", nk="res", state="COMPLETE"):
    cfg = f"schema: 1\nbackbone: {{block: {bb}}}\nneck: {{block: {nk}}}\n"
    return SimpleNamespace(
        number=number, state=SimpleNamespace(name=state), values=[score, flops], user_attrs={"key": key, "config": cfg}
    )


def test_selection_is_feasible_deduplicated_and_spans_the_budget():
    trials = [
        _fake(0, 9.0, 90, "a"),
        _fake(1, 9.0, 90, "a"),  # duplicate design
        _fake(2, 99.0, 500, "b"),  # over budget
        _fake(3, 8.0, 85, "c"),
        _fake(4, 3.0, 12, "d"),
        _fake(5, 4.0, 15, "e"),  # the best score of the small band
        _fake(6, 50.0, 10, "f", state="FAIL"),
        _fake(7, 6.0, 55, "g"),
    ]
    # bands of (100 - 12) / 2 = 44 from 12: [12, 56) and [56, 100]
    assert [t.user_attrs["key"] for t in select_candidates(trials, 2, budget=100)] == ["a", "g"]
    assert [t.user_attrs["key"] for t in select_candidates(trials, 1, budget=100)] == ["a"]  # best score
    # 4 bands of 22 from 12: [12, 34) [34, 56) [56, 78) [78, 100]; [56, 78) is empty, its slot
    # goes to the best remaining on the first front (c: 8.0 at 85)
    keys = [t.user_attrs["key"] for t in select_candidates(trials, 4, budget=100)]
    assert keys == ["a", "g", "e", "c"]


@given(
    st.lists(st.tuples(st.floats(-5, 5), st.integers(1, 200)), min_size=1, max_size=30),
    st.integers(1, 8),
)
def test_selection_takes_the_best_score_of_every_flops_band(points, k):
    trials = [_fake(n, score, flops, f"k{n}") for n, (score, flops) in enumerate(points)]
    budget = 150
    chosen = select_candidates(trials, k, budget)
    feasible = [t for t in trials if t.values[1] <= budget]
    assert len(chosen) == min(k, len(feasible)) and len({t.number for t in chosen}) == len(chosen)
    assert all(t.values[1] <= budget for t in chosen)
    if not feasible:
        return
    low = min(t.values[1] for t in feasible)
    width = (budget - low) / k or 1.0
    for band in range(k):
        inside = [t for t in feasible if min(k - 1, int((t.values[1] - low) / width)) == band]
        if inside:  # every non-empty band contributes its best-scored candidate
            assert max(t.values[0] for t in inside) in [t.values[0] for t in chosen if t in inside]


@given(
    st.lists(st.tuples(st.floats(-5, 5), st.integers(1, 200)), min_size=1, max_size=30),
    st.integers(1, 8),
)
def test_top_picks_are_the_front_selection_of_the_candidates_near_the_budget(points, k):
    """``--picks top``: the same bands and diversity, over the candidates of ≥ 75 % of the budget
    only; with none there, the default's picks."""
    trials = [_fake(n, score, flops, f"k{n}") for n, (score, flops) in enumerate(points)]
    budget = 150
    near = [t for t in trials if 0.75 * budget <= t.values[1] <= budget]
    top = select_candidates(trials, k, budget, picks="top")
    assert top == select_candidates(near or trials, k, budget)
    if near:
        assert len(top) == min(k, len(near)) and all(t.values[1] >= 112.5 for t in top)


@given(
    st.lists(
        st.tuples(st.floats(-5, 5), st.integers(100, 150), st.sampled_from(["res", "csp", "elan", "prn"])),
        min_size=1,
        max_size=30,
    ),
    st.integers(1, 8),
)
def test_family_picks_take_every_familys_best_before_any_seconds(points, k):
    """``--picks families``, against a brute-force reading of its rule: the best of each block
    family in the order of those bests, then the second bests, and so on."""
    trials = [_fake(n, score, flops, f"k{n}", bb=block, nk=block) for n, (score, flops, block) in enumerate(points)]
    near = [t for t in trials if t.values[1] >= 112.5]
    chosen = select_candidates(trials, k, 150, picks="families")
    ranked = {}
    for t in sorted(near or trials, key=lambda t: (-t.values[0], t.values[1], t.number)):
        ranked.setdefault(t.user_attrs["config"], []).append(t)
    queues = sorted(ranked.values(), key=lambda q: (-q[0].values[0], q[0].number))
    expected = [q[r] for r in range(len(near or trials)) for q in queues if r < len(q)][:k]
    assert chosen == expected


def test_cheap_stage_records_every_candidate(tmp_path):
    opts = SearchOptions(budget=parse_flops("60G"), name="cheap", candidates=40, runs_dir=str(tmp_path))
    study = cheap_stage(open_storage(None, opts.run_dir), opts, progress=False)
    trials = study.get_trials()
    assert len(trials) == 40 and all(t.state.name == "COMPLETE" for t in trials)
    feasible = 0
    for t in trials:
        cfg = parse_yaml(config_of(t))
        again = score_candidate(cfg)
        assert t.values == [again["score"], again["flops"] / 1e9]  # the cost objective is GFLOPs
        assert metrics_of(t) == again["metrics"] and flops_of(t) == again["flops"]
        over = (again["flops"] - opts.budget) / 1e9
        assert t.system_attrs["constraints"] == pytest.approx([over])  # what optuna-dashboard 0.21 reads
        assert t.user_attrs["feasible"] == (over <= 0)
        feasible += over <= 0
    assert 0 < feasible < 40


def _wait_for(predicate, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _journal_trials(path: Path, study: str):
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(path)))
    return optuna.load_study(study_name=study, storage=storage).get_trials()


def test_cheap_stage_killed_and_resumed_proposes_what_an_unbroken_run_does(tmp_path):
    budget = "60G"
    # 400 = 4 generations of 100, each one journal append: the kill lands between two of them
    # or inside one (a generation cut short is re-proposed and completed on resume)
    unbroken = SearchOptions(budget=parse_flops(budget), name="a", candidates=400, runs_dir=str(tmp_path))
    reference = {t.user_attrs["key"] for t in cheap_stage(open_storage(None, unbroken.run_dir), unbroken, False).trials}

    # the real CLI, killed with SIGKILL once the cheap stage has recorded some candidates
    journal = tmp_path / "b" / "optuna.journal"
    cmd = [sys.executable, "-m", "nas.cli", "search", "--budget", budget, "--name", "b", "--runs-dir", str(tmp_path)]
    proc = subprocess.Popen(cmd + ["--candidates", "400"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _wait_for(lambda: journal.exists() and journal.stat().st_size > 200_000, 60)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len([t for t in _journal_trials(journal, "b-cheap") if t.state.name == "COMPLETE"])
    assert 0 < done_before < 400

    resumed = SearchOptions(budget=parse_flops(budget), name="b", candidates=400, runs_dir=str(tmp_path))
    trials = cheap_stage(open_storage(None, resumed.run_dir), resumed, False).trials
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 400
    assert {t.user_attrs["key"] for t in complete} == reference
    assert all(t.user_attrs.get("interrupted") for t in trials if t.state.name == "FAIL")


def test_second_search_on_a_busy_run_refuses(tmp_path):
    from nas.core.runio import RunLock

    lock = RunLock(tmp_path / "busy")
    assert lock.acquire()
    try:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "nas.cli",
                "search",
                "--budget",
                "50G",
                "--name",
                "busy",
                "--runs-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        lock.release()
    assert proc.returncode == 2 and "in use by another nas search" in proc.stderr


def test_rerun_with_other_options_refuses(tmp_path):
    (tmp_path / "r").mkdir()
    opts = SearchOptions(budget=parse_flops("50G"), name="r", runs_dir=str(tmp_path))
    (tmp_path / "r" / "search.json").write_text(json.dumps(opts.identity()))
    proc = subprocess.run(
        [sys.executable, "-m", "nas.cli", "search", "--budget", "80G", "--name", "r", "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "was started with --budget 50GFLOPs (now: 80GFLOPs);" in proc.stderr


def test_a_run_made_before_the_proxy_stage_option_resumes_only_as_halving(tmp_path):
    """Such a search.json has no ``proxy_stage``: it halved. Resumed with the new default it is
    refused, naming the option to pass; with ``--proxy-stage halving`` it is the same run."""
    from nas.engine.driver import _check_identity

    old = SearchOptions(budget=parse_flops("50G"), name="r", runs_dir=str(tmp_path), proxy_stage="halving")
    meta = tmp_path / "search.json"
    meta.write_text(json.dumps(old.identity()))
    assert "proxy_stage" not in json.loads(meta.read_text())
    with pytest.raises(SearchError, match=r"was started with --proxy-stage halving \(now: select\);"):
        _check_identity(meta, dataclasses.replace(old, proxy_stage="select"))
    _check_identity(meta, old)  # no error


@pytest.mark.parametrize(
    ("before", "now", "needle"),
    [
        ({"latency_budget_ms": 30.0}, {}, "--latency-budget 30ms (now: none)"),
        ({}, {"latency_budget_ms": 30.0}, "--latency-budget none (now: 30ms)"),
        ({"cost": "latency"}, {}, "--cost latency (now: flops)"),
        ({"recipe": Recipe(precision="fp32")}, {}, "--precision fp32 (now: auto)"),
        ({}, {"budget": parse_flops("80G"), "candidates": 60}, "--budget 50GFLOPs (now: 80GFLOPs), --candidates 20000"),
    ],
)
def test_a_refused_rerun_names_every_differing_option_with_both_values(tmp_path, before, now, needle):
    """An option recorded on one side only (the identity leaves out options at their default)
    is compared too, and named as a flag with the old value and the new."""
    from nas.engine.driver import _check_identity

    base = SearchOptions(budget=parse_flops("50G"), name="r", runs_dir=str(tmp_path))
    meta = tmp_path / "search.json"
    meta.write_text(json.dumps(dataclasses.replace(base, **before).identity()))
    with pytest.raises(SearchError) as e:
        _check_identity(meta, dataclasses.replace(base, **now))
    assert needle in str(e.value), str(e.value)
    assert str(e.value).endswith("; re-run with the same options or use another --name")
    assert " ; " not in str(e.value) and "with ;" not in str(e.value)


def test_a_run_made_before_the_channel_rule_is_refused_on_resume(tmp_path):
    """A search.json without the channel rule is a run whose knobs compiled to other models."""
    (tmp_path / "r").mkdir()
    opts = SearchOptions(budget=parse_flops("50G"), name="r", runs_dir=str(tmp_path))
    old = {k: v for k, v in opts.identity().items() if k != "channels"}
    (tmp_path / "r" / "search.json").write_text(json.dumps(old))
    proc = subprocess.run(
        [sys.executable, "-m", "nas.cli", "search", "--budget", "50G", "--name", "r", "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "another channel rule (exact shares" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert json.loads((tmp_path / "r" / "search.json").read_text()) == old  # untouched
    assert not (tmp_path / "r" / "optuna.journal").exists()


# -- end to end (Ray) --------------------------------------------------------------------------
#: the default's seeds per pick: the end-to-end and kill tests run them
TWO_SEEDS = tiny_search(seeds=2)


@pytest.mark.slow
def test_end_to_end_search_export_and_dashboard(tmp_path):
    proc = subprocess.run(search_cmd(tmp_path, "e2e", *TWO_SEEDS), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp_path / "e2e"
    for name in ("best.yaml", "summary.json", "pareto.png", "optuna.journal"):
        assert (run / name).stat().st_size > 0
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["trials"]) == 2
    assert all(t["flops"] <= parse_flops("45G") for t in summary["trials"])
    assert {t["state"] for t in summary["trials"]} <= {"COMPLETE", "PRUNED"}
    assert "Pareto front" in proc.stdout

    cheap = _journal_trials(run / "optuna.journal", "e2e-cheap")
    proxy = _journal_trials(run / "optuna.journal", "e2e")
    assert len(cheap) == 120
    assert len(proxy) == 2 and len({t.user_attrs["key"] for t in proxy}) == 2
    best = next(t for t in proxy if t.number == summary["best_trial"])
    assert parse_yaml((run / "best.yaml").read_text()) == parse_yaml(config_of(best))

    # every pick trained twice (seeds 0 and 1, a folder each) and told once, with the means
    for t in proxy:
        seeds = t.user_attrs["AP_seeds"]
        assert len(seeds) == 2 and t.values[0] == pytest.approx(sum(seeds) / 2)
        assert t.user_attrs["val_loss"] == pytest.approx(sum(t.user_attrs["val_loss_seeds"]) / 2)
        folder = trial_folder(t.user_attrs["key"], 2, 2)
        for name in (folder, f"{folder}-s1"):
            history = json.loads((run / "trials" / name / "metrics.json").read_text())["history"]
            assert len(history) == 2
        seed_of = {
            json.loads((run / "trials" / n / "metrics.json").read_text())["recipe"]["seed"]
            for n in (folder, f"{folder}-s1")
        }
        assert seed_of == {0, 1}
    winner = summary["winner"]
    assert winner["trial"] == summary["best_trial"] and winner["method"] == ROBUST_RULE
    low, high = winner["AP_ci95"]
    assert low < winner["AP"] < high and winner["df"] == 2
    assert "best.yaml: trial" in proc.stdout
    assert "proxy stage: 2 picks × 2 seeds × 2 epochs (the compute of 4 full trainings)" in proc.stdout
    assert "trust region: " in proc.stdout  # the default trust region says where it picked

    out = tmp_path / "arch.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "nas.cli", "export", str(run), "-o", str(out), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    exported = json.loads(proc.stdout)
    again = score_candidate(parse_yaml(out.read_text()))
    assert again["flops"] == flops_of(best) == exported["flops"]
    assert again["metrics"] == metrics_of(best)

    # optuna-dashboard's own API sees both studies; its constraint field marks over-budget
    # cheap candidates infeasible and every trained trial feasible (its Pareto plot uses it)
    from optuna_dashboard import wsgi

    app = wsgi(open_storage(None, run))
    studies = {s["study_name"]: s["study_id"] for s in dashboard_api(app, "/api/studies")["study_summaries"]}
    assert set(studies) == {"e2e", "e2e-cheap"}
    trained = dashboard_api(app, f"/api/studies/{studies['e2e']}", "after=0")["trials"]
    assert trained and all(t["constraints"][0] <= 0 for t in trained)
    candidates = dashboard_api(app, f"/api/studies/{studies['e2e-cheap']}", "after=0")["trials"]
    assert any(t["constraints"][0] > 0 for t in candidates)


@pytest.mark.slow
def test_proxy_stage_killed_and_resumed_keeps_finished_and_duplicates_nothing(tmp_path):
    run = tmp_path / "kill"
    proc = subprocess.Popen(
        search_cmd(tmp_path, "kill", *TWO_SEEDS), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    # kill once the first proxy trial has a checkpoint on disk (mid-training)
    assert _wait_for(lambda: any(run.glob("trials/*/checkpoint.pt")), 600)
    assert proc.poll() is None  # still running
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished_before = {
        t.user_attrs["key"]: t.number
        for t in _journal_trials(run / "optuna.journal", "kill")
        if t.state.name in ("COMPLETE", "PRUNED")
    }
    proc = subprocess.run(search_cmd(tmp_path, "kill", *TWO_SEEDS), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    proxy = _journal_trials(run / "optuna.journal", "kill")
    finished = [t for t in proxy if t.state.name in ("COMPLETE", "PRUNED")]
    keys = [t.user_attrs["key"] for t in finished]
    assert len(keys) == len(set(keys)) == 2  # nothing duplicated
    for key, number in finished_before.items():  # nothing finished was recomputed
        assert any(t.number == number and t.user_attrs["key"] == key for t in finished)
    cheap = _journal_trials(run / "optuna.journal", "kill-cheap")
    only = (
        inside_support(feasible_pool(cheap, parse_flops("45G"))) or None
    )  # the default trust region and picks, as the driver applies them
    default = SearchOptions(budget=1).picks
    expected = {t.user_attrs["key"] for t in select_candidates(cheap, 2, parse_flops("45G"), only, default)}
    assert set(keys) == expected
    assert all(t.user_attrs.get("interrupted") for t in proxy if t.state.name == "FAIL")


@pytest.mark.slow
def test_tiny_adaptive_search_trains_more_candidates_than_trials_and_writes_the_ledger(tmp_path):
    """The issue's done-when check at test size: with ``--proxy-stage halving``, --trials 2 with 3
    epochs is 3 trainings of one epoch and one of three; only the full-fidelity one reaches the
    front, best.yaml and export."""
    tiny = [*tiny_search(epochs=3), "--proxy-stage", "halving"]
    proc = subprocess.run(search_cmd(tmp_path, "ad", *tiny), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp_path / "ad"
    summary = json.loads((run / "summary.json").read_text())
    proxy = _journal_trials(run / "optuna.journal", "ad")
    assert len({t.user_attrs["key"] for t in proxy}) == 3 > 2  # more distinct candidates than --trials
    assert sorted(t.user_attrs["fidelity"]["epochs"] for t in proxy) == [1, 1, 1, 3]
    assert all(t.state.name == "PRUNED" and "AP_low" in t.user_attrs for t in proxy if t.user_attrs["rung"] == 0)
    full = [t for t in proxy if t.user_attrs["fidelity"]["epochs"] == 3]
    assert [t.state.name for t in full] == ["COMPLETE"] and summary["pareto"] == [full[0].number]
    assert summary["best_trial"] == full[0].number
    ledger = summary["calibration"]
    assert [e["rung"] for e in ledger] == [0, 1] and [e["n"] for e in ledger] == [3, 1]
    assert ledger == _study_attr(run, "ad", "calibration")
    assert proc.stdout.count("calibration rung") == 2


def _study_attr(run: Path, study: str, attr: str):
    import optuna

    return optuna.load_study(study_name=study, storage=open_storage(None, run)).user_attrs[attr]
