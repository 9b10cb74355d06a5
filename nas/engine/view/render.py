"""``report.html``: one self-contained page (styles inline, no script, figures as inline SVG, no
request leaves it) laid out by Jinja2 from :mod:`nas.engine.view.page`'s sections, plus the
provenance of the run: options, recipe, data fingerprint, commit, versions, times, noise."""

from __future__ import annotations

import functools
import platform
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from nas.core.runio import atomic_write_text
from nas.engine.view.page import anatomy_section, cheap_section, front_section, latency_model_of, verdict
from nas.engine.view.references import best_preset, match, presets_within, reference
from nas.engine.view.run import Run, load_run

__all__ = ["REPORT_NAME", "render", "write_report"]

REPORT_NAME = "report.html"
TEMPLATES = Path(__file__).parent / "templates"
#: the distributions whose versions the page names
VERSIONED = ("gradpath-nas", "optuna", "torch", "ray", "matplotlib", "jinja2", "numpy")


@functools.cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["duration"] = duration
    return env


def _num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def duration(seconds: float | None) -> str:
    """``83.4`` -> ``1 min 23 s``.

    >>> duration(83.4), duration(7.25), duration(None)
    ('1 min 23 s', '7.2 s', '–')
    """
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    m, s = divmod(round(seconds), 60)
    return f"{m} min {s} s" if m < 60 else f"{m // 60} h {m % 60} min"


def commit() -> str:
    """The commit of the code drawing the page (``+ changes`` when its tree differs), or why
    none is known: the search's own commit is this one when the search draws its report."""
    root = Path(__file__).resolve().parents[3]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=10", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if sha.returncode != 0:
            return "not a git checkout"
        dirty = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD"], capture_output=True, timeout=5)
        return sha.stdout.strip() + (" + uncommitted changes" if dirty.returncode == 1 else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _times(run: Run) -> list[tuple[str, str]]:
    c = run.cheap
    rows = []
    if c.started and c.finished:
        rows.append(
            (
                "cheap stage",
                f"{_stamp(c.started)} → {_stamp(c.finished)} ({duration((c.finished - c.started).total_seconds())})",
            )
        )
    starts = [p["started"] for p in run.proxy.values() if p["started"]]
    ends = [p["finished"] for p in run.proxy.values() if p["finished"]]
    if starts and ends:
        span = (max(ends) - min(starts)).total_seconds()
        rows.append(
            (
                "proxy stage",
                f"{_stamp(min(starts))} → {_stamp(max(ends))} ({duration(span)}, {len(run.proxy)} trainings)",
            )
        )
    return rows


def _stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _ledger(run: Run) -> list[dict[str, Any]]:
    out = []
    for e in (run.summary or {}).get("calibration") or []:
        fid = e.get("fidelity") or {}
        out.append(
            {
                "rung": e.get("rung"),
                "fidelity": f"{fid['epochs']} of {fid['of']} epochs" if fid else "full",
                "n": e.get("n"),
                "tau": e.get("kendall_tau"),
                "tau_cal": e.get("kendall_tau_calibrated"),
                "misleading": e.get("misleading"),
                "promoted": e.get("promoted"),
            }
        )
    return out


def context(run: Run) -> dict[str, Any]:
    """Everything the template shows."""
    here = match(run.opts)
    lat_model = latency_model_of(run)
    summary = run.summary or {}
    by_n = {r["trial"]: r for r in run.trials}
    winner = by_n.get(summary.get("best_trial"))
    presets = presets_within(run.opts, lat_model)
    preset = best_preset(run.opts, presets)
    opts = run.opts
    anatomy = anatomy_section(run, winner, preset)
    return {
        "run": run,
        "name": opts.name,
        "run_dir": str(run.run_dir),
        "verdict": verdict(run, winner, preset, here, anatomy["rows"]),
        "winner": winner,
        "front": front_section(run, here, lat_model) if run.summary is not None else None,
        "cheap": cheap_section(run),
        "anatomy": anatomy,
        "presets_within": [p["name"] for p in presets],
        "ledger": _ledger(run),
        "here": here,
        "references": reference_labels(),
        "options": sorted(run.identity.items()),
        "recipe": sorted(opts.recipe.to_dict().items()),
        "data": opts.data,
        "data_fingerprint": run.data_fingerprint,
        "commit": commit(),
        "versions": versions(),
        "times": _times(run),
        "drawn_at": _stamp(datetime.now()),
        "budget_gflops": opts.budget / 1e9,
        "latency_budget_ms": opts.latency_budget_ms,
    }


def reference_labels() -> list[str]:
    return [e["label"] for e in reference()["recipes"]]


def render(run: Run) -> str:
    """The page's HTML."""
    return _environment().get_template("report.html.j2").render(**context(run))


def write_report(
    run_dir: str | Path, storage: Any = None, out: str | Path | None = None, picks: list[int] | None = None
) -> dict[str, Any]:
    """Write ``run_dir/report.html`` (or ``out``) and return ``{"path", "bytes", "seconds"}``.
    ``storage``: the run's storage when already open (the driver's, replayed: no second replay);
    ``picks``: the cheap trials a ``--trials 0`` search picked."""
    t0 = time.perf_counter()
    run = load_run(run_dir, storage, picks)
    html = render(run)
    path = Path(out) if out is not None else Path(run_dir) / REPORT_NAME
    atomic_write_text(path, html)
    return {"path": str(path), "bytes": len(html.encode()), "seconds": time.perf_counter() - t0}
