"""What a search shows and leaves behind: progress bars, the Pareto front (printed and as
``pareto.png``), ``summary.json`` and ``best.yaml``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from nas.core.runio import atomic_write_bytes, atomic_write_json, atomic_write_text
from nas.core.table import format_table
from nas.engine.options import SearchOptions
from nas.engine.record.trials import config_of, flops_of, latency_of, metric_name, metrics_of, params_of
from nas.engine.stats import pareto_fronts, ranks
from search_spaces import parse_yaml
from search_spaces.config import part_summary


def trained_rows(study) -> list[dict[str, Any]]:  # noqa: ANN001
    """Every trained trial of the proxy study as a plain dict (``summary.json``): ``flops`` and
    ``params`` exact integers, ``latency_ms`` when the search predicted it."""
    import yaml

    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state.name not in ("COMPLETE", "PRUNED", "FAIL") or t.user_attrs.get("interrupted"):
            continue
        row = {
            "trial": t.number,
            "state": t.state.name,
            "AP": t.values[0] if t.values else None,
            "AP50": t.user_attrs.get("AP50"),
            "val_loss": t.user_attrs.get("val_loss"),
            "AP_seeds": t.user_attrs.get("AP_seeds"),
            "last_AP": t.user_attrs.get("last_AP"),
            "reason": t.user_attrs.get("reason"),
            "fidelity": t.user_attrs.get("fidelity"),  # {"epochs": e, "of": E}; None: full (runs made before)
            "flops": flops_of(t),
            "params": params_of(t),
            "knobs": t.params,
            "metrics": metrics_of(t),
            "config": yaml.safe_load(config_of(t)),
        }
        if latency_of(t) is not None:
            row["latency_ms"] = latency_of(t)
        rows.append(row)
    return rows


def cost_key(cost: str) -> str:
    """The row field of the cost objective: ``flops`` or ``latency_ms``."""
    return "flops" if cost == "flops" else "latency_ms"


def _feasible(r: dict[str, Any], budget: int, latency_budget_ms: float | None) -> bool:
    if r["flops"] > budget:
        return False
    return latency_budget_ms is None or (r.get("latency_ms") is not None and r["latency_ms"] <= latency_budget_ms)


def pareto_rows(
    rows: list[dict[str, Any]], budget: int, cost: str = "flops", latency_budget_ms: float | None = None
) -> list[dict[str, Any]]:
    """The Pareto front of (AP ↑, cost ↓) over completed trials within every budget."""
    key = cost_key(cost)
    done = [r for r in rows if r["state"] == "COMPLETE" and _feasible(r, budget, latency_budget_ms)]
    front = pareto_fronts([(r["AP"], r[key]) for r in done])
    return sorted((done[i] for i in front[0]), key=lambda r: r[key]) if front else []


#: 97.5 % quantiles of Student's t by degrees of freedom (another df: the next lower one's, a wider interval)
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}
_T975.update({12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000, 120: 1.980})
#: how the winner is chosen when every candidate has a val loss, and when not (runs before it was recorded)
ROBUST_RULE = "rank average of mean AP and mean val loss"
AP_RULE = "highest mean AP"


def choose_winner(candidates: list[tuple[int, float, float | None, float]]) -> tuple[int, str] | None:
    """The winner among ``(trial, AP, val_loss, cost)`` and the rule that chose it: the best rank
    average of AP (high) and val loss (low) when every candidate has a val loss — on the gradient-
    path table it is more reliable than AP alone (ICC 0.83 against 0.77 for one training at the
    search's scale, docs/results.md) — else the highest AP. Ties: higher AP, then lower cost.

    >>> choose_winner([(0, 0.30, 4.0, 90.0), (1, 0.31, 4.6, 80.0), (2, 0.29, 4.2, 70.0)])
    (0, 'rank average of mean AP and mean val loss')
    >>> choose_winner([(0, 0.30, None, 90.0), (1, 0.31, 4.6, 80.0)])
    (1, 'highest mean AP')
    """
    if not candidates:
        return None
    if any(c[2] is None for c in candidates):
        return max(candidates, key=lambda c: (c[1], -c[3]))[0], AP_RULE
    ap, loss = ranks([c[1] for c in candidates]), ranks([-c[2] for c in candidates])
    best = max(range(len(candidates)), key=lambda i: (ap[i] + loss[i], candidates[i][1], -candidates[i][3]))
    return candidates[best][0], ROBUST_RULE


def ap_interval(winner: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The winner's estimated AP (its seeds' mean) with a 95 % t interval from the seed sd pooled
    over every pick trained with several seeds; without them no interval (one seed per pick).

    >>> rows = [{"AP_seeds": [0.30, 0.32]}, {"AP_seeds": [0.20, 0.24]}]
    >>> w = ap_interval({"AP": 0.31, "AP_seeds": [0.30, 0.32]}, rows)
    >>> w["df"], round(w["seed_sd"], 4), [round(v, 3) for v in w["AP_ci95"]]
    (2, 0.0224, [0.242, 0.378])
    """
    groups = [r["AP_seeds"] for r in rows if r.get("AP_seeds") and len(r["AP_seeds"]) > 1]
    out: dict[str, Any] = {"AP": winner["AP"], "AP_seeds": winner.get("AP_seeds")}
    df = sum(len(g) - 1 for g in groups)
    if not df or not winner.get("AP_seeds") or len(winner["AP_seeds"]) < 2:
        return {**out, "AP_ci95": None, "seed_sd": None, "df": 0}
    sd = (sum(sum((x - sum(g) / len(g)) ** 2 for x in g) for g in groups) / df) ** 0.5
    half = _T975[max(k for k in _T975 if k <= df)] * sd / len(winner["AP_seeds"]) ** 0.5
    return {**out, "AP_ci95": [winner["AP"] - half, winner["AP"] + half], "seed_sd": sd, "df": df}


def write_outputs(study, opts: SearchOptions) -> dict[str, Any]:  # noqa: ANN001
    rows = trained_rows(study)
    front = pareto_rows(rows, opts.budget, opts.cost, opts.latency_budget_ms)
    key = cost_key(opts.cost)
    feasible = [r for r in rows if r["state"] == "COMPLETE" and _feasible(r, opts.budget, opts.latency_budget_ms)]
    chosen = choose_winner([(r["trial"], r["AP"], r.get("val_loss"), r[key]) for r in feasible])
    best = next(r for r in feasible if r["trial"] == chosen[0]) if chosen else None
    summary = {
        "options": opts.identity(),
        "budget": opts.budget,
        "cost": metric_name(opts.cost),
        "trials": rows,
        "pareto": [r["trial"] for r in front],
    }
    if opts.latency_budget_ms is not None:
        summary["latency_budget_ms"] = opts.latency_budget_ms
    summary["best_trial"] = best["trial"] if best else None
    if best is not None:
        summary["winner"] = {
            "trial": best["trial"],
            "method": chosen[1],
            "seeds": opts.seeds,
            **ap_interval(best, rows),
        }
    if best is not None:
        atomic_write_text(opts.run_dir / "best.yaml", parse_yaml(_yaml_of(study, best["trial"])).to_yaml())
    atomic_write_json(opts.run_dir / "summary.json", summary)
    plot_pareto(rows, front, opts.budget, opts.run_dir / "pareto.png", opts=opts)
    return summary


def _yaml_of(study, number: int) -> str:  # noqa: ANN001
    return config_of(study.trials[number])


def plot_pareto(
    rows: list[dict[str, Any]], front: list[dict[str, Any]], budget: int, path: Path, opts: SearchOptions | None = None
) -> None:
    """AP against the cost objective (:func:`pareto_figure`), written atomically as PNG."""
    import io

    import matplotlib.pyplot as plt

    fig = pareto_figure(rows, front, budget, opts)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def pareto_figure(
    rows: list[dict[str, Any]], front: list[dict[str, Any]], budget: int, opts: SearchOptions | None = None
) -> Any:
    """The figure of ``pareto.png``: trained trials, the low-fidelity trainings of the bottom rung
    (grey, their short-schedule AP; only if any) or, in runs made before, the ones ASHA stopped, the
    Pareto front, the budget line labelled with its value, a title naming the recipe; the
    legend sits outside the axes so it never hides a point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cost = opts.cost if opts is not None else "flops"
    key = cost_key(cost)

    def x(r: dict[str, Any]) -> float:
        return r["flops"] / 1e9 if cost == "flops" else r[key]

    fig, ax = plt.subplots(figsize=(7.6, 4.2), dpi=110)
    done = [r for r in rows if r["state"] == "COMPLETE" and r.get(key) is not None]
    pruned = [r for r in rows if r["state"] == "PRUNED" and r["last_AP"] is not None and r.get(key) is not None]
    ax.scatter([x(r) for r in done], [r["AP"] for r in done], c="tab:blue", label="trained", zorder=3)
    if pruned:
        low = all(r.get("fidelity") for r in pruned)
        label = "low fidelity (short-schedule AP)" if low else "stopped early (last AP)"
        ax.scatter([x(r) for r in pruned], [r["last_AP"] for r in pruned], c="darkgray", label=label)
    if front:
        ax.plot([x(r) for r in front], [r["AP"] for r in front], "o-", c="tab:red", label="Pareto front", zorder=4)
    if cost == "flops":
        limit, label = budget / 1e9, f"budget {budget / 1e9:g} GFLOPs"
    elif opts is not None and opts.latency_budget_ms is not None:
        limit, label = opts.latency_budget_ms, f"budget {opts.latency_budget_ms:g} ms"
    else:
        limit = label = None
    if limit is not None:
        ax.axvline(limit, ls="--", c="k", label=label)
    if cost == "flops":
        ax.set_xlabel("GFLOPs (full size)")
    else:
        ax.set_xlabel(f"predicted latency, ms (batch 1, {opts.device if opts else 'cpu'})")
    ax.set_ylabel("proxy box AP")
    if opts is not None:
        r = opts.recipe
        ax.set_title(
            f"{opts.name}: proxy AP vs {metric_name(cost)}\n"
            f"proxy recipe: {r.epochs} epochs, {r.img_size} px, width ×{r.width_mult:g}, {r.images} images, "
            f"data {opts.data if len(opts.data) < 30 else '…' + opts.data[-28:]}",
            fontsize=9,
        )
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, borderaxespad=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def format_front(summary: dict[str, Any]) -> str:
    """The Pareto front as the search prints it: one aligned row per trial, ``*`` = ``best.yaml``
    (a winner off the front, chosen by the rank average with val loss, gets its own row after it)."""
    by_number = {r["trial"]: r for r in summary["trials"]}
    shown = list(summary["pareto"])
    if summary.get("best_trial") is not None and summary["best_trial"] not in shown:
        shown.append(summary["best_trial"])
    lat = any("latency_ms" in by_number[n] for n in shown)
    header = ["trial", "GFLOPs", *(["ms"] if lat else []), "AP", "backbone", "neck", "best"]
    rows = []
    for n in shown:
        r = by_number[n]
        ms = [f"{r['latency_ms']:.1f}"] if lat else []
        parts = [_part(r["config"]["backbone"]), _part(r["config"]["neck"])]
        rows.append(
            [n, f"{r['flops'] / 1e9:.1f}", *ms, f"{r['AP']:.3f}", *parts, "*" if n == summary["best_trial"] else ""]
        )
    return format_table(header, rows, ">>" + (">" if lat else "") + "><<<")


def format_winner(summary: dict[str, Any]) -> str | None:
    """One line: how ``best.yaml`` was chosen and its AP with the interval, e.g.
    ``best.yaml: trial 3 by rank average of mean AP and mean val loss; AP 0.301 [0.285, 0.317] (2 seeds)``."""
    w = summary.get("winner")
    if not w:
        return None
    seeds = len(w.get("AP_seeds") or []) or 1
    ci = f" [{w['AP_ci95'][0]:.3f}, {w['AP_ci95'][1]:.3f}]" if w.get("AP_ci95") else ""
    return f"best.yaml: trial {w['trial']} by {w['method']}; AP {w['AP']:.3f}{ci} ({seeds} seed{'s' * (seeds > 1)})"


def _part(p: dict[str, Any]) -> str:
    return part_summary(p)


def progress_bar(total: int, desc: str, enabled: bool, initial: int = 0):  # noqa: ANN202
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, initial=initial, disable=not enabled, file=sys.stderr, dynamic_ncols=True)
