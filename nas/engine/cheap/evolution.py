"""The cheap stage's optimiser: NSGA-II over genomes, outside Optuna.

A *genome* is the dict of ``name -> value`` that :meth:`SearchSpace.configure` asked for, in its
order, so conditional knobs come for free (a CSP part has no ``mask_fraction`` gene) and the same
code runs on any space that exposes ``configure`` — the uniform 2-part space or a per-stage one.
Mutation re-runs ``configure`` keeping each parent gene with probability 1 − p (else a fresh
draw); crossover takes either parent's gene where the knob exists, else draws. Survivors are
chosen by constraint-domination (Deb 2002): every feasible candidate beats every over-budget
one, over-budget ones rank by how far over, feasible ones by non-dominated sorting of (score ↑,
cost ↓) and crowding distance.

Every random draw of generation ``g`` comes from a generator seeded by ``(seed, g)``, and the
population is a deterministic function of the candidates evaluated before, so a search resumed
from the stored candidates proposes exactly what an unbroken one would.

>>> from search_spaces.space import SPACES
>>> opt = NSGA2(SPACES["yolor"], seed=0, population=8)
>>> first = opt.propose(0, 8, seen=set())
>>> len(first), len({p.canonical for p in first})
(8, 8)
>>> [p.genome for p in first] == [p.genome for p in NSGA2(SPACES["yolor"], 0, 8).propose(0, 8, set())]
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from nas.engine.stats import pareto_fronts

Genome = dict[str, Any]


@dataclass(frozen=True)
class Proposal:
    """A config the optimiser wants evaluated: its genome, the choices each gene had (for
    Optuna's distributions) and its canonical config (the identity duplicates are found by)."""

    genome: Genome
    choices: dict[str, tuple[Any, ...]]
    config: Any
    canonical: Hashable


@dataclass
class Member:
    """An evaluated candidate in the population: objectives (score ↑, cost ↓) and the budget
    violation (cost − budget; ≤ 0 is feasible)."""

    genome: Genome
    score: float
    cost: float
    violation: float
    rank: int = 0
    crowding: float = 0.0


def decode(space: Any, choose: Callable[[str, tuple[Any, ...]], Any]) -> Proposal:
    """Run ``space.configure`` with ``choose`` and record what it was asked and answered."""
    genome: Genome = {}
    choices: dict[str, tuple[Any, ...]] = {}

    def record(name: str, options: Any) -> Any:
        options = tuple(options)
        value = choose(name, options)
        genome[name], choices[name] = value, options
        return value

    cfg = space.configure(record)
    return Proposal(genome, choices, cfg, cfg.canonical())


def random_genome(space: Any, rng: random.Random) -> Proposal:
    """A uniformly random config, knob by knob (the initial population and the fallback draw)."""
    return decode(space, lambda _name, options: rng.choice(options))


def mutate(space: Any, parent: Genome, rng: random.Random, p: float) -> Proposal:
    """Keep each of the parent's genes with probability 1 − p, else draw it afresh; a gene the
    parent lacks (its block had no such knob) is drawn."""

    def choose(name: str, options: tuple[Any, ...]) -> Any:
        if name in parent and parent[name] in options and rng.random() >= p:
            return parent[name]
        return rng.choice(options)

    return decode(space, choose)


def crossover(a: Genome, b: Genome, rng: random.Random) -> Genome:
    """Uniform crossover: each gene from either parent where both have it, else from the one that
    does. The result is a genome to mutate (``mutate`` redraws whatever is missing)."""
    child = {}
    for name in dict.fromkeys([*a, *b]):
        if name in a and name in b:
            child[name] = a[name] if rng.random() < 0.5 else b[name]
        else:
            child[name] = a[name] if name in a else b[name]
    return child


def crowding_distance(points: Sequence[tuple[float, float]]) -> list[float]:
    """NSGA-II's crowding distance of each point of one front (boundary points: infinite)."""
    n = len(points)
    out = [0.0] * n
    if n <= 2:
        return [math.inf] * n
    for axis in (0, 1):
        order = sorted(range(n), key=lambda i: (points[i][axis], i))
        lo, hi = points[order[0]][axis], points[order[-1]][axis]
        out[order[0]] = out[order[-1]] = math.inf
        if hi == lo:
            continue
        for j in range(1, n - 1):
            out[order[j]] += (points[order[j + 1]][axis] - points[order[j - 1]][axis]) / (hi - lo)
    return out


def rank_members(members: Sequence[Member]) -> list[list[int]]:
    """Constraint-dominated fronts, best first: the feasible ones by non-dominated sorting, then
    each over-budget member alone, by its violation (least over first). Sets ``rank`` and
    ``crowding`` on every member."""
    feasible = [i for i, m in enumerate(members) if m.violation <= 0]
    over = sorted((i for i, m in enumerate(members) if m.violation > 0), key=lambda i: (members[i].violation, i))
    fronts = [[feasible[j] for j in f] for f in pareto_fronts([(members[i].score, members[i].cost) for i in feasible])]
    fronts += [[i] for i in over]
    for r, front in enumerate(fronts):
        cd = crowding_distance([(members[i].score, members[i].cost) for i in front])
        for i, d in zip(front, cd, strict=True):
            members[i].rank, members[i].crowding = r, d
    return fronts


def survivors(members: Sequence[Member], n: int) -> list[Member]:
    """NSGA-II's environmental selection: whole fronts while they fit, the last one cut by
    crowding distance (most isolated kept; ties by position, so the result is deterministic)."""
    out: list[int] = []
    for front in rank_members(members):
        if len(out) + len(front) <= n:
            out += front
        else:
            out += sorted(front, key=lambda i: (-members[i].crowding, i))[: n - len(out)]
        if len(out) >= n:
            break
    chosen = [members[i] for i in out]
    rank_members(chosen)  # ranks and crowding within the new population (for the tournaments)
    return chosen


class NSGA2:
    """NSGA-II over a space's genomes. ``propose(g, n, seen)`` gives generation ``g``'s ``n``
    new configs (none in ``seen``, none twice); ``tell`` folds their objectives into the
    population. Generation 0 is a uniform random sample."""

    def __init__(self, space: Any, seed: int, population: int = 100, crossover_prob: float = 0.9) -> None:
        self.space = space
        self.seed = seed
        self.size = population
        self.crossover_prob = crossover_prob
        self.population: list[Member] = []
        self.duplicates = 0  # proposals rejected because already evaluated (or proposed)

    def rng(self, generation: int) -> random.Random:
        """The generation's generator: a function of (seed, generation) only."""
        return random.Random(f"nas-cheap:{self.seed}:{generation}")

    def _tournament(self, rng: random.Random) -> Member:
        a, b = rng.choice(self.population), rng.choice(self.population)
        return a if (a.rank, -a.crowding) <= (b.rank, -b.crowding) else b

    def _child(self, rng: random.Random) -> Proposal:
        if not self.population:
            return random_genome(self.space, rng)
        a = self._tournament(rng)
        genome = a.genome
        if rng.random() < self.crossover_prob:
            genome = crossover(a.genome, self._tournament(rng).genome, rng)
        return mutate(self.space, genome, rng, 1.0 / max(1, len(genome)))

    def propose(self, generation: int, n: int, seen: set[Hashable], max_tries: int | None = None) -> list[Proposal]:
        """Up to ``n`` configs not in ``seen`` and distinct from each other. A duplicate is drawn
        again (after ``2n`` rejections from a uniform draw, so a converged population cannot
        stall); fewer than ``n`` come back only when ``max_tries`` (default ``50n + 1000``) draws
        found no more, i.e. the space is (nearly) exhausted."""
        rng = self.rng(generation)
        out: list[Proposal] = []
        taken: set[Hashable] = set()
        tries, rejected = 0, 0
        limit = max_tries if max_tries is not None else 50 * n + 1000
        while len(out) < n and tries < limit:
            tries += 1
            p = random_genome(self.space, rng) if rejected >= 2 * n else self._child(rng)
            if p.canonical in seen or p.canonical in taken:
                rejected += 1
                self.duplicates += 1
                continue
            taken.add(p.canonical)
            out.append(p)
        return out

    def tell(self, members: Sequence[Member]) -> None:
        """The next population: the best ``population`` of the current one and ``members``."""
        self.population = survivors([*self.population, *members], self.size)
