"""The report's content: what each section of ``report.html`` says, computed from a
:class:`~nas.engine.view.run.Run` (the figures as SVG text, the tables as rows, the verdict as
sentences). :mod:`nas.engine.view.render` lays it out with Jinja2."""

from __future__ import annotations

import math
from typing import Any

from nas.engine.view.anatomy import anatomy, compare, score_terms
from nas.engine.view.figures import anatomy_figure, cheap_figure, front_figure
from nas.engine.view.references import gap, reference
from nas.engine.view.run import Run
from search_spaces.config import part_summary

__all__ = ["anatomy_section", "cheap_section", "design_of", "front_section", "latency_model_of", "verdict"]


def design_of(config: dict[str, Any]) -> str:
    """``res×3,prn,res | res×4,prn``: backbone | neck, as the printed front shows a design."""
    parts = [part_summary(config["backbone"])]
    if config.get("neck") is not None:
        parts.append(part_summary(config["neck"]))
    return " | ".join(parts)


def _cost(run: Run) -> tuple[str, float | None, str]:
    """(row field, budget on that axis, axis label) of the run's cost objective (GFLOPs when the
    rows of a latency run carry no latency)."""
    if run.opts.cost == "latency" and any(r.get("latency_ms") is not None for r in run.trials):
        return "latency_ms", run.opts.latency_budget_ms, f"predicted latency, ms (batch 1, {run.opts.device})"
    return "flops", run.opts.budget / 1e9, "GFLOPs (full size, 640 px)"


def _x(row: dict[str, Any], field: str) -> float | None:
    v = row.get(field)
    return None if v is None else (v / 1e9 if field == "flops" else float(v))


def _commands(run: Run, trial: int, best: bool) -> str:
    where = str(run.run_dir)
    if best:
        return f"nas show {where}/best.yaml; nas export {where} -o arch.yaml"
    return f"nas export {where} --trial {trial} -o trial{trial}.yaml; nas show trial{trial}.yaml"


def latency_model_of(run: Run) -> Any:
    if run.opts.cost != "latency" and run.opts.latency_budget_ms is None:
        return None
    from nas.engine.latency import LatencyError, load_latency_model

    try:
        return load_latency_model(run.opts.device, 1, run.opts.runs_dir)
    except LatencyError:
        return None


def front_section(run: Run, here: dict[str, Any] | None, lat_model: Any) -> dict[str, Any]:
    """The Pareto front: the figure, the rows of its table, the note on references."""
    field, budget, xlabel = _cost(run)
    summary = run.summary or {}
    on_front, best_n = set(summary.get("pareto", [])), summary.get("best_trial")
    rows, points = [], []
    for r in run.trials:
        low = r["state"] == "PRUNED"
        ap = r["AP"] if r["state"] == "COMPLETE" else r.get("last_AP")
        fid = r.get("fidelity") or {}
        row = {
            "trial": r["trial"],
            "design": design_of(r["config"]),
            "gflops": r["flops"] / 1e9,
            "latency_ms": r.get("latency_ms"),
            "AP": ap,
            "state": r["state"] if r["state"] != "PRUNED" else "low fidelity",
            "fidelity": f"{fid['epochs']} of {fid['of']} epochs" if fid else "full",
            "front": r["trial"] in on_front,
            "best": r["trial"] == best_n,
            "reason": r.get("reason") if r["state"] == "FAIL" else None,
            "commands": _commands(run, r["trial"], r["trial"] == best_n),
            "seconds": _seconds(run.proxy.get(r["trial"], {})),
        }
        rows.append(row)
        x = _x(r, field)
        if ap is not None and x is not None and r["state"] in ("COMPLETE", "PRUNED"):
            tip = (
                f"trial {r['trial']}: {row['design']}\n{row['gflops']:.1f} GFLOPs, AP {ap:.3f}, {row['fidelity']}\n"
                f"rebuild: {row['commands']}"
            )
            points.append({"x": x, "AP": ap, "trial": r["trial"], "low": low, "best": row["best"], "tooltip": tip})
    front = sorted((p for p in points if p["trial"] in on_front), key=lambda p: p["x"])
    refs, table, note = _front_references(run, here, lat_model)
    svg = front_figure(points, front, refs, table, budget, xlabel) if points else None
    return {"svg": svg, "rows": rows, "references": refs, "reference_note": note, "cost_field": field}


def _front_references(run: Run, here: dict[str, Any] | None, lat_model: Any) -> tuple[list, list, str]:
    """The presets and table designs measured at this recipe, on the front's axis, and what the
    page says about them."""
    if here is None:
        return [], [], "No reference is measured at this recipe: no preset or table design has been trained with it."
    field, _, _ = _cost(run)
    refs = []
    for m in here["presets"]:
        x = m["GFLOPs"]
        if field == "latency_ms":
            if lat_model is None:
                continue
            from nas.engine.latency import predict_latency_ms
            from search_spaces import compile_config, load_config

            x = predict_latency_ms(compile_config(load_config(m["name"])), lat_model)
        tip = f"{m['name']}: {m['GFLOPs']:.1f} GFLOPs, AP {m['AP']:.3f} ({m['seeds']} seed(s))"
        refs.append(
            {"x": x, "AP": m["AP"], "name": m["name"], "tooltip": tip, "seeds": m["seeds"], "GFLOPs": m["GFLOPs"]}
        )
    table = [{"x": t["GFLOPs"], "AP": t["AP"]} for t in here["table"]] if field == "flops" else []
    parts = [f"References measured at this recipe ({here['label']}):"]
    parts.append(f"{len(refs)} paper presets" if refs else "no paper preset")
    parts.append(f"and {len(table)} gradient-path table designs (2 seeds each)." if table else "and no table design.")
    return refs, table, " ".join(parts)


def _seconds(info: dict[str, Any]) -> float | None:
    s, f = info.get("started"), info.get("finished")
    return (f - s).total_seconds() if s and f else None


def cheap_section(run: Run) -> dict[str, Any]:
    """The cheap stage: every candidate as a density, the picks, the table's designs."""
    c = run.cheap
    kind = run.opts.cheap_score
    table = []
    try:
        from nas.engine.scores.registry import SCORES, cheap_score

        if kind in SCORES and not SCORES[kind].zero_cost:
            for d in reference()["table_designs"]:
                score = cheap_score(kind, d["flops"], d["params"], d["metrics"])
                table.append({"x": d["flops"] / 1e9, "score": score, "id": d["id"]})
    except (KeyError, TypeError, ValueError):  # a plug-in score that needs more than the metrics
        table = []
    index = {n: i for i, n in enumerate(c.number)}
    trained = {p["cheap_trial"]: n for n, p in run.proxy.items() if p["cheap_trial"] is not None}
    ap_of = {r["trial"]: r["AP"] if r["state"] == "COMPLETE" else r.get("last_AP") for r in run.trials}
    picks = []
    for n in run.picks:
        if n not in index:
            continue
        i = index[n]
        proxy = trained.get(n)
        ap = ap_of.get(proxy) if proxy is not None else None
        tip = f"cheap trial {n}: {c.design.get(n, '')}\nscore {c.score[i]:.3f}, {c.gflops[i]:.1f} GFLOPs" + (
            f"\ntrained as trial {proxy}, AP {ap:.3f}" if ap is not None else ""
        )
        picks.append(
            {
                "trial": n,
                "x": c.gflops[i],
                "score": c.score[i],
                "design": c.design.get(n, ""),
                "proxy": proxy,
                "AP": ap,
                "tooltip": tip,
            }
        )
    svg = cheap_figure(c.gflops, c.score, picks, table, run.opts.budget / 1e9, kind) if c.number else None
    return {
        "svg": svg,
        "picks": picks,
        "n": len(c.number),
        "feasible": sum(c.feasible),
        "evidence": _evidence(c.score, picks, table),
        "table_n": len(table),
        "score": kind,
    }


def _evidence(scores: list[float], picks: list[dict[str, Any]], table: list[dict[str, Any]]) -> str:
    """Whether the search proposed inside or outside the table the score was fitted on."""
    if not picks:
        return "No picks are drawn: a --trials 0 run records none (nas search printed them when it ran)."
    if not table:
        return "The table's designs are not drawn: this cheap score is not computed from the metrics alone."
    top = max(t["score"] for t in table)
    low = min(t["score"] for t in table)
    above = sum(p["score"] > top for p in picks)
    share = sum(s > top for s in scores) / len(scores) if scores else 0.0
    where = (
        "all inside the evidence"
        if above == 0
        else f"{above} of {len(picks)} outside it: the score extrapolates there, beyond what it was fitted on"
    )
    return (
        f"The table's designs score {low:.2f} to {top:.2f}; {100 * share:.0f} % of the candidates score higher than "
        f"any of them. Of the {len(picks)} picks, {where}."
    )


def anatomy_section(run: Run, winner: dict[str, Any] | None, preset: dict[str, Any] | None) -> dict[str, Any]:
    """The winner beside the best preset within the budget: strip, table of differences, score."""
    empty: dict[str, Any] = {"svg": None, "rows": [], "preset": None, "terms": None}
    if winner is None:
        return empty
    a = anatomy(winner["config"])
    if preset is None:
        return {**empty, "svg": anatomy_figure([a], [f"trial {winner['trial']}"])}
    b = anatomy(preset["name"])
    rows = compare(a, b)
    for row, pa, pb in zip(rows, a["parts"], b["parts"], strict=True):
        row.update({"pa": pa, "pb": pb})
    terms = score_terms(run.opts.cheap_score, [a, b])
    svg = anatomy_figure([a, b], [f"trial {winner['trial']}", preset["name"]])
    return {"svg": svg, "rows": rows, "preset": preset, "terms": terms}


def verdict(
    run: Run,
    winner: dict[str, Any] | None,
    preset: dict[str, Any] | None,
    here: dict[str, Any] | None,
    rows: list[dict[str, Any]] | None = None,
) -> list[str]:
    """The sentences at the top of the page: who won, by how much against the noise, and where
    the winner differs from the best preset (``rows``: :func:`~nas.engine.view.anatomy.compare`)."""
    if winner is None:
        if run.summary is None:
            return ["Nothing was trained (--trials 0): the page shows the cheap stage and its picks only."]
        return ["No trained trial finished within the budget: there is no winner (see the trials below)."]
    out = [
        f"The winner is trial {winner['trial']} ({design_of(winner['config'])}): proxy AP {winner['AP']:.3f} at "
        f"{winner['flops'] / 1e9:.1f} GFLOPs, within the budget of {run.opts.budget / 1e9:g} GFLOPs. "
        f"It is {run.run_dir}/best.yaml."
    ]
    chosen = (run.summary or {}).get("winner")
    if chosen:  # runs before the robust winner: best.yaml was the highest AP
        ci = chosen.get("AP_ci95")
        out.append(
            f"It was chosen by {chosen['method']}"
            + (f" over {len(chosen['AP_seeds'])} seeds each" if len(chosen.get("AP_seeds") or []) > 1 else "")
            + (f"; its AP's 95 % interval from this run's seed noise is [{ci[0]:.3f}, {ci[1]:.3f}]." if ci else ".")
        )
    out += _noise_sentences(run, winner, preset, (here or {}).get("noise"))
    if preset is not None and rows:
        differ = [r for r in rows if r["differs"]]
        blocks = [r["label"] for r in differ if "block" in r["differs"]]
        others = [f"{r['label']} ({', '.join(r['differs'])})" for r in differ if "block" not in r["differs"]]
        where = (
            [f"another block in {'every part' if len(blocks) == len(rows) else ', '.join(blocks)}"] if blocks else []
        )
        where += [f"the same block set otherwise in {'; '.join(others)}"] if others else []
        out.append(
            f"Beside {preset['name']}, the best preset within the budget (section 3 says by which rule), the winner "
            f"differs in {len(differ)} of {len(rows)} parts" + (f": {'; '.join(where)}." if where else ".")
        )
    if preset is not None and preset.get("AP") is None:
        r = run.opts.recipe
        out.append(
            f"{preset['name']} has no AP measured at this recipe, so the two APs cannot be compared here; train it "
            f"the same way to compare: nas train {preset['name']} --recipe {r.version} --epochs {r.epochs} "
            f"--img-size {r.img_size} --images {r.images} --width-mult {r.width_mult:g}."
        )
    n = run.opts.seeds
    picked_on = (
        "this one training"
        if n == 1
        else f"the mean of its {n} trainings (seeds {run.opts.seed}–{run.opts.seed + n - 1})"
    )
    out.append(
        f"A search picks its winner on {picked_on}, which favours it (the winner's curse): retrain it with "
        f"fresh seeds (nas train {run.run_dir}/best.yaml --seed {run.opts.seed + n}, with the recipe flags of this "
        "run) before trusting a small lead."
    )
    return out


def _noise_sentences(
    run: Run, winner: dict[str, Any], preset: dict[str, Any] | None, noise: dict[str, Any] | None
) -> list[str]:
    """The recipe's noise, and the winner's margins read against it."""
    if noise is None:
        return ["No noise is measured at this recipe, so no difference of AP can be read against it."]
    sd = noise["seed_sd"]
    out = [
        f"At this recipe one training's AP moves with the seed by sd {sd:.3f} (measured on {noise['designs']} "
        f"designs trained twice; ICC {noise['icc']:.2f}: the share of the AP spread between designs that is the "
        f"design, not the seed), so two single trainings differ beyond the noise only by more than "
        f"{2 * sd * math.sqrt(2):.3f} AP (2 sd of a difference)."
    ]
    n = run.opts.seeds  # the winner's AP is the mean of this many trainings
    each = "one training each" if n == 1 else f"{n} trainings each"
    others = sorted(
        (r for r in run.trials if r["state"] == "COMPLETE" and r["trial"] != winner["trial"]), key=lambda r: -r["AP"]
    )
    if others:
        g = gap(winner["AP"], others[0]["AP"], sd, n, n)
        lead = "leads the runner-up" if g["diff"] >= 0 else "trails the best-AP trial"
        out.append(
            f"The winner {lead} (trial {others[0]['trial']}, AP {others[0]['AP']:.3f}) by {abs(g['diff']):.3f} AP, "
            f"{abs(g['sds']):.1f} sd of a difference"
            + (f" of {n}-seed means: " if n > 1 else ": ")
            + ("beyond the noise." if g["beyond"] else f"within the noise, so {each} does not tell them apart.")
        )
    if preset is not None and preset.get("AP") is not None:
        g = gap(winner["AP"], preset["AP"], sd, n, max(1, preset["seeds"]))
        out.append(
            f"Against {preset['name']} (AP {preset['AP']:.3f}, the mean of {preset['seeds']} training(s) at this "
            f"recipe): {g['diff']:+.3f} AP, {g['sds']:+.1f} sd of a difference: "
            + ("beyond the noise." if g["beyond"] else "within the noise.")
        )
    return out
