"""Proxy noise: how reliably does one proxy training tell per-stage designs apart?

A proxy is an instrument; its first property is its noise. For each *arm* (a named recipe, at a
*scale*) every design of a pre-registered list is trained with 2 seeds (3 for a third of them)
and scored several ways from the same trainings (*variants*: the last or the averaged weights,
on the recipe's own val split or a large fixed one, AP or a loss). Per (arm, variant):

- ICC(1) = between-design variance / (between + seed variance), one-way random effects on
  unequal seed counts, with a 95 % bootstrap CI over designs — the single-run reliability;
- seed noise sd (pooled within designs), design sd (between-design component), seed-to-seed
  Kendall τ (seed 0 against seed 1), τ of the seed-mean score with FLOPs and params at 640 px;
- the noise split: evaluation noise from the AP of two disjoint halves of the val set
  (var(full) ≈ var(half A − half B) / 4), training noise = seed noise − evaluation noise;
- median CPU-seconds per training at 1 thread (``time.process_time`` of the training call).

The design list is written once by ``--register`` into ``benchmarks/data/proxy_noise_designs.json``
(committed before any training); ``--collect`` gathers finished trainings into
``benchmarks/data/proxy_noise_results.jsonl`` (committed: ``runs/`` is not kept), and the
analysis reads that file, so the figures reproduce without retraining. Resumable (each
training has its folder, checkpointed per epoch) and shardable (``--shard i/n``) by the study
runner (:mod:`benchmarks.lib.study`)::

    .venv/bin/python -m benchmarks.proxy_noise --register              # once, then commit it
    .venv/bin/python -m benchmarks.proxy_noise --arms v1,v2 --designs 12 --shard 0/2 &
    .venv/bin/python -m benchmarks.proxy_noise --arms v1,v2 --designs 12 --shard 1/2 &
    .venv/bin/python -m benchmarks.proxy_noise --collect --analyze       # table, JSON, figure

Output: ``runs/bench/proxy_noise.json`` and ``proxy_noise.png`` (ICC against CPU-s per recipe).
Designs are paired by construction: a training's data order and flips are a function of its
seed only, so two designs with the same seed see the same images in the same order.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.lib.common import BENCH_DIR, write_result
from benchmarks.lib.designs import candidates, majority_blocks
from benchmarks.lib.recipes import SCALES
from benchmarks.lib.stats import icc1
from benchmarks.lib.study import collect, pending, read_rows, run_once, shard_arg, timed_training, write_once

ROOT = Path(__file__).resolve().parents[1]
DESIGNS_FILE = ROOT / "benchmarks" / "data" / "proxy_noise_designs.json"
RESULTS_FILE = ROOT / "benchmarks" / "data" / "proxy_noise_results.jsonl"
STUDY_DIR = BENCH_DIR / "proxy_noise"
#: the sampling seed of the registered list (``benchmarks.lib.designs.perstage_candidate``, named
#: ``rank_study.perstage_candidate`` in the registered rule: stratified over the 16 backbone × neck
#: majority-block pairs, feasible below 150 GFLOPs, heterogeneous)
DESIGN_SEED = 27
DESIGNS = 30
#: every third design (index % 3 == 0) gets a third seed
THIRD_SEED_EVERY = 3
#: arm -> (recipe version, changes). ``v1`` trains exactly as v1 does and only observes an
#: average of its weights (scored post hoc), so the evaluation-side levers need no retraining.
#: ``fresh-linear`` is the first v2 draft the screen measured (fresh images every epoch, 30 warm-up
#: steps and linear decay to zero, a 2,000-image val set): it narrowed the spread between designs
#: and was not shipped; ``fresh`` and ``linear`` take its two training levers one at a time.
LINEAR = {"schedule": "linear", "min_lr_ratio": 0.0, "warmup_iters": 30}
ARMS: dict[str, tuple[str, dict[str, Any]]] = {
    "v1": ("v1", {"ema_decay": 0.99}),
    "v2": ("v2", {}),
    "fresh-linear": ("v2", {"fresh_images": True, **LINEAR, "val_images": 2000, "epoch_val_images": 200}),
    "fresh": ("v2", {"fresh_images": True}),
    "linear": ("v2", LINEAR),
    "v1-ref3x": ("v1", {"ema_decay": 0.99, "epochs_factor": 3}),  # fidelity reference: 3x the steps
    "v2-ref3x": ("v2", {"epochs_factor": 3}),
}
#: the variant each recipe version reports (its official AP): ``own`` is the arm's own val split
#: (v1: a quarter of the images; v2: its fixed set), ``large`` the study's fixed 2,000-image set
OFFICIAL = {"v1": "AP.own.last", "v2": "AP.own.ema"}
#: what ``--scoring light`` keeps per arm: its official score, and for v1 also the v2 way of
#: scoring the very same training (the eval-side levers, paired)
LIGHT = {"v1": ("AP.own.last", "AP.large.ema")}


def official(arm: str) -> str:
    """The variant ``arm``'s recipe reports (the fresh-linear draft scored its own 2,000-image set: ``large``)."""
    return "AP.large.ema" if arm == "fresh-linear" else OFFICIAL[ARMS[arm][0]]


#: the study's large val set, the same for every arm (the v2 draft's set: 2,000 images, drawn with
#: its pool; 64 at the plumbing scale)
LARGE_VAL = {"val_images": 2000, "fresh_images": True}
LARGE_VAL_SMOKE = {"val_images": 64}
BN_IMAGES = 512


# -- the registered designs -----------------------------------------------------------------------
def register(path: Path = DESIGNS_FILE, count: int = DESIGNS, seed: int = DESIGN_SEED) -> dict[str, Any]:
    """The design list (written once; a second call returns the file, refusing a different list)."""
    from nas.core.cost import cost
    from search_spaces import compile_config

    designs = []
    for cfg in candidates(count, seed, "yolor"):
        c = cost(compile_config(cfg))
        k = len(designs)
        designs.append(
            {
                "id": f"d{k:02d}",
                "seeds": [0, 1, 2] if k % THIRD_SEED_EVERY == 0 else [0, 1],
                "blocks": majority_blocks(cfg),
                "pattern": "/".join(cfg.pattern()),
                "flops": c.flops,
                "params": c.params,
                "config": cfg.to_dict(),
            }
        )
    doc = {  # the registered text names the draw where it lived then (now benchmarks.lib.designs)
        "rule": f"benchmarks.rank_study.perstage_candidate(i, seed={seed}), i = 0, 1, ...; duplicates skipped; "
        f"seeds 0 and 1, and 2 for every {THIRD_SEED_EVERY}rd design; the first 12 are the screening set",
        "designs": designs,
    }
    return write_once(path, doc)


def load_designs(path: Path = DESIGNS_FILE) -> list[dict[str, Any]]:
    if not path.exists():
        raise SystemExit(f"{path} is missing: register the designs first (--register) and commit the file")
    return json.loads(path.read_text())["designs"]


def arm_recipe(arm: str, scale: str, seed: int) -> Any:
    """The trainer's recipe of ``arm`` at ``scale`` for ``seed`` (fp32: the studies' arithmetic)."""
    from evaluators.recipe import Recipe

    version, changes = ARMS[arm]
    changes = dict(changes)
    factor = changes.pop("epochs_factor", 1)
    base = Recipe.named(version, **SCALES[scale])
    return Recipe.named(version, **{**SCALES[scale], **changes, "epochs": base.epochs * factor}).replace(
        seed=seed, precision="fp32"
    )


def jobs(
    designs: list[dict[str, Any]], arms: list[str], seeds: tuple[int, ...] = (0, 1, 2)
) -> list[tuple[str, dict[str, Any], int]]:
    """Every (arm, design, registered seed among ``seeds``), seed-major: a study cut short still
    has whole seed pairs of the first designs in every arm."""
    out = []
    for seed in seeds:
        for d in designs:
            if seed in d["seeds"]:
                out += [(arm, d, seed) for arm in arms]
    return out


def job_dir(scale: str, arm: str, design: dict[str, Any], seed: int, root: Path = STUDY_DIR) -> Path:
    return root / scale / arm / design["id"] / f"seed{seed}"


# -- one training and its scores ------------------------------------------------------------------
def run_job(
    scale: str, arm: str, design: dict[str, Any], seed: int, root: Path = STUDY_DIR, scoring: str = "full"
) -> dict[str, Any]:
    """Train (or resume) one job, then score its checkpoint (``full``: every variant; ``light``:
    the arm's own score and its halves only); ``scores.json`` marks it done."""
    folder = job_dir(scale, arm, design, seed, root)
    return run_once(folder / "scores.json", lambda: _train_and_score(scale, arm, design, seed, folder, scoring))


def _train_and_score(
    scale: str, arm: str, design: dict[str, Any], seed: int, folder: Path, scoring: str
) -> dict[str, Any]:
    from search_spaces import from_dict

    recipe = arm_recipe(arm, scale, seed)
    result, seconds = timed_training(design, recipe, folder)
    row = {
        "scale": scale,
        "arm": arm,
        "recipe": recipe.version,
        "design": design["id"],
        "seed": seed,
        "status": result["status"],
        "flops": design["flops"],
        "params": design["params"],
        **seconds,
        "train_loss_sum": round(sum(e["loss"] for e in result["history"]), 5),
        "history_AP": [e["AP"] for e in result["history"]],
        "reported_AP": result["AP"],
    }
    if result["status"] == "ok":
        tick = time.process_time()
        only = LIGHT.get(arm, (official(arm),)) if scoring == "light" else None
        row.update(score_checkpoint(from_dict(design["config"]), recipe, scale, folder / "checkpoint.pt", only))
        row["scoring_cpu_s"] = round(time.process_time() - tick, 2)
    return row


def score_checkpoint(
    cfg: Any, recipe: Any, scale: str, checkpoint: Path, only: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """Every variant of one finished training: the last and the averaged weights (BatchNorm
    recomputed), on the recipe's own val split (``own``) and on the large fixed val set of
    the scale (``large``, v2's), each also on the two halves of its val images, with the val loss.
    ``only``: just these variants (``AP.own.last``, ...), their halves and val losses."""
    import torch

    from evaluators.recipe import Recipe
    from evaluators.train import prepare_model, proxy_graph, recipe_data, recompute_batchnorm, resolve_runtime
    from nas.core.module import build

    runtime = resolve_runtime("fp32", torch.device("cpu"))
    own = recipe_data("shapes", recipe)
    large = recipe_data(
        "shapes", Recipe.named("v2", **{**SCALES[scale], **LARGE_VAL, **(LARGE_VAL_SMOKE if scale == "smoke" else {})})
    )
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    out: dict[str, Any] = {}
    for weights in ("last", "ema"):
        if only is not None and not any(v.endswith(f".{weights}") for v in only):
            continue
        graph, _ = proxy_graph(cfg, recipe, own.num_classes)
        net = build(graph)
        net.load_state_dict(state["model"] if weights == "last" else state["ema"]["model"])
        prepare_model(net, runtime)
        if weights == "ema":  # as the recipe's trainer does; v1 never recomputed: on the large set's pool
            recompute_batchnorm(net, own if recipe.bn_images else large, recipe.bn_images or BN_IMAGES, runtime=runtime)
        for split, data in (("own", own), ("large", large)):
            if split == "own" and own.val.gt == large.val.gt:
                continue  # the fresh-linear draft's own split is the large one
            if only is not None and f"AP.{split}.{weights}" not in only:
                continue
            out.update({f"{k}.{split}.{weights}": v for k, v in scores_on(net, data, runtime).items()})
    return out


def scores_on(net: Any, data: Any, runtime: Any) -> dict[str, float]:
    """AP on the val set and on its two halves (even / odd positions), and the mean val loss
    (per batch of 32, as the trainer's loss is)."""
    import torch

    from evaluators.coco_eval import ap_by_subset
    from evaluators.train import val_detections

    losses: list[float] = []
    dets = val_detections(net, data, torch.device("cpu"), runtime=runtime, losses=losses)
    ids = data.val.image_ids
    ap = ap_by_subset(data.val.gt, dets, {"A": ids[0::2], "B": ids[1::2]})
    out = {"AP": round(ap[""], 5), "AP_A": round(ap["A"], 5), "AP_B": round(ap["B"], 5)}
    out["valloss"] = statistics.fmean(losses)
    return out


# -- collecting and analysing ------------------------------------------------------------------------
def row_key(r: dict[str, Any]) -> tuple[str, str, str, int]:
    """A training's identity among the study's rows."""
    return (r["scale"], r["arm"], r["design"], r["seed"])


def variants_of(rows: list[dict[str, Any]]) -> list[str]:
    """The score variants present (``AP.large.ema``, ``valloss.own.last``, ...), loss ones
    negated; ``AP_A.*`` is the AP on half the val images (even positions): the same training
    scored with a val set half as large."""
    names = sorted({k for r in rows for k in r if k.startswith(("AP.", "AP_A.", "valloss."))})
    return names + ["trainloss"]


def score(r: dict[str, Any], variant: str) -> float | None:
    """Higher is better: AP as is, losses negated."""
    if variant == "trainloss":
        return -r["train_loss_sum"]
    v = r.get(variant)
    return None if v is None else (-v if variant.startswith("valloss") else v)


def analyze(rows: list[dict[str, Any]], n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """The report: per scale and arm, per variant, reliability and its parts (see the module doc)."""
    report: dict[str, Any] = {}
    rng = np.random.default_rng(seed)
    for scale in sorted({r["scale"] for r in rows}):
        for arm in sorted({r["arm"] for r in rows if r["scale"] == scale}):
            ok = [r for r in rows if r["scale"] == scale and r["arm"] == arm and r["status"] == "ok"]
            by_design: dict[str, list[dict[str, Any]]] = {}
            for r in ok:
                by_design.setdefault(r["design"], []).append(r)
            paired = {d: rs for d, rs in by_design.items() if len(rs) >= 2}
            entry: dict[str, Any] = {
                "trainings": len(ok),
                "designs": len(by_design),
                "designs_with_2_seeds": len(paired),
                "median_cpu_s": _median([r["cpu_s"] for r in ok if not r.get("resumed")]),
                "median_scoring_cpu_s": statistics.median(r.get("scoring_cpu_s", 0) for r in ok) if ok else None,
                "variants": {},
            }
            rank_avg = _rank_average(ok, "AP.large.ema", "valloss.large.ema")
            for variant in [*variants_of(ok), "rankavg(AP,valloss).large.ema"]:
                values = {
                    d: [_value(r, variant, rank_avg) for r in sorted(rs, key=lambda r: r["seed"])]
                    for d, rs in paired.items()
                }
                groups = {d: [v for v in g if v is not None] for d, g in values.items()}
                groups = {d: g for d, g in groups.items() if len(g) >= 2}
                if len(groups) < 3:
                    continue
                entry["variants"][variant] = _reliability(groups, by_design, variant, rank_avg, rng, n_boot)
            for variant in ("AP.own.last", "AP.own.ema", "AP.large.last", "AP.large.ema"):
                halves = [(r.get(f"AP_A{variant[2:]}"), r.get(f"AP_B{variant[2:]}")) for r in ok]
                halves = [(a, b) for a, b in halves if a is not None and b is not None]
                if halves and variant in entry["variants"]:
                    v = entry["variants"][variant]
                    eval_var = statistics.fmean((a - b) ** 2 for a, b in halves) / 4
                    v["eval_noise_sd"] = math.sqrt(eval_var)
                    v["train_noise_sd"] = math.sqrt(max(0.0, v["seed_sd"] ** 2 - eval_var))
            entry["official_variant"] = official(arm) if arm in ARMS else None
            report.setdefault(scale, {})[arm] = entry
    return report


#: issue 27, item 4: each default's score against the 3x-steps reference (label, arm, variant)
FIDELITY_ARMS = (
    ("v1 (the old default)", "v1", "AP.own.last"),
    ("v2 (the new default: the same trainings scored its way)", "v1", "AP.large.ema"),
    ("v2 (its own trainings)", "v2", "AP.own.ema"),
)


def fidelity_to_reference(
    rows: list[dict[str, Any]], reference: str = "v2-ref3x", n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Kendall τ of each default's score with the reference (3x the steps), per scale, on the
    designs both have with seeds 0 and 1: of the 2-seed means, and of seed 0 alone (what one
    run sees), with bootstrap CIs over designs and the paired difference new − old."""
    from benchmarks.lib.stats import bootstrap_ci, bootstrap_tau_difference
    from nas.engine.stats import kendall_tau

    def means(arm: str, variant: str, scale: str) -> dict[str, dict[int, float]]:
        out: dict[str, dict[int, float]] = {}
        for r in rows:
            v = score(r, variant) if r["scale"] == scale and r["arm"] == arm and r["status"] == "ok" else None
            if v is not None and r["seed"] in (0, 1):
                out.setdefault(r["design"], {})[r["seed"]] = v
        return {d: s for d, s in out.items() if len(s) == 2}

    report: dict[str, Any] = {}
    for scale in sorted({r["scale"] for r in rows if r["arm"] == reference}):
        ref = means(reference, official(reference), scale)
        entry: dict[str, Any] = {"reference": reference, "reference_designs": len(ref)}
        if len(ref) >= 3:
            names = sorted(ref)
            entry["reference_seed_tau"] = kendall_tau([ref[d][0] for d in names], [ref[d][1] for d in names])
        per: dict[str, tuple[list[str], np.ndarray, np.ndarray]] = {}
        for label, arm, variant in FIDELITY_ARMS:
            got = means(arm, variant, scale)
            names = sorted(set(got) & set(ref))
            if len(names) < 3:
                continue
            target = np.array([(ref[d][0] + ref[d][1]) / 2 for d in names])
            mean = np.array([(got[d][0] + got[d][1]) / 2 for d in names])
            one = np.array([got[d][0] for d in names])
            per[label] = (names, mean, target)
            entry[label] = {
                "arm": arm,
                "variant": variant,
                "designs": len(names),
                "tau_2seed_mean": kendall_tau(mean, target),
                "tau_2seed_mean_ci95": bootstrap_ci(mean, target, kendall_tau, n_boot, seed),
                "tau_one_seed": kendall_tau(one, target),
                "tau_one_seed_ci95": bootstrap_ci(one, target, kendall_tau, n_boot, seed),
            }
        old, new = (label for label, _, _ in FIDELITY_ARMS[:2])
        if old in per and new in per and per[old][0] == per[new][0]:
            _, a, target = per[old]
            _, b, _ = per[new]
            entry["new_minus_old_tau"] = {
                "mean": entry[new]["tau_2seed_mean"] - entry[old]["tau_2seed_mean"],
                "ci95": bootstrap_tau_difference(a, b, target, n_boot, seed),
            }
        report[scale] = entry
    return report


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _rank_average(rows: list[dict[str, Any]], *variants: str) -> dict[tuple[str, int], float]:
    """Per seed, the mean over ``variants`` of each design's rank among that seed's designs
    (seeds 0 and 1, which every design has: a third seed's ranks among a third of the designs
    would not be on the same scale)."""
    from nas.engine.stats import ranks

    out: dict[tuple[str, int], float] = {}
    for seed in (0, 1):
        rs = [r for r in rows if r["seed"] == seed and all(score(r, v) is not None for v in variants)]
        if len(rs) < 2:
            continue
        total = sum(ranks([score(r, v) for r in rs]) / (len(rs) - 1) for v in variants) / len(variants)
        out.update({(r["design"], seed): float(t) for r, t in zip(rs, total, strict=True)})
    return out


def _value(r: dict[str, Any], variant: str, rank_avg: dict[tuple[str, int], float]) -> float | None:
    if variant.startswith("rankavg"):
        return rank_avg.get((r["design"], r["seed"]))
    return score(r, variant)


def _reliability(
    groups: dict[str, list[float]],
    by_design: dict[str, list[dict[str, Any]]],
    variant: str,
    rank_avg: dict[tuple[str, int], float],
    rng: np.random.Generator,
    n_boot: int,
) -> dict[str, Any]:
    from nas.engine.stats import kendall_tau

    names = sorted(groups)
    base = icc1([groups[d] for d in names])
    boots = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(names), len(names))
        boots.append(icc1([groups[names[i]] for i in pick])["icc"])
    boots = [b for b in boots if not math.isnan(b)]
    s0 = [groups[d][0] for d in names]
    s1 = [groups[d][1] for d in names]
    means = [statistics.fmean(groups[d]) for d in names]
    first = {d: by_design[d][0] for d in names}
    return {
        **base,
        "icc_ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))] if boots else None,
        "seed_tau": kendall_tau(s0, s1),
        "tau_flops": kendall_tau(means, [first[d]["flops"] for d in names]),
        "tau_params": kendall_tau(means, [first[d]["params"] for d in names]),
        "mean": statistics.fmean(means),
        "designs": len(names),
    }


def print_report(report: dict[str, Any]) -> None:
    head = f"{'scale':8s} {'arm':10s} {'variant':32s} {'ICC [95% CI]':22s} {'seed τ':>7s} {'seed sd':>8s} {'design sd':>9s} {'eval sd':>8s} {'τ FLOPs':>8s} {'CPU-s':>6s}"
    print(head)
    for scale, arms in report.items():
        for arm, e in arms.items():
            for variant, v in sorted(e["variants"].items(), key=lambda kv: -np.nan_to_num(kv[1]["icc"], nan=-9)):
                ci = v["icc_ci95"]
                ci_s = f"{v['icc']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{v['icc']:.2f}"
                ev = v.get("eval_noise_sd")
                mark = "*" if variant == e["official_variant"] else " "
                print(
                    f"{scale:8s} {arm:10s} {mark}{variant:31s} {ci_s:22s} {v['seed_tau']:+7.2f} {v['seed_sd']:8.4f} "
                    f"{v['design_sd']:9.4f} {'' if ev is None else f'{ev:.4f}':>8s} {v['tau_flops']:+8.2f} "
                    f"{e['median_cpu_s']:6.0f}"
                )


def plot(report: dict[str, Any], path: Path) -> None:
    """ICC(1) of each arm's official score against its median CPU-seconds per training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for scale, arms in report.items():
        for arm, e in arms.items():
            for variant in {e["official_variant"], "AP.large.ema"}:
                v = e["variants"].get(variant)
                if v is None:
                    continue
                ci = v["icc_ci95"] or [v["icc"], v["icc"]]
                x = e["median_cpu_s"]
                ax.errorbar([x], [v["icc"]], yerr=[[v["icc"] - ci[0]], [ci[1] - v["icc"]]], fmt="o", capsize=3)
                ax.annotate(
                    f"{scale}/{arm}\n{variant}, {v['designs']} designs",
                    (x, v["icc"]),
                    fontsize=7,
                    xytext=(4, 4),
                    textcoords="offset points",
                )
    ax.axhline(0.8, ls="--", lw=0.8, color="grey")
    ax.set_xlabel("median CPU-seconds per training (1 thread)")
    ax.set_ylabel("ICC(1), single run [95% CI]")
    ax.set_title("Proxy reliability against cost")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--register", action="store_true", help=f"write the design list ({DESIGNS_FILE.name}) once")
    p.add_argument("--arms", default="v1,v2", help=f"comma-separated, of: {', '.join(ARMS)}")
    p.add_argument("--scale", choices=sorted(SCALES), default="reduced")
    p.add_argument("--designs", type=int, default=DESIGNS, help="train the first N registered designs")
    p.add_argument("--shard", default="0/1", help="i/n: train only jobs j with j mod n == i")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="train only these registered seeds")
    p.add_argument("--deadline", default=None, help="UTC HH:MM: start no training after it")
    p.add_argument(
        "--scoring",
        choices=("full", "light"),
        default="full",
        help="full: every variant of each training; light: its recipe's own score and halves (a confirmation run)",
    )
    p.add_argument("--collect", action="store_true", help=f"merge finished trainings into {RESULTS_FILE.name}")
    p.add_argument("--analyze", action="store_true", help="report from the results file (no training)")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--study-dir", type=Path, default=STUDY_DIR, help=argparse.SUPPRESS)
    p.add_argument("--designs-file", type=Path, default=DESIGNS_FILE, help=argparse.SUPPRESS)
    p.add_argument("--results-file", type=Path, default=RESULTS_FILE, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    arms = [a for a in args.arms.split(",") if a]
    bad = [a for a in arms if a not in ARMS]
    shard = shard_arg(p, args.shard)
    if bad:
        p.exit(2, f"error: --arms: {', '.join(bad)} not accepted; accepted: {', '.join(ARMS)}\n")
    if args.register:
        doc = register(args.designs_file)
        print(f"{args.designs_file}: {len(doc['designs'])} designs")
        return 0
    if not (args.collect or args.analyze):
        designs = load_designs(args.designs_file)[: args.designs]
        todo = jobs(designs, arms, tuple(args.seeds))

        def done(job: tuple[str, dict[str, Any], int]) -> bool:
            arm, d, seed = job
            return (job_dir(args.scale, arm, d, seed, args.study_dir) / "scores.json").exists()

        for j, (arm, d, seed) in pending(todo, shard, done, args.deadline):
            r = run_job(args.scale, arm, d, seed, args.study_dir, args.scoring)
            score = official(arm)
            print(
                f"[{j + 1}/{len(todo)}] {args.scale}/{arm} {d['id']} ({d['blocks']}) seed {seed}: "
                f"{score} {r.get(score)}  cpu {r['cpu_s']:.0f} s",
                flush=True,
            )
        return 0
    rows = collect(args.study_dir, args.results_file, row_key) if args.collect else read_rows(args.results_file)
    if not args.analyze:
        print(f"{args.results_file}: {len(rows)} trainings")
        return 0
    report = analyze(rows, args.bootstrap)
    fidelity = fidelity_to_reference(rows, n_boot=args.bootstrap)
    write_result(
        "proxy_noise",
        {"designs_file": str(args.designs_file.name), "report": report, "fidelity": fidelity, "rows": len(rows)},
    )
    plot(report, BENCH_DIR / "proxy_noise.png")
    print_report(report)
    for scale, entry in fidelity.items():
        print(f"\n{scale}: τ with {entry['reference']} (3x the steps, {entry['reference_designs']} designs)")
        for label, _, _ in FIDELITY_ARMS:
            if label in entry:
                e = entry[label]
                lo, hi = e["tau_2seed_mean_ci95"]
                print(
                    f"  {label:58s} 2-seed mean {e['tau_2seed_mean']:+.2f} [{lo:+.2f}, {hi:+.2f}]  "
                    f"one seed {e['tau_one_seed']:+.2f}  ({e['designs']} designs)"
                )
        if "new_minus_old_tau" in entry:
            d = entry["new_minus_old_tau"]
            print(f"  new − old: {d['mean']:+.2f} {np.round(d['ci95'], 2).tolist() if d['ci95'] else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
