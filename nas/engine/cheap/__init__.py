"""The cheap stage: the evolutionary search over the space (:mod:`~nas.engine.cheap.stage`, its
optimiser :mod:`~nas.engine.cheap.evolution`), every candidate scored by
:func:`nas.engine.scores.score_candidate`, and the selection of what the proxy stage trains
(:mod:`~nas.engine.cheap.select`)."""

from nas.engine.cheap.select import select_candidates
from nas.engine.cheap.stage import cheap_stage, evaluate_batch, mark_dashboard_view
from nas.engine.scores.candidate import score_candidate

__all__ = ["cheap_stage", "evaluate_batch", "mark_dashboard_view", "score_candidate", "select_candidates"]
