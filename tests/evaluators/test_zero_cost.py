"""Zero-cost baselines: deterministic, finite, responsive to the architecture, and wired into
the cheap stage as ``--cheap-score synflow|naswot``."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from evaluators.zero_cost import naswot, proxy_model, synflow
from nas.engine import SCORES, cheap_score, score_candidate
from search_spaces.config import ArchConfig, PartConfig

IMG = 32
W = 0.125  # a tiny proxy model: the properties do not depend on size, the test time does
SMALL = ArchConfig(width=0.5, depth=0.33, backbone=PartConfig(block="csp"), neck=PartConfig(block="elan"))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():  # noqa: ANN202
    """Small models: one thread is faster, and far faster on a loaded shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _batch(n: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, IMG, IMG, generator=torch.Generator().manual_seed(seed))


def test_synflow_is_deterministic_and_finite() -> None:
    a = synflow(proxy_model(SMALL, W, IMG), (1, 3, IMG, IMG))
    b = synflow(proxy_model(SMALL, W, IMG), (1, 3, IMG, IMG))
    assert math.isfinite(a) and a == b


def test_synflow_grows_with_depth_and_width() -> None:
    base = synflow(proxy_model(SMALL, W, IMG), (1, 3, IMG, IMG))
    deeper = synflow(proxy_model(dataclasses.replace(SMALL, depth=0.67), W, IMG), (1, 3, IMG, IMG))
    wider = synflow(proxy_model(dataclasses.replace(SMALL, width=1.0), W, IMG), (1, 3, IMG, IMG))
    assert deeper > base and wider > base


def test_synflow_leaves_the_model_untouched() -> None:
    model = proxy_model(SMALL, W, IMG)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    synflow(model, (1, 3, IMG, IMG))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert next(model.parameters()).dtype == torch.float32


def test_naswot_is_deterministic_finite_and_architecture_dependent() -> None:
    x = _batch()
    a = naswot(proxy_model(SMALL, W, IMG), x)
    b = naswot(proxy_model(SMALL, W, IMG), x)
    other = naswot(proxy_model(dataclasses.replace(SMALL, depth=0.67), W, IMG), x)
    assert math.isfinite(a) and a == b and other != a


def test_naswot_duplicate_images_are_finite_and_score_lower() -> None:
    model = proxy_model(SMALL, W, IMG)
    distinct = _batch()
    dup = distinct.clone()
    dup[1] = dup[0]  # two identical rows: K is singular
    same = distinct[:1].repeat(8, 1, 1, 1)  # rank-1 K
    s_distinct, s_dup, s_same = naswot(model, distinct), naswot(model, dup), naswot(model, same)
    assert all(math.isfinite(v) for v in (s_distinct, s_dup, s_same))
    assert s_same < s_dup < s_distinct


def test_naswot_relu_network_known_answer() -> None:
    # one ReLU unit per image code: x>0 for image 0, not for image 1 -> K = [[1, 0], [0, 1]] -> log det 0
    net = nn.Sequential(nn.Flatten(), nn.ReLU())
    assert naswot(net, torch.tensor([[1.0], [-1.0]])) == pytest.approx(0.0)


def test_cheap_scores_include_zero_cost_baselines() -> None:
    assert {"synflow", "naswot"} <= set(SCORES)
    s = score_candidate(SMALL, "synflow")
    assert s["score"] == s["zero_cost"]["synflow"] and math.isfinite(s["score"])
    assert "zero_cost" not in score_candidate(SMALL)  # the default path builds no model
    with pytest.raises(ValueError):
        cheap_score("naswot", 1, 1, {})
