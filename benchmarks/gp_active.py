"""Active rounds: the gradient-path table grows where the search looks (docs/gp-features.md).

The table's 120 designs were drawn uniformly over block pairs and FLOPs bands; the cheap stage
then maximises the fitted score over the whole space and lands where the table has almost no
data. Round ``r`` lets the search itself propose: the cheap stage, scored by the score committed
at the end of round ``r - 1``, runs at each of the table's four band tops and two seeds; the
designs it would train (its picks, then its reserve) are registered before any of them trains,
trained with the table's 2 seeds, and the committed score is tested on them **prospectively**
before anything is refitted.

    .venv/bin/python -m benchmarks.gp_active --register 1        # once, then commit the file
    .venv/bin/python -m benchmarks.gp_table --round 1 --shard 0/2 &
    .venv/bin/python -m benchmarks.gp_table --round 1 --shard 1/2 &
    .venv/bin/python -m benchmarks.gp_table --collect
    .venv/bin/python -m benchmarks.gp_active --prospective 1     # the committed score on round 1

The rule (:data:`RULE`) is a pure function of the round, the committed score and the table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.gp_table import (
    DESIGNS_FILE,
    RESULTS_FILE,
    ROOT,
    SEEDS,
    design_record,
    load_table,
    round_file,
)
from benchmarks.lib.stats import bootstrap_ci, bootstrap_tau_difference, partial_tau
from benchmarks.lib.study import write_once
from nas.engine.stats import kendall_tau

#: the cheap stage runs at the tops of the table's four FLOPs bands (640 px)
BUDGETS_G = (37.5, 75.0, 112.5, 150.0)
#: cheap-stage seeds per budget; round r uses seeds 100 r + s
CHEAP_SEEDS = (0, 1)
#: designs registered per budget (4 x 8 = 32 per round)
PER_BUDGET = 8
#: the search's K and its reserve (nas.engine.driver.RESERVE_FACTOR x K)
PICKS, RESERVE = 4, 12
#: the committed score of each round's proposals: the commit that holds its fit file
FIT_PATH = "nas/engine/scores/data/fitted_score.json"
#: a re-scoring surrogate (below) reads the best candidates of each of the K FLOPs bands by the steering score
TOP_PER_BAND = 250
RULE = (
    "round r: for each budget B in 37.5, 75, 112.5, 150 GFLOPs (640 px) and cheap-stage seed "
    "100 r + s, s in 0, 1: the default cheap stage of nas search (space yolor, 20,000 candidates, "
    "the fitted score committed at the end of round r-1, FLOPs cost) at budget B; its K = 4 "
    "picks (select_candidates(trials, 4, B)), then its reserve (select_candidates(trials, 12, B)). "
    "Per budget, in the order: seed 0's picks, seed 1's picks, seed 0's reserve, seed 1's reserve, "
    "then the rest of the two pools by cheap score; a design already in the table (any split, "
    "any earlier round) or already taken is skipped; the first 8. Ids a<r>-00 ... a<r>-31, budget "
    "by budget. Seeds 0 and 1 at the table's recipe (v2, reduced). Re-scoring (fixed after round 3, "
    "before round 4 was drawn): when the registered decision after round r-1 "
    "(benchmarks.gp_surrogate.prospective_report on round r-1, every design before it known) ships a "
    "fitted model other than linear-net (the steering refit itself), the cheap stage is steered as "
    "above and that model, fitted on every design with AP of the table and rounds 1 ... r-1, "
    "re-scores the 250 best feasible candidates of each of the K = 4 "
    "FLOPs bands of select_candidates (by the steering score); picks, reserve and the rest of the "
    "pools then come from those candidates by the model's score. docs/gp-features.md"
)


def table_keys(rounds: int) -> set[str]:
    """The config keys of every design registered so far: the table and the rounds before ``rounds + 1``."""
    from search_spaces import from_dict

    doc = json.loads(DESIGNS_FILE.read_text())
    designs = [d for split in ("fit", "heldout") for d in doc[split]["designs"]]
    for r in range(1, rounds + 1):
        designs += json.loads(round_file(r).read_text())[f"a{r}"]["designs"]
    return {from_dict(d["config"]).key() for d in designs}


def fit_file(round_: int) -> Path:
    """The score committed at the end of round ``round_`` (round 0: the shipped score's file)."""
    return ROOT / FIT_PATH if round_ == 0 else ROOT / "benchmarks" / "data" / f"gp_fit_r{round_}.json"


def proposing_score(round_: int) -> str:
    """The cheap score that proposes round ``round_``: the shipped ``fitted``, or the score
    committed at the end of round ``round_ - 1``, registered under its own name."""
    from nas.engine.scores.registry import SCORES, fitted_weights, linear_rank_score, register_score

    if round_ == 1:
        return "fitted"
    name = f"fitted-r{round_ - 1}"
    if name not in SCORES:
        weights = fitted_weights(fit_file(round_ - 1))["features"]
        register_score(name)(lambda c: linear_rank_score(c, weights))
    return name


def refit(round_: int) -> dict[str, Any]:
    """The rule's fallback after round ``round_``: the shipped model (``gp_all+flops``) refitted on
    every design with both seeds (the table and rounds 1 … ``round_``), written once to
    :func:`fit_file` in the shipped score's format. It proposes round ``round_ + 1``."""
    from benchmarks.gp_analysis import fit_model, resolve
    from benchmarks.lib.features import LOG_FEATURES
    from nas.engine.scores.registry import fitted_weights, save_fitted_weights

    path = fit_file(round_)
    if path.exists():
        return fitted_weights(path)
    table = [d for d in load_table(rounds=round_) if d["AP"] is not None]
    names = resolve("gp_all+flops", table)
    return save_fitted_weights(
        path,
        fit_model(table, "gp_all+flops"),
        version=f"gp-table-r{round_}-gp_all+flops-{len(names)}f",
        source=f"benchmarks.gp_active --refit {round_}: the shipped model on {len(table)} designs (table + rounds <= {round_})",
        log_features=tuple(n for n in names if n in LOG_FEATURES),
        designs=len(table),
        replaces=fitted_weights()["version"],
    )


def decision_after(round_: int) -> dict[str, Any]:
    """The registered surrogate decision on round ``round_`` (``benchmarks.gp_surrogate``): every
    model fitted on the designs before it; ``ships`` names whether ``best_fitted`` beat both FLOPs
    and the shipped score there."""
    from benchmarks.gp_surrogate import prospective_report

    table = load_table(rounds=round_)
    known = [d for d in table if d["split"] != f"a{round_}"]
    return prospective_report(known, [d for d in table if d["split"] == f"a{round_}"], n_boot=200)["decision"]


def rescoring_model(round_: int) -> str | None:
    """The fitted model that re-scores round ``round_``'s proposals (None: the steering score alone;
    also when the decision ships ``linear-net``, which is the steering refit itself)."""
    if round_ < 2:
        return None
    decision = decision_after(round_ - 1)
    return decision["best_fitted"] if decision["ships"] and decision["best_fitted"] != "linear-net" else None


def rescore(trials: list[Any], budget: int, model: Any) -> list[Any]:
    """The :data:`TOP_PER_BAND` best feasible trials of each of select_candidates' K FLOPs bands
    (by the steering score), as stand-ins scored by the fitted surrogate ``model``."""
    from types import SimpleNamespace

    from nas.engine.cheap.select import feasible_pool, flops_bands
    from nas.engine.record.trials import config_of
    from search_spaces import parse_yaml

    bands = flops_bands(feasible_pool(trials, budget), PICKS, budget)
    top = [t for b in sorted(bands) for t in sorted(bands[b], key=lambda t: (-t.values[0], t.number))[:TOP_PER_BAND]]
    records = [design_record(parse_yaml(config_of(t)), f"c{t.number}", 0) for t in top]
    mean, _ = model.predict(records)
    return [
        SimpleNamespace(
            number=t.number,
            state=t.state,
            values=[float(m), t.values[1]],
            user_attrs=t.user_attrs,
            system_attrs=getattr(t, "system_attrs", {}),
        )
        for t, m in zip(top, mean, strict=True)
    ]


def cheap_pools(round_: int, budget: float) -> list[tuple[list[Any], list[Any], list[Any]]]:
    """For each cheap-stage seed at ``budget``: (picks, reserve, the feasible pool by score)."""
    import optuna

    from benchmarks.gp_surrogate import fit_surrogate
    from evaluators.recipe import Recipe
    from nas.engine import SearchOptions, cheap_stage
    from nas.engine.cheap.select import feasible_pool, select_candidates

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    score = proposing_score(round_)
    name = rescoring_model(round_)
    model = fit_surrogate(load_table(rounds=round_ - 1), name) if name else None
    out = []
    for s in CHEAP_SEEDS:
        b = int(budget * 1e9)
        recipe = Recipe(seed=100 * round_ + s)
        opts = SearchOptions(budget=b, name=f"active{round_}", recipe=recipe, cheap_score=score)
        trials = cheap_stage(optuna.storages.InMemoryStorage(), opts, False).get_trials(deepcopy=False)
        if model is not None:
            trials = rescore(trials, b, model)
        pool = sorted(feasible_pool(trials, b), key=lambda t: (-t.values[0], t.number))
        out.append((select_candidates(trials, PICKS, b), select_candidates(trials, RESERVE, b), pool))
    return out


def propose(round_: int, log: Any = print) -> list[dict[str, Any]]:
    """The round's designs by :data:`RULE` (each with the cheap score and budget it came from)."""
    from nas.engine.record.trials import config_of
    from search_spaces import parse_yaml

    seen = table_keys(round_ - 1)
    log(f"round {round_}: steered by {proposing_score(round_)}, re-scored by {rescoring_model(round_) or 'nothing'}")
    out: list[dict[str, Any]] = []
    for budget in BUDGETS_G:
        t0 = time.perf_counter()
        pools = cheap_pools(round_, budget)
        order = [t for p in pools for t in p[0]] + [t for p in pools for t in p[1]]
        order += sorted((t for p in pools for t in p[2]), key=lambda t: -t.values[0])
        taken = 0
        for t in order:
            if taken == PER_BUDGET:
                break
            cfg = parse_yaml(config_of(t))
            if cfg.key() in seen:
                continue
            seen.add(cfg.key())
            rec = design_record(cfg, f"a{round_}-{len(out):02d}", int(t.user_attrs["GFLOPs"] // 37.5))
            out.append({**rec, "budget_g": budget, "cheap_score": t.values[0]})
            taken += 1
        log(f"budget {budget:g} GFLOPs: {taken} designs ({time.perf_counter() - t0:.0f} s)")
    return out


def fit_commit_of(path: str = FIT_PATH) -> str:
    """The last commit that changed the committed score's file (the score that proposes)."""
    out = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%H", "--", path], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def register(round_: int) -> dict[str, Any]:
    """Write round ``round_``'s design file once (a different list is refused)."""
    from nas.engine.scores.registry import fitted_weights

    path = fit_file(round_ - 1)
    rel = str(path.relative_to(ROOT))
    commit = fit_commit_of(rel)
    if not commit:
        raise SystemExit(
            f"error: {rel} is not committed; accepted: commit the score that proposes round {round_} first"
        )
    doc = {
        "rule": RULE,
        "round": round_,
        "recipe": "v2",
        "scale": "reduced",
        "seeds": list(SEEDS),
        "score": {
            "name": proposing_score(round_),
            "version": fitted_weights(path)["version"],
            "fit_commit": commit,
            "file": rel,
            "rescored_by": rescoring_model(round_),
        },
        f"a{round_}": {"designs": propose(round_)},
    }
    return write_once(round_file(round_), doc)


# -- the prospective test -------------------------------------------------------------------------
def prospective(round_: int, n_boot: int = 2000) -> dict[str, Any]:
    """The committed score of round ``round_ - 1`` on round ``round_``'s trained designs: τ with
    the 2-seed mean AP, FLOPs' τ, the paired difference with its bootstrap CI, the partial τ given
    FLOPs, and where the designs lie (their PRN share and AP against the table's)."""
    from nas.engine import cheap_score
    from nas.engine.scores.calibration import features_of
    from nas.engine.scores.support import support

    doc = json.loads(round_file(round_).read_text())
    table = load_table(rounds=round_)
    new = [d for d in table if d["split"] == f"a{round_}" and d["AP"] is not None]
    old = [d for d in table if d["split"] in ("fit", "heldout") and d["AP"] is not None]
    if len(new) < 10:
        raise SystemExit(f"error: round {round_} has {len(new)} designs with both seeds; accepted: at least 10")
    y = np.array([d["AP"] for d in new])
    name = proposing_score(round_)  # the score committed before the round
    score = np.array([cheap_score(name, d["flops"], d["params"], d["metrics"]) for d in new])
    flops = np.array([float(d["flops"]) for d in new])
    prn = [sum(b == "prn" for b in d["pattern"].split("/")) / 10 for d in new]
    inside = support().inside([features_of(d["flops"], d["params"], d["metrics"]) for d in new])

    def tau_where(mask: np.ndarray) -> dict[str, float | None]:
        ok = mask.sum() >= 5
        return {
            "designs": int(mask.sum()),
            "score": kendall_tau(score[mask], y[mask]) if ok else None,
            "flops": kendall_tau(flops[mask], y[mask]) if ok else None,
        }

    rescorer = doc["score"].get("rescored_by")  # the model that chose among the steered candidates
    rescored: dict[str, Any] | None = None
    if rescorer:
        from benchmarks.gp_surrogate import fit_surrogate

        known = [d for d in table if d["split"] != f"a{round_}" and d["AP"] is not None]
        p = fit_surrogate(known, rescorer).predict(new)[0]
        rescored = {
            "model": rescorer,
            "tau": kendall_tau(p, y),
            "tau_ci95": bootstrap_ci(p, y, kendall_tau, n_boot),
            "minus_flops_tau": {
                "mean": kendall_tau(p, y) - kendall_tau(flops, y),
                "ci95": bootstrap_tau_difference(flops, p, y, n_boot),
            },
            "partial_tau_given_flops": partial_tau(p, y, flops),
        }
    return {
        "round": round_,
        "designs": len(new),
        "rescored_by": rescored,
        "AP_vs_earlier_rounds_at_equal_flops": equal_flops_gain(table, round_, n_boot),
        "score_version": doc["score"]["version"],
        "fit_commit": doc["score"]["fit_commit"],
        "score": {"tau": kendall_tau(score, y), "tau_ci95": bootstrap_ci(score, y, kendall_tau, n_boot)},
        "flops": {"tau": kendall_tau(flops, y), "tau_ci95": bootstrap_ci(flops, y, kendall_tau, n_boot)},
        "score_minus_flops_tau": {
            "mean": kendall_tau(score, y) - kendall_tau(flops, y),
            "ci95": bootstrap_tau_difference(flops, score, y, n_boot),
        },
        "partial_tau_given_flops": partial_tau(score, y, flops),
        "prn_stage_share": float(np.mean(prn)),
        "support": {"source": support().source, "inside": tau_where(inside), "outside": tau_where(~inside)},
        "AP": {"mean": float(y.mean()), "max": float(y.max()), "table_max": max(d["AP"] for d in old)},
    }


def equal_flops_gain(table: list[dict[str, Any]], round_: int, n_boot: int = 2000) -> dict[str, Any] | None:
    """Whether round ``round_`` proposed better designs than the rounds before it at equal FLOPs:
    the mean residual of its AP from the line of AP on log FLOPs fitted on rounds 1 … R − 1, minus
    theirs (0 by construction), with a bootstrap 95 % CI (both groups resampled)."""

    def split(r: int) -> tuple[np.ndarray, np.ndarray]:
        rows = [d for d in table if d["split"] == f"a{r}" and d["AP"] is not None]
        return np.log([float(d["flops"]) for d in rows]), np.array([d["AP"] for d in rows])

    if round_ < 2:
        return None
    old = [split(r) for r in range(1, round_)]
    x, y = np.concatenate([o[0] for o in old]), np.concatenate([o[1] for o in old])
    slope, icept = np.polyfit(x, y, 1)
    nx, ny = split(round_)
    mine, theirs = ny - (slope * nx + icept), y - (slope * x + icept)
    rng = np.random.default_rng(0)
    boot = [rng.choice(mine, len(mine)).mean() - rng.choice(theirs, len(theirs)).mean() for _ in range(n_boot)]
    return {
        "earlier_rounds": round_ - 1,
        "mean": float(mine.mean() - theirs.mean()),
        "ci95": [float(q) for q in np.quantile(boot, [0.025, 0.975])],
        "mean_GFLOPs": {"this": float(np.exp(nx).mean() / 1e9), "earlier": float(np.exp(x).mean() / 1e9)},
    }


def write_support(rounds: int) -> dict[str, Any]:
    """Write the product's support file (:mod:`nas.engine.scores.support`) from the table and
    active rounds 1 … ``rounds``: every design with both seeds, on the shipped score's inputs."""
    from nas.core.runio import atomic_write_json
    from nas.engine.scores.calibration import features_of
    from nas.engine.scores.registry import fitted_weights
    from nas.engine.scores.support import SUPPORT_FILE, fit_support

    weights = fitted_weights()
    names = list(weights["features"])
    table = [d for d in load_table(rounds=rounds) if d["AP"] is not None]
    rows = [features_of(d["flops"], d["params"], d["metrics"]) for d in table]
    doc = fit_support(rows, names, [weights["features"][n]["log"] for n in names])
    doc["rounds"] = rounds
    splits = sorted({d["split"] for d in table})
    doc["source"] = (
        f"benchmarks.gp_active --write-support {rounds}: {len(table)} designs with both seeds "
        f"({', '.join(splits)}), on the inputs of fitted score {weights['version']}"
    )
    atomic_write_json(SUPPORT_FILE, doc)
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--register", type=int, metavar="R", help="write round R's design file once (then commit it)")
    p.add_argument("--prospective", type=int, metavar="R", help="the committed score's test on round R")
    p.add_argument(
        "--write-support", type=int, metavar="R", help="write the search's support file (table + rounds <= R)"
    )
    p.add_argument(
        "--refit", type=int, metavar="R", help="write once the shipped model refitted on table + rounds <= R"
    )
    p.add_argument("--results-file", type=Path, default=RESULTS_FILE, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.register:
        doc = register(args.register)
        print(f"{round_file(args.register)}: {len(doc[f'a{args.register}']['designs'])} designs")
        return 0
    if args.refit is not None:
        doc = refit(args.refit)
        print(f"{fit_file(args.refit)}: {doc['version']} ({doc['source']})")
        return 0
    if args.write_support is not None:
        doc = write_support(args.write_support)
        print(f"{doc['source']}; radius {doc['radius']:.3f}")
        return 0
    if args.prospective:
        print(json.dumps(prospective(args.prospective), indent=1, default=float))
        return 0
    p.exit(2, "error: nothing to do; accepted: --register R, --prospective R or --write-support R\n")


if __name__ == "__main__":
    raise SystemExit(main())
