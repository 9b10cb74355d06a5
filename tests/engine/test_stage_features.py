"""nas.engine.scores.features: the space's parts joined to nas.core.stage_paths, with the fixed
stage weights of docs/gp-features.md."""

from __future__ import annotations

import doctest

import nas.engine.scores.features as sf
from search_spaces import load_config
from search_spaces.families import stage_plan


def test_docstring_examples() -> None:
    assert doctest.testmod(sf).failed == 0


def test_the_fixed_weights_name_every_part_of_the_detector_and_are_mae_det_s() -> None:
    assert list(sf.STAGE_ALPHA) == [row["scope"] for row in stage_plan(load_config("yolor-v3"))]
    assert [sf.STAGE_ALPHA[f"backbone.stage{i}"] for i in range(1, 6)] == [0, 0, 1, 1, 6]


def test_a_classifier_has_its_backbone_stages_and_one_level() -> None:
    f = sf.stage_path_features(load_config("darknet53"))
    assert [s["knob"] for s in f["stages"]] == [f"backbone.s{i}" for i in range(1, 6)]
    assert list(f["levels"]) == ["classifier.logits"] and f["aggregates"]["level.max_shortest_gradient_path"] > 0
    # alpha over the backbone alone: 1·s3 + 1·s4 + 6·s5
    s = f["stages"]
    expected = sum(w * s[i]["longest_gradient_path"] for i, w in ((2, 1), (3, 1), (4, 6)))
    assert f["aggregates"]["alpha.longest_gradient_path"] == expected
