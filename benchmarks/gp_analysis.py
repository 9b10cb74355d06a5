"""The gradient-path table's analysis, as docs/gp-features.md fixed it before the table was read.

Three parts, each reading only the committed table (``benchmarks.gp_table.load_table``):

- **features** (fit set): for the 19 pre-registered features (the 6 network-level metrics and the
  13 per-stage aggregates) Kendall τ-b with the 2-seed mean AP and the partial τ given FLOPs,
  2000-resample bootstrap CIs (95 % and Bonferroni 1 − 0.05/19), two-sided permutation p-values
  (10 000 permutations of the AP column, FLOPs fixed to the features) and Holm's correction over
  the 19; the 40 per-part features as an exploratory family of their own;
- **fit** (fit set): the candidate cheap scores of :data:`MODELS` (ridge on ranks, the shipped
  score's model), each cross-validated on the very same folds as FLOPs; the best is written to
  ``benchmarks/data/gp_fit.json`` and committed *before* the held-out set is trained;
- **held-out**: τ on the 40 held-out designs of the committed fit, of FLOPs, of the shipped score
  and of the best single feature (chosen on the fit set by |partial τ|), with bootstrap CIs.

It also reports the table's own noise (seed τ and ICC(1) over the designs) and the low
fidelity's τ with the full schedule.

    .venv/bin/python -m benchmarks.gp_analysis            # features + fit (fit set) + noise
    .venv/bin/python -m benchmarks.gp_analysis --write-fit   # and write gp_fit.json (commit it)
    .venv/bin/python -m benchmarks.gp_analysis --heldout     # after the held-out set is trained
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.gp_table import DESIGNS_FILE, RESULTS_FILE, SEEDS, load_table
from benchmarks.lib.common import write_json, write_result
from benchmarks.lib.features import AGGREGATES, LOG_FEATURES, METRIC_KEYS
from benchmarks.lib.stats import (
    bootstrap_ci,
    bootstrap_quantiles,
    bootstrap_tau_difference,
    correlation,
    fit_rank_linear,
    icc1,
    partial_tau,
    predict_rank_linear,
)
from nas.engine.stats import kendall_tau, ranks

ROOT = Path(__file__).resolve().parents[1]
FIT_FILE = ROOT / "benchmarks" / "data" / "gp_fit.json"
#: the pre-registered family of k = 19 (docs/gp-features.md, "Analysis plan")
FEATURES = tuple(f"gp.{k}" for k in METRIC_KEYS) + tuple(f"agg.{a}" for a in AGGREGATES)
PART_FEATURES = ("max_shortest_gradient_path", "longest_gradient_path", "gradient_combinations", "gradient_overlap")
#: the candidate cheap scores, fixed before the table is read. ``best`` stands for the single
#: feature of the 19 with the largest |partial τ| given FLOPs, chosen inside each training fold
MODELS: dict[str, tuple[str, ...]] = {
    "flops": ("flops",),
    "gradpath+flops": ("gp.gradient_combinations", "gp.max_shortest_gradient_path", "flops"),
    "best+flops": ("best", "flops"),
    "gp_all+flops": (*(f"gp.{k}" for k in METRIC_KEYS), "flops"),
    "agg_all+flops": (*(f"agg.{a}" for a in AGGREGATES), "flops"),
    "all19+flops+params": (*FEATURES, "flops", "params"),
}
N_BOOT, N_PERM, ALPHA = 2000, 10_000, 0.05


# -- the table as columns ---------------------------------------------------------------------------
def feature_value(design: dict[str, Any], name: str) -> float:
    """One feature of a table design by its analysis name (``flops``, ``gp.*``, ``agg.*``,
    ``part.<scope>.<feature>``); a missing value (a part without gradient) counts as 0."""
    if name in ("flops", "params"):
        return float(design[name])
    kind, _, rest = name.partition(".")
    if kind == "gp":
        v = design["metrics"][rest]
    elif kind == "agg":
        v = design["aggregates"][rest]
    elif kind == "part":
        scope, _, feat = rest.rpartition(".")
        v = next(s[feat] for s in design["stages"] if s["scope"] == scope)
    else:
        raise KeyError(name)
    return float(v or 0.0)


def part_feature_names(design: dict[str, Any]) -> list[str]:
    """The exploratory family: every part's four features (10 parts × 4 = 40)."""
    return [f"part.{s['scope']}.{f}" for s in design["stages"] for f in PART_FEATURES]


def column(designs: Sequence[dict[str, Any]], name: str) -> np.ndarray:
    return np.array([feature_value(d, name) for d in designs])


def model_matrix(designs: Sequence[dict[str, Any]], names: Sequence[str]) -> np.ndarray:
    return np.array([[transform_feature(n, feature_value(d, n)) for n in names] for d in designs])


def transform_feature(name: str, value: float) -> float:
    """A feature as a fitted model takes it: the log features (:data:`LOG_FEATURES`) as logs,
    floored at 1 as the shipped score reads its file, the rest as they are."""
    return math.log(max(value, 1.0)) if name in LOG_FEATURES else float(value)


# -- statistics -----------------------------------------------------------------------------------
def _pair_signs(a: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    return np.sign(a[..., i] - a[..., j]).astype(np.float32)


def permutation_p(
    x: np.ndarray, y: np.ndarray, z: np.ndarray | None = None, n_perm: int = N_PERM, seed: int = 0
) -> np.ndarray:
    """Two-sided permutation p-values of τ(x_k, y) for each row x_k of ``x`` (k × n) — or, with
    ``z``, of the partial τ given z — under permutations of ``y`` alone (x and z stay paired).
    ``(1 + #{|stat_perm| ≥ |stat|}) / (1 + n_perm)``, all in one matrix product."""
    x = np.atleast_2d(x)
    n = x.shape[1]
    i, j = np.triu_indices(n, 1)
    sx = _pair_signs(x, i, j)
    nx = np.count_nonzero(sx, axis=1).astype(float)
    rng = np.random.default_rng(seed)
    perms = np.vstack([y, *(y[rng.permutation(n)] for _ in range(n_perm))])
    sy = _pair_signs(perms, i, j)
    ny = float(np.count_nonzero(sy[0]))
    txy = (sx @ sy.T) / np.sqrt(nx[:, None] * ny)  # k × (1 + n_perm); column 0 is the observed
    if z is not None:
        sz = _pair_signs(z, i, j)
        nz = float(np.count_nonzero(sz))
        txz = (sx @ sz) / np.sqrt(nx * nz)
        tyz = (sy @ sz) / np.sqrt(ny * nz)
        den = np.sqrt(np.clip((1 - txz[:, None] ** 2) * (1 - tyz[None, :] ** 2), 1e-12, None))
        txy = (txy - txz[:, None] * tyz[None, :]) / den
    stat = np.abs(txy)
    return (1 + (stat[:, 1:] >= stat[:, :1] - 1e-12).sum(axis=1)) / (1 + n_perm)


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1).

    >>> holm([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(p, dtype=float)
    m = len(p)
    order = np.argsort(p)
    adj = np.empty(m)
    running = 0.0
    for rank, k in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[k]))
        adj[k] = running
    return adj


def feature_report(
    designs: Sequence[dict[str, Any]], names: Sequence[str], n_boot: int = N_BOOT, n_perm: int = N_PERM
) -> list[dict[str, Any]]:
    """τ and partial τ given FLOPs of each feature with the 2-seed mean AP: bootstrap CIs (95 %
    and Bonferroni over the family), permutation p-values and Holm over the family ``names``."""
    y = np.array([d["AP"] for d in designs])
    z = column(designs, "flops")
    x = np.vstack([column(designs, n) for n in names])
    level = 1 - ALPHA / len(names)
    p_tau, p_partial = permutation_p(x, y, n_perm=n_perm), permutation_p(x, y, z, n_perm=n_perm)
    holm_tau, holm_partial = holm(p_tau), holm(p_partial)
    rows = []
    for k, name in enumerate(names):
        rows.append(
            {
                "feature": name,
                "n": len(y),
                "tau": kendall_tau(x[k], y),
                **_cis("tau", lambda i, _x=x[k]: kendall_tau(_x[i], y[i]), len(y), n_boot, level),
                "partial_tau": partial_tau(x[k], y, z),
                **_cis("partial_tau", lambda i, _x=x[k]: partial_tau(_x[i], y[i], z[i]), len(y), n_boot, level),
                "p_tau": float(p_tau[k]),
                "p_tau_holm": float(holm_tau[k]),
                "p_partial": float(p_partial[k]),
                "p_partial_holm": float(holm_partial[k]),
            }
        )
    return rows


def _cis(name: str, stat: Callable[[np.ndarray], float], n: int, n_boot: int, level: float) -> dict[str, Any]:
    """Percentile bootstrap CIs of ``stat`` (of the resampled design indices), 95 % and at
    ``level``, from one set of resamples (those of ``benchmarks.lib.stats.bootstrap_ci``)."""
    q = bootstrap_quantiles(stat, n, [0.025, 0.975, (1 - level) / 2, 1 - (1 - level) / 2], n_boot)
    lo, hi, blo, bhi = q if q is not None else (float("nan"),) * 4
    return {f"{name}_ci95": (lo, hi), f"{name}_ci_bonferroni": (blo, bhi)}


def best_feature(designs: Sequence[dict[str, Any]], names: Sequence[str] = FEATURES) -> str:
    """The feature with the largest |partial τ| given FLOPs with the AP (ties: the first)."""
    y, z = [d["AP"] for d in designs], column(designs, "flops")
    scored = [(abs(partial_tau(column(designs, n), y, z)), -i, n) for i, n in enumerate(names)]
    return max((t for t in scored if math.isfinite(t[0])), default=(0.0, 0, names[0]))[2]


def resolve(model: str, designs: Sequence[dict[str, Any]]) -> list[str]:
    """The model's feature names, ``best`` replaced by the best feature of ``designs``."""
    return [best_feature(designs) if n == "best" else n for n in MODELS[model]]


def shipped_score(design: dict[str, Any]) -> float:
    """The cheap score ``nas search`` ships today, of a table design."""
    from nas.engine import cheap_score

    return cheap_score("fitted", design["flops"], design["params"], design["metrics"])


def cross_validate(
    designs: Sequence[dict[str, Any]], folds: int = 3, repeats: int = 50, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Every model of :data:`MODELS` refitted and scored within held-out folds (τ of its
    predictions with the fold's AP), and the raw FLOPs and the shipped score on the very same
    folds: mean τ, its 2.5–97.5 % range over folds and the share of folds each model beats FLOPs.
    A ``best`` feature is chosen inside each training fold, so the estimate includes the choice."""
    y = np.array([d["AP"] for d in designs])
    raw = {"raw:flops": column(designs, "flops"), "raw:shipped": np.array([shipped_score(d) for d in designs])}
    taus: dict[str, list[float]] = {m: [] for m in (*MODELS, *raw)}
    rng = np.random.default_rng(seed)
    for _ in range(repeats):
        perm = rng.permutation(len(y))
        for f in range(folds):
            test = np.sort(perm[f::folds])
            train = np.setdiff1d(perm, test)
            tr = [designs[i] for i in train]
            for m in MODELS:
                names = resolve(m, tr)
                x = model_matrix(designs, names)
                w = fit_rank_linear(x[train], y[train])
                taus[m].append(kendall_tau(predict_rank_linear(x[train], w, x[test]), y[test]))
            for name, v in raw.items():
                taus[name].append(kendall_tau(v[test], y[test]))
    flops = np.nan_to_num(np.array(taus["raw:flops"]))
    out = {}
    for m, v in taus.items():
        a = np.nan_to_num(np.array(v))
        out[m] = {
            "cv_tau": float(a.mean()),
            "cv_tau_range95": [float(q) for q in np.quantile(a, [0.025, 0.975])],
            "wins_vs_flops": float(np.mean(a > flops)),
            "losses_vs_flops": float(np.mean(a < flops)),
        }
    return out


def fit_model(designs: Sequence[dict[str, Any]], model: str) -> dict[str, dict[str, float]]:
    """The model fitted on all of ``designs``: feature -> weight, and the mean and std the
    feature (log where marked) was standardised with: the shipped score's file format."""
    names = resolve(model, designs)
    y = np.array([d["AP"] for d in designs])
    x = model_matrix(designs, names)
    w = fit_rank_linear(x, y)
    return {
        n: {"weight": float(w[k]), "mean": float(x[:, k].mean()), "std": float(x[:, k].std() or 1.0)}
        for k, n in enumerate(names)
    }


def apply_fit(design: dict[str, Any], fit: dict[str, dict[str, float]]) -> float:
    """A fitted model's score of one design (as :func:`nas.engine.scores.registry.linear_rank_score`)."""
    return sum(
        f["weight"] * (transform_feature(n, feature_value(design, n)) - f["mean"]) / f["std"] for n, f in fit.items()
    )


def table_scores(
    table: Sequence[dict[str, Any]], fit_doc: dict[str, Any], folds: int = 5, seed: int = 0
) -> dict[str, float]:
    """The committed model's score of every table design that a simulation may read without
    leaking its own AP: out-of-fold for the fit designs (the model refitted on the other folds,
    its ``best`` feature chosen there), the committed fit for all others (the held-out set)."""
    fit = fit_set(table)
    model = fit_doc["model"]
    out = {d["id"]: apply_fit(d, fit_doc["features"]) for d in table if d["split"] != "fit"}
    perm = np.random.default_rng(seed).permutation(len(fit))
    for f in range(folds):
        test = set(perm[f::folds].tolist())
        train = [d for i, d in enumerate(fit) if i not in test]
        weights = fit_model(train, model)
        out.update({fit[i]["id"]: apply_fit(fit[i], weights) for i in sorted(test)})
    return out


# -- the table's own noise and its low fidelity ----------------------------------------------------
def noise_report(table: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Seed τ and ICC(1) of the full-fidelity AP over the designs with both seeds; the low
    fidelity's τ with the full 2-seed mean and its own seed τ; the val loss's τ with the AP."""
    both = [d for d in table if d["AP"] is not None]
    full = [[d["trainings"]["full"][s]["AP"] for s in SEEDS] for d in both]
    out: dict[str, Any] = {"designs": len(both)}
    if len(both) >= 3:
        out.update(icc1(full))
        out["seed_tau"] = kendall_tau([g[0] for g in full], [g[1] for g in full])
    low = [d for d in both if all(s in d["trainings"].get("low", {}) for s in SEEDS)]
    if len(low) >= 3:
        low_mean = [sum(d["trainings"]["low"][s]["AP"] for s in SEEDS) / len(SEEDS) for d in low]
        out["low"] = {
            "designs": len(low),
            "tau_with_full": kendall_tau(low_mean, [d["AP"] for d in low]),
            "tau_with_full_ci95": bootstrap_ci(low_mean, [d["AP"] for d in low], kendall_tau),
            "seed_tau": kendall_tau(*([d["trainings"]["low"][s]["AP"] for d in low] for s in SEEDS)),
            "one_seed_tau_with_full": kendall_tau(
                [d["trainings"]["low"][0]["AP"] for d in low], [d["AP"] for d in low]
            ),
        }
    losses = [d for d in both if all(d["trainings"]["full"][s].get("val_loss") is not None for s in SEEDS)]
    if len(losses) >= 3:
        out["by_score"] = score_reliability(losses)
    return out


#: the scale check's designs: round 0 of the fit rule (every block pair once), registered in
#: docs/gp-features.md before any training at the other scale
SCALE_CHECK_DESIGNS = 16


def scale_report(
    table: Sequence[dict[str, Any]], other: Sequence[dict[str, Any]], n_boot: int = N_BOOT
) -> dict[str, Any]:
    """Does the table's scale rank designs as another scale does (``nas search``'s own)? Kendall τ
    between the 2-seed mean APs of the two, and with the other scale's seed 0 alone, on the first
    :data:`SCALE_CHECK_DESIGNS` fit designs; each scale's own seed τ on them for the noise.

    >>> mk = lambda ap, s0, s1: {"split": "fit", "AP": ap, "trainings": {"full": {0: {"AP": s0}, 1: {"AP": s1}}}}
    >>> t = [mk(a, a, a) for a in (0.1, 0.2, 0.3)]
    >>> r = scale_report(t, [mk(a, a + 0.01, a - 0.01) for a in (0.3, 0.5, 0.4)], n_boot=10)
    >>> r["both_seeds"]["n"], r["both_seeds"]["kendall_tau"], r["other_seed_tau"]
    (3, 0.3333333333333333, 1.0)
    """
    fit = [(d, o) for d, o in zip(table, other, strict=True) if d["split"] == "fit"][:SCALE_CHECK_DESIGNS]
    pairs = [(d, o) for d, o in fit if d["AP"] is not None]  # load_table's order is the registered one

    def seed_tau(rows: list[dict[str, Any]]) -> float | None:
        both = [r for r in rows if all(s in r["trainings"].get("full", {}) for s in SEEDS)]
        if len(both) < 3:
            return None
        return kendall_tau(*([r["trainings"]["full"][s]["AP"] for r in both] for s in SEEDS))

    out: dict[str, Any] = {"designs": [d.get("id") for d, _ in pairs]}
    both = [(d["AP"], o["AP"]) for d, o in pairs if o["AP"] is not None]
    seed0 = [(d["AP"], o["trainings"]["full"][0]["AP"]) for d, o in pairs if 0 in o["trainings"].get("full", {})]
    for name, xy in (("both_seeds", both), ("other_seed0", seed0)):
        if len(xy) >= 3:
            out[name] = correlation([a for a, _ in xy], [b for _, b in xy], n_boot)
    out["table_seed_tau"] = seed_tau([d for d, _ in pairs])
    out["other_seed_tau"] = seed_tau([o for _, o in pairs])
    return out


#: the proxy at the search's own scale: the first 32 fit designs (rounds 0 and 1 of the rule),
#: registered in docs/gp-features.md before their trainings at ``default``
SCALE_NOISE_DESIGNS = 32


def spearman_brown(icc: float, k: float) -> float:
    """The ICC of the mean of ``k`` runs from the ICC of one.

    >>> round(spearman_brown(0.5, 2), 3), round(spearman_brown(0.8, 1), 3)
    (0.667, 0.8)
    """
    return k * icc / (1 + (k - 1) * icc)


def _per_seed_scores(rows: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """designs × seeds arrays of the scores a proxy stage could pick by: AP, and the rank average
    of AP and −val loss (ranks among the designs within each seed, scaled to [0, 1])."""
    ap = np.array([[r["trainings"]["full"][s]["AP"] for s in SEEDS] for r in rows], dtype=float)
    loss = np.array([[-r["trainings"]["full"][s]["val_loss"] for s in SEEDS] for r in rows], dtype=float)
    scaled = [np.array([ranks(col) / (len(col) - 1) for col in m.T]).T for m in (ap, loss)]
    return {"AP": ap, "rankavg(AP,-val_loss)": (scaled[0] + scaled[1]) / 2}


def _icc_of(m: np.ndarray) -> float:
    return icc1(m.tolist())["icc"]


def scale_noise_report(
    reference: Sequence[dict[str, Any]], search: Sequence[dict[str, Any]], n_boot: int = N_BOOT
) -> dict[str, Any]:
    """The proxy's noise at the search's own scale against the table's, on the first
    :data:`SCALE_NOISE_DESIGNS` fit designs with both seeds at both scales (docs/gp-features.md,
    "The proxy at the search's own scale"): per scale and score, ICC(1) of one run with its
    bootstrap 95 % CI (designs resampled), of the 2-seed mean (measured and by Spearman–Brown),
    seed and design sd, the median CPU-seconds of a training; at equal CPU, one ``search``-scale
    run against the mean of k ``reference``-scale runs (k the ratio of the CPU medians), with the
    paired CI of the difference; and τ between the two scales' 2-seed means.

    >>> mk = lambda a, b, c: {"split": "fit", "AP": (a + b) / 2, "trainings": {"full": {
    ...     0: {"AP": a, "val_loss": 1 - a, "cpu_s": c}, 1: {"AP": b, "val_loss": 1 - b, "cpu_s": c}}}}
    >>> ref = [mk(x, x + 0.01, 30) for x in (0.1, 0.2, 0.3, 0.4)]
    >>> r = scale_noise_report(ref, [mk(x, x + 0.05, 120) for x in (0.1, 0.3, 0.2, 0.4)], n_boot=20)
    >>> r["designs"], r["equal_cpu"]["k"], round(r["scales"]["reference"]["AP"]["icc"], 2)
    (4, 4, 1.0)
    """
    pairs = [(d, o) for d, o in zip(reference, search, strict=True) if d["split"] == "fit"][:SCALE_NOISE_DESIGNS]
    pairs = [(d, o) for d, o in pairs if d["AP"] is not None and o["AP"] is not None]
    out: dict[str, Any] = {"designs": len(pairs), "ids": [d.get("id") for d, _ in pairs], "scales": {}}
    if len(pairs) < 4:
        return out
    n, q = len(pairs), [0.025, 0.975]
    cpu = {}
    per = {}
    for name, rows in (("reference", [d for d, _ in pairs]), ("search", [o for _, o in pairs])):
        per[name] = _per_seed_scores(rows)
        cpu[name] = float(np.median([r["trainings"]["full"][s]["cpu_s"] for r in rows for s in SEEDS]))
        scores = {}
        for score, m in per[name].items():
            one = icc1(m.tolist())
            scores[score] = {
                **one,
                "icc_ci95": bootstrap_quantiles(lambda i, m=m: _icc_of(m[i]), n, q, n_boot),
                "icc_two_seed_mean_spearman_brown": spearman_brown(one["icc"], 2),
                "seed_tau": kendall_tau(m[:, 0], m[:, 1]),
            }
        out["scales"][name] = {"median_cpu_s": cpu[name], **scores}
    k = max(1, round(cpu["search"] / cpu["reference"]))
    eq: dict[str, Any] = {"k": k}
    for score in per["search"]:
        ref, srch = per["reference"][score], per["search"][score]

        def diff(i: np.ndarray, ref: np.ndarray = ref, srch: np.ndarray = srch) -> float:
            return spearman_brown(_icc_of(ref[i]), k) - _icc_of(srch[i])

        eq[score] = {
            "reference_k_runs": spearman_brown(_icc_of(ref), k),
            "search_one_run": _icc_of(srch),
            "difference": diff(np.arange(n)),
            "difference_ci95": bootstrap_quantiles(diff, n, q, n_boot),
            "per_cpu_second": {
                "reference": spearman_brown(_icc_of(ref), k) / (k * cpu["reference"]),
                "search": _icc_of(srch) / cpu["search"],
            },
        }
    out["equal_cpu"] = eq
    means = [([d["AP"] for d, _ in pairs]), ([o["AP"] for _, o in pairs])]
    out["tau_between_scales"] = correlation(means[0], means[1], n_boot)
    return out


def score_reliability(designs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """ICC(1) and seed τ of the scores a proxy stage could rank one training by: AP, minus the
    val loss, and their rank average (per seed, ranks among the designs scaled to [0, 1]); and
    the τ of each's 2-seed mean with the 2-seed mean AP."""
    per_seed = {
        "AP": [[d["trainings"]["full"][s]["AP"] for s in SEEDS] for d in designs],
        "-val_loss": [[-d["trainings"]["full"][s]["val_loss"] for s in SEEDS] for d in designs],
    }
    scaled = {
        k: np.array([ranks([g[i] for g in v]) / (len(v) - 1) for i in range(len(SEEDS))]).T for k, v in per_seed.items()
    }
    per_seed["rankavg(AP,-val_loss)"] = ((scaled["AP"] + scaled["-val_loss"]) / 2).tolist()
    ap = [d["AP"] for d in designs]
    out = {}
    for name, groups in per_seed.items():
        out[name] = {
            **icc1(groups),
            "seed_tau": kendall_tau([g[0] for g in groups], [g[1] for g in groups]),
            "tau_mean_with_AP": kendall_tau([sum(g) / len(g) for g in groups], ap),
        }
    return out


# -- held-out -------------------------------------------------------------------------------------
def heldout_report(table: Sequence[dict[str, Any]], fit_doc: dict[str, Any], n_boot: int = N_BOOT) -> dict[str, Any]:
    """τ on the held-out designs of the committed fit, FLOPs, the shipped score and the best
    single feature (chosen on the fit set), with bootstrap CIs, and paired differences."""
    held = [d for d in table if d["split"] == "heldout" and d["AP"] is not None]
    y = np.array([d["AP"] for d in held])
    best = fit_doc["best_feature"]
    sign = 1.0 if fit_doc["best_feature_partial_tau"] >= 0 else -1.0
    scores = {
        f"committed:{fit_doc['model']}": np.array([apply_fit(d, fit_doc["features"]) for d in held]),
        "flops": column(held, "flops"),
        "shipped": np.array([shipped_score(d) for d in held]),
        f"best feature ({best}, oriented)": sign * column(held, best),
    }
    out: dict[str, Any] = {"designs": len(held)}
    for name, v in scores.items():
        out[name] = {
            "tau": kendall_tau(v, y),
            "tau_ci95": bootstrap_ci(v, y, kendall_tau, n_boot),
            "partial_tau_given_flops": partial_tau(v, y, scores["flops"]),
        }
    committed = next(iter(scores))
    out["committed_minus_flops_tau"] = {
        "mean": out[committed]["tau"] - out["flops"]["tau"],
        "ci95": bootstrap_tau_difference(scores["flops"], scores[committed], y, n_boot),
    }
    return out


def ship(fit_doc: dict[str, Any], heldout: dict[str, Any], path: Path | None = None) -> str:
    """Write the committed fit as the search's ``fitted`` score if, and only if, its held-out τ
    exceeds that of FLOPs (issue 28); returns what was done, in one line. The one path by which
    a benchmark writes the product's score file (``rank_study --ship`` is refused)."""
    from nas.engine.scores.registry import FITTED_SCORE_FILE, fitted_weights, save_fitted_weights

    path = path or FITTED_SCORE_FILE
    mine, flops = heldout[f"committed:{fit_doc['model']}"]["tau"], heldout["flops"]["tau"]
    if not mine > flops:
        return f"not shipped: held-out τ {mine:+.3f} does not exceed FLOPs' {flops:+.3f}; {path.name} unchanged"
    replaced = fitted_weights(path)["version"] if path.exists() else None
    n = len(fit_doc["features"])
    saved = save_fitted_weights(
        path,
        fit_doc["features"],
        version=f"gp-table-{fit_doc['model']}-{n}f",
        source=f"{fit_doc['source']}, model {fit_doc['model']} (benchmarks/data/gp_fit.json)",
        log_features=tuple(fit_doc["log"]),
        cv_kendall_tau=round(fit_doc["cv"]["cv_tau"], 4),
        heldout_kendall_tau=round(mine, 4),
        heldout_flops_kendall_tau=round(flops, 4),
        heldout_designs=heldout["designs"],
        replaces=replaced,
    )
    return f"shipped {fit_doc['model']} as {path} (version {saved['version']}; held-out τ {mine:+.3f} > FLOPs {flops:+.3f})"


# -- the command ----------------------------------------------------------------------------------
def fit_set(table: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in table if d["split"] == "fit" and d["AP"] is not None]


def analyze(table: Sequence[dict[str, Any]], n_boot: int = N_BOOT, n_perm: int = N_PERM) -> dict[str, Any]:
    fit = fit_set(table)
    if len(fit) < 10:
        raise SystemExit(
            f"error: {len(fit)} fit designs have both seeds; accepted: at least 10 (train the table first)"
        )
    features = feature_report(fit, FEATURES, n_boot, n_perm)
    parts = feature_report(fit, part_feature_names(fit[0]), n_boot, n_perm)
    cv = cross_validate(fit)
    best = best_feature(fit)
    chosen = max(MODELS, key=lambda m: cv[m]["cv_tau"])
    return {
        "fit_designs": len(fit),
        "features": features,
        "exploratory_parts": parts,
        "cv": cv,
        "best_feature": best,
        "best_feature_partial_tau": partial_tau(column(fit, best), [d["AP"] for d in fit], column(fit, "flops")),
        "chosen_model": chosen,
        "noise": noise_report(table),
    }


def fit_document(table: Sequence[dict[str, Any]], report: dict[str, Any]) -> dict[str, Any]:
    """What is committed before the held-out set trains: the chosen model fitted on the whole
    fit set, in the shipped score's format, with the facts the held-out test reads."""
    fit = fit_set(table)
    model = report["chosen_model"]
    return {
        "format": 1,
        "name": "fitted",
        "model": model,
        "source": f"benchmarks/gp_analysis.py on the {len(fit)} fit designs of benchmarks/data/gp_table_results.jsonl",
        "cv": report["cv"][model],
        "cv_flops": report["cv"]["flops"],
        "best_feature": report["best_feature"],
        "best_feature_partial_tau": report["best_feature_partial_tau"],
        "log": [n for n in resolve(model, fit) if n in LOG_FEATURES],
        "features": fit_model(fit, model),
    }


def print_report(report: dict[str, Any]) -> None:
    from nas.core.table import format_table

    def ci(v: Sequence[float]) -> str:
        return f"[{v[0]:+.2f}, {v[1]:+.2f}]"

    print(f"fit set: {report['fit_designs']} designs (2-seed mean AP)")
    rows = [
        [
            r["feature"],
            f"{r['tau']:+.2f}",
            ci(r["tau_ci95"]),
            f"{r['partial_tau']:+.2f}",
            ci(r["partial_tau_ci95"]),
            f"{r['p_partial']:.4f}",
            f"{r['p_partial_holm']:.4f}",
        ]
        for r in sorted(
            report["features"], key=lambda r: -abs(r["partial_tau"] if math.isfinite(r["partial_tau"]) else 0)
        )
    ]
    print(
        format_table(["feature", "τ", "95 % CI", "partial τ | FLOPs", "95 % CI", "p", "p Holm (19)"], rows, "<>>>>>>")
    )
    print("\ncross-validated cheap scores (3-fold × 50, τ within folds):")
    rows = [
        [m, f"{v['cv_tau']:+.3f}", ci(v["cv_tau_range95"]), f"{v['wins_vs_flops']:.2f}"]
        for m, v in sorted(report["cv"].items(), key=lambda kv: -kv[1]["cv_tau"])
    ]
    print(format_table(["model", "cv τ", "fold range", "wins vs FLOPs"], rows, "<>>>"))
    print(f"chosen: {report['chosen_model']}; best single feature: {report['best_feature']}")
    print("noise:", json.dumps(report["noise"], default=float))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--write-fit", action="store_true", help=f"write {FIT_FILE.name} (commit it before the held-out set)"
    )
    p.add_argument("--heldout", action="store_true", help=f"test the committed {FIT_FILE.name} on the held-out set")
    p.add_argument(
        "--ship",
        action="store_true",
        help="with --heldout: write the committed fit as the search's `fitted` score if its held-out τ beats FLOPs'",
    )
    p.add_argument("--bootstrap", type=int, default=N_BOOT)
    p.add_argument("--permutations", type=int, default=N_PERM)
    p.add_argument("--scale", default="reduced")
    p.add_argument(
        "--scale-check",
        metavar="SCALE",
        default=None,
        help=f"also τ between --scale and SCALE (e.g. default) on the first {SCALE_CHECK_DESIGNS} fit designs",
    )
    p.add_argument(
        "--scale-noise",
        metavar="SCALE",
        default=None,
        help=f"the proxy's noise at SCALE (e.g. default) against --scale on the first {SCALE_NOISE_DESIGNS} fit designs",
    )
    p.add_argument("--designs-file", type=Path, default=DESIGNS_FILE, help=argparse.SUPPRESS)
    p.add_argument("--results-file", type=Path, default=RESULTS_FILE, help=argparse.SUPPRESS)
    p.add_argument("--fit-file", type=Path, default=FIT_FILE, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    table = load_table(args.designs_file, args.results_file, args.scale)
    report = analyze(table, args.bootstrap, args.permutations)
    print_report(report)
    if args.write_fit:
        if args.fit_file.exists():
            p.exit(2, f"error: {args.fit_file} exists; accepted: the fit is written once, before the held-out set\n")
        write_json(args.fit_file, fit_document(table, report), indent=1)
        print(f"wrote {args.fit_file}: commit it, then train the held-out set with --fit-commit")
    if args.heldout:
        if not args.fit_file.exists():
            p.exit(2, f"error: {args.fit_file} is missing; accepted: --write-fit and commit it first\n")
        fit_doc = json.loads(args.fit_file.read_text())
        report["heldout"] = heldout_report(table, fit_doc, args.bootstrap)
        print("held-out:", json.dumps(report["heldout"], indent=1, default=float))
        if args.ship:
            print(ship(fit_doc, report["heldout"]))
    elif args.ship:
        p.exit(2, "error: --ship needs --heldout; accepted: a fit ships only on its held-out test\n")
    if args.scale_check:
        other = load_table(args.designs_file, args.results_file, args.scale_check)
        report["scale_check"] = {"scales": [args.scale, args.scale_check], **scale_report(table, other, args.bootstrap)}
        print("scale check:", json.dumps(report["scale_check"], indent=1, default=float))
    if args.scale_noise:
        other = load_table(args.designs_file, args.results_file, args.scale_noise)
        report["scale_noise"] = {
            "scales": {"reference": args.scale, "search": args.scale_noise},
            **scale_noise_report(table, other, args.bootstrap),
        }
        print("scale noise:", json.dumps(report["scale_noise"], indent=1, default=float))
    write_result("gp_analysis", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
