"""The proxy stage on Ray Tune, driver side: the chosen candidates are trained on the COCO proxy
under ASHA while the driver owns the Optuna study through ask/tell. What runs inside the Ray
workers is :mod:`nas.engine.worker`."""

from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path
from typing import Any

from nas.engine.objectives import (
    CONFIG_ATTR,
    config_of,
    constraints_of,
    copied_attrs,
    latency_info,
    metric_name,
    study_attrs,
)
from nas.engine.options import SearchError, SearchOptions
from nas.engine.report import progress_bar
from nas.engine.storage import fail_interrupted, mark_constraint
from nas.engine.worker import ERROR_FILE, FAULT_ENV, FINISHED, _proxy_trainable, config_hash


def _tune_callback(study, pending: dict[int, Any], epochs: int, bar: Any, failure: list[BaseException]):  # noqa: ANN001, ANN202
    """Tells Optuna as each Ray trial ends, in the driver, so a kill loses nothing finished.

    A storage write that fails here (disk full, permission lost) is kept in ``failure`` instead of
    raised: Tune would treat it as the *trial's* failure and retry the trial. The search's stopper
    then ends every trial and ``_run_tune`` raises it: one clear error, nothing told after it."""
    import optuna
    from ray.tune import Callback

    class OptunaTeller(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001, ANN003
            if result.get("epoch", 0) > 0:
                bar.set_postfix_str(
                    f"trial {trial.config['trial']['number']} epoch {result['epoch']} AP {result['AP']:.3f}"
                )

        def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001, ANN003
            number = trial.config["trial"]["number"]
            if failure:  # the storage failed: leave the trial RUNNING, the next run re-runs it
                return
            ot = pending.pop(number, None)
            if ot is None:
                return
            last = trial.last_result or {}
            try:
                if "failed" in last:
                    ot.set_user_attr("reason", str(last["failed"]))
                    study.tell(ot, state=optuna.trial.TrialState.FAIL)
                elif last.get("epoch", 0) >= epochs:
                    ot.set_user_attr("AP50", last.get("AP50"))
                    study.tell(ot, [float(last["AP"]), ot.user_attrs[study.metric_names[1]]])  # GFLOPs | latency_ms
                else:
                    ot.set_user_attr("last_AP", last.get("AP"))
                    ot.set_user_attr("epochs_done", last.get("epoch", 0))
                    ot.set_user_attr("reason", "stopped early by ASHA")
                    study.tell(ot, state=optuna.trial.TrialState.PRUNED)
            except Exception as e:  # noqa: BLE001 - any storage error stops the search, see above
                failure.append(e)
                return
            bar.update(1)

        def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001, ANN003
            if failure:
                return
            ot = pending.pop(trial.config["trial"]["number"], None)
            if ot is None:
                return
            try:
                ot.set_user_attr("reason", _error_reason(trial))
                study.tell(ot, state=optuna.trial.TrialState.FAIL)
            except Exception as e:  # noqa: BLE001
                failure.append(e)
                return
            bar.update(1)

    return OptunaTeller()


def _error_reason(trial: Any) -> str:
    """The last ``SomeError: message`` line of the trial's last error (Tune keeps the traceback
    in ``error.txt``), e.g. ``RuntimeError: CUDA out of memory`` or the worker's death."""
    import re

    ours = Path(trial.config["trial"]["out_dir"]) / ERROR_FILE
    with contextlib.suppress(OSError):
        if ours.is_file():
            return ours.read_text(encoding="utf-8").strip()[:500] or "the training raised an exception"
    try:
        text = trial.get_error() or ""
    except Exception:  # noqa: BLE001 - the reason is best effort, the FAIL state is not
        text = ""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip() and not ln.startswith("Failure #")]
    errors = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b.*", ln)]
    reason = (errors or lines or ["the training raised an exception"])[-1]
    return reason[:500]


def proxy_stage(storage, opts: SearchOptions, chosen: list, progress: bool = True):  # noqa: ANN001, ANN201
    import optuna

    from search_spaces import parse_yaml
    from search_spaces.space import SPACES

    space = SPACES[opts.space]
    study = optuna.create_study(
        study_name=opts.name, storage=storage, directions=["maximize", "minimize"], load_if_exists=True
    )
    study.set_metric_names(["AP", metric_name(opts.cost)])
    for k, v in study_attrs(opts, latency_info(opts)[1]).items():
        study.set_user_attr(k, v)
    fail_interrupted(study)
    finished = {
        t.user_attrs.get("key")
        for t in study.get_trials(deepcopy=False)
        if t.state.name in FINISHED or (t.state.name == "FAIL" and not t.user_attrs.get("interrupted"))
    }
    todo = [t for t in chosen if t.user_attrs["key"] not in finished]
    if not todo:
        return study
    pending: dict[int, Any] = {}
    ray_trials = []
    for cheap in todo:
        cfg = parse_yaml(config_of(cheap))
        study.enqueue_trial(space.params_of(cfg), skip_if_exists=False)
        ot = study.ask()
        assert space.suggest(ot) == cfg
        mark_constraint(study, ot, cheap.system_attrs["constraints"], [c.name for c in constraints_of(opts)])
        for k, v in copied_attrs(cheap).items():  # readable scalars; the YAML is a system attribute
            ot.set_user_attr(k, v)
        study._storage.set_trial_system_attr(ot._trial_id, CONFIG_ATTR, config_of(cheap))
        pending[ot.number] = ot
        out_dir = (opts.run_dir / "trials" / config_hash(cheap.user_attrs["key"])).resolve()
        ray_trials.append({"number": ot.number, "config": config_of(cheap), "out_dir": str(out_dir)})
    bar = progress_bar(len(chosen), "proxy stage", progress, initial=len(chosen) - len(todo))
    try:
        _run_tune(opts, ray_trials, study, pending, bar)
    finally:
        bar.close()
    return study


def _stop_all(failure: list[BaseException]) -> Any:
    from ray.tune.stopper import Stopper

    class StopAll(Stopper):
        """Ends every trial once the storage has failed (see ``_tune_callback``)."""

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return bool(failure)

        def stop_all(self) -> bool:
            return bool(failure)

    return StopAll()


def _run_tune(opts: SearchOptions, ray_trials: list[dict[str, Any]], study, pending, bar) -> None:  # noqa: ANN001
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from nas.engine.ray_cluster import start_or_join

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    started = start_or_join(opts.ray_address, os.cpu_count())  # see nas.engine.ray_cluster
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)) // opts.workers)
    options = {
        "data": str(Path(opts.data).resolve()) if opts.data != "shapes" else "shapes",
        "recipe": opts.recipe.to_dict(),
        "threads": cpus,
        "data_root": str(Path(opts.runs_dir).resolve()),
        "fault": os.environ.get(FAULT_ENV),  # test-only, see _fault_injector
    }
    param_space = {"options": options, "trial": tune.grid_search(ray_trials)}
    failure: list[BaseException] = []
    # max_t one past the last epoch: ASHA only ever stops trials early; a trial that reaches its
    # last epoch ends by returning, so "completed" and "stopped by ASHA" stay distinguishable.
    # The one rung sits at 2/3 of the epochs: the rank study measured Kendall τ of epoch-e AP with
    # the final AP at 0.21-0.22 for e = 2 of 5-6 (pruning there is nearly a coin flip), 0.45-0.49
    # for e = 3 and 0.69-0.79 for e = 4 (rank_study[_default].json, "early_stopping").
    scheduler = ASHAScheduler(
        metric="AP",
        mode="max",
        time_attr="training_iteration",
        max_t=opts.recipe.epochs + 1,
        grace_period=max(1, math.ceil(2 * opts.recipe.epochs / 3)),
    )
    tuner = tune.Tuner(
        tune.with_resources(_proxy_trainable, {"cpu": cpus}),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            scheduler=scheduler,
            max_concurrent_trials=opts.workers,
            reuse_actors=False,
            trial_dirname_creator=lambda t: f"trial_{t.config['trial']['number']}",
        ),
        run_config=tune.RunConfig(
            name=f"tune-{int(time.time())}",
            storage_path=str((opts.run_dir / "ray").resolve()),
            verbose=0,
            callbacks=[_tune_callback(study, pending, opts.recipe.epochs, bar, failure)],
            stop=_stop_all(failure),
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    )
    try:
        tuner.fit()
    finally:
        if started:  # our local Ray: stop its processes now, not at interpreter exit
            ray.shutdown()
    if failure:
        e = failure[0]
        text = f"{e.strerror}: {e.filename}" if isinstance(e, OSError) and e.strerror else f"{type(e).__name__}: {e}"
        raise SearchError(
            f"the search stopped: recording a trial in its storage failed ({text}); every trial recorded "
            "before is kept: fix the cause (disk space, permissions) and re-run the same command to resume"
        ) from e
