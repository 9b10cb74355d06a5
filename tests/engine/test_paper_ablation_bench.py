"""benchmarks/paper_ablation.py's input checks and its result names per recipe version."""

from __future__ import annotations

import pytest

from benchmarks import paper_ablation
from benchmarks.lib.recipes import result_name


def test_unknown_models_are_refused_in_one_line(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        paper_ablation.main(["--models", "yolor-csp", "yolor-nope", "--analyze-only"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and "\n" not in err and "yolor-nope" in err and "yolor-elan-2-2" in err


def test_a_v2_study_never_shares_a_v1_study_folder() -> None:
    assert result_name("paper_ablation", "reduced") == "paper_ablation"  # v1 results keep their names
    assert result_name("paper_ablation", "reduced", "v2") != result_name("paper_ablation", "reduced", "v1")
    assert result_name("rank_study", "default", "v2") == "rank_study_default_v2"
