"""``nas export``: a finished (or running) search's chosen design, recompiled, checked against what
was recorded and written as a config, YOLO YAML, torch source or ONNX (with its proxy weights)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nas.core.extras import require
from nas.core.runio import atomic_write_bytes, atomic_write_text
from nas.core.torch_source import to_source
from nas.core.yolo_yaml import FLAVOURS, to_yaml
from nas.engine.options import SearchError, SearchOptions
from nas.engine.proxy.stage import fidelity_of
from nas.engine.proxy.worker import storage_fs, stored_checkpoints, trial_folder
from nas.engine.record.report import choose_winner
from nas.engine.record.storage import open_run
from nas.engine.record.trials import config_of, flops_of, latency_of, metrics_of
from nas.engine.scores.candidate import score_candidate
from search_spaces import compile_config, load_config, parse_yaml

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
    the winner among the COMPLETE trials within ``max_flops`` (default: the search budget), by the
    rule that chose ``best.yaml`` (:func:`~nas.engine.record.report.choose_winner`). The config is
    re-compiled and must reproduce the FLOPs and gradient-path metrics the trial recorded, or nothing
    is written. ``onnx`` also writes the full-size model as ONNX. ``weights="proxy"`` (``torch`` only):
    the model is the proxy-scale network the trial trained, its scored weights written beside it
    (:func:`proxy_weights`); without it, a ``torch`` export names the checkpoint that has them."""
    _check_out(out, fmt)
    if weights is not None:
        _check_weights(out, fmt, weights)
    if onnx is not None or fmt == "onnx":  # before anything is written: a missing extra leaves nothing half-written
        require("onnx", "nas export --onnx")
    study, _ = open_run(run_dir)
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
        number, _ = choose_winner([(t.number, t.values[0], t.user_attrs.get("val_loss"), flops_of(t)) for t in fits])
        chosen = next(t for t in fits if t.number == number)
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
    except Exception as e:  # noqa: BLE001 - read once already by run_storage: only an unknown field is left
        raise SearchError(f"{run_dir}/search.json: its options no longer load ({type(e).__name__}: {e})") from None


def trial_checkpoint(run_dir: str | Path, trial: Any) -> Path | None:
    """The checkpoint of ``trial``'s training, or None: its working folder ``runs/NAME/trials/<folder>``
    (:func:`~nas.engine.proxy.worker.trial_folder`), else the newest the run's default Tune storage
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
