"""The search engine: options, cheap scores, the cheap stage, selection, the proxy stage (driver
and Ray-worker side), storage, report, export and the driver that runs them in order.

Imports point down only (docs/architecture.md): this package uses ``nas.core``,
``search_spaces`` and ``evaluators``; only ``nas.cli`` and the ``nas`` facade use it.
``nas export``/``nas dashboard`` live in :mod:`nas.engine.export` (not re-exported here, so that
``nas.engine.export`` stays the module).
"""

from nas.engine.cheap import cheap_stage, score_candidate
from nas.engine.driver import search
from nas.engine.options import SearchError, SearchOptions
from nas.engine.scores import SCORES, cheap_score, register_score
from nas.engine.select import select_candidates

__all__ = [
    "SCORES",
    "SearchError",
    "SearchOptions",
    "cheap_score",
    "cheap_stage",
    "register_score",
    "score_candidate",
    "search",
    "select_candidates",
]
