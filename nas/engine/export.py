"""``nas export`` and ``nas dashboard``: read a finished (or running) search's storage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nas.core.extras import require
from nas.core.runio import atomic_write_bytes, atomic_write_text
from nas.core.torch_source import to_source
from nas.core.yolo_yaml import FLAVOURS, to_yaml
from nas.engine.cheap import DASHBOARD_ATTR, score_candidate
from nas.engine.objectives import config_of, feasible_front, flops_of, latency_of, metrics_of
from nas.engine.options import SearchError, SearchOptions
from nas.engine.proxy import fidelity_of
from nas.engine.storage import open_storage
from nas.engine.worker import storage_fs, stored_checkpoints, trial_folder
from search_spaces import compile_config, load_config, parse_yaml


def _run_storage(run_dir: str | Path) -> tuple[Any, str]:
    """(journal storage, search name) of a run folder, checked: one clear error if it is not one."""
    run_dir = Path(run_dir)
    meta = run_dir / "search.json"
    if not meta.is_file():
        raise SearchError(
            f"{run_dir}: not a search run (no search.json); accepted: a runs/<name> folder made by nas search"
        )
    try:
        options = json.loads(meta.read_text(encoding="utf-8"))
        name, _ = options["name"], int(options["budget"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as e:
        raise SearchError(
            f"{meta}: unreadable or not made by nas search ({type(e).__name__}); it is not trusted, nothing was read"
        ) from None
    storage = open_storage(None, run_dir) if (run_dir / "optuna.journal").is_file() else None
    if storage is None:
        raise SearchError(f"{run_dir}: no optuna.journal (searches with --storage URL: open that storage directly)")
    return storage, name


def _open_run(run_dir: str | Path):  # noqa: ANN202
    import optuna

    storage, name = _run_storage(run_dir)
    try:
        return optuna.load_study(study_name=name, storage=storage), name
    except KeyError:
        raise SearchError(f"{run_dir}: the proxy study {name!r} has no trials yet") from None


FORMATS = ("yaml", "yolov7", "yolov9", "torch", "onnx")


def render(cfg: Any, fmt: str, title: str = "") -> str | bytes:
    """The text (bytes for ONNX) ``fmt`` writes for ``cfg``, all built from its LayerGraph; a config the
    format cannot express raises one-line :class:`~nas.core.yolo_yaml.ExportError` before anything is written."""
    if fmt == "yaml":
        return cfg.to_yaml()
    if fmt == "onnx":
        return onnx_bytes(cfg)
    graph = compile_config(cfg)
    if fmt == "torch":
        return to_source(graph, title or "model")
    if fmt in FLAVOURS:
        return to_yaml(graph, fmt, title)
    raise SearchError(f"--format: {fmt!r} is not a format; accepted: {', '.join(FORMATS)}")


def export_config(source: str | Path, out: str | Path, fmt: str = "yaml") -> dict[str, Any]:
    """``nas export PRESET|CONFIG.yaml --format F -o OUT``: a preset or config file in format ``fmt``."""
    _check_out(out, fmt)
    cfg = load_config(source)
    data = render(cfg, fmt, Path(str(source)).stem)
    _write(out, data)
    return {"source": str(source), "format": fmt, "flops": score_candidate(cfg)["flops"], "out": str(out)}


def _check_out(out: str | Path, fmt: str) -> None:
    if fmt not in FORMATS:
        raise SearchError(f"--format: {fmt!r} is not a format; accepted: {', '.join(FORMATS)}")
    if Path(out).is_dir():
        raise SearchError(f"-o: {out} is a folder; accepted: a file path")
    parent = Path(out).resolve().parent
    if not parent.is_dir():
        raise SearchError(f"-o: {parent} is not a folder; accepted: a file path in an existing folder")


def _write(out: str | Path, data: str | bytes) -> None:
    if isinstance(data, bytes):
        atomic_write_bytes(out, data)
    else:
        atomic_write_text(out, data)


def export(
    run_dir: str | Path,
    out: str | Path = "arch.yaml",
    trial: int | None = None,
    max_flops: int | None = None,
    onnx: str | Path | None = None,
    fmt: str = "yaml",
    weights: str | None = None,
) -> dict[str, Any]:
    """Write a trained trial's ArchConfig in format ``fmt`` (default YAML): ``trial`` by number, else
    the best-AP COMPLETE trial within ``max_flops`` (default: the search budget). The config is
    re-compiled and must reproduce the FLOPs and gradient-path metrics the trial recorded, or nothing
    is written. ``onnx`` also writes the full-size model as ONNX. ``weights="proxy"`` (``torch`` only):
    the model is the proxy-scale network the trial trained, its scored weights written beside it
    (:func:`proxy_weights`); without it, a ``torch`` export names the checkpoint that has them."""
    _check_out(out, fmt)
    if weights is not None:
        _check_weights(out, fmt, weights)
    if onnx is not None or fmt == "onnx":  # before anything is written: a missing extra leaves nothing half-written
        require("onnx", "nas export --onnx")
    study, _ = _open_run(run_dir)
    done = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if trial is not None:
        match = [t for t in done if t.number == trial]
        if not match:
            numbers = ", ".join(str(t.number) for t in done) or "none"
            raise SearchError(f"--trial: {trial} is not a completed trained trial; accepted: {numbers}")
        chosen = match[0]
    else:
        limit = (
            max_flops if max_flops is not None else json.loads((Path(run_dir) / "search.json").read_text())["budget"]
        )
        fits = [t for t in done if flops_of(t) <= limit and t.user_attrs.get("feasible", True) is not False]
        if not fits:
            raise SearchError(f"no completed trial within {limit / 1e9:g} GFLOPs; accepted: a larger --max-flops")
        chosen = max(fits, key=lambda t: (t.values[0], -flops_of(t)))
    cfg = parse_yaml(config_of(chosen))
    again = score_candidate(cfg)
    if again["flops"] != flops_of(chosen) or again["metrics"] != metrics_of(chosen):
        raise SearchError(f"trial {chosen.number}: its config no longer rebuilds the recorded FLOPs/metrics")
    title = f"{Path(run_dir).name} trial {chosen.number}"
    result = {"trial": chosen.number, "AP": chosen.values[0], "flops": again["flops"], "format": fmt, "out": str(out)}
    if weights is not None:
        data, state, result["scale"] = proxy_weights(run_dir, chosen, cfg, title, weights_path(out).name)
        atomic_write_bytes(weights_path(out), state)
        result["weights"] = str(weights_path(out))
    else:
        data = render(cfg, fmt, title)
        if fmt == "torch":
            found = trial_checkpoint(run_dir, chosen)
            result["proxy_checkpoint"] = str(found) if found else None
    _write(out, data)
    if latency_of(chosen) is not None:
        result["latency_ms"] = latency_of(chosen)
    if onnx is not None:
        result["onnx"] = str(export_onnx(cfg, onnx))
    return result


#: what ``--weights`` accepts: the trained proxy's own (the only trained weights a search makes)
WEIGHTS = ("proxy",)


def weights_path(out: str | Path) -> Path:
    """Where ``--weights`` writes the state dict: ``OUT`` with ``.pt`` (model.py -> model.pt)."""
    return Path(out).with_suffix(".pt")


def _check_weights(out: str | Path, fmt: str, weights: str) -> None:
    if weights not in WEIGHTS:
        raise SearchError(f"--weights: {weights!r} is not accepted; accepted: {', '.join(WEIGHTS)}")
    if fmt != "torch":
        raise SearchError(f"--weights: only with --format torch (a model.py and its state dict), not {fmt}")
    if weights_path(out) == Path(out) or weights_path(out).is_dir():
        raise SearchError(f"-o: {out} leaves no place for the state dict ({weights_path(out)}); accepted: a .py path")


def _options(run_dir: str | Path) -> SearchOptions:
    """The run's search options (its recipe: the proxy's width, image size, epochs)."""
    try:
        identity = json.loads((Path(run_dir) / "search.json").read_text(encoding="utf-8"))
        return SearchOptions.from_identity(identity, runs_dir=str(Path(run_dir).parent))
    except Exception as e:  # noqa: BLE001 - read once already by _run_storage: only an unknown field is left
        raise SearchError(f"{run_dir}/search.json: its options no longer load ({type(e).__name__}: {e})") from None


def trial_checkpoint(run_dir: str | Path, trial: Any) -> Path | None:
    """The checkpoint of ``trial``'s training, or None: its working folder ``runs/NAME/trials/<folder>``
    (:func:`~nas.engine.worker.trial_folder`), else the newest the run's default Tune storage
    (``runs/NAME/ray``) persisted (a training that ran on another node; a ``--ray-storage``
    elsewhere is not read here)."""
    full = _options(run_dir).recipe.epochs
    folder = trial_folder(str(trial.user_attrs.get("key")), fidelity_of(trial, full), full)
    local = Path(run_dir) / "trials" / folder / "checkpoint.pt"
    if local.is_file():
        return local
    tune_root = (Path(run_dir) / "ray").resolve()
    if not tune_root.is_dir():
        return None
    fs, root = storage_fs(str(tune_root))
    stored = (Path(path) / "checkpoint.pt" for _, path in stored_checkpoints(fs, root, folder))
    return next((p for p in stored if p.is_file()), None)


def proxy_weights(run_dir: str | Path, trial: Any, cfg: Any, title: str, name: str) -> tuple[str, bytes, str]:
    """(``model.py`` of the proxy-scale network ``trial`` trained, ``torch.save`` bytes of its scored
    weights (plain tensors), a description of the scale). The checkpoint must be the trial's: its
    epochs, its last AP and a strict load into :func:`evaluators.train.proxy_graph`'s network."""
    import io

    import torch

    from evaluators.train import proxy_graph, read_checkpoint, scored_weights
    from nas.core.module import build

    found = trial_checkpoint(run_dir, trial)
    if found is None:
        raise SearchError(
            f"--weights proxy: trial {trial.number} has no checkpoint in {run_dir}/trials or {run_dir}/ray; "
            "accepted: a trial trained in this run folder (without --weights: the full-size model, fresh weights)"
        )
    try:
        state = read_checkpoint(found)
    except ValueError as e:
        raise SearchError(f"--weights proxy: {found} is unusable ({e})") from None
    recipe = _options(run_dir).recipe
    history = state["history"]
    last_ap = history[-1].get("AP") if history else None
    if len(history) != fidelity_of(trial, recipe.epochs) or last_ap is None or abs(last_ap - trial.values[0]) > 1e-9:
        raise SearchError(f"--weights proxy: {found} is not the training trial {trial.number} recorded (epochs, AP)")
    graph, arch = proxy_graph(cfg, recipe, int(state["fingerprint"]["num_classes"]))
    tensors = {k: v.detach().cpu().contiguous() for k, v in scored_weights(state).items()}
    try:
        build(graph).load_state_dict(tensors)
    except RuntimeError as e:
        why = " ".join(str(e).split())[:200]
        raise SearchError(f"--weights proxy: {found} does not fit the trial's proxy network ({why})") from None
    scale = f"proxy: width x{recipe.width_mult:g}, {arch.img_size} px, {arch.num_classes} classes"
    buf = io.BytesIO()
    torch.save(tensors, buf)
    return to_source(graph, f"{title}, {scale}", name), buf.getvalue(), scale


def export_onnx(cfg, path: str | Path) -> Path:  # noqa: ANN001
    """The full-size model as ONNX (opset 17, batch 1), written atomically."""
    atomic_write_bytes(path, onnx_bytes(cfg))
    return Path(path)


def onnx_bytes(cfg) -> bytes:  # noqa: ANN001
    """The full-size model as ONNX (opset 17, batch 1)."""
    import io

    import torch

    from nas.core.module import build

    require("onnx", "nas export --onnx")  # torch.onnx.export imports it
    model = build(compile_config(cfg)).eval()
    x = torch.zeros(1, 3, cfg.img_size, cfg.img_size)
    buf = io.BytesIO()
    names = [f"p{i + 3}" for i in range(len(model.graph.outputs))]
    torch.onnx.export(model, (x,), buf, input_names=["images"], output_names=names, opset_version=17, dynamo=False)
    return buf.getvalue()


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
    storage, _ = _run_storage(run_dir)  # a --trials 0 run has only its cheap study: shown too
    _feasible_best_trials()
    app = wsgi(dashboard_view(storage))
    return app if allow_edit else read_only(app)


def dashboard_view(storage: Any) -> Any:
    """``storage`` as the dashboard reads it: a cheap study lists only the trials its
    ``nas:dashboard_trials`` attribute names (:func:`nas.engine.cheap.mark_dashboard_view`: the
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
    _run_storage(run_dir)
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
