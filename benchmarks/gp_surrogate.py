"""A score that knows its support: surrogates of the table's AP compared pre-registered.

The shipped score is a ridge on the ranks of 7 network-level numbers; the cheap stage maximises
it over the whole space and lands where the table has few designs. Here, registered in
docs/gp-features.md before any active round is read, four scores are compared with FLOPs: the
shipped score as committed, the same ridge refitted (``linear-net``), the ridge on the network
and per-part inputs (``linear-stage``) and a random forest on them (``forest``) whose trees'
spread is its uncertainty. A design's *support distance* (standardised inputs, nearest training
design) says whether a prediction is an interpolation.

    .venv/bin/python -m benchmarks.gp_surrogate                   # the CV on the table, printed
    .venv/bin/python -m benchmarks.gp_surrogate --register        # and write gp_surrogates.json once
    .venv/bin/python -m benchmarks.gp_surrogate --prospective 1   # after round 1 is trained
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.gp_analysis import model_matrix, resolve, shipped_score, transform_feature
from benchmarks.gp_table import load_table
from benchmarks.lib.common import write_result
from benchmarks.lib.stats import (
    bootstrap_ci,
    bootstrap_tau_difference,
    fit_rank_linear,
    partial_tau,
    predict_rank_linear,
)
from benchmarks.lib.study import write_once
from nas.engine.scores.support import fit_matrix, nearest_distances
from nas.engine.stats import kendall_tau

ROOT = Path(__file__).resolve().parents[1]
SURROGATES_FILE = ROOT / "benchmarks" / "data" / "gp_surrogates.json"
MODELS = ("flops", "shipped", "linear-net", "linear-stage", "forest")
#: the models fitted on the training designs; the others score a design as they are
FITTED = ("linear-net", "linear-stage", "forest")
NET = tuple(resolve("gp_all+flops", []))
BLOCK_KINDS, FUSION_KINDS = ("res", "prn", "csp", "elan"), ("fusion", "last", "none")
PARTS = tuple(f"backbone.s{i}" for i in range(1, 6)) + tuple(f"neck.n{i}" for i in range(1, 6))
PART_INPUTS = (*(f"block={b}" for b in BLOCK_KINDS), "split_ratio", *(f"fusion={f}" for f in FUSION_KINDS))
PART_INPUTS += ("mask_fraction", "elan_stack", "repeats", "width", "max_shortest_gradient_path")
PART_INPUTS += ("longest_gradient_path", "log_gradient_combinations", "gradient_overlap", "flops_share")
STAGE = tuple(f"{p}.{f}" for p in PARTS for f in PART_INPUTS) + ("width", "depth")
FEATURES = NET + STAGE
FOREST = {"n_estimators": 500, "min_samples_leaf": 2, "max_features": 1 / 3, "random_state": 0}
FOLDS, REPEATS, SEED, N_BOOT, MIN_SUBSET = 3, 50, 0, 2000, 5
RULE = (
    "target: the 2-seed mean AP. inputs: NET = resolve('gp_all+flops') (6 network metrics + FLOPs, "
    "logs as LOG_FEATURES); STAGE = per part (backbone stages 1-5, neck nodes 1-5): block one-hot "
    "(res, prn, csp, elan), split_ratio, fusion one-hot (fusion, last, none; csp's 'first' is all 0), mask_fraction, elan_stack "
    "(0 where the block does not read the knob, search_spaces BLOCKS[block].knobs), repeats, width, "
    "max_shortest_gradient_path, longest_gradient_path, log gradient_combinations, gradient_overlap, "
    "the part's share of the network FLOPs; plus global width and depth. models: flops (raw), shipped "
    "(shipped_score, no refit), linear-net (fit_rank_linear on NET), linear-stage (fit_rank_linear on "
    "NET + STAGE), forest (RandomForestRegressor(n_estimators=500, min_samples_leaf=2, max_features=1/3, "
    "random_state=0) on NET + STAGE; mean = forest prediction, sd = sd of the 500 trees' predictions). "
    "CV: the 120 table designs with AP, 3 folds x 50 repeats (seed 0, as gp_analysis.cross_validate), "
    "every model on the same folds, Kendall tau within each held-out fold: mean, 2.5-97.5 % range, "
    "share of folds beating flops. support: NET + STAGE standardised by the training designs (sd 0 -> 1); "
    "distance = Euclidean to the nearest training design; radius = 95th percentile of the training "
    "designs' leave-one-out nearest-neighbour distances; outside = distance > radius. prospective round R: "
    "fit on every design with AP of the splits before R (fit, heldout, a1..a(R-1)), evaluated on round R's "
    "designs with AP: tau with 2000-resample bootstrap CI, paired tau differences vs flops and vs shipped "
    "(bootstrap_tau_difference), partial tau given FLOPs; forest: tau(sd, |error|), share within mean +- "
    "1 sd and +- 2 sd; share outside support; each model's tau inside / outside support (None below 5)"
)
DECISION = (
    "after round 1, the model with the highest prospective tau on round 1 among linear-net, linear-stage "
    "and forest ships as the search's score for round 2's proposals if its tau exceeds both shipped's and "
    "flops' on round 1; the CV on the 120 measures the sampled region and does not decide; otherwise the "
    "shipped model is refitted on every design"
)


# -- the inputs -----------------------------------------------------------------------------------
def part_inputs(part: dict[str, Any], stage: dict[str, Any], flops: float) -> list[float]:
    """One part's STAGE inputs (:data:`PART_INPUTS`): a knob its block does not read is 0, so
    equal designs encode equally whatever the file holds for it."""
    from search_spaces import BLOCKS

    block = part["block"]
    reads = BLOCKS[block].knobs

    def knob(name: str) -> float:
        return float(part.get(name, 0.0)) if name in reads else 0.0

    fusion = part.get("fusion") if "fusion" in reads else None  # csp's "first": all three 0, as registered
    return [
        *(float(block == b) for b in BLOCK_KINDS),
        knob("split_ratio"),
        *(float(fusion == f) for f in FUSION_KINDS),
        knob("mask_fraction"),
        knob("elan_stack"),
        float(part.get("repeats", 1.0)),
        float(part.get("width", 1.0)),
        float(stage["max_shortest_gradient_path"] or 0.0),
        float(stage["longest_gradient_path"] or 0.0),
        transform_feature("flops", float(stage["gradient_combinations"] or 0.0)),  # log, floored at 1
        float(stage["gradient_overlap"] or 0.0),
        float(stage["flops"]) / float(flops),
    ]


def stage_inputs(design: dict[str, Any]) -> list[float]:
    """A design's STAGE inputs in the order of :data:`STAGE` (parts as ``config`` and ``stages`` list them)."""
    cfg = design["config"]
    parts = [*cfg["backbone"]["stages"], *cfg["neck"]["nodes"]]
    if len(parts) != len(PARTS) or len(design["stages"]) != len(PARTS):
        raise ValueError(f"{design.get('id')}: expected {len(PARTS)} parts (per-stage config), got {len(parts)}")
    out = [v for p, s in zip(parts, design["stages"], strict=True) for v in part_inputs(p, s, design["flops"])]
    return [*out, float(cfg["width"]), float(cfg["depth"])]


def design_matrix(designs: Sequence[dict[str, Any]]) -> np.ndarray:
    """NET + STAGE of each design (:data:`FEATURES`), logs as marked: what the fitted models read."""
    net = model_matrix(designs, NET).reshape(len(designs), len(NET))
    stage = np.array([stage_inputs(d) for d in designs]).reshape(len(designs), len(STAGE))
    return np.hstack([net, stage])


# -- the models -----------------------------------------------------------------------------------
class Surrogate:
    """One model of :data:`MODELS`, fitted (or not: ``flops``, ``shipped``) on training designs."""

    def __init__(self, model: str) -> None:
        if model not in MODELS:
            raise ValueError(f"model {model!r}; accepted: {', '.join(MODELS)}")
        self.model = model
        self.cols = slice(0, len(NET)) if model == "linear-net" else slice(None)

    def fit_matrix(self, x: np.ndarray, y: np.ndarray) -> Surrogate:
        if self.model == "forest":
            from sklearn.ensemble import RandomForestRegressor

            self.forest = RandomForestRegressor(**FOREST).fit(x, y)
        elif self.model in FITTED:
            self.train, self.weights = x[:, self.cols], fit_rank_linear(x[:, self.cols], y)
        return self

    def predict_matrix(self, x: np.ndarray, designs: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray | None]:
        if self.model == "flops":
            return np.array([float(d["flops"]) for d in designs]), None
        if self.model == "shipped":
            return np.array([shipped_score(d) for d in designs]), None
        if self.model == "forest":
            trees = np.stack([t.predict(x.astype(np.float32)) for t in self.forest.estimators_])
            return trees.mean(axis=0), trees.std(axis=0)
        return predict_rank_linear(self.train, self.weights, x[:, self.cols]), None

    def predict(self, designs: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray | None]:
        """Predictive mean (a score: higher = better AP) and, for ``forest``, its sd."""
        return self.predict_matrix(design_matrix(designs), designs)


def with_ap(designs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in designs if d.get("AP") is not None]


def fit_surrogate(designs: Sequence[dict[str, Any]], model: str) -> Surrogate:
    """``model`` fitted on the designs of ``designs`` that have an AP."""
    train = with_ap(designs)
    return Surrogate(model).fit_matrix(design_matrix(train), np.array([d["AP"] for d in train]))


# -- support --------------------------------------------------------------------------------------
def _support(train_x: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float]:
    """The product's support rule (:mod:`nas.engine.scores.support`) on this module's inputs."""
    mean, sd, points, radius = fit_matrix(train_x)
    return nearest_distances(points, (x - mean) / sd), radius


def support_distance(
    train_designs: Sequence[dict[str, Any]], designs: Sequence[dict[str, Any]]
) -> tuple[np.ndarray, float]:
    """Each design's distance to its nearest training design (NET + STAGE standardised by the
    training designs) and the support radius (95th percentile of the training designs'
    leave-one-out nearest-neighbour distances): beyond it a prediction extrapolates."""
    return _support(design_matrix(train_designs), design_matrix(designs))


# -- the cross-validation ---------------------------------------------------------------------------
def cross_validate(
    designs: Sequence[dict[str, Any]],
    folds: int = FOLDS,
    repeats: int = REPEATS,
    seed: int = SEED,
    models: Sequence[str] = MODELS,
) -> dict[str, Any]:
    """Every model on the very same folds as ``gp_analysis.cross_validate`` (same permutations):
    τ within each held-out fold; per model its mean, 2.5–97.5 % range over folds and the share
    of folds it beats (loses to) FLOPs; and the mean share of held-out designs outside support."""
    designs = with_ap(designs)
    x, y = design_matrix(designs), np.array([d["AP"] for d in designs])
    flops = np.array([float(d["flops"]) for d in designs])
    taus: dict[str, list[float]] = {m: [] for m in models}
    base, outside = [], []
    rng = np.random.default_rng(seed)
    for _ in range(repeats):
        perm = rng.permutation(len(y))
        for f in range(folds):
            test = np.sort(perm[f::folds])
            train = np.setdiff1d(perm, test)
            held = [designs[i] for i in test]
            base.append(kendall_tau(flops[test], y[test]))
            dist, radius = _support(x[train], x[test])
            outside.append(float(np.mean(dist > radius)))
            for m in models:
                pred, _ = Surrogate(m).fit_matrix(x[train], y[train]).predict_matrix(x[test], held)
                taus[m].append(kendall_tau(pred, y[test]))
    b = np.nan_to_num(np.array(base))
    out: dict[str, Any] = {"designs": len(y), "folds": folds, "repeats": repeats, "seed": seed, "models": {}}
    for m, v in taus.items():
        a = np.nan_to_num(np.array(v))
        out["models"][m] = {
            "cv_tau": float(a.mean()),
            "cv_tau_range95": [float(q) for q in np.quantile(a, [0.025, 0.975])],
            "wins_vs_flops": float(np.mean(a > b)),
            "losses_vs_flops": float(np.mean(a < b)),
        }
    out["outside_support_share"] = float(np.mean(outside))
    return out


# -- the prospective test -------------------------------------------------------------------------
def _num(v: float) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None


def prospective_report(
    known: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]], n_boot: int = N_BOOT
) -> dict[str, Any]:
    """Every model fitted on ``known`` and tested on ``new`` (designs with AP each): τ with CIs,
    paired differences with FLOPs and the shipped score, partial τ given FLOPs, the forest's
    calibration and each model's τ inside and outside the known designs' support."""
    known, new = with_ap(known), with_ap(new)
    kx, nx = design_matrix(known), design_matrix(new)
    ky, y = np.array([d["AP"] for d in known]), np.array([d["AP"] for d in new])
    flops = np.array([float(d["flops"]) for d in new])
    dist, radius = _support(kx, nx)
    outside = dist > radius
    preds: dict[str, tuple[np.ndarray, np.ndarray | None]] = {
        m: Surrogate(m).fit_matrix(kx, ky).predict_matrix(nx, new) for m in MODELS
    }

    def subset_tau(p: np.ndarray, mask: np.ndarray) -> float | None:
        return _num(kendall_tau(p[mask], y[mask])) if mask.sum() >= MIN_SUBSET else None

    models: dict[str, Any] = {}
    for m, (p, sd) in preds.items():
        row: dict[str, Any] = {
            "tau": _num(kendall_tau(p, y)),
            "tau_ci95": [_num(v) for v in bootstrap_ci(p, y, kendall_tau, n_boot)],
            "partial_tau_given_flops": _num(partial_tau(p, y, flops)),
            "tau_inside_support": subset_tau(p, ~outside),
            "tau_outside_support": subset_tau(p, outside),
        }
        for ref in ("flops", "shipped"):
            if ref != m:
                row[f"minus_{ref}"] = {
                    "tau": _num(kendall_tau(p, y) - kendall_tau(preds[ref][0], y)),
                    "ci95": bootstrap_tau_difference(preds[ref][0], p, y, n_boot),
                }
        if sd is not None:
            err = np.abs(p - y)
            row["tau_sd_abs_error"] = _num(kendall_tau(sd, err))
            row["within_1sd"], row["within_2sd"] = float(np.mean(err <= sd)), float(np.mean(err <= 2 * sd))
        models[m] = row
    best = max(FITTED, key=lambda m: models[m]["tau"] if models[m]["tau"] is not None else -math.inf)
    bar = max(models[r]["tau"] if models[r]["tau"] is not None else -math.inf for r in ("flops", "shipped"))
    ships = models[best]["tau"] is not None and models[best]["tau"] > bar
    return {
        "known": len(known),
        "designs": len(new),
        "support_radius": radius,
        "outside_support_share": float(outside.mean()) if len(new) else None,
        "models": models,
        "decision": {"best_fitted": best, "ships": ships, "rule": DECISION},
    }


# -- the CLI --------------------------------------------------------------------------------------
def print_cv(cv: dict[str, Any]) -> None:
    from nas.core.table import format_table

    rows = [
        [m, f"{v['cv_tau']:+.3f}", "[{:+.3f}, {:+.3f}]".format(*v["cv_tau_range95"]), f"{v['wins_vs_flops']:.2f}"]
        for m, v in cv["models"].items()
    ]
    print(f"CV on {cv['designs']} designs, {cv['folds']} folds x {cv['repeats']} repeats (seed {cv['seed']}):")
    print(format_table(["model", "cv τ", "fold range", "wins vs FLOPs"], rows, "<>>>"))
    print(f"held-out designs outside the training designs' support: {cv['outside_support_share']:.2f} on average")


def registration(cv: dict[str, Any]) -> dict[str, Any]:
    import sklearn

    return {"rule": RULE, "sklearn": sklearn.__version__, "features": list(FEATURES), "cv": cv, "decision": DECISION}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--register", action="store_true", help=f"write {SURROGATES_FILE.name} once (commit it)")
    p.add_argument("--prospective", type=int, metavar="R", default=None, help="test every model on active round R")
    p.add_argument("--repeats", type=int, default=REPEATS, help=argparse.SUPPRESS)
    p.add_argument("--bootstrap", type=int, default=N_BOOT, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=SURROGATES_FILE, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.prospective is not None:
        r = args.prospective
        if r < 1:
            p.exit(2, f"error: --prospective {r}; accepted: an active round number >= 1\n")
        table = load_table(rounds=r)
        known, new = [d for d in table if d["split"] != f"a{r}"], with_ap(d for d in table if d["split"] == f"a{r}")
        if not new:
            p.exit(
                2, f"error: round {r} has no design with both seeds trained; accepted: train and --collect it first\n"
            )
        report = {"round": r, **prospective_report(known, new, args.bootstrap)}
        print(json.dumps(report, indent=1))
        write_result(f"gp_surrogate_prospective_r{r}", report)
        return 0
    table = load_table()
    cv = cross_validate([d for d in table if d["split"] in ("fit", "heldout")], repeats=args.repeats)
    print_cv(cv)
    if args.register:
        write_once(args.out, registration(cv))
        print(f"wrote {args.out}: commit it before round 1's results are read")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
