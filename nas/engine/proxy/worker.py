"""The proxy stage, worker side: what runs inside a Ray Tune trial process, on any node.

One proxy training per trial (``evaluators.train``, the code path of ``nas train``), the
per-trial folder claim against orphaned workers of a killed search, the failure-reason record
the driver reads, and the test-only fault injector.

Why no shared disk is needed: a trial trains in a node-local working folder (on the driver's
node: ``runs/NAME/trials/<folder>``, the run folder), and after every epoch hands its checkpoint
to Ray Tune (``tune.report(..., checkpoint=...)``), which persists it to the search's Tune storage
(``--ray-storage``: a folder every node sees, or a URI Ray supports). A training that starts, on
whichever node, first adopts the newest checkpoint of the same training that any Tune run of the
search persisted, so a retry on another node or a killed-and-resumed search loses nothing. The
shapes set is generated on each node (it is deterministic); ``--data`` and the storage are
checked on the node before anything is trained.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

FINISHED = ("COMPLETE", "PRUNED")
ERROR_FILE = "last_error.txt"
FAULT_ENV = "GRADPATH_FAULT"
#: written by the driver into the run's Tune storage; a node that cannot read it cannot persist
STORAGE_MARKER = ".gradpath-storage"
#: what a trial reports instead of training when its node cannot run it (``--data`` or the storage
#: not visible there): the driver stops the search with this one line, the trial is re-run later
SETUP_ERROR = "setup_error"


def config_hash(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def trial_folder(key: str, epochs: int, of: int, seed_index: int = 0) -> str:
    """A training's folder under ``runs/<name>/trials/``: one per config, fidelity and seed, so a
    low-rung checkpoint (its own short schedule) is never resumed as the full one, nor one seed's
    as another's (the first seed keeps the name runs made before ``--seeds`` gave it).

    >>> trial_folder("k", 6, 6), trial_folder("k", 2, 6), trial_folder("k", 6, 6, seed_index=1)
    ('13fbd79c3d39', '13fbd79c3d39-e2', '13fbd79c3d39-s1')
    """
    h = config_hash(key)
    name = h if epochs == of else f"{h}-e{epochs}"
    return name if seed_index == 0 else f"{name}-s{seed_index}"


def tune_trial_name(number: int, out_dir: str) -> str:
    """A trial's folder in the Tune storage: its proxy-study number and its training's folder
    name, so a later Tune run of the search finds the checkpoints of the same training.

    >>> tune_trial_name(7, "/runs/s/trials/13fbd79c3d39-e2")
    'trial_7_13fbd79c3d39-e2'
    """
    return f"trial_{number}_{Path(out_dir).name}"


def error_record(root: str, o: dict[str, Any], job: dict[str, Any]) -> str:
    """Where a trial's one-line failure reason lies in the Tune storage ``root``: the worker
    writes it, the driver reads it (Tune's own error file may not have reached the driver).

    >>> error_record("/st", {"experiment": "rung0"}, {"number": 7, "out_dir": "/runs/s/trials/ab12"})
    '/st/rung0/trial_7_ab12/last_error.txt'
    """
    return f"{root}/{o['experiment']}/{tune_trial_name(job['number'], job['out_dir'])}/{ERROR_FILE}"


def storage_fs(root: str) -> tuple[Any, str]:
    """``(pyarrow filesystem, path)`` of a Tune storage root, resolved as Ray resolves
    ``storage_path``: an absolute folder path or a URI (``s3://bucket/x``, ``gs://…``)."""
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(root)


def _proxy_trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: one proxy training, reporting AP (and persisting its
    checkpoint) after every epoch."""
    from ray import tune

    o, job = config["options"], config["trial"]
    problem = _node_problem(o)
    if problem:
        tune.report({"epoch": -1, "AP": 0.0, SETUP_ERROR: problem})
        return
    fs, root = storage_fs(o["storage"])
    last_error = error_record(root, o, job)
    with contextlib.suppress(OSError):
        fs.delete_file(last_error)
    out_dir = _node_local(Path(job["out_dir"]))
    claim = _claim_trial_dir(out_dir)  # held until this worker process exits
    try:
        _adopt_stored_checkpoint(fs, root, Path(job["out_dir"]).name, out_dir)
        _train_trial(o, job, out_dir)
    except Exception as e:
        # our own record of why, in the storage before Tune hears of the failure (Tune's error
        # file may not have reached the driver when it calls on_trial_error)
        with contextlib.suppress(OSError), fs.open_output_stream(last_error) as f:
            f.write(" ".join(f"{type(e).__name__}: {e}".split())[:500].encode())
        raise
    finally:
        os.close(claim)


def _train_trial(o: dict[str, Any], job: dict[str, Any], out_dir: Path) -> None:
    import ray
    from ray import tune

    from evaluators.recipe import Recipe
    from evaluators.train import train_from_config
    from search_spaces import parse_yaml

    fire, loss_fn = _fault_injector(o.get("fault"), job["number"])
    fire(0)
    reported = [0]
    first: list[int] = []  # the epoch this training started after: > 0 when it resumed
    node = ray.get_runtime_context().get_node_id()

    def tell_tune(epoch: int, metrics: dict[str, Any]) -> None:
        reported[0] = epoch
        first[:] = first or [epoch - 1]
        result = {"epoch": epoch, "AP": float(metrics.get("AP") or 0.0), "AP50": float(metrics.get("AP50") or 0.0)}
        val_loss = metrics.get("val_loss") or ((metrics.get("history") or [{}])[-1]).get("val_loss")
        if val_loss is not None:  # the last epoch's (recipe v2): the winner's second opinion
            result["val_loss"] = float(val_loss)
        result.update(resumed_from=first[0], ray_node=f"{socket.gethostname()} (node {node[:8]})")
        tune.report(result, checkpoint=_epoch_checkpoint(out_dir, epoch))

    def report(epoch: int, metrics: dict[str, Any]) -> None:
        fire(epoch)  # after the epoch's checkpoint is written, before Tune hears of the epoch
        tell_tune(epoch, metrics)

    recipe = Recipe(**o["recipe"])  # the pick's k-th training: the search's seed + k
    result = train_from_config(
        parse_yaml(job["config"]),
        recipe.replace(seed=recipe.seed + job.get("seed_index", 0)),
        data=o["data"],
        out_dir=out_dir,
        data_root=_node_local(Path(o["data_root"])),
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
        first[:] = [result["epochs_done"]]
        tell_tune(result["epochs_done"], result)


def _node_problem(o: dict[str, Any]) -> str | None:
    """Why this node cannot run the search's trainings (one line naming the fix), or None."""
    import ray

    where = f"Ray node {ray.get_runtime_context().get_node_id()[:8]} ({socket.gethostname()})"
    try:
        fs, root = storage_fs(o["storage"])
        visible = fs.get_file_info(f"{root}/{STORAGE_MARKER}").type.name == "File"
    except Exception:  # noqa: BLE001 - an unreachable storage is the same answer
        visible = False
    if not visible:
        return (
            f"--ray-storage {o['storage']} is not visible on {where}: on a cluster, give --ray-storage a folder "
            "mounted at the same path on every node, or a URI Ray supports (s3://…, gs://…)"
        )
    if o["data"] != "shapes" and not Path(o["data"]).exists():
        return (
            f"--data {o['data']} does not exist on {where}: on a cluster, --data must be a path every node sees "
            "(the data set mounted at the same path on every node)"
        )
    return None


def _node_local(path: Path) -> Path:
    """A folder of the driver's run (a trial's working folder, the shapes cache) on this node: the
    same path where it can be created (the driver's node; a node with the repository at the
    same path), else the same relative path under this node's temp folder."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        return path
    except OSError:
        local = Path(tempfile.gettempdir()) / "gradpath-nas" / path.relative_to(path.anchor)
        local.mkdir(parents=True, exist_ok=True)
        return local


#: what a persisted checkpoint holds: the trainer's state and its metrics so far
_CHECKPOINT_FILES = ("checkpoint.pt", "metrics.json")


def _epoch_checkpoint(out_dir: Path, epoch: int) -> Any:
    """The epoch's checkpoint for Tune to persist: links to the trainer's files (replaced, not
    rewritten, each epoch) in a folder of their own, with the epoch in Tune's metadata."""
    from ray import tune

    stage = out_dir / ".tune-checkpoint"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    for name in _CHECKPOINT_FILES:
        if (out_dir / name).exists():
            try:
                os.link(out_dir / name, stage / name)
            except OSError:  # a filesystem without hard links
                shutil.copy2(out_dir / name, stage / name)
    checkpoint = tune.Checkpoint.from_directory(str(stage))
    checkpoint.set_metadata({"epoch": epoch})
    return checkpoint


def _local_epochs(out_dir: Path) -> int:
    """Epochs the working folder's own checkpoint holds (0: none); its ``metrics.json`` is written
    right after the checkpoint, so it never claims more."""
    try:
        return len(json.loads((out_dir / "metrics.json").read_text(encoding="utf-8"))["history"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def stored_checkpoints(fs: Any, root: str, folder: str) -> list[tuple[int, str]]:
    """``(epoch, path)`` of every checkpoint of the training ``folder`` that a Tune run of this
    search persisted under ``root``, newest epoch first."""
    from pyarrow.fs import FileSelector, FileType
    from ray import tune

    def dirs(path: str) -> list[Any]:
        return [i for i in fs.get_file_info(FileSelector(path, allow_not_found=True)) if i.type == FileType.Directory]

    found = []
    for run in dirs(root):
        for trial in (t for t in dirs(run.path) if t.base_name.endswith(f"_{folder}")):
            for ck in (c for c in dirs(trial.path) if c.base_name.startswith("checkpoint_")):
                with contextlib.suppress(Exception):  # one being written or deleted right now
                    found.append((int(tune.Checkpoint(ck.path, filesystem=fs).get_metadata()["epoch"]), ck.path))
    return sorted(found, reverse=True)


def _adopt_stored_checkpoint(fs: Any, root: str, folder: str, out_dir: Path) -> int:
    """Copy the newest persisted checkpoint of this training into its working folder when it
    holds more epochs than the folder's own (a retry or a re-run on another node); the epochs."""
    from ray import tune

    have = _local_epochs(out_dir)
    incoming = out_dir / ".restore"
    try:
        for epoch, path in stored_checkpoints(fs, root, folder):
            if epoch <= have:
                break
            shutil.rmtree(incoming, ignore_errors=True)
            try:
                tune.Checkpoint(path, filesystem=fs).to_directory(str(incoming))
            except Exception:  # noqa: BLE001 - deleted meanwhile (a newer one replaced it): try the next
                continue
            if all((incoming / name).is_file() for name in _CHECKPOINT_FILES):
                for name in _CHECKPOINT_FILES:  # the checkpoint first: metrics.json never claims more
                    os.replace(incoming / name, out_dir / name)
                return epoch
        return have
    finally:
        shutil.rmtree(incoming, ignore_errors=True)


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
