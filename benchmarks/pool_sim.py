"""Pieces shared by the pool-based search simulations (``benchmarks/search_efficiency.py`` on the
rank study, ``benchmarks/gp_search.py`` on the gradient-path table): an arm may only pick designs
that were trained, so a pick's AP is a table lookup and nothing is trained.

- :func:`hypervolume`: the shared 2-D hypervolume w.r.t. the studies' FLOPs budget;
- :func:`select_indices`: the search's own selection (``nas.engine.select_candidates``) run on
  stand-in cheap trials;
- :func:`knob_distance` and :func:`tpe_picks`: Optuna's TPE, its proposals snapped to the nearest
  not-yet-picked pooled design (only those have an AP).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from benchmarks.lib import stats
from benchmarks.lib.designs import BUDGET


def hypervolume(points: Sequence[tuple[float, float]], budget: float = BUDGET) -> float:
    """The shared 2-D hypervolume (:func:`benchmarks.lib.stats.hypervolume`) of (AP ↑, FLOPs ↓)
    w.r.t. the reference (AP 0, FLOPs = the studies' budget)."""
    return stats.hypervolume(list(points), budget)


def stand_in_trial(
    number: int, score: float, flops: float, key: str, config: Any, pattern: str | None = None
) -> SimpleNamespace:
    """A stand-in for a cheap-stage Optuna trial, as ``select_candidates`` reads one (``pattern``,
    ``res/prn/…``, spares it parsing ``config``)."""
    attrs: dict[str, Any] = {"key": key, "config": config, "flops": int(flops)}
    if pattern is not None:
        attrs["pattern"] = pattern
    return SimpleNamespace(
        number=number, state=SimpleNamespace(name="COMPLETE"), values=[float(score), float(flops)], user_attrs=attrs
    )


def select_indices(trials: Sequence[SimpleNamespace], k: int, budget: float = BUDGET) -> list[int]:
    """The ``number`` of the ``k`` stand-in trials the search's selection trains, in its order."""
    from nas.engine import select_candidates

    return [t.number for t in select_candidates(list(trials), k, int(budget))]


def knob_distance(a: dict[str, Any], b: dict[str, Any]) -> int:
    """Hamming distance over the knobs of two designs (``SearchSpace.params_of``): a knob one
    design has and the other lacks (a conditional knob of another block) counts as different.

    >>> knob_distance({"b": "csp", "x": 1}, {"b": "elan", "y": 2}), knob_distance({"b": 1}, {"b": 1})
    (3, 0)
    """
    missing = object()
    return sum(a.get(n, missing) != b.get(n, missing) for n in a.keys() | b.keys())


def tpe_picks(
    knobs: Sequence[dict[str, Any]],
    space: Any,
    k: int,
    seed: int,
    observe: Callable[[int], tuple[float, float]],
) -> list[int]:
    """Optuna's TPE on (AP ↑, FLOPs ↓), ``n_startup_trials = max(1, k // 2)``: each of ``k``
    proposals of ``space`` is snapped to the design not yet picked that matches the most of the
    proposal's knobs (then the lowest index), and told what ``observe(index)`` returns,
    ``(AP, FLOPs)``. The proposal's knobs only, not :func:`knob_distance`: a design's knobs of
    another block are not a second mismatch (as ``benchmarks/search_efficiency.py`` always did)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        directions=["maximize", "minimize"],
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, k // 2)),
    )
    picked: list[int] = []
    for _ in range(min(k, len(knobs))):
        trial = study.ask()
        space.suggest(trial)
        want = trial.params
        taken = set(picked)
        best = min(
            (i for i in range(len(knobs)) if i not in taken),
            key=lambda i: (sum(knobs[i].get(n) != v for n, v in want.items()), i),
        )
        picked.append(best)
        study.tell(trial, list(observe(best)))
    return picked
