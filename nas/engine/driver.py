"""``nas search``: the two-stage search, end to end (docs/architecture.md).

1. Cheap stage (:mod:`nas.engine.cheap.stage`) — Optuna study ``<name>-cheap``: every candidate is
   compiled, costed and scored by its gradient-path metrics in milliseconds; over-budget ones
   are recorded infeasible.
2. Selection (:mod:`nas.engine.cheap.select`) — feasible, deduplicated, the best cheap score in each
   of N FLOPs bands up to the budget, diverse in block pattern: N is the bottom rung of the
   training plan (:func:`nas.engine.proxy.fidelity.plan_proxy`: ``--trials K`` = the compute of K
   full trainings; by default K picks trained in full, with ``--proxy-stage halving`` spent by
   successive halving over more), with a reserve of 3N behind it.
3. Proxy stage (:mod:`nas.engine.proxy.stage`) — one Ray Tune run per rung trains its candidates on the
   COCO proxy (``evaluators.train``, the one training code path) on a complete short schedule;
   after each rung the cheap score is recalibrated on the measured APs (the ledger, summary
   ``calibration``) and, when halving, the best go on. The driver owns Optuna study ``<name>`` (AP ↑, FLOPs ↓)
   through ask/tell: full fidelity → COMPLETE, low fidelity → PRUNED (``AP_low``, ``fidelity``),
   failed → FAIL with the reason. The search goes on past failures.

Resume: the same command again keeps every finished trial, marks the ones a kill interrupted
as FAIL (``interrupted``) and re-runs them (their per-epoch checkpoints make the re-run
continue, not restart), and recomputes nothing finished.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.core.runio import RunLock, atomic_write_json
from nas.core.table import format_table
from nas.engine.cheap.select import feasible_pool, inside_support, pattern_of, select_candidates
from nas.engine.cheap.stage import cheap_stage, mark_dashboard_view
from nas.engine.options import SearchError, SearchOptions
from nas.engine.proxy.fidelity import Rung, plan_proxy
from nas.engine.proxy.stage import proxy_stage
from nas.engine.record.report import format_front, format_winner, write_outputs
from nas.engine.record.storage import open_storage, prepare_journal
from nas.engine.record.trials import config_of, flops_of, format_pattern, latency_of, params_of
from nas.engine.validate import validate_options

__all__ = ["SearchError", "SearchOptions", "search"]


def check_data(opts: SearchOptions) -> None:
    """Load a ``--data`` set once in the driver, so a broken annotation file or a set with no
    decodable image stops the search at once (exit 2) instead of failing every trial in Ray.
    Corrupt images and dangling annotations are skipped (one warning), as training does."""
    if opts.data == "shapes":
        return
    from evaluators.errors import DataError
    from evaluators.train import recipe_data

    try:
        data = recipe_data(opts.data, opts.recipe, root=opts.runs_dir)
    except DataError as e:
        raise SearchError(f"--data: {e}") from None
    if not len(data.train.images) or not len(data.val.images):
        raise SearchError(
            f"--data: {opts.data}: no decodable image in the train or the val split; accepted: a COCO-format set"
        )


# -- --trials 0: the cheap stage and the selection only ----------------------------------------
#: how many picks ``--trials 0`` selects and prints: the default ``--trials``
PICKS_WITHOUT_TRAINING = SearchOptions.__dataclass_fields__["trials"].default


def picks_summary(chosen: list[Any], cheap: Any, wall_s: float) -> dict[str, Any]:
    """What ``--trials 0`` returns (and ``--json`` prints): the picks, as the cheap study records them."""
    import yaml

    return {
        "picks": [
            {
                "trial": t.number,
                "score": t.values[0],
                "flops": flops_of(t),
                **({"latency_ms": latency_of(t)} if latency_of(t) is not None else {}),
                "params": params_of(t),
                "pattern": pattern_of(t),
                "knobs": t.params,
                "config": yaml.safe_load(config_of(t)),
            }
            for t in chosen
        ],
        "cheap_study": cheap.study_name,
        "proposed_duplicates": cheap.user_attrs.get("proposed_duplicates"),
        "wall_s": wall_s,
    }


def format_picks(picks: list[dict[str, Any]]) -> str:
    """The picks as a small table: trial, cheap score, GFLOPs, params, block pattern."""
    rows = [
        [
            p["trial"],
            f"{p['score']:.3f}",
            f"{p['flops'] / 1e9:.1f}",
            f"{p['params'] / 1e6:.1f}M",
            format_pattern(p["pattern"]),
        ]
        for p in picks
    ]
    return format_table(["trial", "score", "GFLOPs", "params", "blocks (backbone stages | neck nodes)"], rows, ">>>><")


#: the pool the proxy stage may draw on is this many times its bottom rung: the untrained rest is
#: re-ranked by the calibrated score after each rung and tops up a rung whose trainings failed
RESERVE_FACTOR = 3


def format_plan(plan: list[Rung], seeds: int = 1) -> str:
    """What the proxy stage will train: ``6 × 2 epochs, then 2 × 6 epochs``; with several seeds per
    pick, ``4 picks × 2 seeds × 5 epochs``.

    >>> format_plan([Rung(5, 4, 5)], seeds=2), format_plan([Rung(2, 6, 6), Rung(6, 2, 6)])
    ('4 picks × 2 seeds × 5 epochs', '6 × 2 epochs, then 2 × 6 epochs')
    """

    def rung(r: Rung) -> str:
        epochs = f"{r.epochs} epoch{'s' if r.epochs > 1 else ''}"
        return f"{r.n} × {epochs}" if seeds == 1 else f"{r.n} picks × {seeds} seeds × {epochs}"

    return ", then ".join(rung(r) for r in plan)


# -- the whole search --------------------------------------------------------------------------
def _quiet_libraries() -> None:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def search(opts: SearchOptions, progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) a search and return its summary (also ``runs/<name>/summary.json``).
    Example (about 13 minutes on 2 cores; ``nas.search`` is this function)::

        import nas
        nas.search(nas.SearchOptions(budget=nas.parse_flops("150GFLOPs"), name="demo"))
    """
    validate_options(opts)
    check_data(opts)
    _quiet_libraries()
    run_dir = opts.run_dir
    meta = run_dir / "search.json"
    created = [p for p in (run_dir, *run_dir.parents) if not p.exists()]  # what the lock will make
    lock = RunLock(run_dir)
    if not lock.acquire():
        raise SearchError(
            f"{run_dir} is in use by another nas search (lock {lock.path}); wait for it or use another --name"
        )
    started = False
    try:
        _check_identity(meta, opts)  # under the lock: no other search can write search.json meanwhile
        if opts.storage is None:
            prepare_journal(run_dir / "optuna.journal", log)
        storage = open_storage(opts.storage, run_dir)
        atomic_write_json(meta, opts.identity())
        started = True
        t0 = time.perf_counter()
        cheap = cheap_stage(storage, opts, progress)
        trials = cheap.get_trials(deepcopy=False)
        feasible = sum(1 for t in trials if t.state.name == "COMPLETE" and t.user_attrs.get("feasible"))
        lat = f" and {opts.latency_budget_ms:g} ms" if opts.latency_budget_ms is not None else ""
        log(
            f"cheap stage: {len(trials)} candidates, {feasible} within {opts.budget / 1e9:g} GFLOPs{lat} ({time.perf_counter() - t0:.1f} s)"
        )
        pool = feasible_pool(trials, opts.budget)
        only = trust_region(pool, opts, log)
        plan = plan_proxy(opts.proxy_stage, opts.trials, opts.recipe.epochs, pool=len(only or pool))
        chosen = select_candidates(trials, plan[0].n if plan else PICKS_WITHOUT_TRAINING, opts.budget, only, opts.picks)
        if not chosen:
            raise SearchError(f"no candidate fits the budget of {opts.budget / 1e9:g} GFLOPs; raise --budget")
        reserve = select_candidates(trials, RESERVE_FACTOR * len(chosen), opts.budget, only, opts.picks)
        mark_dashboard_view(cheap, opts, [t.number for t in (*chosen, *reserve)])
        if opts.trials == 0:
            summary = picks_summary(chosen, cheap, time.perf_counter() - t0)
            log(f"picks (--trials 0: nothing trained; the candidates are in study {opts.name}-cheap):")
            log(format_picks(summary["picks"]))
            summary["report"] = write_run_report(run_dir, storage, log, picks=[t.number for t in chosen])
            return summary
        log(f"proxy stage: {format_plan(plan, opts.seeds)} (the compute of {opts.trials * opts.seeds} full trainings)")
        study = proxy_stage(storage, opts, chosen, plan, progress, reserve=reserve, log=log)
        summary = write_outputs(study, opts)
        summary["calibration"] = study.user_attrs.get("calibration") or []
        summary["plan"] = [{"epochs": r.epochs, "of": r.of, "n": r.n} for r in plan]
        atomic_write_json(run_dir / "summary.json", summary)
        summary["wall_s"] = time.perf_counter() - t0
        log("Pareto front (AP vs FLOPs, * = best.yaml):")
        log(format_front(summary))
        if format_winner(summary):
            log(format_winner(summary))
        log(f"outputs in {run_dir}/: best.yaml summary.json pareto.png report.html; dashboard: nas dashboard {run_dir}")
        summary["report"] = write_run_report(run_dir, storage, log)
        return summary
    finally:
        lock.release()
        if created and not started:
            _remove_unstarted(created)


def trust_region(pool: list[Any], opts: SearchOptions, log: Callable[[str], None]) -> set[int] | None:
    """The feasible cheap trials (``pool``) the picks may come from under ``--trust-region`` (None: every one),
    said in one line. With ``table``: those inside the table's support; when none is, every
    feasible one, and the line says so."""
    feasible = len(pool)
    if opts.trust_region == "none" or not feasible:
        return None
    inside = inside_support(pool)
    if not inside:
        log(f"trust region: none of {feasible} feasible candidates lies inside the table's support; picking among all")
        return None
    log(f"trust region: {len(inside)} of {feasible} feasible candidates inside the table's support")
    return inside


def write_run_report(
    run_dir: Path, storage: Any, log: Callable[[str], None], picks: list[int] | None = None
) -> str | None:
    """Write ``report.html`` (:mod:`nas.engine.view`) from the run's files and the storage the
    search already replayed, and print its path last. The search's results are written by then:
    a report that cannot be drawn is a warning naming the command that retries, not a failed
    search."""
    from nas.engine.view import write_report

    try:
        out = write_report(run_dir, storage=storage, picks=picks)
    except Exception as e:  # noqa: BLE001 - the run is complete; the page can be drawn again
        log(f"warning: report.html not written ({type(e).__name__}: {e}); retry with: nas report {run_dir}")
        return None
    log(f"report: {out['path']} ({out['bytes'] / 1e6:.1f} MB, drawn in {out['seconds']:.1f} s; open it in a browser)")
    return out["path"]


def _check_identity(meta: Path, opts: SearchOptions) -> None:
    """A resumed run must have the options it was started with. An unreadable ``search.json``
    (written atomically, so only damaged from outside) is not trusted: the search stops."""
    if not meta.exists():
        return
    try:
        before = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SearchError(
            f"{meta} cannot be read ({type(e).__name__}); it records the options of this run: "
            "restore it, delete it to resume with the current options, or use another --name"
        ) from None
    if not isinstance(before, dict):
        raise SearchError(f"{meta} is not a JSON object; restore it, delete it, or use another --name")
    ident = opts.identity()
    if before.get("channels") != ident["channels"]:
        raise SearchError(
            f"{meta.parent} was made under another channel rule ({before.get('channels') or 'exact shares'};"
            f" now {ident['channels']}): its designs compile to other models now; accepted: a new --name"
        )
    diff = SearchOptions.identity_differences(before, ident)  # absent on one side = its default or LEGACY value
    if diff:
        raise SearchError(
            f"{meta.parent} was started with {', '.join(diff)}; re-run with the same options or use another --name"
        )


def _remove_unstarted(created: list[Path]) -> None:
    """Undo the folders a search made (run folder first, then the runs folders above it) before
    failing at its start (bad storage): bad input leaves no half-made run behind. Only the lock
    and an empty journal are removed, then the folders if empty."""
    run_dir = created[0]
    for name in (".lock", "optuna.journal"):
        f = run_dir / name
        if f.is_file() and (name == ".lock" or f.stat().st_size == 0):
            f.unlink(missing_ok=True)
    for folder in created:
        with contextlib.suppress(OSError):  # not empty: something else is there, keep it
            folder.rmdir()
