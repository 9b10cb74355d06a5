"""Search efficiency with real trainings on the per-stage space: five ways to spend the compute
of the same K full proxy trainings.

Unlike ``benchmarks/gp_search.py`` (a simulation over the gradient-path table's pool), every arm
here proposes configs from the whole per-stage space (``SPACES["yolor"]``) and everything it
trains is trained. Per seed, with the compute of K full trainings each (the default search's K = 4):

* ``search`` — ``nas search`` as it runs by default (``nas.engine.search``, ``--proxy-stage
  select``): the cheap stage, the selection, its K picks trained in full, the ledger recorded.
  Its seed is the search's ``--seed`` (cheap stage and trainings).
* ``halving`` — the same search with ``--proxy-stage halving`` (the default before issue 28):
  with 5 epochs, 5 candidates × 2 epochs, then the best 2 × 5, recalibrating between the rungs.
  Only its full-fidelity trainings count as its results.
* ``optuna-tpe`` — Optuna's TPE sampler on (AP ↑, FLOPs ↓) driven by the proxy alone, no cheap
  stage: proposals over budget are told infeasible without training (a free FLOPs check, as
  any search would do), the rest trained one after another, each result told before the next
  ask. ``n_startup_trials = K // 2``.
* ``random`` — K uniformly random feasible configs, trained.
* ``evolution`` — regularised (aging) evolution (Real et al. 2019) on measured AP, no cheap
  score: a population of ``max(2, K // 2)`` random feasible configs, then each child mutates
  (``nas.engine.cheap.evolution.mutate``, about two genes) the best of a tournament of 2, is trained
  and replaces the oldest member.

(Under ``--version v1`` the arms are the ones of the v1 study: ``adaptive`` = the search with
halving, ``fixed-k`` = its picks trained outside the search.)

Trainings outside the searches use the rank study's recipe and folders
(``runs/bench/rank_study/<hash>/seed0``), so a config trained by any of those arms is trained
once; the searches run under ``runs/bench/search_efficiency_live/<recipe>[_<version>]/searches/``.
Reported per arm (mean and sem over seeds): best AP, the hypervolume of (AP ↑, FLOPs ↓)
against (0, budget), also as a share of the front of every config trained at this recipe (for
v2 at the reduced scale: with the gradient-path table's seed-0 trainings, the same recipe), and
the distinct designs (block patterns) trained; and the default's paired difference to every
other arm (mean ± sem over seeds). Resumable; ``--shard i/n`` splits the (arm, seed) tasks
between n workers, and a run without ``--shard`` then reports.

Issue 28's confirmation (5 seeds; about 35 min with 2 workers on 2 idle CPU cores):

    .venv/bin/python -m benchmarks.search_efficiency_live --seeds 5 --shard 0/2 &
    .venv/bin/python -m benchmarks.search_efficiency_live --seeds 5 --shard 1/2 &
    wait; .venv/bin/python -m benchmarks.search_efficiency_live --seeds 5  # report
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.gp_table import RECIPE_VERSION as TABLE_VERSION
from benchmarks.gp_table import load_table
from benchmarks.lib.common import BENCH_DIR, write_json, write_result
from benchmarks.lib.designs import BUDGET, config_flops, random_feasible
from benchmarks.lib.recipes import RECIPES, add_version_flag, make_recipe, result_name, study_recipe
from benchmarks.lib.stats import bootstrap_ci, bootstrap_tau_difference, partial_tau, sem
from benchmarks.lib.study import cand_dir, finished, run_once, shard_arg, train
from benchmarks.pool_sim import hypervolume

ARMS = ("search", "halving", "optuna-tpe", "random", "evolution")
#: the arms of the v1 study (the search halved then; ``fixed-k`` was the search before halving)
ARMS_V1 = ("adaptive", "fixed-k", "optuna-tpe", "random", "evolution")
#: the search arms: arm -> --proxy-stage
SEARCH_ARMS = {"search": "select", "halving": "halving", "adaptive": "halving"}
#: regularised evolution: tournament size, and the expected genes a mutation redraws
TOURNAMENT, MUTATED_GENES = 2, 2.0
PICKS_DIR = BENCH_DIR / "search_efficiency_live"
DATA_DIR = Path(__file__).resolve().parent / "data"


@contextlib.contextmanager
def _training_lock(cfg: Any, recipe: dict[str, Any]) -> Iterator[None]:
    """Two workers that pick the same config train it once: the second waits, then reuses."""
    folder = cand_dir(cfg, recipe)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".train.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def trained_ap(cfg: Any, recipe: dict[str, Any], threads: int) -> float:
    with _training_lock(cfg, recipe):
        m = finished(cfg, recipe, 0) or train(cfg, recipe, 0, threads)
    return float(m.get("AP") or 0.0) if m.get("status") == "ok" else 0.0


def two_stage_picks(seed: int, k: int, candidates: int) -> list[Any]:
    import optuna

    from evaluators.recipe import Recipe
    from nas.engine import SearchOptions, cheap_stage, select_candidates
    from nas.engine.record.trials import config_of
    from search_spaces import parse_yaml

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opts = SearchOptions(
        budget=int(BUDGET), name=f"efficiency-{seed}", candidates=candidates, trials=k, recipe=Recipe(seed=seed)
    )
    study = cheap_stage(optuna.storages.InMemoryStorage(), opts, progress=False)
    chosen = select_candidates(study.get_trials(deepcopy=False), k, int(BUDGET))
    return [parse_yaml(config_of(t)) for t in chosen]


def tpe_run(seed: int, k: int, recipe: dict[str, Any], threads: int) -> list[dict[str, Any]]:
    """TPE asks, the proxy answers; only feasible proposals are trained (and counted)."""
    import optuna

    from search_spaces.space import SPACES

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = SPACES["yolor"]
    study = optuna.create_study(
        directions=["maximize", "minimize"],
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, k // 2)),
    )
    picks: list[dict[str, Any]] = []
    while len(picks) < k:
        trial = study.ask()
        cfg = space.suggest(trial).canonical()
        flops = config_flops(cfg)
        if flops >= BUDGET:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        ap = trained_ap(cfg, recipe, threads)
        study.tell(trial, [ap, float(flops)])
        picks.append(_row(cfg, recipe, ap, flops))
    return picks


def evolution_run(seed: int, k: int, recipe: dict[str, Any], threads: int) -> list[dict[str, Any]]:
    """Aging evolution on measured AP: tournament, mutate, train, drop the oldest."""
    from collections import deque

    from nas.engine.cheap.evolution import mutate, random_genome
    from search_spaces.space import SPACES

    space, rng = SPACES["yolor"], random.Random(f"evolution-arm-{seed}")
    size = max(2, k // 2)
    population: deque[tuple[dict[str, Any], float]] = deque()
    picks: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(picks) < k:
        parent = (
            max(rng.sample(list(population), min(TOURNAMENT, len(population))), key=lambda m: m[1])
            if len(population) >= size
            else None
        )
        for attempt in range(10_000):  # over-budget and already-trained children cost nothing
            if parent is None or attempt >= 1000:
                prop = random_genome(space, rng)
            else:
                prop = mutate(space, parent[0], rng, p=min(1.0, MUTATED_GENES / len(parent[0])))
            cfg = prop.config.canonical()
            if cfg.key() not in seen and (flops := config_flops(cfg)) < BUDGET:
                break
        seen.add(cfg.key())
        ap = trained_ap(cfg, recipe, threads)
        population.append((prop.genome, ap))
        if len(population) > size:
            population.popleft()
        picks.append(_row(cfg, recipe, ap, flops))
    return picks


def arms_of(version: str) -> tuple[str, ...]:
    return ARMS_V1 if version == "v1" else ARMS


def task_dir(recipe_name: str, version: str) -> Path:
    """Where the (arm, seed) picks and the searches of one recipe and version live."""
    return PICKS_DIR / (recipe_name if version == "v1" else f"{recipe_name}_{version}")


def search_run(
    seed: int, k: int, candidates: int, recipe_name: str, threads: int, version: str = "v2", stage: str = "select"
) -> list[dict[str, Any]]:
    """The real search (``--proxy-stage stage``) on a private local Ray of ``threads`` CPUs;
    its full-fidelity trainings."""
    import ray

    from nas.engine import SearchOptions, search
    from nas.engine.proxy.ray_cluster import start_or_join
    from search_spaces import from_dict

    opts = SearchOptions(
        budget=int(BUDGET),
        name=f"seed{seed}",
        candidates=candidates,
        trials=k,
        proxy_stage=stage,
        recipe=make_recipe(study_recipe(recipe_name, version), seed),
        runs_dir=str(task_dir(recipe_name, version) / "searches" / stage),
    )
    started = start_or_join(None, threads)  # one CPU per training, like the other arms
    try:
        summary = search(opts, progress=False, log=lambda line: print(f"[{stage} seed {seed}] {line}", flush=True))
    finally:
        if started:
            ray.shutdown()
    recipe = study_recipe(recipe_name, version)
    picks = [
        {**_row(from_dict(r["config"]), recipe, r["AP"], r["flops"]), "dir": str(opts.run_dir)}
        for r in summary["trials"]
        if r["state"] == "COMPLETE"
    ]
    low = sum(1 for r in summary["trials"] if r["state"] == "PRUNED")
    print(f"[{stage} seed {seed}] {len(picks)} full + {low} low-fidelity trainings", flush=True)
    return picks


def _row(cfg: Any, recipe: dict[str, Any], ap: float, flops: int) -> dict[str, Any]:
    return {"key": cfg.key(), "dir": str(cand_dir(cfg, recipe)), "AP": ap, "flops": flops, "config": cfg.to_yaml()}


def pattern_of(pick: dict[str, Any]) -> str:
    from search_spaces import parse_yaml

    return ",".join(parse_yaml(pick["config"]).pattern())


def run_task(arm: str, seed: int, args: argparse.Namespace, recipe: dict[str, Any]) -> list[dict[str, Any]]:
    """The picks of one (arm, seed) task, run once: its picks file marks it done."""
    path = task_dir(args.recipe, args.version) / f"{arm}-seed{seed}.json"
    return run_once(path, lambda: _run_task(arm, seed, args, recipe), indent=2)["picks"]


def _run_task(arm: str, seed: int, args: argparse.Namespace, recipe: dict[str, Any]) -> dict[str, Any]:
    tick = time.perf_counter()
    if arm in SEARCH_ARMS:
        picks = search_run(seed, args.k, args.candidates, args.recipe, args.threads, args.version, SEARCH_ARMS[arm])
    elif arm == "optuna-tpe":
        picks = tpe_run(seed, args.k, recipe, args.threads)
    elif arm == "evolution":
        picks = evolution_run(seed, args.k, recipe, args.threads)
    else:
        cfgs = two_stage_picks(seed, args.k, args.candidates) if arm == "fixed-k" else random_feasible(seed, args.k)
        picks = [_row(c, recipe, trained_ap(c, recipe, args.threads), config_flops(c)) for c in cfgs]
    task = {"picks": picks, "wall_s": time.perf_counter() - tick}
    print(
        f"{arm} seed {seed}: AP {[round(p['AP'], 3) for p in picks]} ({time.perf_counter() - tick:.0f} s)", flush=True
    )
    return task


def known_front(recipe_name: str, runs: dict[str, list[dict[str, Any]]], version: str = "v1") -> float:
    """Hypervolume of everything trained at this recipe: all picks, and the rank study's pool
    (v1) or the gradient-path table's seed-0 trainings (v2 at the reduced scale, its recipe)."""
    pts = [(p["AP"], p["flops"]) for picks in runs.values() for p in picks]
    study = BENCH_DIR / f"{result_name('rank_study', recipe_name, version)}.json"
    if study.exists():
        pts += [(r["AP"], r["predictors"]["flops"]) for r in json.loads(study.read_text())["rows"]]
    if version == TABLE_VERSION and recipe_name == "reduced":
        for d in load_table():
            if (row := d["trainings"].get("full", {}).get(0)) is not None:
                pts.append((row["AP"], d["flops"]))
    return hypervolume(pts)


def paired_gaps(per_seed: dict[str, dict[str, list[float]]], default: str) -> dict[str, dict[str, float]]:
    """The default arm minus each other arm, seed by seed: mean and sem of the difference of best
    AP and of hypervolume (the seed noise the live run is judged against).

    >>> gaps = paired_gaps({"a": {"best_AP": [0.2, 0.3], "hypervolume": [1.0, 1.0]},
    ...                     "b": {"best_AP": [0.1, 0.1], "hypervolume": [1.0, 2.0]}}, "a")
    >>> round(gaps["b"]["best_AP"], 3), round(gaps["b"]["hypervolume"], 3), round(gaps["b"]["hypervolume_sem"], 3)
    (0.15, -0.5, 0.5)
    """
    out = {}
    for arm, values in per_seed.items():
        if arm == default:
            continue
        out[arm] = {}
        for metric in ("best_AP", "hypervolume"):
            diff = np.subtract(per_seed[default][metric], values[metric])
            out[arm][metric] = float(diff.mean())
            out[arm][f"{metric}_sem"] = sem(diff)
    return out


def score_check(runs: dict[str, list[dict[str, Any]]], n_boot: int = 1000) -> dict[str, Any]:
    """The shipped ``fitted`` score against FLOPs on every distinct design the arms trained: a test
    outside the gradient-path table, on the designs searches actually propose (the search's picks
    sit at the score's extremes, the other arms' anywhere in the space). One training each."""
    from nas.engine import cheap_score, score_candidate
    from nas.engine.stats import kendall_tau
    from search_spaces import parse_yaml

    seen = {p["key"]: p for picks in runs.values() for p in picks}
    scored = [score_candidate(parse_yaml(p["config"])) for p in seen.values()]
    fitted = [cheap_score("fitted", c["flops"], c["params"], c["metrics"]) for c in scored]
    flops = [float(c["flops"]) for c in scored]
    ap = [p["AP"] for p in seen.values()]
    return {
        "designs": len(ap),
        "fitted_tau": kendall_tau(fitted, ap),
        "fitted_tau_ci95": bootstrap_ci(fitted, ap, kendall_tau, n_boot),
        "flops_tau": kendall_tau(flops, ap),
        "flops_tau_ci95": bootstrap_ci(flops, ap, kendall_tau, n_boot),
        "fitted_minus_flops_ci95": bootstrap_tau_difference(flops, fitted, ap, n_boot),
        "fitted_partial_tau_given_flops": partial_tau(fitted, ap, flops),
    }


def _ci(ci: Any) -> str:
    return f"[{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "[n/a]"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--k", type=int, default=4, help="trained configs per arm and seed")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--candidates", type=int, default=6000, help="cheap-stage candidates (the search's default)")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="reduced")
    add_version_flag(p)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--shard", default=None, help="i/n: run only tasks j with j mod n == i, no report")
    p.add_argument("--data", action="store_true", help="also write the result into benchmarks/data/ (committed)")
    args = p.parse_args(argv)
    recipe = study_recipe(args.recipe, args.version)
    arms = arms_of(args.version)
    tasks = [(arm, seed) for seed in range(args.seeds) for arm in arms]
    shard = shard_arg(p, args.shard)
    runs = {
        f"{arm}-seed{seed}": run_task(arm, seed, args, recipe) for j, (arm, seed) in enumerate(tasks) if shard.owns(j)
    }
    if args.shard:
        return 0
    ideal = known_front(args.recipe, runs, args.version)
    result: dict[str, Any] = {"recipe": {"name": args.recipe, **recipe}, "k": args.k, "seeds": args.seeds}
    result["reference_hypervolume"] = ideal
    result["arms"] = {}
    for arm in arms:
        per_seed = [runs[f"{arm}-seed{s}"] for s in range(args.seeds)]
        best = np.array([max(p["AP"] for p in picks) for picks in per_seed])
        hv = np.array([hypervolume([(p["AP"], p["flops"]) for p in picks]) for picks in per_seed])
        result["arms"][arm] = {
            "best_AP": float(best.mean()),
            "best_AP_sem": sem(best),
            "hypervolume": float(hv.mean()),
            "hypervolume_sem": sem(hv),
            "hypervolume_share": float(hv.mean() / ideal) if ideal else None,
            "distinct_patterns": float(np.mean([len({pattern_of(p) for p in picks}) for picks in per_seed])),
            "per_seed_best_AP": best.tolist(),
            "per_seed_hypervolume": hv.tolist(),
            "picks": per_seed,
        }
        a = result["arms"][arm]
        print(
            f"{arm:12s} best AP {a['best_AP']:.3f} ± {a['best_AP_sem']:.3f}  HV {a['hypervolume']:.4f} ± "
            f"{a['hypervolume_sem']:.4f}  share of the known front {a['hypervolume_share']:.2f}  "
            f"patterns {a['distinct_patterns']:.1f}"
        )
    default = arms[0]
    gaps = paired_gaps(
        {a: {m: result["arms"][a][f"per_seed_{m}"] for m in ("best_AP", "hypervolume")} for a in arms}, default
    )
    result["default_minus_arm"] = gaps
    for arm, g in gaps.items():
        print(
            f"{default} − {arm:10s} best AP {g['best_AP']:+.3f} ± {g['best_AP_sem']:.3f}  "
            f"HV {g['hypervolume']:+.4f} ± {g['hypervolume_sem']:.4f}"
        )
    result["score_check"] = check = score_check(runs)
    print(
        f"on the {check['designs']} designs trained: fitted τ {check['fitted_tau']:.2f} {_ci(check['fitted_tau_ci95'])}, "
        f"FLOPs τ {check['flops_tau']:.2f} {_ci(check['flops_tau_ci95'])}, fitted − FLOPs "
        f"{_ci(check['fitted_minus_flops_ci95'])}, partial τ given FLOPs {check['fitted_partial_tau_given_flops']:.2f}"
    )
    name = result_name("search_efficiency_live", args.recipe, args.version)
    write_result(name, result)
    if args.data:
        write_json(DATA_DIR / f"{name}.json", result, indent=1, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
