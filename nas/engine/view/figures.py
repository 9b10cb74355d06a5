"""The report's figures, drawn with matplotlib and written as SVG text to inline in the page:
the Pareto front, the cheap stage's candidates as a density, and the anatomy strip of one or two
designs. Text stays text (``svg.fonttype: none``: small, selectable, searchable), ids are made
unique per figure (several SVGs share one page), and points carry ``<title>`` tooltips.

Why SVG from matplotlib: it is already a dependency, a figure is a few hundred kB at most, and
the page needs no script; see docs/search.md ("The report") for the choice against Plotly.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from html import escape
from typing import Any

__all__ = ["BLOCK_COLOURS", "anatomy_figure", "cheap_figure", "front_figure", "to_svg"]

#: one colour per block, the same in every figure (colour-blind safe: Okabe–Ito)
BLOCK_COLOURS = {"res": "#999999", "prn": "#009E73", "csp": "#0072B2", "elan": "#E69F00"}
_OTHER_COLOUR = "#CC79A7"
_RC = {"svg.fonttype": "none", "font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8}
_ID = re.compile(r'\b(id="|url\(#|xlink:href="#|href="#)([A-Za-z][\w.\-]*)')


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def to_svg(fig: Any, key: str, titles: dict[str, str] | None = None) -> str:
    """``fig`` as inline SVG: no XML prologue or metadata, every id prefixed with ``key`` (unique
    in the page), and ``titles`` (gid -> text) as ``<title>`` tooltips of those artists."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({**_RC, "svg.hashsalt": key}):
        fig.savefig(buf, format="svg", metadata={"Date": None})  # laid out by "constrained": one draw
    _plt().close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
    for gid, title in (titles or {}).items():
        text = text.replace(f'<g id="{gid}">', f'<g id="{gid}"><title>{escape(title)}</title>', 1)
    text = _ID.sub(lambda m: f"{m.group(1)}{key}-{m.group(2)}", text)
    return text.replace("<svg ", f'<svg class="figure-svg" role="img" aria-labelledby="{key}-caption" ', 1)


def _figure(width: float, height: float) -> tuple[Any, Any]:
    import matplotlib

    with matplotlib.rc_context(_RC):
        return _plt().subplots(figsize=(width, height), layout="constrained")


def front_figure(
    points: Sequence[dict[str, Any]],
    front: Sequence[dict[str, Any]],
    references: Sequence[dict[str, Any]],
    table: Sequence[dict[str, Any]],
    budget: float | None,
    xlabel: str,
    key: str = "front",
) -> str:
    """AP against cost: every trained trial (``x``, ``AP``, ``trial``, ``low``, ``best``,
    ``tooltip``), the front, the presets measured at this recipe (``x``, ``AP``, ``name``), the
    table's designs measured there (``x``, ``AP``), the budget line."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig, ax = _figure(7.2, 4.4)
        if table:
            ax.scatter(
                [t["x"] for t in table],
                [t["AP"] for t in table],
                marker="s",
                s=14,
                c="#cccccc",
                label="gradient-path table designs measured at this recipe (2-seed means)",
                zorder=1,
            )
        for r in references:
            ax.scatter([r["x"]], [r["AP"]], marker="D", s=30, c="black", zorder=3).set_gid(f"ref-{r['name']}")
            ax.annotate(r["name"], (r["x"], r["AP"]), textcoords="offset points", xytext=(4, -9), fontsize=7)
        if references:
            ax.scatter([], [], marker="D", s=30, c="black", label="paper presets measured at this recipe")
        for p in points:
            colour = "darkgray" if p["low"] else "tab:blue"
            ax.scatter([p["x"]], [p["AP"]], s=36, c=colour, zorder=4, edgecolors="white").set_gid(f"trial-{p['trial']}")
            ax.annotate(str(p["trial"]), (p["x"], p["AP"]), textcoords="offset points", xytext=(5, 3), fontsize=7)
        ax.scatter([], [], s=36, c="tab:blue", label="trained trial (number beside it)")
        if any(p["low"] for p in points):
            ax.scatter([], [], s=36, c="darkgray", label="low fidelity (short-schedule AP)")
        if front:
            ax.plot([p["x"] for p in front], [p["AP"] for p in front], "-", c="tab:red", label="Pareto front", zorder=2)
        best = [p for p in points if p["best"]]
        if best:
            ax.scatter([best[0]["x"]], [best[0]["AP"]], marker="*", s=220, c="gold", edgecolors="black", zorder=5)
            ax.scatter([], [], marker="*", s=120, c="gold", edgecolors="black", label="best.yaml (the winner)")
        if budget is not None:
            ax.axvline(budget, ls="--", c="k", lw=1, label="budget")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("proxy box AP")
        ax.grid(alpha=0.3)
        fig.legend(loc="outside lower center", ncol=2, frameon=False)
    return to_svg(fig, key, {f"trial-{p['trial']}": p["tooltip"] for p in points} | _ref_titles(references))


def _ref_titles(references: Sequence[dict[str, Any]]) -> dict[str, str]:
    return {f"ref-{r['name']}": r.get("tooltip", r["name"]) for r in references}


def cheap_figure(
    gflops: Sequence[float],
    score: Sequence[float],
    picks: Sequence[dict[str, Any]],
    table: Sequence[dict[str, Any]],
    budget_gflops: float,
    score_name: str,
    key: str = "cheap",
) -> str:
    """Every scored candidate as a density of (GFLOPs, score), the picks (``x``, ``score``,
    ``trial``, ``tooltip``) marked, the table's designs (``x``, ``score``) overlaid, the budget."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig, ax = _figure(7.2, 4.4)
        hb = ax.hexbin(gflops, score, gridsize=40, bins="log", cmap="Blues", mincnt=1, linewidths=0.2)
        # plain tick labels: the default log labels are mathtext, a third of the figure's drawing time
        plain = matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}")
        bar = fig.colorbar(hb, ax=ax, pad=0.01, label="candidates per cell (log scale)", format=plain)
        bar.solids.set_rasterized(False)  # vector, not an embedded PNG: the page loads nothing, not even data: URLs
        if table:
            ax.scatter(
                [t["x"] for t in table],
                [t["score"] for t in table],
                marker="x",
                s=16,
                c="#D55E00",
                lw=1,
                label=f"the {len(table)} gradient-path table designs (the score's evidence)",
                zorder=3,
            )
        for p in picks:
            ax.scatter(
                [p["x"]], [p["score"]], s=70, facecolors="none", edgecolors="crimson", linewidths=1.8, zorder=4
            ).set_gid(f"pick-{p['trial']}")
        if picks:
            ax.scatter(
                [], [], s=70, facecolors="none", edgecolors="crimson", linewidths=1.8, label="picked for training"
            )
        ax.axvline(budget_gflops, ls="--", c="k", lw=1, label="budget")
        ax.set_xlabel("GFLOPs (full size)")
        ax.set_ylabel(f"cheap score ({score_name})")
        ax.grid(alpha=0.3)
        fig.legend(loc="outside lower center", ncol=2, frameon=False)
    return to_svg(fig, key, {f"pick-{p['trial']}": p["tooltip"] for p in picks})


def anatomy_figure(designs: Sequence[dict[str, Any]], names: Sequence[str], key: str = "anatomy") -> str:
    """Small multiples over the parts (backbone stages, then neck nodes) of one or two anatomies:
    the block strip (colour = block, text = knobs and multipliers), the FLOPs share, the longest
    shortest gradient path and the longest gradient path within each part. Parts whose design
    differs between the two are marked ≠."""
    import matplotlib

    n = len(designs)
    parts = designs[0]["parts"]
    labels = [p["label"].replace("neck ", "neck\n") for p in parts]
    xs = list(range(len(parts)))
    width = 0.8 / n
    with matplotlib.rc_context(_RC):
        fig, axes = _plt().subplots(
            4,
            1,
            figsize=(max(7.2, 1.05 * len(parts)), 6.6),
            sharex=True,
            height_ratios=[0.9 * n, 1, 1, 1],
            layout="constrained",
        )
        strip = axes[0]
        for i, d in enumerate(designs):
            y = n - 1 - i
            colours = [BLOCK_COLOURS.get(p["block"], _OTHER_COLOUR) for p in d["parts"]]
            strip.bar(xs, 0.9, bottom=y + 0.05, width=0.96, color=colours, edgecolor="white")
            for x, p in zip(xs, d["parts"], strict=True):
                strip.text(x, y + 0.5, _cell(p), ha="center", va="center", fontsize=6.5, color="black")
        if n == 2:
            for x, a, b in zip(xs, designs[0]["parts"], designs[1]["parts"], strict=True):
                if a["design"] != b["design"]:
                    strip.text(x, n + 0.12, "≠", ha="center", va="bottom", fontsize=10, color="crimson")
        strip.set_ylim(0, n + 0.6)
        strip.set_yticks([n - 0.5 - i for i in range(n)], names, fontsize=8, fontweight="bold")
        strip.tick_params(bottom=False, left=False)
        strip.set_title("block and knobs per part (≠: the two designs differ there)", loc="left")
        for spine in strip.spines.values():
            spine.set_visible(False)
        rows = (
            ("flops_share", "FLOPs share", lambda v: 100 * v, "%"),
            ("shortest_path", "longest shortest\ngradient path", float, ""),
            ("longest_path", "longest\ngradient path", float, ""),
        )
        for ax, (field, title, scale, unit) in zip(axes[1:], rows, strict=True):
            for i, (d, name) in enumerate(zip(designs, names, strict=True)):
                vals = [scale(p[field]) if p[field] is not None else 0.0 for p in d["parts"]]
                pos = [x + (i - (n - 1) / 2) * width for x in xs]
                ax.bar(pos, vals, width=width * 0.95, color=["#333333", "#bbbbbb"][i], label=name)
            ax.set_ylabel(title + (f" ({unit})" if unit else ""), fontsize=8)
            ax.grid(axis="y", alpha=0.3)
        axes[1].legend(loc="upper right", ncol=n, frameon=False)
        axes[-1].set_xticks(xs, labels, fontsize=8)
        boundary = sum(p["knob"].startswith("backbone") for p in parts) - 0.5
        for ax in axes:
            ax.axvline(boundary, c="k", lw=0.6, alpha=0.5)
    return to_svg(fig, key)


def _cell(p: dict[str, Any]) -> str:
    """The text of one strip cell: block, its knobs, the multipliers that are not 1."""
    lines = [p["block"], p["knobs"].replace(",", " ")] if p["knobs"] else [p["block"]]
    mult = [
        f"×{p['repeats_mult']:g}d" if p["repeats_mult"] != 1 else "",
        f"×{p['width_mult']:g}w" if p["width_mult"] != 1 else "",
    ]
    if any(mult):
        lines.append(" ".join(m for m in mult if m))
    return "\n".join(lines)
