"""The engine's flat modules of earlier versions still import, as the sub-package modules that
hold their code now, with a DeprecationWarning naming the new path; plug-in code that imports
from the packages (``nas.engine.scores``, ``nas.engine.cheap``, ``nas.engine.proxy``) is unchanged."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from nas.engine import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_module_path_is_the_new_module(old: str) -> None:
    code = (
        "import importlib, warnings\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        f"    old = importlib.import_module({old!r})\n"
        f"new = importlib.import_module({MOVED[old]!r})\n"
        "assert old is new, (old, new)\n"
        f"assert any(issubclass(x.category, DeprecationWarning) and {MOVED[old]!r} in str(x.message) for x in w), w\n"
    )
    # a fresh interpreter: in this one the old name may be cached already
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_new_path_exists_and_no_old_path_is_a_file() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for old, new in MOVED.items():
        assert not (root / (old.replace(".", "/") + ".py")).exists(), old
        assert importlib.util.find_spec(new) is not None, new


def test_plug_in_imports_of_the_packages_keep_working() -> None:
    from nas.engine.cheap import cheap_stage, evaluate_batch, mark_dashboard_view, score_candidate
    from nas.engine.proxy import fidelity_of, proxy_stage
    from nas.engine.scores import SCORES, Candidate, cheap_score, register_score

    assert all(callable(f) for f in (cheap_stage, evaluate_batch, mark_dashboard_view, score_candidate))
    assert all(callable(f) for f in (fidelity_of, proxy_stage, cheap_score, register_score))
    assert "fitted" in SCORES and Candidate.__module__ == "nas.engine.scores.registry"


def test_an_unknown_engine_module_is_still_an_import_error() -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("nas.engine.no_such_module")
