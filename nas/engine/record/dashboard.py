"""``nas dashboard``: optuna-dashboard on a run's storage, read-only by default, showing of a
cheap study only the trials the cheap stage marked (the front and what lies near it, the picks),
so that a study of tens of thousands of candidates opens in seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.core.extras import require
from nas.engine.options import SearchError
from nas.engine.record.storage import run_storage
from nas.engine.record.trials import DASHBOARD_ATTR, feasible_front


def read_only(app: Any) -> Any:
    """WSGI middleware: only GET and HEAD reach the dashboard. Any other request (optuna-dashboard
    deletes a study with one click: ``DELETE /api/studies/N``) gets 403, so a viewer cannot change
    or destroy a search's record."""

    def guarded(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("REQUEST_METHOD", "GET").upper() in ("GET", "HEAD"):
            return app(environ, start_response)
        start_response("403 Forbidden", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"this dashboard is read-only: start it with nas dashboard --allow-edit to change studies\n"]

    return guarded


def dashboard_app(run_dir: str | Path, allow_edit: bool = False) -> Any:
    """optuna-dashboard's WSGI app on the run's storage, read-only unless ``allow_edit``."""
    wsgi = require("optuna_dashboard", "nas dashboard").wsgi
    storage, _ = run_storage(run_dir)  # a --trials 0 run has only its cheap study: shown too
    _feasible_best_trials()
    app = wsgi(dashboard_view(storage))
    return app if allow_edit else read_only(app)


def dashboard_view(storage: Any) -> Any:
    """``storage`` as the dashboard reads it: a cheap study lists only the trials its
    ``nas:dashboard_trials`` attribute names (:func:`nas.engine.cheap.stage.mark_dashboard_view`: the
    front and what lies near it, the picks; a few thousand trials of tens of thousands), so
    it opens in seconds; every other read and every write goes to the storage unchanged."""
    every = storage.get_all_trials

    def get_all_trials(study_id: int, deepcopy: bool = True, states: Any = None) -> list[Any]:
        trials = every(study_id, deepcopy=deepcopy, states=states)
        shown = storage.get_study_system_attrs(study_id).get(DASHBOARD_ATTR)
        if shown is None:
            return trials
        keep = set(shown)
        return [t for t in trials if t.number in keep]

    storage.get_all_trials = get_all_trials
    return storage


def _feasible_best_trials() -> None:
    """optuna-dashboard 0.21's "Best Trials" card is the unconstrained Pareto front (its plot is
    not): make it list feasible trials only, as ``study.best_trials`` does. Where a future
    version moved the function, the study attribute ``best_trials`` still says what to read."""
    import optuna_dashboard._app as upstream

    if hasattr(upstream, "get_pareto_front_trials"):
        upstream.get_pareto_front_trials = feasible_front(upstream.get_pareto_front_trials)


def dashboard(
    run_dir: str | Path, port: int = 8080, host: str = "127.0.0.1", allow_edit: bool = False, log: Any = print
) -> None:
    """Serve optuna-dashboard on the run's storage (both studies: ``<name>-cheap`` and ``<name>``),
    read-only unless ``allow_edit``. The run, the port and the address are checked before the
    server starts, so a bad one is one clear error rather than a server banner and a traceback."""
    import socket

    if not 0 <= port <= 65535:
        raise SearchError(f"--port: {port} is out of range; accepted: 0 to 65535")
    run_storage(run_dir)
    require("optuna_dashboard", "nas dashboard")
    try:  # bind once ourselves: the server would print its banner before failing
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except (OSError, UnicodeError) as e:
        raise SearchError(
            f"--host/--port: cannot listen on {host}:{port} ({e}); accepted: a free port on a local address"
        ) from None
    app = dashboard_app(run_dir, allow_edit)
    mode = "editable" if allow_edit else "read-only"
    log(f"optuna-dashboard ({mode}) on http://{host}:{port}/ (Ctrl-C to stop)")
    serve(app, host, port)


def serve(app: Any, host: str, port: int) -> None:
    """Serve a WSGI app until interrupted (the standard library's server, as optuna-dashboard's own)."""
    from wsgiref.simple_server import make_server

    with make_server(host, port, app) as httpd:
        httpd.serve_forever()
