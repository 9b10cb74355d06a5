"""``nas search``: the two-stage search (DESIGN §6).

1. Cheap stage — Optuna study ``<name>-cheap``: every candidate is compiled, costed and scored
   by its gradient-path metrics in milliseconds; over-budget ones are recorded infeasible.
2. Selection — feasible, deduplicated, the best cheap score in each of K FLOPs bands up to
   the budget; these K go on.
3. Proxy stage — Ray Tune trains each on the COCO proxy (``evaluators.train``, the one
   training code path) under ASHA; the driver owns Optuna study ``<name>`` (AP ↑, FLOPs ↓)
   through ask/tell: completed → COMPLETE, stopped by ASHA → PRUNED (last AP kept as an
   attribute), failed → FAIL with the reason. The search goes on past failures.

Resume: the same command again keeps every finished trial, marks the ones a kill interrupted
as FAIL (``interrupted``) and re-runs them (their per-epoch checkpoints make the re-run
continue, not restart), and recomputes nothing finished.

This module holds the options, the cheap stage, the selection and the driver; the proxy stage
is ``nas.tune_runner``, the Optuna storage ``nas.storage``, the outputs ``nas.report``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evaluators.recipe import DEFAULT as RECIPE
from nas.cost import cost
from nas.errors import SearchError
from nas.report import format_front, pareto_fronts, progress_bar, write_outputs
from nas.runio import RunLock, atomic_write_json
from nas.storage import fail_interrupted, mark_constraint, open_storage, prepare_journal
from nas.tune_runner import proxy_stage

__all__ = [
    "SearchError",
    "SearchOptions",
    "cheap_score",
    "cheap_stage",
    "score_candidate",
    "search",
    "select_candidates",
]

CHEAP_SCORES = ("gradpath", "fitted", "flops", "params", "synflow", "naswot")
# the predictor the rank study supports (benchmarks/rank_study.py; README "Does it work?")
DEFAULT_CHEAP_SCORE = "fitted"


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    """Everything that defines a search; stored in ``runs/<name>/search.json`` so that a re-run
    with other options is refused instead of silently mixing two searches in one study."""

    budget: int
    name: str = "default"
    space: str = "yolor"
    candidates: int = 2000
    trials: int = 4
    data: str = "shapes"
    epochs: int = RECIPE.epochs
    img_size: int = RECIPE.img_size
    width_mult: float = RECIPE.width_mult
    images: int = RECIPE.images
    workers: int = 1
    seed: int = 0
    cheap_score: str = DEFAULT_CHEAP_SCORE
    ray_address: str | None = None
    storage: str | None = None
    runs_dir: str = "runs"

    # options that may differ between a run and its resume (where and how, not what)
    RUNTIME_ONLY = ("workers", "ray_address", "storage", "runs_dir")

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    def identity(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.RUNTIME_ONLY}


def validate_options(opts: SearchOptions) -> None:
    """Reject bad options before anything is written."""
    from search_spaces.space import SPACES

    if (
        not opts.name
        or any(c in opts.name for c in "/\\\0")
        or opts.name.startswith(".")
        or len(opts.name.encode("utf-8", "surrogatepass")) > 200
    ):
        raise SearchError(
            f"--name: {opts.name[:60]!r} is not a usable run name; accepted: a plain folder name of at most 200 bytes"
        )
    if opts.space not in SPACES:
        raise SearchError(f"--space: {opts.space!r} is unknown; accepted: {', '.join(SPACES)}")
    if opts.cheap_score not in CHEAP_SCORES:
        raise SearchError(f"--cheap-score: {opts.cheap_score!r} is unknown; accepted: {', '.join(CHEAP_SCORES)}")
    for flag, value, lo, hi in (
        ("--candidates", opts.candidates, 1, 10**6),
        ("--trials", opts.trials, 1, 10**4),
        ("--epochs", opts.epochs, 1, 1000),
        ("--images", opts.images, 8, 10**7),
        ("--workers", opts.workers, 1, 1024),
        ("--seed", opts.seed, 0, 2**31 - 1),
    ):
        if not lo <= value <= hi:
            raise SearchError(f"{flag}: {value} is out of range; accepted: an integer from {lo} to {hi}")
    # 64: the proxy's smallest image (evaluators.coco_data); a 32 px search would fail every trial
    if opts.img_size % 32 or not 64 <= opts.img_size <= 2048:
        raise SearchError(f"--img-size: {opts.img_size} is not accepted; accepted: a multiple of 32 from 64 to 2048")
    if not 0.03 <= opts.width_mult <= 4:
        raise SearchError(f"--width-mult: {opts.width_mult} is out of range; accepted: 0.03 to 4")
    if opts.data != "shapes" and not Path(opts.data).exists():
        raise SearchError(
            f"--data: {opts.data} does not exist; accepted: shapes or a COCO-format annotation file/folder"
        )


def check_data(opts: SearchOptions) -> None:
    """Load a ``--data`` set once in the driver, so a broken annotation file or a set with no
    decodable image stops the search at once (exit 2) instead of failing every trial in Ray.
    Corrupt images and dangling annotations are skipped (one warning), as training does."""
    if opts.data == "shapes":
        return
    from evaluators.coco_data import load_proxy_data
    from evaluators.errors import DataError

    try:
        data = load_proxy_data(opts.data, img_size=opts.img_size, images=opts.images, root=opts.runs_dir)
    except DataError as e:
        raise SearchError(f"--data: {e}") from None
    if not len(data.train.images) or not len(data.val.images):
        raise SearchError(
            f"--data: {opts.data}: no decodable image in the train or the val split; accepted: a COCO-format set"
        )


# -- cheap stage -------------------------------------------------------------------------------
def score_candidate(cfg, kind: str = DEFAULT_CHEAP_SCORE) -> dict[str, Any]:  # noqa: ANN001
    """Compile, cost and score one config: the attributes a cheap trial records.

    ``synflow``/``naswot`` also build the proxy-scale model (width ×0.25, 96 px) and record
    their value under ``zero_cost``: ~1–3 s per candidate on CPU instead of milliseconds, so they
    are opt-in baselines, never computed on the default path."""
    from nas.metrics import gradient_path_metrics
    from search_spaces import compile_config

    graph = compile_config(cfg)
    c = cost(graph)
    metrics = gradient_path_metrics(graph).to_dict(layers=False)
    zero_cost = None
    if kind in ("synflow", "naswot"):
        from evaluators import zero_cost as zc

        model = zc.proxy_model(cfg)
        zero_cost = (
            {"synflow": zc.synflow(model)} if kind == "synflow" else {"naswot": zc.naswot(model, zc.proxy_batch())}
        )
    out = {
        "flops": c.flops,
        "params": c.params,
        "metrics": metrics,
        "score": cheap_score(kind, c.flops, c.params, metrics, zero_cost),
    }
    if zero_cost is not None:
        out["zero_cost"] = zero_cost
    return out


#: The default cheap score: feature -> (weight, mean, std) of a ridge fit of standardised AP ranks
#: on standardised features (FLOPs and combinations as logs), from ``rank_study.json``
#: ``fit.gradpath+flops`` ``all_data`` — 40 candidates, reduced recipe; cross-validated Kendall τ
#: 0.54 vs 0.35 for FLOPs alone on the same folds (won 91 % of folds). Refit: copy the new values.
FITTED_SCORE = {
    "flops": (0.5750, 24.7227, 0.6635),
    "max_shortest_gradient_path": (-0.5086, 9.8250, 2.8274),
    "gradient_combinations": (-0.2357, 13.3489, 0.8379),
}


def cheap_score(
    kind: str, flops: int, params: int, metrics: dict[str, Any], zero_cost: dict[str, float] | None = None
) -> float:
    """The cheap stage's quality estimate (higher is better).

    ``gradpath``: log of the gradient combinations per layer-channel, minus the log of the
    longest shortest gradient path — rich combinations (PRN/CSP) and short paths (ELAN) are what
    the paper argues make a network learn well. ``flops``/``params``: plain size baselines.
    ``synflow``/``naswot``: zero-cost proxies (``evaluators.zero_cost``), read from ``zero_cost``
    as computed by :func:`score_candidate`. ``fitted``: the rank study's fitted combination
    (``benchmarks/rank_study.py``, ``fit.gradpath+flops`` in :data:`FITTED_SCORE`) — more FLOPs,
    a shorter longest-shortest gradient path, and (given those) fewer gradient combinations.
    How well each ranks proxy AP: README "Does it work?"."""
    if kind == "fitted":
        feats = {
            "flops": math.log(max(1, flops)),
            "max_shortest_gradient_path": float(metrics["max_shortest_gradient_path"] or 0),
            "gradient_combinations": math.log(max(1, metrics["gradient_combinations"])),
        }
        return sum(w * (feats[k] - mu) / sd for k, (w, mu, sd) in FITTED_SCORE.items())
    if kind == "flops":
        return float(flops)
    if kind == "params":
        return float(params)
    if kind in ("synflow", "naswot"):
        if not zero_cost or kind not in zero_cost:
            raise ValueError(f"cheap score {kind!r} needs its zero-cost value (score_candidate computes it)")
        return float(zero_cost[kind])
    comb = max(1, metrics["gradient_combinations"])
    sgp = max(1, metrics["max_shortest_gradient_path"] or 1)
    return math.log(comb) - math.log(sgp)


def cheap_stage(storage, opts: SearchOptions, progress: bool = True):  # noqa: ANN001, ANN201
    import optuna

    from search_spaces.space import SPACES

    space = SPACES[opts.space]
    study = optuna.create_study(
        study_name=f"{opts.name}-cheap", storage=storage, directions=["maximize", "minimize"], load_if_exists=True
    )
    study.set_metric_names([f"{opts.cheap_score}_score", "flops"])
    fail_interrupted(study)
    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    bar = progress_bar(opts.candidates, "cheap stage", progress, initial=done)
    for i in range(done, opts.candidates):
        # A sampler seeded by the candidate's index: its proposal depends only on the study's
        # history and the index, so a resumed search proposes what an unbroken one would have.
        seed = (opts.seed * 1_000_003 + i) % 2**32  # numpy's seed range; a no-op for seed < 4293
        study.sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=100)
        trial = study.ask()
        cfg = space.suggest(trial)
        s = score_candidate(cfg, opts.cheap_score)
        trial.set_user_attr("config", cfg.to_yaml())
        trial.set_user_attr("key", cfg.key())
        trial.set_user_attr("params", s["params"])
        trial.set_user_attr("metrics", s["metrics"])
        mark_constraint(study, trial, float(s["flops"] - opts.budget))
        study.tell(trial, [s["score"], float(s["flops"])])
        bar.update(1)
    bar.close()
    return study


# -- selection ---------------------------------------------------------------------------------
def select_candidates(trials: list, k: int, budget: int) -> list:  # noqa: ANN001
    """The K candidates to train: feasible and deduplicated, then one per FLOPs band — K bands of
    equal width from the smallest feasible candidate to the budget, the best cheap score in each,
    largest band first (K = 1: the best-scored candidate). The trained trials then span the AP-vs-
    FLOPs front the user reads. Picking by Pareto front of (score, FLOPs) instead spent most of
    K on its small end (``benchmarks/search_efficiency_live.py``). Slots of empty bands go to the
    best remaining candidates, front by front."""
    seen, pool = set(), []
    for t in sorted(trials, key=lambda t: t.number):
        if t.state.name != "COMPLETE" or t.values[1] > budget or t.user_attrs["key"] in seen:
            continue
        seen.add(t.user_attrs["key"])
        pool.append(t)
    if not pool:
        return []
    low = min(t.values[1] for t in pool)
    width = (budget - low) / k or 1.0
    bands: dict[int, list] = {}
    for t in pool:
        bands.setdefault(min(k - 1, int((t.values[1] - low) / width)), []).append(t)
    chosen = [max(bands[b], key=lambda t: (t.values[0], -t.values[1], -t.number)) for b in sorted(bands, reverse=True)]
    front_of = {
        i: f for f, front in enumerate(pareto_fronts([(t.values[0], t.values[1]) for t in pool])) for i in front
    }
    taken = {t.number for t in chosen}
    rest = sorted(
        (i for i, t in enumerate(pool) if t.number not in taken),
        key=lambda i: (front_of[i], -pool[i].values[0], pool[i].number),
    )
    return chosen + [pool[i] for i in rest[: k - len(chosen)]]


# -- the whole search --------------------------------------------------------------------------
def _quiet_libraries() -> None:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def search(opts: SearchOptions, progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) a search and return its summary (also ``runs/<name>/summary.json``).
    Example (about 20 minutes on 2 cores)::

        nas.search(SearchOptions(budget=parse_flops("150GFLOPs"), name="demo"))
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
        feasible = sum(1 for t in trials if t.state.name == "COMPLETE" and t.values[1] <= opts.budget)
        log(
            f"cheap stage: {len(trials)} candidates, {feasible} within {opts.budget / 1e9:g} GFLOPs ({time.perf_counter() - t0:.1f} s)"
        )
        chosen = select_candidates(trials, opts.trials, opts.budget)
        if not chosen:
            raise SearchError(f"no candidate fits the budget of {opts.budget / 1e9:g} GFLOPs; raise --budget")
        study = proxy_stage(storage, opts, chosen, progress)
        summary = write_outputs(study, opts)
        summary["wall_s"] = time.perf_counter() - t0
        log("Pareto front (AP vs FLOPs, * = best.yaml):")
        log(format_front(summary))
        log(f"outputs in {run_dir}/: best.yaml summary.json pareto.png; dashboard: nas dashboard {run_dir}")
        return summary
    finally:
        lock.release()
        if created and not started:
            _remove_unstarted(created)


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
    if before != opts.identity():
        ident = opts.identity()
        diff = ", ".join(f"{k}={before.get(k)!r}" for k in ident if before.get(k) != ident[k])
        raise SearchError(f"{meta.parent} was started with {diff}; re-run with the same options or use another --name")


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
