"""A finished tiny run without training, for the report's tests: a real cheap stage (60
candidates, many over a 60 GFLOPs budget), a proxy study whose picks carry what the proxy stage
records (by its own ``_copy_cheap_attrs``; the APs are made up: nothing is trained), then what the
driver writes after its proxy stage: ``summary.json`` (the report code's own ``write_outputs``),
the calibration ledger (the real calibration) and the plan. No ``report.html`` yet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: the made-up AP of the i-th pick
APS = (0.12, 0.19, 0.16)


def finished_tiny_run(runs: Path, name: str = "tiny", **changes: Any) -> Path:
    """``runs/NAME`` as a finished search leaves it. ``changes``: options that differ from the
    tiny defaults (e.g. ``budget=150 * 10**9``)."""
    import optuna

    from nas.core.cost import parse_flops
    from nas.core.runio import atomic_write_json
    from nas.engine import SearchOptions, cheap_stage, select_candidates
    from nas.engine.proxy.stage import _copy_cheap_attrs
    from nas.engine.record.report import write_outputs
    from nas.engine.record.storage import open_storage
    from nas.engine.record.trials import flops_of, metric_name, metrics_of, params_of, study_attrs
    from nas.engine.scores.calibration import calibrate, features_of
    from nas.engine.scores.registry import fitted_weights

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    options = {"budget": parse_flops("60G"), "name": name, "candidates": 60, "trials": 3, **changes}
    opts = SearchOptions(runs_dir=str(runs), **options)
    storage = open_storage(None, opts.run_dir)
    cheap = cheap_stage(storage, opts, progress=False)
    atomic_write_json(opts.run_dir / "search.json", opts.identity())
    proxy = optuna.create_study(study_name=name, storage=storage, directions=["maximize", "minimize"])
    proxy.set_metric_names(["AP", metric_name(opts.cost)])
    for k, v in study_attrs(opts).items():
        proxy.set_user_attr(k, v)
    fidelity = {"epochs": opts.recipe.epochs, "of": opts.recipe.epochs}
    for ap, c in zip(APS, select_candidates(cheap.trials, len(APS), opts.budget), strict=False):
        t = proxy.ask()
        _copy_cheap_attrs(proxy, t, c, opts)
        t.set_user_attr("fidelity", fidelity)
        t.set_user_attr("rung", 0)
        proxy.tell(t, [ap, t.user_attrs["GFLOPs"]])
    folder = opts.run_dir / "trials" / "made-up"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"data": "shapes", "data_fingerprint": "f" * 64}))  # as trained
    summary = write_outputs(proxy, opts)
    done = [t for t in proxy.trials if t.state.name == "COMPLETE"]
    rows = [features_of(flops_of(t), params_of(t), metrics_of(t)) for t in done]
    scores = [t.user_attrs["cheap_score"] for t in done]
    entry = {"rung": 0, "fidelity": fidelity}
    entry.update(calibrate(rows, [t.values[0] for t in done], scores, fitted_weights()["features"]))
    summary["calibration"] = [entry]
    summary["plan"] = [{**fidelity, "n": len(done)}]
    atomic_write_json(opts.run_dir / "summary.json", summary)
    return opts.run_dir
