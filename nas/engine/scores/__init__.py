"""The cheap scores: the registry (``@register_score``) and the shipped fitted weights
(:mod:`~nas.engine.scores.registry`, ``data/fitted_score.json``), one candidate scored from its
config (:mod:`~nas.engine.scores.candidate`), the score refitted on a run's measured APs
(:mod:`~nas.engine.scores.calibration`) and the per-stage gradient-path features
(:mod:`~nas.engine.scores.features`).

A plug-in score imports from here, as before: ``from nas.engine.scores import register_score``.
"""

from nas.engine.scores.candidate import score_candidate
from nas.engine.scores.registry import (
    DEFAULT_CHEAP_SCORE,
    FITTED_SCORE_FILE,
    SCORES,
    Candidate,
    CheapScore,
    cheap_score,
    fitted_weights,
    register_score,
    save_fitted_weights,
)

__all__ = [
    "DEFAULT_CHEAP_SCORE",
    "FITTED_SCORE_FILE",
    "SCORES",
    "Candidate",
    "CheapScore",
    "cheap_score",
    "fitted_weights",
    "register_score",
    "save_fitted_weights",
    "score_candidate",
]
