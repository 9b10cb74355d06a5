"""The search's Optuna storage: opening it (a journal file by default), repairing what a kill
left in the journal, and the trial bookkeeping both stages share."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.core.extras import PROVIDERS, require
from nas.engine.options import SearchError


def open_storage(url: str | None, run_dir: Path):  # noqa: ANN201 - optuna storage
    """The default is an Optuna *journal file* (``runs/<name>/optuna.journal``): one append-only
    file, written under a file lock, which stays readable by optuna-dashboard while the search
    appends to it and survives a SIGKILL (a torn last record is ignored on load). SQLite, the
    other single-file choice, is what Optuna's docs warn against under concurrent access (the
    dashboard reading while Ray callbacks write). ``--storage`` takes any Optuna RDB URL
    (``postgresql://…``) or a journal file path."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if url is None or "://" not in url:
        path = Path(url) if url else run_dir / "optuna.journal"
        if path.is_dir():
            raise SearchError(f"--storage: {path} is a folder; accepted: a journal file path or an Optuna RDB URL")
        path.parent.mkdir(parents=True, exist_ok=True)
        _share_distributions()
        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except (ValueError, KeyError, TypeError) as e:  # a damaged record: Optuna cannot replay the file
            raise SearchError(
                f"{path}: the Optuna journal cannot be read ({type(e).__name__}: {str(e)[:120]}); "
                "it was damaged outside nas search: restore it from a backup or start another --name"
            ) from None
    _require_driver(url)
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as e:  # noqa: BLE001 - any driver error is a user-facing storage problem
        raise SearchError(f"--storage: cannot open {url.split('@')[-1]!r} ({type(e).__name__}: {e})") from None


def _require_driver(url: str) -> None:
    """The database driver of an RDB URL, when it is one an extra of gradpath-nas installs
    (``postgresql://`` is psycopg in SQLAlchemy 2.x): missing, it is one line naming the extra."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        driver = make_url(url).get_dialect().driver
    except (ArgumentError, NoSuchModuleError, ValueError):
        return  # not a URL SQLAlchemy knows: RDBStorage says so below
    if driver in PROVIDERS:
        require(driver, f"--storage {url.split('://', 1)[0]}://")


def _share_distributions() -> None:
    """Make a journal's replay decode each distinct distribution once, not once per trial.

    Why: a cheap trial of the per-stage space has ~50 parameters, each stored with its
    distribution as a JSON string, and Optuna's replay parses every one; the same few strings
    repeat in every trial. Parsing each once (an LRU cache on Optuna's ``json_to_distribution``
    where its journal module calls it) made the replay of 20,000 candidates 3.4x faster, and
    every reader of the run replays it: resume, export, the dashboard. The shared objects are
    never mutated (a distribution's choices are a tuple). Where a later Optuna moved the
    function, the replay simply runs as before."""
    import functools

    import optuna.storages.journal._storage as journal

    decode = getattr(journal, "json_to_distribution", None)
    if decode is not None and not hasattr(decode, "cache_info"):
        journal.json_to_distribution = functools.lru_cache(maxsize=4096)(decode)


def prepare_journal(path: Path, log: Callable[[str], None]) -> None:
    """Make the run's own journal safe to append to; called only under the run's ``RunLock``.

    A process killed (or a disk that filled) mid-append can leave (a) a torn last record without
    its newline — the next append would glue a record to it and make the whole file unreadable —
    and (b) Optuna's lock symlink ``optuna.journal.lock``, which stalls the next writer for its
    30 s grace period. The lock is ours (no other writer can hold it while we hold the run), and
    the torn record was never acknowledged, so both are removed."""
    lock = path.with_name(path.name + ".lock")
    for _ in range(20):  # a live append (e.g. a note from the dashboard) holds it for milliseconds
        if not lock.is_symlink() and not lock.exists():
            break
        time.sleep(0.1)
    else:
        lock.unlink(missing_ok=True)
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        size = f.seek(0, os.SEEK_END)
        keep = 0
        block = 1 << 16
        pos = size
        while pos > 0:  # find the last newline, scanning back in blocks
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = start + i + 1
                break
            pos = start
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    log(f"warning: {path}: dropped a torn last record ({size - keep} bytes) left by an interrupted write")


def mark_constraint(study, trial, value: float | list[float], names: list[str] | None = None) -> None:  # noqa: ANN001
    """Record feasibility three ways: Optuna 5's ``set_constraint`` (one per active constraint,
    e.g. ``GFLOPs_over_budget`` and ``latency_ms_over_budget``), the ``constraints`` system
    attribute that optuna-dashboard 0.21 reads (one entry per constraint, in that order), and a
    plain ``feasible`` user attribute (all ≤ 0). A single value is the FLOPs constraint."""
    values = [float(value)] if isinstance(value, int | float) else [float(v) for v in value]
    names = names or ["GFLOPs_over_budget", "latency_ms_over_budget"][: len(values)]
    for name, v in zip(names, values, strict=True):
        trial.set_constraint(name, v)
    study._storage.set_trial_system_attr(trial._trial_id, "constraints", values)
    trial.set_user_attr("feasible", all(v <= 0 for v in values))


def fail_interrupted(study) -> int:  # noqa: ANN001
    """Trials left RUNNING by a killed search become FAIL(interrupted); they will be re-run."""
    import optuna

    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        study._storage.set_trial_user_attr(t._trial_id, "reason", "interrupted (the search process stopped)")
        study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        n += 1
    return n


def run_storage(run_dir: str | Path) -> tuple[Any, str]:
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


def open_run(run_dir: str | Path) -> tuple[Any, str]:
    """(proxy study, search name) of a run folder; one clear error where it has no trials yet."""
    import optuna

    storage, name = run_storage(run_dir)
    try:
        return optuna.load_study(study_name=name, storage=storage), name
    except KeyError:
        raise SearchError(f"{run_dir}: the proxy study {name!r} has no trials yet") from None
