"""What a search shows and leaves behind: progress bars, the Pareto front (printed and as
``pareto.png``), ``summary.json`` and ``best.yaml``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from nas.core.runio import atomic_write_bytes, atomic_write_json, atomic_write_text
from nas.engine.options import SearchOptions
from nas.engine.stats import pareto_fronts
from search_spaces import parse_yaml
from search_spaces.config import part_summary


def trained_rows(study) -> list[dict[str, Any]]:  # noqa: ANN001
    """Every trained trial of the proxy study as a plain dict (``summary.json``)."""
    import yaml

    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state.name not in ("COMPLETE", "PRUNED", "FAIL") or t.user_attrs.get("interrupted"):
            continue
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "AP": t.values[0] if t.values else None,
                "AP50": t.user_attrs.get("AP50"),
                "last_AP": t.user_attrs.get("last_AP"),
                "reason": t.user_attrs.get("reason"),
                "flops": int(t.user_attrs["flops"]),
                "params": t.user_attrs["params"],
                "knobs": t.params,
                "metrics": t.user_attrs["metrics"],
                "config": yaml.safe_load(t.user_attrs["config"]),
            }
        )
    return rows


def pareto_rows(rows: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    done = [r for r in rows if r["state"] == "COMPLETE" and r["flops"] <= budget]
    front = pareto_fronts([(r["AP"], r["flops"]) for r in done])
    return sorted((done[i] for i in front[0]), key=lambda r: r["flops"]) if front else []


def write_outputs(study, opts: SearchOptions) -> dict[str, Any]:  # noqa: ANN001
    rows = trained_rows(study)
    front = pareto_rows(rows, opts.budget)
    best = max(front, key=lambda r: (r["AP"], -r["flops"])) if front else None
    summary = {"options": opts.identity(), "budget": opts.budget, "trials": rows, "pareto": [r["trial"] for r in front]}
    summary["best_trial"] = best["trial"] if best else None
    if best is not None:
        atomic_write_text(opts.run_dir / "best.yaml", parse_yaml(_yaml_of(study, best["trial"])).to_yaml())
    atomic_write_json(opts.run_dir / "summary.json", summary)
    plot_pareto(rows, front, opts.budget, opts.run_dir / "pareto.png")
    return summary


def _yaml_of(study, number: int) -> str:  # noqa: ANN001
    return study.trials[number].user_attrs["config"]


def plot_pareto(rows: list[dict[str, Any]], front: list[dict[str, Any]], budget: int, path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    done = [r for r in rows if r["state"] == "COMPLETE"]
    pruned = [r for r in rows if r["state"] == "PRUNED" and r["last_AP"] is not None]
    ax.scatter([r["flops"] / 1e9 for r in done], [r["AP"] for r in done], c="tab:blue", label="trained")
    ax.scatter(
        [r["flops"] / 1e9 for r in pruned], [r["last_AP"] for r in pruned], c="lightgray", label="stopped (last AP)"
    )
    if front:
        ax.plot([r["flops"] / 1e9 for r in front], [r["AP"] for r in front], "o-", c="tab:red", label="Pareto front")
    ax.axvline(budget / 1e9, ls="--", c="k", label="budget")
    ax.set_xlabel("GFLOPs (full size)")
    ax.set_ylabel("proxy box AP")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def format_front(summary: dict[str, Any]) -> str:
    by_number = {r["trial"]: r for r in summary["trials"]}
    lines = [f"{'trial':>5}  {'GFLOPs':>7}  {'AP':>6}  {'backbone':<22} {'neck':<22}"]
    for n in summary["pareto"]:
        r = by_number[n]
        mark = " *" if n == summary["best_trial"] else ""
        lines.append(
            f"{n:>5}  {r['flops'] / 1e9:7.1f}  {r['AP']:6.3f}  {_part(r['config']['backbone']):<22} {_part(r['config']['neck']):<22}{mark}"
        )
    return "\n".join(lines)


def _part(p: dict[str, Any]) -> str:
    return part_summary(p)


def progress_bar(total: int, desc: str, enabled: bool, initial: int = 0):  # noqa: ANN202
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, initial=initial, disable=not enabled, file=sys.stderr, dynamic_ncols=True)
