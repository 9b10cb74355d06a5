"""The cheap stage: every candidate is compiled, costed and scored in milliseconds.

Candidates land in Optuna study ``<name>-cheap``: the knobs are the trial's params, FLOPs are an
objective, params/metrics/config are user attributes and FLOPs − budget is the constraint, so
over-budget candidates are recorded as infeasible and never trained.
"""

from __future__ import annotations

from typing import Any

from nas.core.cost import cost
from nas.core.metrics import gradient_path_metrics
from nas.engine.options import SearchOptions
from nas.engine.report import progress_bar
from nas.engine.scores import DEFAULT_CHEAP_SCORE, SCORES, cheap_score
from nas.engine.storage import fail_interrupted, mark_constraint
from search_spaces import compile_config


def score_candidate(cfg: Any, kind: str = DEFAULT_CHEAP_SCORE) -> dict[str, Any]:
    """Compile, cost and score one config: the attributes a cheap trial records.

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
    return out


def cheap_stage(storage: Any, opts: SearchOptions, progress: bool = True) -> Any:
    """Run (or resume) the cheap stage of ``opts`` in ``storage``; returns the Optuna study."""
    import optuna

    from search_spaces.space import SPACES

    space = SPACES[opts.space]
    study = optuna.create_study(
        study_name=f"{opts.name}-cheap", storage=storage, directions=["maximize", "minimize"], load_if_exists=True
    )
    study.set_metric_names([f"{opts.cheap_score}_score", "flops"])
    fail_interrupted(study)
    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    bar = progress_bar(opts.candidates, "cheap stage", progress, initial=done)
    for i in range(done, opts.candidates):
        # A sampler seeded by the candidate's index: its proposal depends only on the study's
        # history and the index, so a resumed search proposes what an unbroken one would have.
        seed = (opts.seed * 1_000_003 + i) % 2**32  # numpy's seed range; a no-op for seed < 4293
        study.sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=100)
        trial = study.ask()
        cfg = space.suggest(trial)
        s = score_candidate(cfg, opts.cheap_score)
        trial.set_user_attr("config", cfg.to_yaml())
        trial.set_user_attr("key", cfg.key())
        trial.set_user_attr("params", s["params"])
        trial.set_user_attr("metrics", s["metrics"])
        mark_constraint(study, trial, float(s["flops"] - opts.budget))
        study.tell(trial, [s["score"], float(s["flops"])])
        bar.update(1)
    bar.close()
    return study
