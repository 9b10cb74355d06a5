"""The proxy stage on Ray Tune, driver side: a training budget spent on the selection's picks in
full, or by successive halving over a diverse pool (rungs of complete short schedules,
:mod:`nas.engine.proxy.fidelity`), the cheap score
recalibrated on the measured APs after every rung (:mod:`nas.engine.scores.calibration`), while the
driver owns the Optuna study through ask/tell. What runs inside the Ray workers is
:mod:`nas.engine.proxy.worker`."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.engine.options import SearchError, SearchOptions
from nas.engine.proxy.fidelity import Rung
from nas.engine.proxy.worker import (
    FAULT_ENV,
    FINISHED,
    SETUP_ERROR,
    STORAGE_MARKER,
    _proxy_trainable,
    error_record,
    storage_fs,
    trial_folder,
    tune_trial_name,
)
from nas.engine.record.report import progress_bar
from nas.engine.record.storage import fail_interrupted, mark_constraint
from nas.engine.record.trials import (
    CONFIG_ATTR,
    config_of,
    constraints_of,
    copied_attrs,
    flops_of,
    latency_info,
    metric_name,
    metrics_of,
    params_of,
    study_attrs,
)
from nas.engine.stats import pareto_fronts


def combine_seeds(results: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """One pick's result from its trainings' last results (seed index -> result): AP, AP50 and
    val loss are their means, the per-seed values are kept in seed order.

    >>> r = combine_seeds({1: {"epoch": 5, "AP": 0.3, "val_loss": 4.0}, 0: {"epoch": 5, "AP": 0.2, "val_loss": 5.0}})
    >>> round(r["AP"], 3), r["AP_seeds"], r["val_loss"], r["val_loss_seeds"]
    (0.25, [0.2, 0.3], 4.5, [5.0, 4.0])
    """
    order = [results[k] for k in sorted(results)]

    def mean(key: str) -> float | None:
        vals = [r.get(key) for r in order]
        return None if any(v is None for v in vals) else sum(vals) / len(vals)

    out = {**order[0], "epoch": min(r.get("epoch", 0) for r in order), "AP": mean("AP"), "AP50": mean("AP50")}
    out["AP_seeds"] = [r.get("AP") for r in order]
    out["val_loss"] = mean("val_loss")
    out["val_loss_seeds"] = [r.get("val_loss") for r in order]
    return out


def _tune_callback(study, pending: dict[int, Any], rung: Rung, bar: Any, failure: list[BaseException], seeds: int = 1):  # noqa: ANN001, ANN202
    """Tells Optuna as each pick's trainings end, in the driver, so a kill loses nothing finished.
    A pick trains ``seeds`` times (one Tune trial each, the same proxy-study trial number): it is
    told once all have finished, with their means (:func:`combine_seeds`); one that fails or
    stops early decides for the pick.

    A storage write that fails here (disk full, permission lost) is kept in ``failure`` instead of
    raised: Tune would treat it as the *trial's* failure and retry the trial. The search's stopper
    then ends every trial and ``_run_tune`` raises it: one clear error, nothing told after it. A
    node that cannot run trainings (its ``SETUP_ERROR`` report) stops the search the same way."""
    import optuna
    from ray.tune import Callback

    parts: dict[int, dict[int, dict[str, Any]]] = {}  # pick -> seed index -> its last result

    class OptunaTeller(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001, ANN003
            ot = pending.get(trial.config["trial"]["number"])
            if result.get(SETUP_ERROR) and not failure:
                failure.append(SearchError(result[SETUP_ERROR]))
            if result.get("epoch", 0) <= 0 or ot is None or failure:
                return
            bar.set_postfix_str(f"trial {ot.number} epoch {result['epoch']} AP {result['AP']:.3f}")
            try:  # where it trains, and the epoch it resumed after (a checkpoint of an earlier run or try)
                if ot.user_attrs.get("ray_node") != result.get("ray_node"):
                    ot.set_user_attr("ray_node", result.get("ray_node"))
                if result.get("resumed_from") and "resumed_from" not in ot.user_attrs:
                    ot.set_user_attr("resumed_from", result["resumed_from"])
            except Exception as e:  # noqa: BLE001 - any storage error stops the search, see above
                failure.append(e)

        def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001, ANN003
            number = trial.config["trial"]["number"]
            if failure:  # the storage failed: leave the trial RUNNING, the next run re-runs it
                return
            ot = pending.get(number)
            if ot is None:
                return
            last = trial.last_result or {}
            if "failed" not in last and last.get("epoch", 0) >= rung.epochs:
                parts.setdefault(number, {})[trial.config["trial"].get("seed_index", 0)] = last
                if len(parts[number]) < seeds:  # the pick's other seeds are still training
                    bar.update(1)
                    return
                last = combine_seeds(parts.pop(number))
            pending.pop(number, None)
            try:
                if "failed" in last:
                    ot.set_user_attr("reason", str(last["failed"]))
                    study.tell(ot, state=optuna.trial.TrialState.FAIL)
                elif last.get("epoch", 0) >= rung.epochs and rung.full:
                    ot.set_user_attr("AP50", last.get("AP50"))
                    for key in ("val_loss", "AP_seeds", "val_loss_seeds"):
                        if last.get(key) is not None:
                            ot.set_user_attr(key, last[key])
                    study.tell(ot, [float(last["AP"]), ot.user_attrs[study.metric_names[1]]])  # GFLOPs | latency_ms
                elif last.get("epoch", 0) >= rung.epochs:  # a complete low-fidelity schedule
                    ot.set_user_attr("AP_low", float(last["AP"]))
                    ot.set_user_attr("AP50_low", last.get("AP50"))
                    ot.set_user_attr("last_AP", last.get("AP"))
                    ot.set_user_attr("epochs_done", last.get("epoch", 0))
                    ot.set_user_attr("reason", f"low fidelity ({rung.epochs} of {rung.of} epochs)")
                    study.tell(ot, state=optuna.trial.TrialState.PRUNED)
                else:
                    ot.set_user_attr("last_AP", last.get("AP"))
                    ot.set_user_attr("epochs_done", last.get("epoch", 0))
                    ot.set_user_attr("reason", "stopped before its last epoch")
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
    """Why the trial failed: the worker's own one line in the Tune storage, else the last
    ``SomeError: message`` line of Tune's traceback, e.g. ``RuntimeError: CUDA out of memory``
    or the worker's death."""
    import re

    o, job = trial.config["options"], trial.config["trial"]
    with contextlib.suppress(Exception):  # no record (the worker died): Tune's error below
        fs, root = storage_fs(o["storage"])
        with fs.open_input_stream(error_record(root, o, job)) as f:
            return f.read().decode("utf-8", "replace").strip()[:500] or "the training raised an exception"
    try:
        text = trial.get_error() or ""
    except Exception:  # noqa: BLE001 - the reason is best effort, the FAIL state is not
        text = ""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip() and not ln.startswith("Failure #")]
    errors = [ln for ln in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b.*", ln)]
    reason = (errors or lines or ["the training raised an exception"])[-1]
    return reason[:500]


def _copy_cheap_attrs(study, ot, cheap, opts: SearchOptions) -> None:  # noqa: ANN001
    """What a proxy trial keeps of its cheap-stage trial: readable scalars (cost, metrics, score,
    design; :func:`nas.engine.record.trials.copied_attrs`), its constraints, and the YAML as a system attribute."""
    mark_constraint(study, ot, cheap.system_attrs["constraints"], [c.name for c in constraints_of(opts)])
    for k, v in copied_attrs(cheap).items():
        ot.set_user_attr(k, v)
    study._storage.set_trial_system_attr(ot._trial_id, CONFIG_ATTR, config_of(cheap))


def fidelity_of(trial: Any, full_epochs: int) -> int:
    """The epochs a proxy trial trained for (trials of runs before the fidelity attribute: full)."""
    return int((trial.user_attrs.get("fidelity") or {}).get("epochs", full_epochs))


def _trainings(study, full_epochs: int) -> dict[tuple[str, int], Any]:  # noqa: ANN001
    """The finished trainings of the proxy study by (config key, epochs): a FAIL the search told
    counts (it is not retried), one a kill interrupted does not (it is re-run)."""
    out: dict[tuple[str, int], Any] = {}
    for t in study.get_trials(deepcopy=False):
        if t.state.name in FINISHED or (t.state.name == "FAIL" and not t.user_attrs.get("interrupted")):
            out[(t.user_attrs.get("key"), fidelity_of(t, full_epochs))] = t
    return out


def measured_ap(trial: Any) -> float | None:
    """A finished training's AP at its own fidelity: COMPLETE's value, a low rung's ``AP_low``."""
    if trial.state.name == "COMPLETE":
        return float(trial.values[0])
    if trial.state.name == "PRUNED" and trial.user_attrs.get("AP_low") is not None:
        return float(trial.user_attrs["AP_low"])
    return None


def proxy_stage(  # noqa: ANN201
    storage,  # noqa: ANN001
    opts: SearchOptions,
    chosen: list,
    plan: list[Rung],
    progress: bool = True,
    reserve: list | tuple = (),
    log: Callable[[str], None] = print,
):
    """Spend ``opts.trials`` full trainings as ``plan`` says (the driver's one
    :func:`nas.engine.proxy.fidelity.plan_proxy`: the picks in full, or successive halving) over ``chosen``
    (the bottom rung's picks, in order) and ``reserve`` (the rest of the pool):
    one Ray Tune run per rung; after each, the cheap score is recalibrated on the rung's APs
    (:mod:`nas.engine.scores.calibration`), the ledger entry recorded (study attribute ``calibration``)
    and printed, and the next rung promoted. Every training is a proxy-study trial with user
    attributes ``fidelity`` and ``rung``; a full-fidelity one is COMPLETE with (AP, FLOPs), a
    low-fidelity one PRUNED with ``AP_low`` (so the front, ``best.yaml`` and ``nas export``,
    which read COMPLETE trials, only ever see full-fidelity APs)."""
    import optuna

    from search_spaces.space import SPACES

    space = SPACES[opts.space]
    study = optuna.create_study(
        study_name=opts.name, storage=storage, directions=["maximize", "minimize"], load_if_exists=True
    )
    study.set_metric_names(["AP", metric_name(opts.cost)])
    for k, v in study_attrs(opts, latency_info(opts)[1]).items():
        study.set_user_attr(k, v)
    fail_interrupted(study)
    full = opts.recipe.epochs
    if not plan:
        return study
    candidates = list(chosen[: plan[0].n])
    picked = {t.number for t in chosen}
    untrained = list(chosen[plan[0].n :]) + [t for t in reserve if t.number not in picked]
    ledger = list(study.user_attrs.get("calibration") or [])[: len(plan)]
    bar = progress_bar(sum(r.n for r in plan) * opts.seeds, "proxy stage", progress)
    ray_started: list[bool] = []
    try:
        for r, rung in enumerate(plan):
            done = _trainings(study, full)
            pending: dict[int, Any] = {}
            ray_trials = []
            for cheap in candidates:
                key = cheap.user_attrs["key"]
                if (key, rung.epochs) in done:
                    bar.update(opts.seeds)
                    continue
                ot = _ask_training(study, space, opts, cheap, rung, r)
                pending[ot.number] = ot
                for k in range(opts.seeds):
                    out_dir = (opts.run_dir / "trials" / trial_folder(key, rung.epochs, full, k)).resolve()
                    job = {"number": ot.number, "config": config_of(cheap), "out_dir": str(out_dir)}
                    ray_trials.append({**job, "seed_index": k} if k else job)
            if ray_trials:
                if not ray_started:
                    ray_started.append(_start_ray(opts))
                _run_tune(opts, ray_trials, study, pending, bar, rung=rung, index=r)
            done = _trainings(study, full)
            trained = [(c, done.get((c.user_attrs["key"], rung.epochs))) for c in candidates]
            trained = [(c, measured_ap(t)) for c, t in trained if t is not None and measured_ap(t) is not None]
            entry, calibrated = _calibrate(trained, untrained, rung, r)
            if r + 1 < len(plan):
                candidates, untrained = _promote(trained, untrained, calibrated, plan[r + 1].n, entry)
            ledger[r:] = [entry]
            study.set_user_attr("calibration", ledger)
            for line in ledger_lines(entry):
                log(line)
    finally:
        bar.close()
        if ray_started and ray_started[0]:
            import ray

            ray.shutdown()  # our local Ray: stop its processes now, not at interpreter exit
    return study


def _ask_training(study, space, opts: SearchOptions, cheap, rung: Rung, index: int):  # noqa: ANN001, ANN202
    """A new proxy trial for one training of ``cheap`` at the rung's fidelity."""
    from search_spaces import parse_yaml

    cfg = parse_yaml(config_of(cheap))
    study.enqueue_trial(space.params_of(cfg), skip_if_exists=False)
    ot = study.ask()
    assert space.suggest(ot) == cfg
    _copy_cheap_attrs(study, ot, cheap, opts)
    ot.set_user_attr("fidelity", rung.fidelity())
    ot.set_user_attr("rung", index)
    return ot


def _calibrate(trained: list, untrained: list, rung: Rung, index: int) -> tuple[dict[str, Any], dict[int, float]]:
    """The rung's ledger entry, and the calibrated score of every candidate still in play
    (cheap trial number -> score), trained and untrained."""
    from nas.engine.scores.calibration import calibrate, features_of, score_rows
    from nas.engine.scores.registry import fitted_weights

    prior = fitted_weights()["features"]

    def rows(trials: list) -> list[dict[str, float]]:
        return [features_of(flops_of(t), params_of(t), metrics_of(t)) for t in trials]

    cheap = [c for c, _ in trained]
    entry = {"rung": index, "fidelity": rung.fidelity()}
    entry.update(calibrate(rows(cheap), [ap for _, ap in trained], [c.values[0] for c in cheap], prior))
    everyone = cheap + list(untrained)
    scores = dict(zip((t.number for t in everyone), score_rows(rows(everyone), prior, entry["weights"]), strict=True))
    return entry, scores


def _promote(
    trained: list, untrained: list, calibrated: dict[int, float], n: int, entry: dict[str, Any]
) -> tuple[list, list]:
    """The next rung's ``n`` candidates, and the pool left untrained (re-ranked by the calibrated
    score). Promotion sorts the rung's candidates into Pareto fronts of (measured AP ↑, FLOPs ↓)
    — multi-objective successive halving, so the full rung spans the AP-vs-FLOPs front instead
    of its large end — then by AP within a front; equal APs go by the calibrated score, or, once
    the cheap score is shown to mislead (``entry["misleading"]``), by measured AP alone (ties: pick
    order). A rung with too few successful trainings is topped up from the re-ranked pool."""
    lean = entry["misleading"]
    order = {c.number: i for i, (c, _) in enumerate(trained)}
    if len({ap for _, ap in trained}) > 1:
        fronts = pareto_fronts([(ap, c.values[1]) for c, ap in trained])
        front_of = {trained[i][0].number: f for f, front in enumerate(fronts) for i in front}
    else:  # all equal: the APs say nothing, the calibrated score decides
        front_of = {c.number: 0 for c, _ in trained}

    def key(item: tuple[Any, float]) -> tuple[float, ...]:
        c, ap = item
        tie = -order[c.number] if lean else calibrated[c.number]
        return (front_of[c.number], -ap, -tie)

    promoted = [c for c, _ in sorted(trained, key=key)[:n]]
    pool = untrained if lean else sorted(untrained, key=lambda t: (-calibrated[t.number], untrained.index(t)))
    topped = pool[: n - len(promoted)]
    rest = pool[len(topped) :]
    entry["promoted"] = [c.number for c in promoted + topped]
    entry["topped_up"] = len(topped)
    entry["pool_next"] = [t.number for t in rest[:3]]
    return promoted + topped, rest


def ledger_lines(entry: dict[str, Any]) -> list[str]:
    """The rung's printed lines: one always, one more when the cheap score misleads."""

    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:+.2f}"

    fid = entry["fidelity"]
    line = (
        f"calibration rung {entry['rung']} ({fid['epochs']} of {fid['of']} epochs): n={entry['n']}, "
        f"Kendall tau cheap score vs AP {f(entry['kendall_tau'])}, calibrated (leave-one-out) "
        f"{f(entry['kendall_tau_calibrated'])}"
    )
    if "promoted" in entry:
        line += f"; promoted cheap trials {', '.join(map(str, entry['promoted'])) or 'none'}"
    lines = [line]
    if entry["misleading"]:
        lines.append(
            f"the cheap score misleads on this data (Kendall tau {entry['kendall_tau']:+.2f} with the measured AP "
            f"over {entry['n']} trainings): the search is leaning on measured AP"
        )
    return lines


def _stop_all(failure: list[BaseException]) -> Any:
    from ray.tune.stopper import Stopper

    class StopAll(Stopper):
        """Ends every trial once the storage has failed (see ``_tune_callback``)."""

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return bool(failure)

        def stop_all(self) -> bool:
            return bool(failure)

    return StopAll()


def _start_ray(opts: SearchOptions) -> bool:
    """Start a local Ray (or join ``--ray-address``) unless one is up; True when this call did."""
    import ray

    from nas.engine.proxy.ray_cluster import start_or_join

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if ray.is_initialized():
        return False
    return start_or_join(opts.ray_address, os.cpu_count())  # see nas.engine.proxy.ray_cluster


def _mark_storage(opts: SearchOptions) -> str:
    """The run's Tune storage root, created, with the marker every node checks it can see."""
    root = opts.tune_storage
    try:
        fs, path = storage_fs(root)
        fs.create_dir(path)
        with fs.open_output_stream(f"{path}/{STORAGE_MARKER}") as f:
            f.write(opts.name.encode())
    except Exception as e:  # noqa: BLE001 - pyarrow raises OSError, ValueError, ArrowInvalid...
        raise SearchError(f"--ray-storage: cannot write {root} ({' '.join(str(e).split())[:200]})") from None
    return root


def _run_tune(
    opts: SearchOptions,
    ray_trials: list[dict[str, Any]],
    study,  # noqa: ANN001
    pending,  # noqa: ANN001
    bar,  # noqa: ANN001
    rung: Rung | None = None,
    index: int = 0,
) -> None:
    """One rung: its trainings as one Tune run, ``--workers`` at a time (no scheduler inside a
    rung: each is a complete schedule, promotion happens between rungs)."""
    import ray
    from ray import tune

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # num_to_keep=1 snapshots the experiment at every epoch's checkpoint, by design: not a warning
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    rung = rung or Rung(opts.recipe.epochs, len(ray_trials), opts.recipe.epochs)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)) // opts.workers)
    experiment = f"tune-{int(time.time())}-rung{index}"
    options = {
        "data": str(Path(opts.data).resolve()) if opts.data != "shapes" else "shapes",
        "recipe": opts.recipe.replace(epochs=rung.epochs).to_dict(),
        "threads": cpus,
        "data_root": str(Path(opts.runs_dir).resolve()),
        "storage": _mark_storage(opts),
        "experiment": experiment,
        "fault": os.environ.get(FAULT_ENV),  # test-only, see _fault_injector
    }
    param_space = {"options": options, "trial": tune.grid_search(ray_trials)}
    failure: list[BaseException] = []
    tuner = tune.Tuner(
        tune.with_resources(_proxy_trainable, {"cpu": cpus}),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            max_concurrent_trials=opts.workers,
            reuse_actors=False,
            trial_dirname_creator=lambda t: tune_trial_name(t.config["trial"]["number"], t.config["trial"]["out_dir"]),
        ),
        run_config=tune.RunConfig(
            name=experiment,
            storage_path=options["storage"],
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),  # each epoch's holds every earlier one
            verbose=0,
            callbacks=[_tune_callback(study, pending, rung, bar, failure, opts.seeds)],
            stop=_stop_all(failure),
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    )
    tuner.fit()
    if failure and isinstance(failure[0], SearchError):
        raise failure[0]
    if failure:
        e = failure[0]
        text = f"{e.strerror}: {e.filename}" if isinstance(e, OSError) and e.strerror else f"{type(e).__name__}: {e}"
        raise SearchError(
            f"the search stopped: recording a trial in its storage failed ({text}); every trial recorded "
            "before is kept: fix the cause (disk space, permissions) and re-run the same command to resume"
        ) from e
