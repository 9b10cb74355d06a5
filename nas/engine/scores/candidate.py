"""One candidate scored from its config alone: compiled to the IR, costed, its gradient-path
metrics computed and the cheap score applied. The cheap stage calls it for every candidate;
``nas export`` calls it again to check that a written config reproduces what was recorded."""

from __future__ import annotations

from typing import Any

from nas.core.cost import cost
from nas.core.metrics import gradient_path_metrics
from nas.engine.scores.registry import DEFAULT_CHEAP_SCORE, SCORES, cheap_score
from search_spaces import compile_config


def score_candidate(cfg: Any, kind: str = DEFAULT_CHEAP_SCORE, latency: Any = None) -> dict[str, Any]:
    """Compile, cost and score one config: the attributes a cheap trial records. With a
    ``latency`` model (:mod:`nas.engine.latency`), also its predicted ``latency_ms`` (batch 1).

    Zero-cost scores (``synflow``/``naswot``) also build the proxy-scale model (width ×0.25, 96 px)
    and record their value under ``zero_cost``: ~1–3 s per candidate on CPU instead of
    milliseconds, so they are opt-in baselines, never computed on the default path.

    >>> from search_spaces import load_config
    >>> s = score_candidate(load_config("yolor-elan-2-1"), "flops")
    >>> s["flops"] == s["score"] == 111085977600
    True
    """
    graph = compile_config(cfg)
    c = cost(graph)
    metrics = gradient_path_metrics(graph).to_dict(layers=False)
    zero_cost = None
    if SCORES[kind].zero_cost:
        from evaluators import zero_cost as zc

        model = zc.proxy_model(cfg)
        zero_cost = (
            {"synflow": zc.synflow(model)} if kind == "synflow" else {"naswot": zc.naswot(model, zc.proxy_batch())}
        )
    out = {
        "flops": c.flops,
        "params": c.params,
        "metrics": metrics,
        "score": cheap_score(kind, c.flops, c.params, metrics, zero_cost),
    }
    if zero_cost is not None:
        out["zero_cost"] = zero_cost
    if latency is not None:
        from nas.engine.latency import predict_latency_ms

        out["latency_ms"] = predict_latency_ms(graph, latency)
    return out
