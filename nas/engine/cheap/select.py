"""Selection: which cheap-stage candidates the proxy stage trains."""

from __future__ import annotations

import statistics
from typing import Any

from nas.engine.record.trials import config_of, flops_of, within_budgets
from nas.engine.stats import pareto_fronts

#: the diversity margin, in standard deviations of the cheap score among feasible candidates
DIVERSITY_MARGIN_SD = 0.1
#: ``--picks top``: the least FLOPs of a pick, as a share of the budget
TOP_SHARE = 0.75


def block_pattern(cfg: Any) -> tuple[str, ...]:
    """The block of every backbone stage, then every neck node (:meth:`ArchConfig.pattern`): what
    two designs differ in when they differ in more than knobs and multipliers.

    >>> from search_spaces import load_config
    >>> block_pattern(load_config("yolor-csp"))[:2], len(block_pattern(load_config("yolor-csp")))
    (('csp', 'csp'), 10)
    """
    return cfg.pattern()


def pattern_of(trial: Any) -> str:
    """A cheap trial's block pattern as stored (``res/prn/…``); read from its config for trials
    of runs made before the attribute existed."""
    pattern = trial.user_attrs.get("pattern")
    if pattern is None:
        from search_spaces import parse_yaml

        pattern = "/".join(block_pattern(parse_yaml(config_of(trial))))
    return pattern


def feasible_pool(trials: list[Any], budget: int) -> list[Any]:
    """The cheap trials that may be trained: COMPLETE, within the FLOPs budget and every other
    recorded constraint (a latency budget), one per config key (the first proposed), in trial order."""
    seen, pool = set(), []
    for t in sorted(trials, key=lambda t: t.number):
        if t.state.name != "COMPLETE" or not within_budgets(t, budget) or t.user_attrs["key"] in seen:
            continue
        seen.add(t.user_attrs["key"])
        pool.append(t)
    return pool


def inside_support(pool: list[Any]) -> set[int]:
    """The numbers of the trials of ``pool`` (the feasible cheap trials, :func:`feasible_pool`)
    inside the gradient-path table's support (:mod:`nas.engine.scores.support`): the search's
    trust region, where the fitted score was tested (``--trust-region table``)."""
    from nas.engine.record.trials import metrics_of, params_of
    from nas.engine.scores.calibration import features_of
    from nas.engine.scores.support import support

    rows = [features_of(flops_of(t), params_of(t), metrics_of(t)) for t in pool]
    return {t.number for t, ok in zip(pool, support().inside(rows), strict=True) if ok}


def flops_bands(pool: list[Any], k: int, budget: int) -> dict[int, list[Any]]:
    """``pool`` split into K FLOPs bands of equal width from its smallest candidate to the budget
    (whatever the cost objective), band index -> its candidates in pool order."""
    flops = {t.number: flops_of(t) for t in pool}
    low = min(flops.values())
    width = (budget - low) / k or 1.0
    bands: dict[int, list[Any]] = {}
    for t in pool:
        bands.setdefault(min(k - 1, int((flops[t.number] - low) / width)), []).append(t)
    return bands


def select_candidates(
    trials: list[Any], k: int, budget: int, only: set[int] | None = None, picks: str = "front"
) -> list[Any]:
    """The K candidates to train: feasible and deduplicated, then one per FLOPs band — K bands of
    equal width from the smallest feasible candidate to the budget, the best cheap score in each,
    largest band first (K = 1: the best-scored candidate). The trained trials then span the AP-vs-
    FLOPs front the user reads. Picking by Pareto front of (score, FLOPs) instead spent most of
    K on its small end (``benchmarks/search_efficiency_live.py``). Slots of empty bands go to the
    best remaining candidates, front by front.

    Diversity: a band's candidates within a *margin* of its best score — ``DIVERSITY_MARGIN_SD``
    (0.1) × the score's standard deviation among feasible candidates, a difference the cheap score
    cannot resolve — are as good as its best. A band whose best repeats the block pattern of
    another band's pick takes, instead, its best near-best candidate of a pattern no pick has
    yet (bands in pick order), so the K picks compare designs, not one design at K sizes.

    ``only``: the trial numbers that may be picked (the trust region), else every feasible one.
    ``picks="top"``: only candidates of at least :data:`TOP_SHARE` of the budget (every one when
    none is), banded the same way: the K picks compete for ``best.yaml`` instead of spanning the
    front, since the winner of a K = 4 front came from its two largest bands in every headline
    search (``benchmarks/search_rescored.py``); measured, its winners were no better. ``picks=
    "families"``: the same candidates, one pick per block family instead (:func:`family_picks`)."""
    pool = [t for t in feasible_pool(trials, budget) if only is None or t.number in only]
    if picks in ("top", "families"):
        pool = [t for t in pool if flops_of(t) >= TOP_SHARE * budget] or pool
    if not pool:
        return []
    if picks == "families":
        return family_picks(pool, k)
    bands = flops_bands(pool, k, budget)
    order = sorted(bands, reverse=True)
    best = {b: max(bands[b], key=lambda t: (t.values[0], -t.values[1], -t.number)) for b in order}
    chosen = _diversify(best, bands, order, pool)
    front_of = {
        i: f for f, front in enumerate(pareto_fronts([(t.values[0], t.values[1]) for t in pool])) for i in front
    }
    taken = {t.number for t in chosen}
    rest = sorted(
        (i for i, t in enumerate(pool) if t.number not in taken),
        key=lambda i: (front_of[i], -pool[i].values[0], pool[i].number),
    )
    return chosen + [pool[i] for i in rest[: k - len(chosen)]]


def family_of(trial: Any) -> str:
    """A candidate's block family: its most frequent block over the backbone stages and neck
    nodes (ties: the first name in alphabetical order).

    >>> from types import SimpleNamespace
    >>> family_of(SimpleNamespace(user_attrs={"pattern": "elan/prn/elan/res/prn"}))
    'elan'
    """
    parts = pattern_of(trial).split("/")
    return min(set(parts), key=lambda b: (-parts.count(b), b))


def family_picks(pool: list[Any], k: int) -> list[Any]:
    """``--picks families``: the best-scored candidate of every block family in ``pool``, the
    families in the order of their best scores; then each family's second best, and so on, until
    K. Near the budget the cheap score's favourite family, PRN, proposes designs that differ by a
    design sd of 0.006 AP, while the table's mixed designs there differ by 0.027
    (``benchmarks/search_rescored.py --union``), so the K trainings compare the paper's strategies
    at the budget instead of K near-copies of one. On ten searches its winners did not beat the
    default's (docs/search.md, "Where the picks lie")."""
    families: dict[str, list[Any]] = {}
    for t in sorted(pool, key=lambda t: (-t.values[0], t.values[1], t.number)):
        families.setdefault(family_of(t), []).append(t)
    queues = sorted(families.values(), key=lambda q: (-q[0].values[0], q[0].number))
    chosen: list[Any] = []
    for rank in range(max(len(q) for q in queues)):
        chosen += [q[rank] for q in queues if rank < len(q)][: k - len(chosen)]
        if len(chosen) == k:
            break
    return chosen


def _diversify(best: dict[int, Any], bands: dict[int, list], order: list[int], pool: list[Any]) -> list[Any]:
    """The band picks with the diversity rule of :func:`select_candidates` applied."""
    if len(order) < 2 or len(pool) < 2:
        return [best[b] for b in order]
    margin = DIVERSITY_MARGIN_SD * statistics.pstdev(t.values[0] for t in pool)
    if margin <= 0:
        return [best[b] for b in order]
    picks = dict(best)
    patterns = {b: pattern_of(picks[b]) for b in order}
    for b in order:
        others = [patterns[o] for o in order if o != b]
        if patterns[b] not in others:
            continue  # its pattern is its own: keep the band's best
        near = [t for t in bands[b] if t.values[0] >= best[b].values[0] - margin]
        new = [t for t in near if pattern_of(t) not in patterns.values()]
        if new:
            picks[b] = max(new, key=lambda t: (t.values[0], -t.values[1], -t.number))
            patterns[b] = pattern_of(picks[b])
    return [picks[b] for b in order]
