"""The proxy stage on Ray Tune: the chosen candidates are trained on the COCO proxy
(``evaluators.train``) under ASHA while the driver owns the Optuna study through ask/tell.

Also here, because it runs inside the Ray workers: the per-trial folder claim against orphaned
workers of a killed search, the failure reason record, and the test-only fault hook."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.errors import SearchError
from nas.report import progress_bar
from nas.runio import atomic_write_text
from nas.storage import fail_interrupted, mark_constraint

if TYPE_CHECKING:
    from nas.search import SearchOptions

FINISHED = ("COMPLETE", "PRUNED")


def config_hash(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def _proxy_trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: one proxy training, reporting AP after every epoch."""
    o, job = config["options"], config["trial"]
    claim = _claim_trial_dir(Path(job["out_dir"]))  # held until this worker process exits
    last_error = Path(job["out_dir"]) / ERROR_FILE
    last_error.unlink(missing_ok=True)
    try:
        _train_trial(o, job)
    except Exception as e:
        # our own record of why, written before Tune hears of the failure (Tune's error file may
        # not have reached the driver when it calls on_trial_error)
        atomic_write_text(last_error, " ".join(f"{type(e).__name__}: {e}".split())[:500])
        raise
    finally:
        os.close(claim)


ERROR_FILE = "last_error.txt"


def _train_trial(o: dict[str, Any], job: dict[str, Any]) -> None:
    from ray import tune

    from evaluators.train import train_from_config
    from search_spaces import parse_yaml

    fire = _fault_injector(o.get("fault"), job["number"])
    fire(0)
    reported = [0]

    def tell_tune(epoch: int, metrics: dict[str, Any]) -> None:
        reported[0] = epoch
        tune.report({"epoch": epoch, "AP": float(metrics.get("AP") or 0.0), "AP50": float(metrics.get("AP50") or 0.0)})

    def report(epoch: int, metrics: dict[str, Any]) -> None:
        fire(epoch)  # after the epoch's checkpoint is written, before Tune hears of the epoch
        tell_tune(epoch, metrics)

    result = train_from_config(
        parse_yaml(job["config"]),
        data=o["data"],
        epochs=o["epochs"],
        img_size=o["img_size"],
        width_mult=o["width_mult"],
        images=o["images"],
        seed=o["seed"],
        out_dir=job["out_dir"],
        data_root=o["data_root"],
        num_threads=o["threads"],
        progress=False,
        report=report,
    )
    if result.get("status") == "failed":
        tune.report({"epoch": -1, "AP": 0.0, "failed": result.get("reason", "failed")})
    elif result.get("status") == "ok" and reported[0] < result.get("epochs_done", 0):
        # resumed from a checkpoint that already held the last epoch (the search was killed after
        # the training ended but before Optuna was told): report the result it holds, else
        # Tune ends the trial without a result and it would be recorded as stopped early
        tell_tune(result["epochs_done"], result)


def _claim_trial_dir(out_dir: Path, wait_s: float = 600) -> int:
    """One trainer per trial folder, so two never write one checkpoint at once.

    A SIGKILLed search leaves its Ray trial workers running for a while (measured: up to a minute
    and more, see docs/reliability.md); the re-run's worker for the same trial would train beside
    them into the same folder. The folder's ``.worker.lock`` (an ``flock``, freed when its holder
    dies) is held for the whole training; a holder that is a Ray worker can only be such a stale
    one (this search holds the run's lock), so it is killed; anything else is waited for."""
    import fcntl
    import signal

    out_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(out_dir / ".worker.lock", os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            holder = int(text) if text.isdigit() else 0
            if holder and _is_ray_worker(holder):
                with contextlib.suppress(OSError):
                    os.kill(holder, signal.SIGKILL)
            if time.monotonic() > deadline:
                os.close(fd)
                raise RuntimeError(f"{out_dir} is in use by process {holder} (not a Ray worker of this run)") from None
            time.sleep(0.2)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _is_ray_worker(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::")
    except OSError:  # gone, or no /proc (then: wait, never kill)
        return False


FAULT_ENV = "GRADPATH_FAULT"


def _fault_injector(spec: str | None, number: int) -> Callable[[int], None]:
    """TEST-ONLY fault injection, so tests can prove how the search handles a failing trial.

    ``GRADPATH_FAULT`` (read by the driver, passed to every trial) is a comma-separated list of
    ``TRIAL:KIND@EPOCH``; TRIAL is a proxy-study trial number or ``*``; the fault fires when
    EPOCH's checkpoint is written (0: before training). KIND: ``raise`` (an exception: Tune
    retries once, the retry resumes after the checkpoint), ``kill`` (SIGKILL of the Ray worker
    process), ``nan`` (every later loss is NaN: the trial ends failed). Unset: does nothing."""
    fault = None
    for item in (spec or "").split(","):
        target, _, rest = item.strip().partition(":")
        kind, _, epoch = rest.partition("@")
        if target in ("*", str(number)) and kind in ("raise", "nan", "kill"):
            fault = (kind, int(epoch or 0))
    if fault is None:
        return lambda epoch: None
    kind, at = fault
    poisoned = [False]
    if kind == "nan":
        import evaluators.train as train_module

        real_loss = train_module.detection_loss

        def nan_loss(*args: Any, **kwargs: Any) -> Any:
            loss, parts = real_loss(*args, **kwargs)
            return (loss * float("nan"), parts) if poisoned[0] else (loss, parts)

        train_module.detection_loss = nan_loss  # this worker process only (reuse_actors=False)

    def fire(epoch: int) -> None:
        if epoch != at:
            return
        if kind == "raise":
            raise RuntimeError(f"injected fault ({FAULT_ENV}) at epoch {epoch}")
        if kind == "kill":
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        poisoned[0] = True

    return fire


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
                    study.tell(ot, [float(last["AP"]), ot.user_attrs["flops"]])
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
    study.set_metric_names(["AP", "flops"])
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
        cfg = parse_yaml(cheap.user_attrs["config"])
        study.enqueue_trial(space.params_of(cfg), skip_if_exists=False)
        ot = study.ask()
        assert space.suggest(ot) == cfg
        ot.set_user_attr("config", cheap.user_attrs["config"])
        ot.set_user_attr("key", cheap.user_attrs["key"])
        ot.set_user_attr("flops", cheap.values[1])
        ot.set_user_attr("params", cheap.user_attrs["params"])
        ot.set_user_attr("metrics", cheap.user_attrs["metrics"])
        ot.set_user_attr("cheap_trial", cheap.number)
        ot.set_user_attr("cheap_score", cheap.values[0])
        mark_constraint(study, ot, cheap.values[1] - opts.budget)
        pending[ot.number] = ot
        out_dir = (opts.run_dir / "trials" / config_hash(cheap.user_attrs["key"])).resolve()
        ray_trials.append({"number": ot.number, "config": cheap.user_attrs["config"], "out_dir": str(out_dir)})
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

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    started = not ray.is_initialized()
    if started:
        address = opts.ray_address or os.environ.get("RAY_ADDRESS")
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if address:
            ray.init(address=address, **kwargs)
        else:
            # a local cluster stays on loopback: nothing of it is reachable from the network
            ray.init(num_cpus=os.cpu_count(), _node_ip_address="127.0.0.1", **kwargs)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)) // opts.workers)
    options = {
        "data": str(Path(opts.data).resolve()) if opts.data != "shapes" else "shapes",
        "epochs": opts.epochs,
        "img_size": opts.img_size,
        "width_mult": opts.width_mult,
        "images": opts.images,
        "seed": opts.seed,
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
        max_t=opts.epochs + 1,
        grace_period=max(1, math.ceil(2 * opts.epochs / 3)),
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
            callbacks=[_tune_callback(study, pending, opts.epochs, bar, failure)],
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
