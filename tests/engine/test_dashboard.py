"""``nas dashboard`` is read-only by default: a viewer's click cannot delete or change a search's
record (optuna-dashboard deletes a study with one ``DELETE /api/studies/N``)."""

from __future__ import annotations

from pathlib import Path

import optuna

from benchmarks.kill_resume import wsgi_request
from nas.engine.export import dashboard_app
from nas.engine.storage import open_storage
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
