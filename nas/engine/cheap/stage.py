"""The cheap stage: a multi-objective evolutionary search (:mod:`nas.engine.cheap.evolution`) whose
every unique candidate is compiled, costed and scored in milliseconds, on every core.

Candidates land in Optuna study ``<name>-cheap``, one generation per batch: the knobs are the
trial's params, (score, cost) its values — the cost objective is ``GFLOPs`` or, with ``--cost
latency``, the predicted ``latency_ms`` — readable scalar user attributes
(:func:`nas.engine.record.trials.candidate_attrs`) and one constraint per budget (GFLOPs − budget,
latency − latency budget), so over-budget candidates are recorded as infeasible and never
trained. The cost of a candidate does not grow with the study: nothing
reads the study while the stage runs (the optimiser keeps its population in memory), and a
batch is one append to the journal.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from nas.engine.cheap.evolution import NSGA2, Member, Proposal, decode, survivors
from nas.engine.cheap.select import block_pattern
from nas.engine.options import SearchError, SearchOptions
from nas.engine.record.report import progress_bar
from nas.engine.record.storage import fail_interrupted
from nas.engine.record.trials import (
    CONFIG_ATTR,
    DASHBOARD_ATTR,
    candidate_attrs,
    constraint_values,
    constraints_of,
    cost_value,
    is_old_study,
    key_hash,
    latency_info,
    metric_name,
    study_attrs,
    violation,
)
from nas.engine.scores.candidate import score_candidate

# -- the stage ---------------------------------------------------------------------------------
#: NSGA-II's population, also the size of one generation and of one storage batch.
POPULATION = 100
#: below this many candidates the stage scores in-process: a process pool's start (~1 s) would
#: cost more than it saves
POOL_FROM = 500


def evaluate_batch(cfgs: list[Any], kind: str, latency: Any = None) -> list[dict[str, Any]]:
    """Score configs (in a pool worker or in-process): ``score_candidate`` plus what a cheap
    trial stores (config YAML, key hash, block pattern)."""
    out = []
    for cfg in cfgs:
        s = score_candidate(cfg, kind, latency)
        s.update(config=cfg.to_yaml(), key=key_hash(cfg.key()), pattern="/".join(block_pattern(cfg)))
        out.append(s)
    return out


class _Scorer:
    """Scores batches on every core with a process pool, started at the first batch; in-process
    when ``workers`` is 1. The pool forks while the caller has one thread (fast, and a user's
    script needs no ``if __name__ == "__main__"`` guard); with other threads alive (Ray, a
    dashboard), where forking can deadlock, it spawns fresh interpreters instead."""

    def __init__(self, kind: str, workers: int, latency: Any = None) -> None:
        self.kind, self.workers, self.pool, self.latency = kind, workers, None, latency

    def submit(self, cfgs: list[Any]) -> Callable[[], list[dict[str, Any]]]:
        """Start scoring ``cfgs``; the returned function waits for their results, in order."""
        if self.workers <= 1 or len(cfgs) < 2:
            done = evaluate_batch(cfgs, self.kind, self.latency)
            return lambda: done
        if self.pool is None:
            import multiprocessing
            import threading

            # tqdm's monitor thread only sleeps on an event: forking past it is safe
            others = [t for t in threading.enumerate() if t is not threading.main_thread() and t.name != "tqdm_monitor"]
            fork = "fork" in multiprocessing.get_all_start_methods() and not others
            self.pool = multiprocessing.get_context("fork" if fork else "spawn").Pool(self.workers)
        n = max(1, -(-len(cfgs) // (2 * self.workers)))  # two chunks per worker: balanced, few messages
        chunks = [cfgs[i : i + n] for i in range(0, len(cfgs), n)]
        job = self.pool.starmap_async(evaluate_batch, [(c, self.kind, self.latency) for c in chunks])
        return lambda: [s for part in job.get() for s in part]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None


class _Enumeration:
    """The proposer for a space no larger than ``--candidates``: every config, in the space's
    order (scoring them all is then cheaper than any search, and exact)."""

    def __init__(self, space: Any, population: int) -> None:
        self.configs = list(space.enumerate())
        self.space, self.size = space, population
        self.duplicates = 0

    def propose(self, generation: int, n: int, seen: set) -> list[Proposal]:
        out = []
        for cfg in self.configs[generation * self.size : (generation + 1) * self.size]:
            p = _stored_proposal(self.space, self.space.params_of(cfg))
            if p is not None and p.canonical not in seen:
                out.append(p)
        return out[:n]

    def tell(self, members: list[Member]) -> None:
        pass


def _stored_proposal(space: Any, params: dict[str, Any]) -> Proposal | None:
    """The proposal a stored trial's params decode to (None if the space no longer asks for them)."""
    try:
        return decode(space, lambda name, _options: params[name])
    except (KeyError, ValueError, TypeError):
        return None


class _Distributions:
    """Optuna ``CategoricalDistribution`` objects, one per (knob, choices), built once."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, tuple[Any, ...]], Any] = {}

    def __call__(self, p: Proposal) -> dict[str, Any]:
        from optuna.distributions import CategoricalDistribution

        out = {}
        for name, options in p.choices.items():
            d = self.cache.get((name, options))
            if d is None:
                d = self.cache[(name, options)] = CategoricalDistribution(options)
            out[name] = d
        return out


class _Buffered:
    """Stands in for a journal file backend while ``add_trials`` runs, so the batch is appended
    with one lock and one fsync instead of one per trial (the fsyncs were most of the time)."""

    def __init__(self) -> None:
        self.logs: list[dict[str, Any]] = []

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self.logs.extend(logs)

    def read_logs(self, log_number_from: int) -> list[dict[str, Any]]:
        return []


def write_batch(study: Any, trials: list[Any]) -> None:
    """Add finished trials to ``study`` in one write. On a journal file the records are Optuna's
    own (built by its ``create_new_trial``) and land in one append: a kill leaves a prefix of the
    batch plus at most one torn line, which ``prepare_journal`` drops. Other storages (an RDB)
    take ``add_trials`` as it is."""
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = study._storage
    backend = getattr(storage, "_backend", None)
    if not (isinstance(storage, JournalStorage) and isinstance(backend, JournalFileBackend)):
        study.add_trials(trials)
        return
    buffer = _Buffered()
    replay = storage._replay_result  # read by create_new_trial; only set once this process made a trial
    if not hasattr(replay, "_last_created_trial_id_by_this_process"):
        replay._last_created_trial_id_by_this_process = -1
    storage._backend = buffer
    try:
        study.add_trials(trials)
    finally:
        storage._backend = backend
    if buffer.logs:
        backend.append_logs(buffer.logs)
    with storage._thread_lock:
        storage._sync_with_backend()


def _frozen_trial(p: Proposal, s: dict[str, Any], generation: int, opts: SearchOptions, dists: _Distributions) -> Any:
    import optuna

    over = constraint_values(s, opts)
    attrs = candidate_attrs(s)
    attrs.update(feasible=all(v <= 0 for v in over), generation=generation)
    system = {f"constraints:{c.name}": v for c, v in zip(constraints_of(opts), over, strict=True)}
    system[CONFIG_ATTR] = s["config"]
    return optuna.trial.create_trial(
        params=p.genome,
        distributions=dists(p),
        values=[s["score"], cost_value(s, opts.cost)],
        user_attrs=attrs,
        # what Trial.set_constraint writes in Optuna 5, and the list optuna-dashboard 0.21 reads
        system_attrs={**system, "constraints": over},
    )


def _stored_member(trial: Any, opts: SearchOptions, genome: Any = None) -> Member:
    """The optimiser's view of a stored cheap trial: its genome (``genome``, else its params),
    (score, cost) and constraint violation."""
    (score, cost), over = trial.values, trial.system_attrs["constraints"]
    return Member(trial.params if genome is None else genome, score, cost, violation(over, opts))


def _space_size(space: Any) -> int | None:
    """The space's number of configs (``size()``, else ``len``), None if it cannot say."""
    try:
        return int(space.size()) if hasattr(space, "size") else len(space)
    except (TypeError, OverflowError):
        return None


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def cheap_stage(
    storage: Any,
    opts: SearchOptions,
    progress: bool = True,
    workers: int | None = None,
    population: int = POPULATION,
) -> Any:
    """Run (or resume) the cheap stage of ``opts`` in ``storage``; returns the Optuna study.

    ``opts.candidates`` *unique* configs are evaluated (fewer only if the space has fewer): the
    optimiser's proposals are deduplicated by canonical config before anything is scored, one
    generation of ``population`` is scored on ``workers`` processes and written as one batch
    (while the next generation is being scored).
    Counts are left on the study as user attributes (``proposed_duplicates``, ``generations``).

    Resume: generation ``g`` is proposed from (seed, g) and the population rebuilt from the
    stored generations, so a resumed stage re-proposes generation ``g`` exactly, finds the part a
    kill had already written (by canonical config) and scores only the rest. The stored set of
    candidates equals an unbroken run's; only the trial numbers inside the interrupted
    generation may come in another order.
    """
    import optuna

    from search_spaces.space import SPACES

    space = SPACES[opts.space]
    study = optuna.create_study(
        study_name=f"{opts.name}-cheap", storage=storage, directions=["maximize", "minimize"], load_if_exists=True
    )
    if is_old_study(study):
        raise SearchError(
            f"{opts.run_dir}: made by an older nas search (raw FLOPs objective); it cannot be resumed by this one: "
            "read it with nas export / nas dashboard, or start another --name"
        )
    latency, info = latency_info(opts, progress)
    study.set_metric_names([f"{opts.cheap_score}_score", metric_name(opts.cost)])
    for k, v in study_attrs(opts, info).items():
        study.set_user_attr(k, v)
    fail_interrupted(study)
    stored: dict[int, dict[Any, Any]] = {}
    seen: set[Any] = set()  # of earlier generations (and of trials of no generation)
    count = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        count += 1
        p = _stored_proposal(space, t.params)
        canonical = p.canonical if p is not None else ("key", t.user_attrs.get("key"))
        g = t.user_attrs.get("generation")
        if isinstance(g, int) and p is not None:
            stored.setdefault(g, {})[canonical] = t
        else:  # recorded by an older cheap stage: kept, never re-proposed
            seen.add(canonical)
    size = _space_size(space)
    proposer: Any = (
        _Enumeration(space, population)
        if size is not None and size <= opts.candidates
        else NSGA2(space, opts.seed, population)
    )
    scorer = _Scorer(opts.cheap_score, (workers or default_workers()) if opts.candidates >= POOL_FROM else 1, latency)
    dists = _Distributions()
    bar = progress_bar(opts.candidates, "cheap stage", progress, initial=count)
    evaluated = len(seen)
    g = 0
    try:
        unwritten: list[Any] = []  # the previous generation, written while this one is scored
        while evaluated < opts.candidates:
            props = proposer.propose(g, min(population, opts.candidates - evaluated), seen)
            if not props:
                break  # the space is exhausted
            have = stored.get(g, {})
            todo = [p for p in props if p.canonical not in have]
            results = scorer.submit([p.config for p in todo])
            if unwritten:
                write_batch(study, unwritten)
                bar.update(len(unwritten))
            fresh = dict(zip((p.canonical for p in todo), results(), strict=True))
            unwritten = [_frozen_trial(p, fresh[p.canonical], g, opts, dists) for p in todo]
            members = []
            for p in props:
                if p.canonical in fresh:
                    s = fresh[p.canonical]
                    score, cost, over = s["score"], cost_value(s, opts.cost), constraint_values(s, opts)
                    members.append(Member(p.genome, score, cost, violation(over, opts)))
                else:
                    members.append(_stored_member(have[p.canonical], opts, p.genome))
            proposer.tell(members)
            seen.update(p.canonical for p in props)
            evaluated += len(props)
            g += 1
        if unwritten:
            write_batch(study, unwritten)
            bar.update(len(unwritten))
    finally:
        scorer.close()
        bar.close()
    study.set_user_attr("generations", g)
    study.set_user_attr("proposed_duplicates", proposer.duplicates)
    return study


# -- what the dashboard shows -----------------------------------------------------------------
#: the most cheap trials ``nas dashboard`` shows: optuna-dashboard's API spends ~2 ms per trial of
#: this space (its search-space cache and serializer work per parameter), so 1,500 load in 3-5 s
DASHBOARD_TRIALS = 1500


def mark_dashboard_view(study: Any, opts: SearchOptions, also: list[int], limit: int | None = None) -> list[int]:
    """Record which cheap trials ``nas dashboard`` shows: NSGA-II's best ``limit`` of them
    (default :data:`DASHBOARD_TRIALS`; constraint-dominated fronts, the last cut by crowding: the
    whole feasible front and what lies near it, over-budget ones only if room is left) plus
    ``also`` (the picks and the reserve, which proxy trials link to). Every candidate stays in
    the study: selection, resume, ``nas export`` and plain ``optuna-dashboard`` read them all.
    Returns the numbers recorded."""
    import optuna

    limit = DASHBOARD_TRIALS if limit is None else limit
    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if t.values]
    members = [_stored_member(t, opts) for t in done]
    number = {id(m): t.number for m, t in zip(members, done, strict=True)}
    keep = {number[id(m)] for m in survivors(members, limit)} if len(done) > limit else {t.number for t in done}
    shown = sorted(keep | set(also))
    study._storage.set_study_system_attr(study._study_id, DASHBOARD_ATTR, shown)
    return shown
