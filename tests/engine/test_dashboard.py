"""``nas dashboard`` is read-only by default: a viewer's click cannot delete or change a search's
record (optuna-dashboard deletes a study with one ``DELETE /api/studies/N``)."""

from __future__ import annotations

from pathlib import Path

import optuna

from benchmarks.kill_resume import wsgi_request
from nas.engine.record.dashboard import dashboard_app
from nas.engine.record.storage import open_storage
from nas.engine.record.trials import DASHBOARD_ATTR
from tests.support.fuzz_cases import RUN_NAME, build_run


def _study_names(run: Path) -> set[str]:
    return {s.study_name for s in optuna.get_all_study_summaries(open_storage(None, run))}


def test_a_viewer_cannot_delete_a_study_but_an_editor_can(tmp_path: Path) -> None:
    run = build_run(tmp_path)
    before = _study_names(run)
    assert RUN_NAME in before
    app = dashboard_app(run)
    code, _ = wsgi_request(app, "GET", "/api/studies")
    assert code.startswith("200")
    for method in ("DELETE", "POST", "PUT", "PATCH"):
        code, body = wsgi_request(app, method, "/api/studies/0")
        assert code.startswith("403") and b"--allow-edit" in body
    assert _study_names(run) == before

    code, _ = wsgi_request(dashboard_app(run, allow_edit=True), "DELETE", "/api/studies/0")
    assert code.startswith("204")
    assert len(_study_names(run)) == len(before) - 1


def test_the_dashboard_shows_the_cheap_front_and_the_picks_not_every_candidate(tmp_path: Path, monkeypatch) -> None:
    """A search marks which cheap trials nas dashboard shows (the NSGA-II best, plus the picks);
    the API lists exactly those, the whole feasible front among them, and the study keeps all."""
    import json

    import nas.engine.cheap.stage as cheap
    from nas.core.cost import parse_flops
    from nas.engine import SearchOptions, search

    monkeypatch.setattr(cheap, "DASHBOARD_TRIALS", 40)
    opts = SearchOptions(budget=parse_flops("60G"), name="dash", candidates=200, trials=0, runs_dir=str(tmp_path))
    summary = search(opts, progress=False, log=lambda _: None)
    storage = open_storage(None, opts.run_dir)
    study = optuna.load_study(study_name="dash-cheap", storage=storage)
    every = study.get_trials(deepcopy=False)
    shown = storage.get_study_system_attrs(study._study_id)[DASHBOARD_ATTR]
    picks = {p["trial"] for p in summary["picks"]}
    assert len(every) == 200 and picks <= set(shown) and 40 <= len(shown) < 200

    app = dashboard_app(opts.run_dir)
    sid = next(s["study_id"] for s in json.loads(wsgi_request(app, "GET", "/api/studies")[1])["study_summaries"])
    code, body = wsgi_request(app, "GET", f"/api/studies/{sid}", "after=0")
    listed = {t["number"] for t in json.loads(body)["trials"]}
    assert code.startswith("200") and listed == set(shown)
    front = {t.number for t in study.best_trials}  # Optuna's feasible Pareto front over all 200
    assert front and front <= listed


def test_a_replay_that_decodes_each_distribution_once_reads_the_same_trials(tmp_path: Path, monkeypatch) -> None:
    """open_storage shares decoded distributions across trials (the replay's main cost); the
    trials read must be exactly those of Optuna's own replay."""
    import optuna.storages.journal._storage as journal
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    from nas.core.cost import parse_flops
    from nas.engine import SearchOptions, cheap_stage

    opts = SearchOptions(budget=parse_flops("60G"), name="r", candidates=150, runs_dir=str(tmp_path))
    cheap_stage(open_storage(None, opts.run_dir), opts, progress=False)
    shared = open_storage(None, opts.run_dir)
    decode = journal.json_to_distribution
    assert hasattr(decode, "cache_info")
    monkeypatch.setattr(journal, "json_to_distribution", decode.__wrapped__)  # Optuna's own
    plain = JournalStorage(JournalFileBackend(str(opts.run_dir / "optuna.journal")))
    sid = plain.get_study_id_from_name("r-cheap")
    ours, theirs = shared.get_all_trials(sid), plain.get_all_trials(sid)
    assert len(theirs) == 150 and ours == theirs
    assert [t.distributions for t in ours] == [t.distributions for t in theirs]
    assert decode.cache_info().currsize < 100  # a few distinct distributions, not one per parameter
