"""Search strategies on the gradient-path table — a POOL-BASED SIMULATION (nothing is trained).

The table's measured APs are the truth (``benchmarks/gp_table.py``, docs/gp-features.md "Search
strategies on the table"). A surrogate model would add its own error, so every arm may only train
designs of the table:

- **Pool**: every table design (either split) with both full-fidelity seeds. Per simulation seed,
  a random 75 % of it is "what the cheap stage sampled", offered identically to every arm and K.
- **Noise**: an arm's full training of a design observes the AP of ONE of its 2 seeds, drawn by
  the simulation's RNG. A second training of the same design draws the other seed. A low-fidelity
  training (the proxy stage's complete short schedule) observes one of the design's low rows. A
  design without low rows cannot be trained at low fidelity: the halving arms' bottom rung is
  chosen among the offered designs that have them.
- **Budget**: K units; a full training costs 1 unit, a low one ``epochs_low / epochs_full``.
- **Judged by the truth**: the true AP of a design is its 2-seed mean full AP. ``best_AP`` is the
  true AP of the design the arm *reports* (its best *observed* full AP). ``hypervolume`` is that
  of its full-fidelity trained designs at (true AP, FLOPs), reference (AP 0, 150 GFLOPs). Both
  are also given as a share of the offered set's ideal.

Arms (each ``(offered, K, rng) -> trainings``): ``today[:score]`` (the search as it runs: rung plan
of ``nas.engine.proxy.fidelity.plan_rungs``, bottom rung by ``select_candidates``, best observed promoted),
``select:<score>`` (K picks of ``select_candidates``, all full), ``random``, ``optuna-tpe``,
``evolution`` (regularised evolution on a pool) and its hybrids with the cheap score,
``evolution+front``, ``evolution+screen`` and ``evolution+front+screen``. An unqualified
score-guided arm uses the shipped ``fitted`` score; more scores are passed to :func:`main` as
``{name: function(table_row) -> float}``.

    .venv/bin/python -m benchmarks.gp_search [--seeds 200] [--k 4 8 16 32] [--arms today random ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
from collections import deque
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.gp_analysis import FIT_FILE as GP_FIT_FILE
from benchmarks.gp_table import DESIGNS_FILE, RESULTS_FILE, SEEDS, load_table
from benchmarks.lib.common import write_result
from benchmarks.lib.designs import BUDGET
from benchmarks.lib.recipes import SCALES
from benchmarks.lib.stats import sem
from benchmarks.pool_sim import hypervolume, knob_distance, select_indices, stand_in_trial, tpe_picks

#: the share of the pool offered per simulation seed ("what the cheap stage sampled")
OFFERED_SHARE = 0.75
#: the candidates ``evolution+screen`` scores per child: the parent's nearest untrained neighbours
SCREEN = 4
#: the cheap scores every run has (the shipped default, and plain size)
BASE_SCORES = ("fitted", "flops")
#: the arms that read a cheap score (``arm:score``; unqualified: ``fitted``)
SCORED_ARMS = ("today", "select", "evolution+front", "evolution+screen", "evolution+front+screen")
PLAIN_ARMS = ("random", "optuna-tpe", "evolution")
METRICS = ("best_AP", "best_AP_share", "hypervolume", "hypervolume_share")
REFERENCE_ARM = "today"

ScoreFn = Callable[[dict[str, Any]], float]


def shipped_score(kind: str) -> ScoreFn:
    """A registered cheap score (``nas.engine.scores.registry``) of a table row: from its FLOPs, params and
    network-level metrics, as the cheap stage computes it."""
    from nas.engine.scores.registry import cheap_score

    return lambda row: cheap_score(kind, row["flops"], row["params"], row["metrics"])


# -- the pool -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Design:
    """One pooled design: what an arm may see (``flops``, ``scores``, ``knobs``) and the trainings
    it may observe (``full``, ``low``: (seed, AP) pairs); ``true_ap`` judges it."""

    index: int
    id: str
    key: str
    pattern: str
    flops: float
    true_ap: float
    full: tuple[tuple[int, float], ...]
    low: tuple[tuple[int, float], ...]
    knobs: dict[str, Any]
    scores: dict[str, float]


@dataclasses.dataclass(frozen=True)
class Pool:
    designs: tuple[Design, ...]
    #: knob Hamming distances between pooled designs, by index
    distance: np.ndarray
    #: a low-fidelity training's cost in units, and its epochs and the full recipe's
    low_cost: Fraction
    epochs: int
    low_epochs: int | None


@dataclasses.dataclass(frozen=True)
class Training:
    design: int
    fidelity: str
    seed: int
    AP: float
    cost: Fraction


def build_pool(table: Sequence[dict[str, Any]], scores: dict[str, ScoreFn], require_low: bool = False) -> Pool:
    """The table designs with both full seeds (and low rows too, with ``require_low``)."""
    from search_spaces import from_dict
    from search_spaces.space import SPACES

    space = SPACES["yolor"]
    rows = [d for d in table if d["AP"] is not None and (d["trainings"].get("low") or not require_low)]
    epochs = {t["epochs"] for d in rows for t in d["trainings"]["full"].values()}
    low_epochs = {t["epochs"] for d in rows for t in d["trainings"].get("low", {}).values()}
    if len(epochs) > 1 or len(low_epochs) > 1:
        raise ValueError(f"the table mixes recipes: full epochs {sorted(epochs)}, low epochs {sorted(low_epochs)}")
    full_epochs = epochs.pop() if epochs else 1
    low = low_epochs.pop() if low_epochs else None
    designs = []
    for i, d in enumerate(rows):
        cfg = from_dict(d["config"])
        designs.append(
            Design(
                index=i,
                id=d["id"],
                key=cfg.key(),
                pattern=d["pattern"],
                flops=float(d["flops"]),
                true_ap=float(d["AP"]),
                full=tuple((s, float(d["trainings"]["full"][s]["AP"])) for s in SEEDS),
                low=tuple(sorted((s, float(t["AP"])) for s, t in d["trainings"].get("low", {}).items())),
                knobs=space.params_of(cfg),
                scores={name: float(fn(d)) for name, fn in scores.items()},
            )
        )
    n = len(designs)
    distance = np.zeros((n, n), dtype=np.int32)
    for i in range(n):
        for j in range(i + 1, n):
            distance[i, j] = distance[j, i] = knob_distance(designs[i].knobs, designs[j].knobs)
    return Pool(tuple(designs), distance, Fraction(low or 0, full_epochs), full_epochs, low)


# -- what an arm observes -------------------------------------------------------------------------
class Lab:
    """An arm's trainings: each observes one seed's AP, drawn by the arm's RNG; a repeat of the same
    design at the same fidelity draws the design's next seed (cycling)."""

    def __init__(self, pool: Pool, rng: random.Random) -> None:
        self.pool, self.rng = pool, rng
        self.trainings: list[Training] = []
        self._draws: dict[tuple[int, str], list[int]] = {}

    def train(self, d: Design, fidelity: str) -> float:
        runs = d.full if fidelity == "full" else d.low
        if not runs:
            raise ValueError(f"design {d.id} has no {fidelity}-fidelity training in the table")
        done = self._draws.setdefault((d.index, fidelity), [])
        n = sum(t.design == d.index and t.fidelity == fidelity for t in self.trainings)
        if n == len(done):  # a fresh round of the design's seeds, in a random order
            done += self.rng.sample(range(len(runs)), len(runs))
        k = done[n]
        seed, ap = runs[k]
        cost = Fraction(1) if fidelity == "full" else self.pool.low_cost
        self.trainings.append(Training(d.index, fidelity, seed, ap, cost))
        return ap

    @property
    def trained(self) -> set[int]:
        return {t.design for t in self.trainings}


Arm = Callable[[Pool, list[Design], int, random.Random], list[Training]]


def select_designs(designs: Sequence[Design], k: int, score: str) -> list[Design]:
    """The search's selection (``select_candidates``) of ``k`` among ``designs`` by ``score``."""
    trials = [stand_in_trial(i, d.scores[score], d.flops, d.key, None, d.pattern) for i, d in enumerate(designs)]
    return [designs[i] for i in select_indices(trials, k, BUDGET)]


def today(pool: Pool, offered: list[Design], k: int, rng: random.Random, score: str = "fitted") -> list[Training]:
    """The search as it runs: ``plan_rungs(K, E, pool=len(offered))``; the bottom rung by
    ``select_candidates`` (among the offered designs with low rows when it is a low rung; the plan
    is redone for that many when they are fewer than it asks, and is full trainings only when none
    is offered); each rung promotes its best
    observed APs to the next, retrained from scratch (a fresh seed draw)."""
    from nas.engine.proxy.fidelity import plan_rungs

    lab = Lab(pool, rng)
    plan, eligible = plan_rungs(k, pool.epochs, pool=len(offered)), offered
    if not plan[0].full:
        eligible = [d for d in offered if d.low]
        if len(eligible) < plan[0].n:
            plan = plan_rungs(k, pool.epochs, pool=len(eligible))
        if not plan or plan[0].full:  # no low rows offered: full trainings only
            plan, eligible = plan_rungs(k, pool.epochs, pool=len(offered), min_epochs=pool.epochs), offered
    for r in plan:
        if not r.full and r.epochs != pool.low_epochs:
            raise ValueError(f"the plan trains {r.epochs} of {r.of} epochs; the table has {pool.low_epochs}")
    rung = select_designs(eligible, plan[0].n, score)
    for i, r in enumerate(plan):
        if i:
            ranked = sorted(range(len(rung)), key=lambda j: -observed[j])  # stable: ties keep order
            rung = [rung[j] for j in ranked[: r.n]]
        observed = [lab.train(d, "full" if r.full else "low") for d in rung]
    return lab.trainings


def select(pool: Pool, offered: list[Design], k: int, rng: random.Random, score: str = "fitted") -> list[Training]:
    """K picks of ``select_candidates`` by ``score``, all trained at full fidelity."""
    lab = Lab(pool, rng)
    for d in select_designs(offered, k, score):
        lab.train(d, "full")
    return lab.trainings


def random_arm(pool: Pool, offered: list[Design], k: int, rng: random.Random) -> list[Training]:
    """K uniform full trainings of distinct offered designs."""
    lab = Lab(pool, rng)
    for d in rng.sample(offered, min(k, len(offered))):
        lab.train(d, "full")
    return lab.trainings


def tpe(pool: Pool, offered: list[Design], k: int, rng: random.Random) -> list[Training]:
    """Optuna's TPE on (observed AP ↑, FLOPs ↓), proposals snapped to the nearest offered design
    not yet trained (``benchmarks.pool_sim.tpe_picks``)."""
    from search_spaces.space import SPACES

    lab = Lab(pool, rng)

    def observe(i: int) -> tuple[float, float]:
        return lab.train(offered[i], "full"), offered[i].flops

    tpe_picks([d.knobs for d in offered], SPACES["yolor"], k, rng.randrange(2**31), observe)
    return lab.trainings


def nearest_untrained(pool: Pool, parent: Design, offered: list[Design], trained: set[int]) -> list[Design]:
    """The offered untrained designs at the smallest knob distance (> 0) from ``parent``."""
    free = [d for d in offered if d.index not in trained and d.index != parent.index]
    if not free:
        return []
    dist = pool.distance[parent.index]
    low = min(dist[d.index] for d in free)
    return [d for d in free if dist[d.index] == low]


def evolution(
    pool: Pool,
    offered: list[Design],
    k: int,
    rng: random.Random,
    score: str = "fitted",
    front: bool = False,
    screen: bool = False,
) -> list[Training]:
    """Regularised evolution (Real et al. 2019) on observed AP, on a pool: a population of
    P = max(2, K // 4) (random, or with ``front`` the selection by ``score``); each step a
    tournament of S = max(2, P // 2) picks the parent (best observed), the child is a random
    nearest untrained neighbour of it (with ``screen``: of its ``SCREEN`` nearest untrained
    neighbours, the best by ``score``), and the oldest member dies."""
    lab = Lab(pool, rng)
    size = min(max(2, k // 4), k, len(offered))
    first = select_designs(offered, size, score) if front else rng.sample(offered, size)
    population: deque[tuple[Design, float]] = deque((d, lab.train(d, "full")) for d in first)
    tournament = max(2, size // 2)
    while len(lab.trainings) < k:
        parent = max(rng.sample(list(population), min(tournament, len(population))), key=lambda m: m[1])[0]
        if screen:
            trained = lab.trained
            free = [d for d in offered if d.index not in trained]
            if not free:
                break
            ties = {d.index: rng.random() for d in free}
            dist = pool.distance[parent.index]
            near = sorted(free, key=lambda d: (dist[d.index], ties[d.index]))[:SCREEN]
            child = max(near, key=lambda d: d.scores[score])  # first of equals: the nearest
        else:
            near = nearest_untrained(pool, parent, offered, lab.trained)
            if not near:
                break
            child = rng.choice(near)
        population.append((child, lab.train(child, "full")))
        population.popleft()
    return lab.trainings


# -- the arms by name -----------------------------------------------------------------------------
def arm_names(scores: Sequence[str]) -> list[str]:
    """The default arms: the plain ones, the score-guided ones with ``fitted``, ``today`` and
    ``select`` with plain FLOPs too, and every score-guided arm with each extra score."""
    out = ["today", "today:flops", "select:fitted", "select:flops", "random", "optuna-tpe", "evolution"]
    out += ["evolution+front", "evolution+screen", "evolution+front+screen"]
    for s in scores:
        if s not in BASE_SCORES:
            out += [f"{a}:{s}" for a in SCORED_ARMS]
    return out


def make_arm(name: str, scores: Sequence[str]) -> Arm:
    """The arm called ``name`` (``arm`` or ``arm:score``); ValueError saying what is accepted."""
    base, _, score = name.partition(":")
    if base in PLAIN_ARMS and not score:
        return {"random": random_arm, "optuna-tpe": tpe, "evolution": evolution}[base]
    score = score or "fitted"
    if base not in SCORED_ARMS or score not in scores:
        raise ValueError(
            f"arm {name!r} is not accepted; accepted: {', '.join(PLAIN_ARMS)}, or one of "
            f"{', '.join(SCORED_ARMS)} optionally with :SCORE, SCORE one of {', '.join(scores)}"
        )
    if base == "today":
        return lambda p, o, k, r: today(p, o, k, r, score)
    if base == "select":
        return lambda p, o, k, r: select(p, o, k, r, score)
    front, screen = "+front" in base, "+screen" in base
    return lambda p, o, k, r: evolution(p, o, k, r, score, front=front, screen=screen)


# -- judging --------------------------------------------------------------------------------------
def judge(pool: Pool, trainings: Sequence[Training]) -> dict[str, float]:
    """An arm's result by the truth: the true AP of its reported best (best observed full AP, the
    first trained of equals) and the hypervolume of its full-fidelity designs at true AP."""
    full = [t for t in trainings if t.fidelity == "full"]
    if not full:
        return {"best_AP": 0.0, "hypervolume": 0.0}
    reported = max(full, key=lambda t: t.AP)  # max keeps the first of equals
    front = {t.design for t in full}
    pts = [(pool.designs[i].true_ap, pool.designs[i].flops) for i in sorted(front)]
    return {"best_AP": pool.designs[reported.design].true_ap, "hypervolume": hypervolume(pts)}


def offered_of(pool: Pool, seed: int) -> list[Design]:
    """Simulation seed ``seed``'s offered designs: the same for every arm and every K."""
    rng = random.Random(f"gp-search-offered-{seed}")
    n = len(pool.designs)
    return [pool.designs[i] for i in sorted(rng.sample(range(n), max(1, round(OFFERED_SHARE * n))))]


def ideal(pool: Pool, offered: Sequence[Design]) -> dict[str, float]:
    """The best any arm could report: every offered design trained, judged by the truth."""
    return {
        "best_AP": max(d.true_ap for d in offered),
        "hypervolume": hypervolume([(d.true_ap, d.flops) for d in offered]),
    }


def simulate(pool: Pool, k: int, seed: int, arms: dict[str, Arm]) -> dict[str, dict[str, float]]:
    """Every arm on seed ``seed``'s offered designs at budget ``k``: judged, and what it spent."""
    offered = offered_of(pool, seed)
    best = ideal(pool, offered)
    out = {}
    for name, arm in arms.items():
        trainings = arm(pool, offered, k, random.Random(f"gp-search-{seed}-{k}-{name}"))
        e = judge(pool, trainings)
        out[name] = {
            **e,
            "best_AP_share": e["best_AP"] / best["best_AP"] if best["best_AP"] else 0.0,
            "hypervolume_share": e["hypervolume"] / best["hypervolume"] if best["hypervolume"] else 0.0,
            "units": float(sum(t.cost for t in trainings)),
            "full_trainings": sum(t.fidelity == "full" for t in trainings),
        }
    return out


def ci95(v: Sequence[float]) -> dict[str, float]:
    """Mean and its 95 % interval, ±1.96 standard errors over the simulation seeds."""
    a = np.asarray(v, dtype=float)
    m, h = float(a.mean()), 1.96 * sem(a)
    return {"mean": m, "ci95": [m - h, m + h]}


def summarise(runs: list[dict[str, dict[str, float]]], reference: str = REFERENCE_ARM) -> dict[str, Any]:
    """Per arm: mean and CI of each metric, and the paired difference against ``reference`` on
    the same seeds."""
    out: dict[str, Any] = {}
    for arm in runs[0]:
        out[arm] = {m: ci95([r[arm][m] for r in runs]) for m in (*METRICS, "units", "full_trainings")}
        out[arm]["units_max"] = max(r[arm]["units"] for r in runs)
        out[arm]["vs_" + reference] = {m: ci95([r[arm][m] - r[reference][m] for r in runs]) for m in METRICS}
    return out


def _cell(s: dict[str, Any], digits: int = 4) -> str:
    lo, hi = s["ci95"]
    return f"{s['mean']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def report(summary: dict[str, Any], reference: str = REFERENCE_ARM) -> str:
    from nas.core.table import format_table

    vs = "vs_" + reference
    rows = [
        [
            arm,
            _cell(s["best_AP"]),
            f"{s['best_AP_share']['mean']:.3f}",
            _cell(s["hypervolume"]),
            f"{s['hypervolume_share']['mean']:.3f}",
            _cell(s[vs]["best_AP"]),
            _cell(s[vs]["hypervolume"]),
            f"{s['units']['mean']:.1f}",
        ]
        for arm, s in summary.items()
    ]
    header = ["arm", "best AP [95% CI]", "share", "HV [95% CI]", "share", f"Δbest vs {reference}", "ΔHV", "units"]
    return format_table(header, rows, "<>>>>>>>")


def run(
    pool: Pool, ks: Sequence[int], seeds: int, arms: dict[str, Arm], progress: Callable[[str], None] = print
) -> dict[str, Any]:
    """The simulation for every K: per-seed results, and their summary."""
    results: dict[str, Any] = {}
    offered = len(offered_of(pool, 0))
    for k in ks:
        if k > offered:
            results[f"K={k}"] = {"skipped": f"K exceeds the {offered} offered designs"}
            progress(f"K={k}: skipped, the pool offers {offered} designs")
            continue
        per_seed = [simulate(pool, k, s, arms) for s in range(seeds)]
        summary = summarise(per_seed)
        results[f"K={k}"] = {"summary": summary, "per_seed": per_seed}
        progress(f"K={k} (pool {len(pool.designs)}, {offered} offered; {seeds} seeds)\n{report(summary)}")
    return results


def _positive(text: str) -> int:
    v = int(text)
    if v < 1:
        raise ValueError
    return v


def is_shipped(fit_file: Path) -> bool:
    """Whether the committed fit is the search's shipped ``fitted`` score (same features and weights)."""
    from nas.engine.scores.registry import FITTED_SCORE_FILE

    fit = json.loads(fit_file.read_text())["features"]
    shipped = json.loads(FITTED_SCORE_FILE.read_text())["features"]
    return {k.removeprefix("gp."): round(v["weight"], 4) for k, v in fit.items()} == {
        k: round(v["weight"], 4) for k, v in shipped.items()
    }


def file_score(path: Path) -> ScoreFn:
    """A fitted-score file (``nas.engine.scores.registry`` format) as a score of a table row."""
    from nas.engine.scores.registry import Candidate, fitted_weights, linear_rank_score

    features = fitted_weights(path)["features"]
    return lambda row: linear_rank_score(Candidate(row["flops"], row["params"], row["metrics"]), features)


def gp_fit_score(fit_file: Path, designs: Path, results: Path, scale: str) -> ScoreFn:
    """The committed gradient-path fit as a cheap score of a table row (``gp_analysis.table_scores``:
    out of fold on the fit designs, so no arm reads a score fitted on its own AP)."""
    from benchmarks.gp_analysis import table_scores

    by_id = table_scores(load_table(designs, results, scale), json.loads(fit_file.read_text()))
    return lambda row: by_id[row["id"]]


def main(argv: list[str] | None = None, scores: dict[str, ScoreFn] | None = None) -> int:
    """The CLI. ``scores`` adds cheap scores, ``{name: function(table_row) -> float}`` (e.g. the
    gradient-path score): each gives every score-guided arm as ``arm:name``."""
    all_scores: dict[str, ScoreFn] = {s: shipped_score(s) for s in BASE_SCORES} | dict(scores or {})
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--k", nargs="+", default=["4", "8", "16", "32"], help="budgets, in units of full trainings")
    p.add_argument("--seeds", default="200", help="simulation seeds")
    p.add_argument(
        "--arms",
        nargs="+",
        default=None,
        help=f"a subset of the arms (default: all; {REFERENCE_ARM}, the reference, always runs)",
    )
    p.add_argument(
        "--pool",
        choices=("full", "low"),
        default="full",
        help="full: designs with both full seeds; low: only those with low rows too (every arm on the halving arms' pool)",
    )
    p.add_argument("--scale", choices=sorted(SCALES), default="reduced")
    p.add_argument(
        "--gp-fit",
        type=Path,
        default=None,
        help="the committed fit of benchmarks.gp_analysis, read out of fold on the fit designs: as 'fitted' when it "
        f"is the shipped score, else as the score 'gp' (default on the committed table: {GP_FIT_FILE.name})",
    )
    p.add_argument(
        "--score",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="also a fitted-score file (nas.engine.scores.registry format) as the score NAME, e.g. the rank study's earlier one",
    )
    p.add_argument("--designs-file", type=Path, default=DESIGNS_FILE, help=argparse.SUPPRESS)
    p.add_argument("--results-file", type=Path, default=RESULTS_FILE, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.gp_fit is None and args.results_file == RESULTS_FILE and GP_FIT_FILE.exists():
        args.gp_fit = GP_FIT_FILE  # the committed table: its shipped score must be read out of fold
    if args.gp_fit is not None:
        if not args.gp_fit.exists():
            p.exit(2, f"error: --gp-fit {args.gp_fit} is missing; accepted: the file gp_analysis --write-fit wrote\n")
        name = "fitted" if is_shipped(args.gp_fit) else "gp"  # the shipped score, read without leaking
        all_scores[name] = gp_fit_score(args.gp_fit, args.designs_file, args.results_file, args.scale)
    for spec in args.score:
        name, _, file = spec.partition("=")
        if not name or name in all_scores or not Path(file).is_file():
            p.exit(
                2, f"error: --score {spec!r} is not accepted; accepted: NAME=FILE, a new name and a fitted-score file\n"
            )
        all_scores[name] = file_score(Path(file))
    try:
        ks = [_positive(v) for v in args.k]
    except ValueError:
        p.exit(2, f"error: --k {' '.join(args.k)!r} is not accepted; accepted: positive integers\n")
    try:
        seeds = _positive(args.seeds)
    except ValueError:
        p.exit(2, f"error: --seeds {args.seeds!r} is not accepted; accepted: a positive integer\n")
    names = args.arms or arm_names(list(all_scores))
    try:
        arms = {n: make_arm(n, list(all_scores)) for n in dict.fromkeys([REFERENCE_ARM, *names])}
    except ValueError as e:
        p.exit(2, f"error: {e}\n")
    for path in (args.designs_file, args.results_file):
        if not path.exists():
            p.exit(2, f"error: {path} is missing; accepted: the table's files (benchmarks.gp_table --collect)\n")
    pool = build_pool(load_table(args.designs_file, args.results_file, args.scale), all_scores, args.pool == "low")
    if len(pool.designs) < 2:
        p.exit(
            2,
            f"error: {args.results_file} has {len(pool.designs)} designs with both full seeds"
            f"{' and low rows' if args.pool == 'low' else ''} at scale {args.scale}; accepted: a table of at least 2\n",
        )
    result: dict[str, Any] = {
        "simulation": "pool-based on the gradient-path table (docs/gp-features.md, 'Search strategies on the table')",
        "scale": args.scale,
        "pool": args.pool,
        "pool_size": len(pool.designs),
        "pool_with_low": sum(bool(d.low) for d in pool.designs),
        "offered": len(offered_of(pool, 0)),
        "low_cost": float(pool.low_cost),
        "seeds": seeds,
        "reference": REFERENCE_ARM,
        "arms": list(arms),
        "results": run(pool, ks, seeds, arms),
    }
    print(write_result("gp_search", result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
