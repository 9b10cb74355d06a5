"""The proxy stage's training budget: the rung plan.

Two ways to spend it (``--proxy-stage``): ``select`` (the default) trains the cheap stage's K
best picks, each at full fidelity, as one rung; ``halving`` spends the same compute by
successive halving over more candidates on shorter schedules. On the gradient-path table
(``benchmarks/gp_search.py``, docs/gp-features.md) selection reached the larger share of the
best AP and hypervolume at K = 4 and 16: the low rung ranks full AP at Kendall τ 0.59 with one
seed, and halving spends half the budget below full fidelity.

``--trials K`` means the compute of K full trainings of the recipe (one *unit*); a training of
``e`` of the recipe's ``E`` epochs costs ``e / E``. A low-fidelity training is a **complete short
schedule** — ``e`` epochs with their own warm-up and cosine — not the first ``e`` epochs of the
long one: the rank study measured Kendall τ 0.21 between the AP after epoch 2 of a 6-epoch
cosine (the learning rate still high) and the final AP. A candidate promoted to the next rung
therefore *retrains* at the next fidelity from scratch: its low-rung checkpoint sits at the end
of a different schedule, and continuing it would be the truncated long schedule again.

>>> [(r.epochs, r.n) for r in plan_rungs(4, 6)]  # 6 at 2 epochs (2 units) + 2 at 6 (2 units)
[(2, 6), (6, 2)]
>>> [(r.epochs, r.n) for r in plan_rungs(2, 3)]  # the issue's tiny search: 3 distinct > 2
[(1, 3), (3, 1)]
>>> [(r.epochs, r.n) for r in plan_rungs(1, 6)]  # one unit buys one full training, nothing more
[(6, 1)]
>>> [(r.epochs, r.n) for r in plan_proxy("select", 4, 6)]  # the default: K full trainings
[(6, 4)]
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

#: the ways ``--proxy-stage`` spends the budget; search.json files from before the choice were ``halving``
PROXY_STAGES = ("select", "halving")
#: successive halving's reduction factor: a third of each rung goes on, at three times the epochs
ETA = 3


@dataclasses.dataclass(frozen=True)
class Rung:
    """``n`` trainings of ``epochs`` of the recipe's ``of`` epochs each."""

    epochs: int
    n: int
    of: int

    @property
    def full(self) -> bool:
        return self.epochs == self.of

    @property
    def cost(self) -> Fraction:
        """In units of one full training."""
        return Fraction(self.n * self.epochs, self.of)

    def fidelity(self) -> dict[str, int]:
        """The proxy trial's ``fidelity`` user attribute."""
        return {"epochs": self.epochs, "of": self.of}


def ladder(epochs: int, eta: int = ETA, min_epochs: int | None = None) -> list[list[int]]:
    """Every usable list of rung fidelities ending at the full ``epochs``: ``epochs / eta^i``
    rounded, strictly increasing, none below ``min_epochs`` (default ``round(epochs / eta)``,
    at least 1: one low rung at a third of the epochs; a ninth of a 6-epoch recipe is under one
    epoch and a ninth of a longer one is a schedule nobody has measured)."""
    floor = max(1, round(epochs / eta)) if min_epochs is None else max(1, min_epochs)
    out, fids = [[epochs]], [epochs]
    for i in range(1, 32):
        e = max(1, round(epochs / eta**i))
        if e >= fids[0] or e < floor:
            break
        fids = [e, *fids]
        out.append(list(fids))
    return out


def plan_rungs(
    units: int, epochs: int, eta: int = ETA, pool: int | None = None, min_epochs: int | None = None
) -> list[Rung]:
    """The rungs that spend at most ``units`` full trainings on at most ``pool`` candidates.

    For every ladder of fidelities (:func:`ladder`) the bottom rung is made as large as the
    budget allows while each rung promotes ``n // eta`` of the one below (at least 1; the top rung
    at least ``units // rungs``: successive halving spends about the same on every rung, so the
    Pareto front the user reads keeps its full-fidelity points); what the rounding leaves of the
    budget buys more promotions (top rung first), then more bottom-rung candidates. The plan kept trains the most distinct
    candidates, then the most at full fidelity, then uses fewer rungs. Pure and exact (fractions).
    """
    if units <= 0 or epochs <= 0 or (pool is not None and pool <= 0):
        return []
    cap = pool if pool is not None else units * eta ** len(ladder(epochs, eta, min_epochs))
    best: tuple[tuple[int, int, int], list[Rung]] | None = None
    for fids in ladder(epochs, eta, min_epochs):
        top_min = min(cap, max(1, units // len(fids)))
        plan = _largest_bottom(units, fids, eta, cap, top_min)
        if plan is None:
            continue
        rank = (plan[0].n, plan[-1].n, -len(plan))
        if best is None or rank > best[0]:
            best = (rank, plan)
    return best[1] if best else []


def plan_proxy(stage: str, units: int, epochs: int, pool: int | None = None) -> list[Rung]:
    """The proxy stage's plan for ``--proxy-stage``: ``select`` is the ladder of one full rung
    (at most ``units`` trainings of the whole ``epochs``), ``halving`` the cheapest-first plan
    of :func:`plan_rungs`."""
    if stage not in PROXY_STAGES:
        raise ValueError(f"proxy stage {stage!r}; accepted: {', '.join(PROXY_STAGES)}")
    return plan_rungs(units, epochs, pool=pool, min_epochs=epochs if stage == "select" else None)


def _counts(n0: int, fids: list[int], eta: int, top_min: int) -> list[int]:
    counts = [n0]
    for i in range(1, len(fids)):
        floor = top_min if i == len(fids) - 1 else 1
        counts.append(min(counts[-1], max(floor, counts[-1] // eta)))
    return counts


def _largest_bottom(units: int, fids: list[int], eta: int, cap: int, top_min: int) -> list[Rung] | None:
    """The plan on one ladder with the largest bottom rung that fits, leftovers spent on promotions."""
    of = fids[-1]
    budget = Fraction(units)

    def cost(counts: list[int]) -> Fraction:
        return sum((Fraction(n * e, of) for n, e in zip(counts, fids, strict=True)), Fraction(0))

    chosen = None
    for n0 in range(min(cap, units * of // fids[0]), 0, -1):  # cost grows with n0: the first that fits is the largest
        counts = _counts(n0, fids, eta, top_min)
        if counts[-1] >= top_min and cost(counts) <= budget:
            chosen = counts
            break
    if chosen is None:
        return None
    for i in range(len(fids) - 1, 0, -1):  # spend what is left: more promotions, top rung first
        while chosen[i] < chosen[i - 1] and cost(chosen) + Fraction(fids[i], of) <= budget:
            chosen[i] += 1
    while chosen[0] < cap and cost(chosen) + Fraction(fids[0], of) <= budget:  # then more candidates
        chosen[0] += 1
    return [Rung(e, n, of) for e, n in zip(fids, chosen, strict=True)]


def plan_cost(plan: list[Rung]) -> Fraction:
    """The plan's compute in full trainings."""
    return sum((r.cost for r in plan), Fraction(0))
