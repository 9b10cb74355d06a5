"""The proxy stage, worker side: what runs inside a Ray Tune trial process.

One proxy training per trial (``evaluators.train``, the code path of ``nas train``), the
per-trial folder claim against orphaned workers of a killed search, the failure-reason record
the driver reads, and the test-only fault injector.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.core.runio import atomic_write_text

FINISHED = ("COMPLETE", "PRUNED")
ERROR_FILE = "last_error.txt"
FAULT_ENV = "GRADPATH_FAULT"


def config_hash(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def trial_folder(key: str, epochs: int, of: int) -> str:
    """A training's folder under ``runs/<name>/trials/``: one per config and fidelity, so a
    low-rung checkpoint (its own short schedule) is never resumed as the full one.

    >>> trial_folder("k", 6, 6), trial_folder("k", 2, 6)
    ('13fbd79c3d39', '13fbd79c3d39-e2')
    """
    h = config_hash(key)
    return h if epochs == of else f"{h}-e{epochs}"


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


def _train_trial(o: dict[str, Any], job: dict[str, Any]) -> None:
    from ray import tune

    from evaluators.recipe import Recipe
    from evaluators.train import train_from_config
    from search_spaces import parse_yaml

    fire, loss_fn = _fault_injector(o.get("fault"), job["number"])
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
        Recipe(**o["recipe"]),
        data=o["data"],
        out_dir=job["out_dir"],
        data_root=o["data_root"],
        num_threads=o["threads"],
        progress=False,
        report=report,
        loss_fn=loss_fn,
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


def _fault_injector(spec: str | None, number: int) -> tuple[Callable[[int], None], Callable[..., Any] | None]:
    """TEST-ONLY fault injection, so tests can prove how the search handles a failing trial.

    ``GRADPATH_FAULT`` (read by the driver, passed to every trial) is a comma-separated list of
    ``TRIAL:KIND@EPOCH``; TRIAL is a proxy-study trial number or ``*``; the fault fires when
    EPOCH's checkpoint is written (0: before training). KIND: ``raise`` (an exception: Tune
    retries once, the retry resumes after the checkpoint), ``kill`` (SIGKILL of the Ray worker
    process), ``nan`` (every later loss is NaN: the trial ends failed). Returns ``fire(epoch)``
    and the loss function to train with (``None``: the trainer's own). Unset: does nothing.

    >>> fire, loss = _fault_injector("3:raise@2", number=1)
    >>> fire(2), loss
    (None, None)
    """
    fault = None
    for item in (spec or "").split(","):
        target, _, rest = item.strip().partition(":")
        kind, _, epoch = rest.partition("@")
        if target in ("*", str(number)) and kind in ("raise", "nan", "kill"):
            fault = (kind, int(epoch or 0))
    if fault is None:
        return (lambda epoch: None), None
    kind, at = fault
    poisoned = [False]
    loss_fn = None
    if kind == "nan":
        from evaluators.detection import detection_loss

        def loss_fn(*args: Any, **kwargs: Any) -> Any:
            loss, parts = detection_loss(*args, **kwargs)
            return (loss * float("nan"), parts) if poisoned[0] else (loss, parts)

    def fire(epoch: int) -> None:
        if epoch != at:
            return
        if kind == "raise":
            raise RuntimeError(f"injected fault ({FAULT_ENV}) at epoch {epoch}")
        if kind == "kill":
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        poisoned[0] = True

    return fire, loss_fn
