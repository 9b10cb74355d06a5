"""The search engine, one sub-package per stage of a search (docs/architecture.md):

- :mod:`nas.engine.options` (the options), :mod:`nas.engine.stats` (the statistics the search
  itself uses) and :mod:`nas.engine.latency` (the per-device latency model) at the bottom;
- :mod:`nas.engine.record`: what a search writes and reads back: the trial attributes, the
  Optuna storage, the report, ``nas dashboard``;
- :mod:`nas.engine.scores`: the cheap-score registry, one candidate scored, the calibration of
  the score on measured APs, the shipped weights;
- :mod:`nas.engine.cheap` (the evolutionary cheap stage and the selection) and
  :mod:`nas.engine.proxy` (the training plan, the Ray Tune stage, its worker, the Ray cluster);
- :mod:`nas.engine.validate`, :mod:`nas.engine.driver` (``nas search``) and
  :mod:`nas.engine.export` (``nas export``) on top.

Imports point down only: this package uses ``nas.core``, ``search_spaces`` and ``evaluators``;
only ``nas.cli`` and the ``nas`` facade use it. The flat modules of earlier versions
(``nas.engine.objectives``, ``nas.engine.worker``, …) still import, as their new modules, with a
``DeprecationWarning`` naming the new path.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

from nas.engine.cheap.select import select_candidates
from nas.engine.cheap.stage import cheap_stage
from nas.engine.driver import search
from nas.engine.options import SearchError, SearchOptions
from nas.engine.scores.candidate import score_candidate
from nas.engine.scores.registry import SCORES, cheap_score, register_score

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

#: the flat modules of earlier versions -> where their code lives now
MOVED = {
    "nas.engine.objectives": "nas.engine.record.trials",
    "nas.engine.storage": "nas.engine.record.storage",
    "nas.engine.report": "nas.engine.record.report",
    "nas.engine.calibration": "nas.engine.scores.calibration",
    "nas.engine.stage_features": "nas.engine.scores.features",
    "nas.engine.evolution": "nas.engine.cheap.evolution",
    "nas.engine.select": "nas.engine.cheap.select",
    "nas.engine.worker": "nas.engine.proxy.worker",
    "nas.engine.fidelity": "nas.engine.proxy.fidelity",
    "nas.engine.ray_cluster": "nas.engine.proxy.ray_cluster",
}


class _MovedModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old path as the module that holds its code now (the same object, so a
    monkeypatch through either name patches both)."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec: object) -> object:
        new = MOVED[spec.name]  # type: ignore[attr-defined]
        warnings.warn(f"{spec.name} is now {new}", DeprecationWarning, stacklevel=2)  # type: ignore[attr-defined]
        return importlib.import_module(new)

    def exec_module(self, module: object) -> None:
        pass


if not any(isinstance(f, _MovedModule) for f in sys.meta_path):
    sys.meta_path.append(_MovedModule())
