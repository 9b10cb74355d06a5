"""Selection: which cheap-stage candidates the proxy stage trains."""

from __future__ import annotations

from typing import Any

from nas.engine.stats import pareto_fronts


def select_candidates(trials: list[Any], k: int, budget: int) -> list[Any]:
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
