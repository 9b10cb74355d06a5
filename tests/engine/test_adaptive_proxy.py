"""The adaptive proxy stage without Ray: the rung plan executed, every training recorded with its
fidelity, the ledger, promotion, and resume — under ``--proxy-stage halving``, whose plan has
rungs to promote between; the default ``select`` is its one-rung case (the last test). Tune is replaced by a fake that tells each training
through the stage's own Tune callback, with an AP that is a known function of the config."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest

import nas.engine.proxy.stage as P
from evaluators.recipe import Recipe
from nas.core.cost import parse_flops
from nas.engine import SearchOptions, cheap_stage, select_candidates
from nas.engine.proxy.fidelity import Rung, plan_proxy, plan_rungs
from nas.engine.record.storage import open_storage
from nas.engine.record.trials import flops_of
from nas.engine.scores.calibration import MISLEADING_MIN_N


def _ap(key: str, epochs: int) -> float:
    """A made-up AP: a per-config quality, better with more epochs."""
    q = int(hashlib.sha1(key.encode()).hexdigest()[:6], 16) / 0xFFFFFF
    return round(q * epochs / 10, 5)


class FakeTune:
    """Stands in for ``_run_tune``: tells every training through ``_tune_callback`` as Ray would."""

    def __init__(self, ap=_ap, fail: set[str] = frozenset()) -> None:
        self.ap, self.fail, self.launched = ap, fail, []

    def __call__(self, opts, ray_trials, study, pending, bar, rung: Rung, index: int) -> None:
        cb = P._tune_callback(study, pending, rung, bar, [], opts.seeds)
        keys = {n: ot.user_attrs["key"] for n, ot in pending.items()}
        for job in ray_trials:
            self.launched.append((job["number"], rung.epochs, job["out_dir"]))
            key, k = keys[job["number"]], job.get("seed_index", 0)
            if key in self.fail or (key, k) in self.fail:  # a design, or one of its seeds
                last = {"epoch": -1, "AP": 0.0, "failed": "injected"}
            else:  # seed k's AP: the design's plus k / 100; its val loss falls with its AP
                ap = self.ap(key, rung.epochs) + k / 100
                last = {"epoch": rung.epochs, "AP": ap, "AP50": 0.0, "val_loss": 5.0 - ap}
            cb.on_trial_complete(0, [], SimpleNamespace(config={"trial": job}, last_result=last))


@pytest.fixture()
def cheap(tmp_path):
    opts = SearchOptions(
        budget=parse_flops("150G"),
        name="a",
        candidates=80,
        trials=4,
        proxy_stage="halving",
        seeds=1,
        recipe=Recipe(epochs=6),
        runs_dir=str(tmp_path),
    )
    storage = open_storage(None, opts.run_dir)
    trials = cheap_stage(storage, opts, progress=False).get_trials(deepcopy=False)
    return opts, storage, trials


def _run(opts, storage, trials, fake, monkeypatch, lines=None):
    monkeypatch.setattr(P, "_run_tune", fake)
    monkeypatch.setattr(P, "_start_ray", lambda opts: False)
    plan = plan_proxy(opts.proxy_stage, opts.trials, opts.recipe.epochs, pool=200)
    chosen = select_candidates(trials, plan[0].n, opts.budget)
    reserve = select_candidates(trials, 3 * len(chosen), opts.budget)
    return P.proxy_stage(
        storage, opts, chosen, plan, False, reserve=reserve, log=(lines if lines is not None else []).append
    ), chosen


def test_rungs_train_more_distinct_candidates_than_trials_and_write_the_ledger(cheap, monkeypatch):
    opts, storage, trials = cheap
    fake, lines = FakeTune(), []
    study, chosen = _run(opts, storage, trials, fake, monkeypatch, lines)
    proxy = study.get_trials()
    low = [t for t in proxy if t.user_attrs["fidelity"] == {"epochs": 2, "of": 6}]
    full = [t for t in proxy if t.user_attrs["fidelity"] == {"epochs": 6, "of": 6}]
    assert len(low) == 6 and len(full) == 2  # 6 x 2 epochs + 2 x 6 epochs = the compute of 4
    assert len({t.user_attrs["key"] for t in proxy}) == 6 > opts.trials
    assert all(t.state.name == "PRUNED" and t.user_attrs["AP_low"] == _ap(t.user_attrs["key"], 2) for t in low)
    assert all(t.state.name == "COMPLETE" and t.values[0] == _ap(t.user_attrs["key"], 6) for t in full)
    assert {t.user_attrs["rung"] for t in low} == {0} and {t.user_attrs["rung"] for t in full} == {1}
    # each training has its own folder: a low rung's short schedule is never resumed as the full one
    folders = [o for _, _, o in fake.launched]
    assert len(set(folders)) == 8 and sum(o.endswith("-e2") for o in folders) == 6
    # the two promoted are the rung's Pareto front of (AP, FLOPs) first, best AP first
    ledger = study.user_attrs["calibration"]
    assert [e["rung"] for e in ledger] == [0, 1] and ledger[0]["n"] == 6 and ledger[1]["n"] == 2
    promoted = {t.user_attrs["cheap_trial"] for t in full}
    assert set(ledger[0]["promoted"]) == promoted
    by_cheap = {t.user_attrs["cheap_trial"]: t for t in low}
    from nas.engine.stats import pareto_fronts

    pts = [(t.user_attrs["AP_low"], flops_of(t)) for t in low]
    front = {low[i].user_attrs["cheap_trial"] for i in pareto_fronts(pts)[0]}
    assert promoted <= front or front <= promoted
    assert max(by_cheap, key=lambda n: by_cheap[n].user_attrs["AP_low"]) in promoted
    for e in ledger:
        assert {"rung", "n", "kendall_tau", "kendall_tau_calibrated", "weights"} <= set(e)
    assert sum(line.startswith("calibration rung") for line in lines) == 2


def test_the_default_select_stage_trains_the_k_picks_in_full_and_keeps_the_ledger(cheap, monkeypatch):
    import dataclasses

    opts, storage, trials = cheap
    opts = dataclasses.replace(opts, proxy_stage="select")
    fake, lines = FakeTune(), []
    study, chosen = _run(opts, storage, trials, fake, monkeypatch, lines)
    proxy = study.get_trials()
    assert [e for _, e, _ in fake.launched] == [6] * opts.trials  # K trainings, every one the full schedule
    assert all(t.state.name == "COMPLETE" and t.values[0] == _ap(t.user_attrs["key"], 6) for t in proxy)
    assert [t.user_attrs["cheap_trial"] for t in proxy] == [t.number for t in chosen[: opts.trials]]
    ledger = study.user_attrs["calibration"]
    assert len(ledger) == 1 and ledger[0]["n"] == opts.trials and "promoted" not in ledger[0]
    assert sum(line.startswith("calibration rung") for line in lines) == 1


def test_every_pick_trains_once_per_seed_and_is_told_once_with_the_means(cheap, monkeypatch):
    import dataclasses

    opts, storage, trials = cheap
    opts = dataclasses.replace(opts, proxy_stage="select", seeds=2)
    fake = FakeTune()
    study, chosen = _run(opts, storage, trials, fake, monkeypatch)
    proxy = study.get_trials()
    assert len(proxy) == opts.trials and len(fake.launched) == 2 * opts.trials
    folders = [Path(o).name for _, _, o in fake.launched]
    assert len(set(folders)) == len(folders) and sum(f.endswith("-s1") for f in folders) == opts.trials
    for t in proxy:
        base = _ap(t.user_attrs["key"], 6)
        assert t.state.name == "COMPLETE" and t.user_attrs["AP_seeds"] == [base, base + 0.01]
        assert t.values[0] == pytest.approx(base + 0.005)
        assert t.user_attrs["val_loss"] == pytest.approx(5.0 - base - 0.005)
    again = FakeTune()
    _run(opts, storage, trials, again, monkeypatch)
    assert again.launched == []  # a pick told once is never trained again


def test_one_failed_seed_fails_its_pick_once(cheap, monkeypatch):
    import dataclasses

    opts, storage, trials = cheap
    opts = dataclasses.replace(opts, proxy_stage="select", seeds=2)
    plan = plan_proxy("select", opts.trials, 6, pool=200)
    bad = select_candidates(trials, plan[0].n, opts.budget)[0].user_attrs["key"]
    study, _ = _run(opts, storage, trials, FakeTune(fail={(bad, 1)}), monkeypatch)  # its second seed fails
    states = {t.user_attrs["key"]: t.state.name for t in study.get_trials()}
    assert states[bad] == "FAIL" and list(states.values()).count("COMPLETE") == len(states) - 1


def test_the_same_command_again_trains_nothing(cheap, monkeypatch):
    opts, storage, trials = cheap
    _run(opts, storage, trials, FakeTune(), monkeypatch)
    again = FakeTune()
    study, _ = _run(opts, storage, trials, again, monkeypatch)
    assert again.launched == [] and len(study.get_trials()) == 8
    assert len(study.user_attrs["calibration"]) == 2


def test_a_kill_between_rungs_resumes_at_the_next_rung(cheap, monkeypatch):
    opts, storage, trials = cheap
    first = FakeTune()

    def die_at_rung_1(*args, **kwargs):
        if kwargs["index"] == 1:
            raise KeyboardInterrupt  # the search stops between the rungs
        first(*args, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        _run(opts, storage, trials, die_at_rung_1, monkeypatch)
    second = FakeTune()
    study, _ = _run(opts, storage, trials, second, monkeypatch)
    assert [e for _, e, _ in second.launched] == [6, 6]  # only the full rung, nothing of rung 0 again
    finished = [t for t in study.get_trials() if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 8
    assert len({(t.user_attrs["key"], t.user_attrs["fidelity"]["epochs"]) for t in finished}) == 8
    # the two asked but never told by the killed run are FAIL(interrupted), not duplicates
    assert all(t.user_attrs.get("interrupted") for t in study.get_trials() if t.state.name == "FAIL")


def test_failed_trainings_are_topped_up_from_the_recalibrated_pool(cheap, monkeypatch):
    opts, storage, trials = cheap
    plan = plan_rungs(opts.trials, opts.recipe.epochs, pool=200)
    chosen = select_candidates(trials, plan[0].n, opts.budget)
    fail = {t.user_attrs["key"] for t in chosen[1:]}  # 5 of the 6 bottom-rung trainings fail
    study, _ = _run(opts, storage, trials, FakeTune(fail=fail), monkeypatch)
    entry = study.user_attrs["calibration"][0]
    assert entry["n"] == 1 and entry["topped_up"] == 1
    full = [t for t in study.get_trials() if t.user_attrs["fidelity"]["epochs"] == 6]
    assert len(full) == 2 and chosen[0].number in entry["promoted"]
    topped = [n for n in entry["promoted"] if n != chosen[0].number]
    assert topped and topped[0] not in {t.number for t in chosen}  # from the reserve, never trained before


def test_a_misleading_cheap_score_is_said_plainly_and_promotion_uses_ap_alone(cheap, monkeypatch):
    opts, storage, trials = cheap
    score = {t.user_attrs["key"]: t.values[0] for t in trials}
    lines: list[str] = []
    # AP exactly reversed from the cheap score: Kendall tau -1 over the 6 trainings of rung 0
    study, _ = _run(opts, storage, trials, FakeTune(ap=lambda k, e: round(10 - score[k], 6) * e), monkeypatch, lines)
    entry = study.user_attrs["calibration"][0]
    assert entry["n"] >= MISLEADING_MIN_N and entry["kendall_tau"] == -1.0 and entry["misleading"]
    assert any("the cheap score misleads on this data" in line and "leaning on measured AP" in line for line in lines)
