"""A design's anatomy, part by part: for each backbone stage and neck node the block and its
knobs, the stage's multipliers, channels, FLOPs and its share, and the stage's gradient-path
features (its longest shortest path and its longest path, within the stage, as
:mod:`nas.core.stage_paths` defines them); two designs compared part by part; and what the cheap
score says about each, per stage where the score is a sum over stages and per term where it is
not.

>>> a = anatomy("yolor-elan-2-2")
>>> [p["knob"] for p in a["parts"]][:2], a["parts"][0]["block"], round(sum(p["flops_share"] for p in a["parts"]), 2)
(['backbone.s1', 'backbone.s2'], 'elan', 0.96)
>>> [r["knob"] for r in compare(a, anatomy("yolor-elan-2-2")) if r["differs"]]
[]
"""

from __future__ import annotations

import math
from typing import Any

from nas.core.cost import cost, cost_by_scope
from nas.core.metrics import gradient_path_metrics
from nas.engine.scores.features import stage_path_features
from nas.engine.scores.registry import SCORES, fitted_weights, linear_rank_score
from nas.engine.scores.registry import Candidate as ScoreInput
from search_spaces.families import stage_plan

__all__ = ["anatomy", "compare", "label_of", "score_terms"]

#: the knob prefix of a part -> how the page names it
_PART_NAMES = {
    "neck.n1": "neck top5",
    "neck.n2": "neck top4",
    "neck.n3": "neck out3",
    "neck.n4": "neck out4",
    "neck.n5": "neck out5",
}


def label_of(knob: str) -> str:
    """``backbone.s3`` -> ``stage 3``; ``neck.n3`` -> ``neck out3``."""
    if knob.startswith("backbone.s"):
        return f"stage {knob.removeprefix('backbone.s')}"
    return _PART_NAMES.get(knob, knob)


def anatomy(spec: Any) -> dict[str, Any]:
    """The parts of a preset name, YAML path, config dict or ArchConfig (see the module doc):
    ``{"parts": [...], "flops", "params", "metrics", "config"}``."""
    from search_spaces import ArchConfig, compile_config, from_dict, load_config

    cfg = spec if isinstance(spec, ArchConfig) else from_dict(spec) if isinstance(spec, dict) else load_config(spec)
    graph = compile_config(cfg)
    total = cost(graph)
    network = gradient_path_metrics(graph)
    features = stage_path_features(cfg, graph, network)
    by_scope = cost_by_scope(graph, depth=2)
    stages = (*cfg.backbone_plan(), *cfg.neck_plan()) if cfg.family == "yolor" else cfg.backbone_plan()
    parts = []
    for row, f, s in zip(stage_plan(cfg), features["stages"], stages, strict=True):
        c = by_scope.get(row["scope"])
        knobs = s.part.describe().removeprefix(s.part.block).strip()
        parts.append(
            {
                "knob": row["knob"],
                "scope": row["scope"],
                "label": label_of(row["knob"]),
                "block": s.part.block,
                "knobs": knobs,
                "repeats_mult": float(s.repeats),
                "width_mult": float(s.width),
                "design": row["design"],
                "repeats": row["repeats"],
                "channels": row["channels"],
                "flops": c.flops if c else f["flops"],
                "params": c.params if c else 0,
                "flops_share": (c.flops if c else f["flops"]) / total.flops if total.flops else 0.0,
                "shortest_path": f["max_shortest_gradient_path"],
                "longest_path": f["longest_gradient_path"],
                "network_shortest_path": f["network_max_shortest_gradient_path"],
            }
        )
    return {
        "parts": parts,
        "flops": total.flops,
        "params": total.params,
        "metrics": network.to_dict(layers=False),
        "config": cfg.to_dict(),
    }


#: what two parts are compared on: field -> how a difference is named
_COMPARED = {
    "block": "block",
    "knobs": "knobs",
    "repeats_mult": "depth ×",
    "width_mult": "width ×",
    "channels": "channels",
}


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Part by part, ``a`` against ``b``: what differs (block, knobs, the depth and width
    multipliers, channels) and the differences of FLOPs share and of the two path lengths
    (``a`` − ``b``)."""
    out = []
    for pa, pb in zip(a["parts"], b["parts"], strict=True):
        fields = [name for k, name in _COMPARED.items() if pa[k] != pb[k]]
        if "block" in fields:  # another block has other knobs: the block is the difference
            fields = [k for k in fields if k != "knobs"]
        out.append(
            {
                "knob": pa["knob"],
                "label": pa["label"],
                "a": pa["design"],
                "b": pb["design"],
                "differs": fields,
                "d_flops_share": pa["flops_share"] - pb["flops_share"],
                "d_shortest_path": _diff(pa["shortest_path"], pb["shortest_path"]),
                "d_longest_path": _diff(pa["longest_path"], pb["longest_path"]),
            }
        )
    return out


def _diff(x: int | None, y: int | None) -> int | None:
    return None if x is None or y is None else x - y


def score_terms(kind: str, designs: list[dict[str, Any]]) -> dict[str, Any]:
    """How the cheap score ``kind`` splits over a design, for each of ``designs`` (anatomies).

    ``flops`` and ``params`` are sums over the network's layers, so each stage's share is its
    contribution (``per_stage``). The others are not additive per stage, and the answer says so:
    ``fitted`` is rank-linear on network-level metrics (one weight per network metric, each
    a property of the whole graph); ``gradpath`` is a difference of logs of two network-level
    metrics; ``synflow``/``naswot`` are measured on the whole model. For ``fitted`` and
    ``gradpath`` the network-level terms are given instead (``terms``: name -> value per design),
    and they sum to the score.
    """
    if kind in ("flops", "params"):
        return {
            "additive": True,
            "note": f"The {kind} score is the sum of its layers' {kind}: each stage contributes its own "
            f"{kind} (shown as the FLOPs share above for flops).",
            "per_stage": [[p[kind] for p in d["parts"]] for d in designs],
            "terms": {},
        }
    if kind == "fitted":
        features = fitted_weights()["features"]
        terms = {}
        for name, f in features.items():
            one = {name: f}
            terms[name + (" (log)" if f["log"] else "")] = [
                linear_rank_score(ScoreInput(d["flops"], d["params"], d["metrics"]), one) for d in designs
            ]
        return {
            "additive": False,
            "note": "The fitted score is not additive per stage: it is rank-linear on network-level metrics "
            "(the longest gradient path, gradient combinations, ... and FLOPs of the whole network), so a stage "
            "has no share of it. Its terms (weight × standardised value) are shown instead; they sum to the score.",
            "terms": terms,
            "per_stage": None,
        }
    if kind == "gradpath":
        terms = {
            "log gradient combinations": [math.log(max(1, d["metrics"]["gradient_combinations"])) for d in designs],
            "− log max shortest gradient path": [
                -math.log(max(1, d["metrics"]["max_shortest_gradient_path"] or 1)) for d in designs
            ],
        }
        return {
            "additive": False,
            "note": "The gradpath score is not additive per stage: it is the log of the network's gradient "
            "combinations minus the log of its longest shortest path, two network-level metrics.",
            "terms": terms,
            "per_stage": None,
        }
    zero = SCORES[kind].zero_cost if kind in SCORES else False
    return {
        "additive": False,
        "note": f"The {kind} score is not additive per stage: "
        + ("a zero-cost proxy measured on the whole proxy-scale model." if zero else "it is a plug-in score."),
        "terms": {},
        "per_stage": None,
    }
