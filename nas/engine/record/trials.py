"""What a search minimises besides AP, and what its trials show: the cost objective (``GFLOPs``
or ``latency_ms``), its constraints (the FLOPs budget, an optional latency budget) and the
readable, scalar user attributes of a candidate.

Why one module: the cheap stage, the proxy stage, the report, the export and the dashboard all
read these names; they must agree. Costs are stored in readable units: ``GFLOPs`` (not raw
FLOPs: "140B" reads like bytes), ``MParams``, ``latency_ms``. Raw FLOPs stay recoverable
exactly (:func:`flops_of`), and so does every attribute of runs made before (``flops``,
``params``, ``metrics``).

>>> s = {"flops": 140_000_000_000, "params": 52_000_000, "metrics": {"longest_gradient_path": 9}}
>>> attrs = candidate_attrs(dict(s, key="k", pattern="res/csp"))
>>> attrs["GFLOPs"], attrs["MParams"], attrs["gp.longest_gradient_path"], attrs["design"]
(140.0, 52.0, 9, 'res | csp')
>>> flops_of(_Trial(attrs)), metrics_of(_Trial(attrs))
(140000000000, {'longest_gradient_path': 9})
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

from nas.core.errors import UsageError

#: ``--cost`` -> the name of the cost objective (study metric name and trial attribute)
COSTS = {"flops": "GFLOPs", "latency": "latency_ms"}
#: the thread count latency is predicted for (the table's fingerprint): one pinned thread
LATENCY_THREADS = 1
#: the prefix of the gradient-path metrics as scalar attributes
METRIC_PREFIX = "gp."
#: what optuna-dashboard's "Best Trials" card means here (a study user attribute)
BEST_TRIALS_NOTE = (
    "Best Trials lists feasible trials only under `nas dashboard`; plain optuna-dashboard's list ignores "
    "constraints (an over-budget candidate may appear there): read `feasible` or use nas dashboard"
)


def metric_name(cost: str) -> str:
    """The objective's name: ``GFLOPs`` or ``latency_ms``.

    >>> metric_name("latency")
    'latency_ms'
    """
    return COSTS[cost]


def uses_latency(opts: Any) -> bool:
    """Whether a search needs the latency model (latency objective or latency budget)."""
    return opts.cost == "latency" or opts.latency_budget_ms is not None


def key_hash(key: str) -> str:
    """The short identity of a canonical config key (``ArchConfig.key()``): what a trial stores as
    ``key``, so the dashboard shows 16 hex digits, not the config a second time.

    >>> key_hash("{a: 1}")
    'fe3e7bab5c499a6b'
    """
    return hashlib.sha1(key.encode()).hexdigest()[:16]


_MS = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*(ms|s|us|µs)?\s*$", re.IGNORECASE)


def parse_ms(text: str, flag: str = "--latency-budget") -> float:
    """``30ms``, ``30``, ``0.03s``, ``500us`` -> milliseconds.

    >>> parse_ms("30ms"), parse_ms("0.03s"), parse_ms("2500us"), parse_ms("12.5")
    (30.0, 30.0, 2.5, 12.5)
    """
    m = _MS.match(str(text))
    value = float(m.group(1)) if m else math.nan
    if m and m.group(2):
        value *= {"ms": 1.0, "s": 1e3, "us": 1e-3, "µs": 1e-3}[m.group(2).lower()]
    if not (math.isfinite(value) and value > 0):
        raise UsageError(f"{flag}: {text!r} is not a latency; accepted: a positive time such as 30ms, 0.03s, 500us")
    return value


# -- a candidate's values ----------------------------------------------------------------------
def cost_value(s: dict[str, Any], cost: str) -> float:
    """The cost objective of a scored candidate (``score_candidate``'s dict)."""
    return s["flops"] / 1e9 if cost == "flops" else float(s["latency_ms"])


@dataclass(frozen=True)
class Constraint:
    """One budget: its name (``<attr>_over_budget``), the candidate value it limits, the limit."""

    name: str
    attr: str
    limit: float


def constraints_of(opts: Any) -> list[Constraint]:
    """The active constraints, in the order of a trial's ``constraints`` list: the FLOPs budget
    (in GFLOPs) always, the latency budget when one is given."""
    out = [Constraint("GFLOPs_over_budget", "GFLOPs", opts.budget / 1e9)]
    if opts.latency_budget_ms is not None:
        out.append(Constraint("latency_ms_over_budget", "latency_ms", float(opts.latency_budget_ms)))
    return out


def constraint_values(s: dict[str, Any], opts: Any) -> list[float]:
    """value − limit of each active constraint (≤ 0 is feasible), for a scored candidate."""
    values = {"GFLOPs": s["flops"] / 1e9, "latency_ms": s.get("latency_ms")}
    return [float(values[c.attr]) - c.limit for c in constraints_of(opts)]


def violation(values: list[float], opts: Any) -> float:
    """One number for NSGA-II's constraint-domination: ≤ 0 when every constraint holds, else the
    sum of the relative excesses (so a FLOPs and a latency excess are comparable).

    >>> from types import SimpleNamespace as N
    >>> o = N(budget=10**11, latency_budget_ms=20.0)
    >>> violation([-50.0, -10.0], o), violation([50.0, 10.0], o)
    (-0.5, 1.0)
    """
    rel = [v / c.limit for v, c in zip(values, constraints_of(opts), strict=True)]
    over = [r for r in rel if r > 0]
    return sum(over) if over else max(rel)


def format_pattern(pattern: str, backbone_stages: int = 5) -> str:
    """``res/res/res/prn/res/res/res/res/res/prn`` -> ``res×3,prn,res | res×4,prn`` (backbone | neck).

    >>> format_pattern("res/res/res/prn/res/res/res/res/res/prn")
    'res×3,prn,res | res×4,prn'
    """
    blocks = pattern.split("/")

    def runs(xs: list[str]) -> str:
        out: list[list[Any]] = []
        for x in xs:
            if out and out[-1][0] == x:
                out[-1][1] += 1
            else:
                out.append([x, 1])
        return ",".join(b if n == 1 else f"{b}×{n}" for b, n in out)

    return f"{runs(blocks[:backbone_stages])} | {runs(blocks[backbone_stages:])}"


def design(pattern: str, backbone_stages: int = 5) -> str:
    """A one-line design summary from a block pattern: :func:`format_pattern`, or ``res | prn``
    for a schema-1 (backbone, neck) pattern.

    >>> design("res/res/res/prn/res/res/res/res/res/prn"), design("res/prn")
    ('res×3,prn,res | res×4,prn', 'res | prn')
    """
    blocks = pattern.split("/")
    if len(blocks) <= 2:  # a schema-1 (backbone, neck) pattern
        return " | ".join(blocks)
    return format_pattern(pattern, backbone_stages)


#: the system attribute that holds a trial's full config YAML: optuna-dashboard shows every user
#: attribute on one unwrapped line, and a YAML there made the trial page ~5,700 px wide
CONFIG_ATTR = "nas:config"
#: the study system attribute (not shown by the dashboard) listing the trial numbers ``nas dashboard``
#: shows (the cheap stage writes it, the dashboard reads it)
DASHBOARD_ATTR = "nas:dashboard_trials"


def config_of(trial: Any) -> str:
    """A trial's config YAML: the ``nas:config`` system attribute (``config`` user attribute in
    runs made before). ``nas export`` writes it as a file."""
    system = getattr(trial, "system_attrs", None) or {}
    return system[CONFIG_ATTR] if CONFIG_ATTR in system else trial.user_attrs["config"]


def candidate_attrs(s: dict[str, Any]) -> dict[str, Any]:
    """The user attributes of a candidate, every one a readable scalar, in the order the
    dashboard lists them (a trial's page keeps this order; its table sorts by name, and the
    capitalised costs sort first): costs, gradient-path metrics, the design summary and the key
    hash. The config YAML is kept apart (:data:`CONFIG_ATTR`)."""
    out: dict[str, Any] = {"GFLOPs": s["flops"] / 1e9, "MParams": s["params"] / 1e6}
    if s.get("latency_ms") is not None:
        out["latency_ms"] = float(s["latency_ms"])
    out.update({f"{METRIC_PREFIX}{k}": v for k, v in s["metrics"].items()})
    out["design"] = design(s["pattern"])
    out["pattern"] = s["pattern"]
    out["key"] = s["key"]
    return out


def copied_attrs(trial: Any) -> dict[str, Any]:
    """The user attributes a proxy trial copies from its cheap trial (every readable one), plus
    where it came from; its config goes to :data:`CONFIG_ATTR` (``config_of(trial)``)."""
    skip = {"config", "feasible", "generation"}
    out = {k: v for k, v in trial.user_attrs.items() if k not in skip}
    out["cheap_trial"] = trial.number
    out["cheap_score"] = trial.values[0]
    return out


# -- reading a trial (new and old attribute names) -------------------------------------------------
class _Trial:
    """A stand-in trial with user attributes only (doctests)."""

    def __init__(self, user_attrs: dict[str, Any]) -> None:
        self.user_attrs, self.values = user_attrs, None


def flops_of(trial: Any) -> int:
    """A trial's exact FLOPs: from ``GFLOPs`` (rounding recovers the integer: 12 digits fit a
    double), from ``flops`` (runs made before), else its second value (a cheap trial of old)."""
    a = trial.user_attrs
    if "GFLOPs" in a:
        return round(a["GFLOPs"] * 1e9)
    if "flops" in a:
        return int(a["flops"])
    return int(trial.values[1])


def params_of(trial: Any) -> int:
    a = trial.user_attrs
    return round(a["MParams"] * 1e6) if "MParams" in a else int(a["params"])


def metrics_of(trial: Any) -> dict[str, Any]:
    """The gradient-path metrics a trial recorded (``gp.*`` attributes, or ``metrics`` of old)."""
    a = trial.user_attrs
    if "metrics" in a:
        return dict(a["metrics"])
    return {k[len(METRIC_PREFIX) :]: v for k, v in a.items() if k.startswith(METRIC_PREFIX)}


def latency_of(trial: Any) -> float | None:
    return trial.user_attrs.get("latency_ms")


def within_budgets(trial: Any, budget: int, latency_budget_ms: float | None = None) -> bool:
    """Feasible: within the FLOPs budget and, when one is given, the latency budget; a trial
    recorded infeasible (its ``feasible`` attribute) is never within them."""
    if trial.user_attrs.get("feasible") is False or flops_of(trial) > budget:
        return False
    if latency_budget_ms is None:
        return True
    lat = latency_of(trial)
    return lat is not None and lat <= latency_budget_ms


def is_old_study(study: Any) -> bool:
    """A study made before costs were stored in readable units (its cost metric is raw ``flops``)."""
    names = study.metric_names
    return bool(names) and len(names) > 1 and names[1] == "flops"


# -- the studies ------------------------------------------------------------------------------------
def latency_info(opts: Any, progress: bool = False) -> tuple[Any, dict[str, Any]]:
    """(latency model or None, the study attributes naming it). The model is the device's cached
    table; a search without one builds it once (``nas.engine.latency.latency_model``, with its
    progress bar, minutes) and every later search reuses it."""
    if not uses_latency(opts):
        return None, {}
    from nas.engine.latency import device_fingerprint, latency_model, table_path

    fp = device_fingerprint(opts.device, LATENCY_THREADS)
    if progress and not table_path(fp, opts.runs_dir).is_file():
        import sys

        print(
            f"no latency table for {fp} yet: measuring it once (about 5-10 min on 2 cores), cached under "
            f"{table_path(fp, opts.runs_dir)}",
            file=sys.stderr,
        )
    model = latency_model(opts.device, LATENCY_THREADS, opts.runs_dir, progress=progress)
    return model, {
        "device": opts.device,
        "device_fingerprint": model.fingerprint,
        "latency_table_version": model.version,
        "latency_threads": model.threads,
    }


def study_attrs(opts: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The study-level user attributes: the cost objective, the budgets, what Best Trials means,
    and (latency) the device fingerprint and table version."""
    out: dict[str, Any] = {"cost": metric_name(opts.cost), "budget_GFLOPs": opts.budget / 1e9}
    if opts.latency_budget_ms is not None:
        out["latency_budget_ms"] = float(opts.latency_budget_ms)
    out["constraints"] = ", ".join(c.name for c in constraints_of(opts))
    out["best_trials"] = BEST_TRIALS_NOTE
    out.update(extra or {})
    return out


def feasible_front(get_front: Any) -> Any:
    """Wrap optuna-dashboard's Pareto-front function so its "Best Trials" card lists feasible
    trials only (as Optuna's own ``study.best_trials`` does): upstream ignores the
    ``constraints`` system attribute there while its Pareto plot greys infeasible trials."""
    if getattr(get_front, "_feasible_only", False):
        return get_front

    def front(trials: Any, directions: Any) -> Any:
        ok = [t for t in trials if all(c <= 0 for c in t.system_attrs.get("constraints", ()))]
        return get_front(trials=ok, directions=directions)

    front._feasible_only = True  # type: ignore[attr-defined]
    return front
