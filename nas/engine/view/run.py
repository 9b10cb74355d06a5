"""A run folder read back for its report: ``search.json`` (the options), ``summary.json`` (the
trained trials, the front, the ledger) and the Optuna storage (the cheap study's every scored
candidate, the proxy study's times). Each file is checked as it is read, so a missing or
damaged one is one :class:`~nas.engine.options.SearchError` naming it, never a traceback.

Why the storage is passed in where it can be: at the end of ``nas search`` the driver's journal
storage has already replayed every record, so reading the 20,000 candidates again costs
milliseconds; ``nas report`` on a folder replays the journal once (seconds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from nas.engine.options import SearchError, SearchOptions
from nas.engine.record.trials import latency_of

__all__ = ["Candidates", "Run", "load_run"]


@dataclass
class Candidates:
    """The cheap study as columns: one entry per scored candidate (20,000 in a default run)."""

    number: list[int] = field(default_factory=list)
    score: list[float] = field(default_factory=list)
    gflops: list[float] = field(default_factory=list)
    latency_ms: list[float | None] = field(default_factory=list)
    feasible: list[bool] = field(default_factory=list)
    #: cheap trial number -> its design summary (only for the trained and the picked ones)
    design: dict[int, str] = field(default_factory=dict)
    started: datetime | None = None
    finished: datetime | None = None


@dataclass
class Run:
    """What the report draws: the options, the summary (``None`` for a ``--trials 0`` run), the
    cheap candidates, and per trained trial where it came from and how long it took."""

    run_dir: Path
    identity: dict[str, Any]
    opts: SearchOptions
    summary: dict[str, Any] | None
    cheap: Candidates
    #: proxy trial number -> {"cheap_trial", "cheap_score", "started", "finished"}
    proxy: dict[int, dict[str, Any]]
    #: cheap trial numbers the selection picked (the proxy study's sources; a --trials 0 run: its view)
    picks: list[int]
    data_fingerprint: str | None

    @property
    def name(self) -> str:
        return self.opts.name

    @property
    def trials(self) -> list[dict[str, Any]]:
        return list(self.summary["trials"]) if self.summary else []


def _read_json(path: Path, what: str, fix: str) -> Any:
    if not path.is_file():
        raise SearchError(f"{path} is missing; {what}; {fix}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SearchError(f"{path} cannot be read ({type(e).__name__}); {what}; {fix}") from None


def read_options(run_dir: Path) -> tuple[dict[str, Any], SearchOptions]:
    """``search.json`` as the options of the run (its folder's parent is the runs folder)."""
    meta = run_dir / "search.json"
    ident = _read_json(
        meta, "it records the options of the run", "accepted: a runs/NAME folder made by nas search, with its files"
    )
    try:
        opts = SearchOptions.from_identity(ident, runs_dir=str(run_dir.parent))
        int(opts.budget)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise SearchError(f"{meta} is not the options of a nas search ({type(e).__name__}: {e})") from None
    return ident, opts  # a renamed folder keeps its studies' names: opts.name, not the folder's


def read_summary(run_dir: Path, opts: SearchOptions) -> dict[str, Any] | None:
    """``summary.json``, checked to be a search's summary; ``None`` for a ``--trials 0`` run."""
    path = run_dir / "summary.json"
    if opts.trials == 0 and not path.exists():
        return None
    fix = "it is written when the search ends: wait for a search still running, or re-run the same nas search command"
    summary = _read_json(path, "it records the trained trials", fix)
    if not (isinstance(summary, dict) and isinstance(summary.get("trials"), list) and "pareto" in summary):
        raise SearchError(f"{path} is not the summary of a nas search (no 'trials' and 'pareto'); {fix}")
    for r in summary["trials"]:
        if not (isinstance(r, dict) and {"trial", "state", "AP", "flops", "config"} <= r.keys()):
            raise SearchError(f"{path}: a trial row lacks trial/state/AP/flops/config; {fix}")
    return summary


def open_journal(run_dir: Path, storage: Any = None) -> Any:
    """The run's Optuna storage: ``storage`` if given (the driver's, or a ``--storage`` URL's),
    else the folder's ``optuna.journal``, checked."""
    from nas.engine.record.storage import open_storage

    if storage is not None:
        return storage if not isinstance(storage, str) else open_storage(storage, run_dir)
    path = run_dir / "optuna.journal"
    if not path.is_file():
        raise SearchError(
            f"{path} is missing; it holds the candidates the report draws; accepted: the run folder as nas search "
            "left it (a search run with --storage URL: nas report RUN --storage URL)"
        )
    try:
        return open_storage(None, run_dir)
    except SearchError:
        raise
    except Exception as e:  # noqa: BLE001 - Optuna's replay asserts on a record it does not know
        raise SearchError(
            f"{path} cannot be replayed ({type(e).__name__}: {str(e)[:80]}); it was damaged outside nas search: "
            "restore it from a backup"
        ) from None


def _study(storage: Any, name: str, where: str, required: bool) -> Any:
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        if required:
            raise SearchError(f"{where} has no study {name!r}; accepted: the storage of this run") from None
        return None


def read_candidates(cheap: Any, wanted: set[int]) -> Candidates:
    """The cheap study as columns, in one pass over its trials (no copies)."""
    out = Candidates()
    starts, ends = [], []
    for t in cheap.get_trials(deepcopy=False):
        if t.state.name != "COMPLETE" or not t.values:
            continue
        a = t.user_attrs
        out.number.append(t.number)
        out.score.append(float(t.values[0]))
        out.gflops.append(float(a["GFLOPs"]) if "GFLOPs" in a else float(a.get("flops", t.values[1])) / 1e9)
        out.latency_ms.append(latency_of(t))
        out.feasible.append(a.get("feasible") is not False)
        if t.number in wanted:
            out.design[t.number] = a.get("design") or a.get("pattern", "")
        if t.datetime_start:
            starts.append(t.datetime_start)
        if t.datetime_complete:
            ends.append(t.datetime_complete)
    out.started, out.finished = (min(starts), max(ends)) if starts and ends else (None, None)
    return out


def _proxy_info(study: Any) -> dict[int, dict[str, Any]]:
    info = {}
    for t in study.get_trials(deepcopy=False):
        info[t.number] = {
            "cheap_trial": t.user_attrs.get("cheap_trial"),
            "cheap_score": t.user_attrs.get("cheap_score"),
            "started": t.datetime_start,
            "finished": t.datetime_complete,
        }
    return info


def data_fingerprint(run_dir: Path) -> str | None:
    """The data fingerprint a training of this run recorded (``trials/*/metrics.json``), if any
    is on this disk (on a cluster the trainings' folders stay on their nodes)."""
    for path in sorted((run_dir / "trials").glob("*/metrics.json")):
        try:
            metrics = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(metrics, dict) and metrics.get("data_fingerprint"):  # evaluators.train's result
            return str(metrics["data_fingerprint"])
    return None


def load_run(run_dir: str | Path, storage: Any = None, given_picks: list[int] | None = None) -> Run:
    """Everything the report needs from a run folder (see the module docstring). ``given_picks``:
    the cheap trials a ``--trials 0`` search picked (it records none)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SearchError(f"{run_dir}: no such run folder; accepted: runs/NAME of a nas search")
    ident, opts = read_options(run_dir)
    summary = read_summary(run_dir, opts)
    where = str(run_dir / "optuna.journal") if storage is None else "the storage"
    storage = open_journal(run_dir, storage)
    proxy = _study(storage, opts.name, where, required=summary is not None and bool(summary["trials"]))
    proxy_info = _proxy_info(proxy) if proxy is not None else {}
    picks = sorted({p["cheap_trial"] for p in proxy_info.values() if p["cheap_trial"] is not None})
    cheap = _study(storage, f"{opts.name}-cheap", where, required=True)
    if not picks:  # --trials 0 trains no pick: the driver names them (a later nas report does not know them)
        picks = sorted(given_picks or ())
    candidates = read_candidates(cheap, set(picks))
    return Run(run_dir, ident, opts, summary, candidates, proxy_info, picks, data_fingerprint(run_dir))
