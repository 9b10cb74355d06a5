"""IR and torch.fx agree: for every preset and for random configs of the search space, the
metrics of the LayerGraph equal those of the graph traced back from ``nas.build(graph)`` —
network level and per layer in forward order — and so do params and FLOPs."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import nas
from nas.core.cost import cost
from nas.core.fx import from_module
from nas.core.ir import LayerGraph
from nas.core.metrics import gradient_path_metrics
from search_spaces import ConfigError, compile_config, load_config, preset_names
from search_spaces.space import SearchSpace

IMG = 64  # small images: tracing is shape-only (meta tensors), sizes just have to divide by 32


def traced(graph: LayerGraph, img: int) -> LayerGraph:
    with torch.device("meta"):
        model = nas.build(graph)
    return from_module(model, (1, 3, img, img))


def layer_name(name: str) -> str:
    return name[: -len(".conv")] if name.endswith(".conv") else name


def assert_agree(graph: LayerGraph, img: int) -> None:
    back = traced(graph, img)
    a, b = gradient_path_metrics(graph).to_dict(), gradient_path_metrics(back).to_dict()
    for r in b["layers"]:
        r["name"] = layer_name(r["name"])
    assert [r["name"] for r in a["layers"]] == [r["name"] for r in b["layers"]]  # forward order
    assert {k: v for k, v in a.items() if k != "layers"} == {k: v for k, v in b.items() if k != "layers"}
    for ra, rb in zip(a["layers"], b["layers"], strict=True):
        assert ra == rb, ra["name"]
    assert cost(back) == cost(graph)


@pytest.mark.parametrize("preset", preset_names())
def test_presets_agree(preset: str) -> None:
    cfg = dataclasses.replace(load_config(preset), img_size=IMG)
    assert_agree(compile_config(cfg), IMG)


SPACE = SearchSpace(img_size=IMG)


def _config(seed: int) -> Any:
    return SPACE.sample(random.Random(seed))


@pytest.mark.slow  # ~10–20 s: 110 models built, traced and shape-propagated on meta tensors
@settings(max_examples=110, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1))
def test_random_configs_agree(seed: int) -> None:
    try:
        graph = compile_config(_config(seed))
    except ConfigError:
        assume(False)
    assert_agree(graph, IMG)


def test_random_configs_cover_every_block_and_fusion() -> None:
    """110 samples of the space span its design strategies, so the property test's 110 exercise them."""
    seen = set()
    for seed in range(110):
        cfg = _config(seed)
        for part in (cfg.backbone, cfg.neck):
            seen.add(part.block)
            if part.block == "csp":
                seen.add(part.fusion)
    assert {"res", "prn", "csp", "elan", "fusion", "first", "last", "none"} <= seen


def test_stop_gradient_variants_agree() -> None:
    for stop in ("identity", "block"):
        cfg = load_config("yolor-csp")
        part = dataclasses.replace(cfg.backbone, stop_gradient=stop)
        cfg = dataclasses.replace(cfg, img_size=IMG, width=0.25, backbone=part, neck=part)
        assert_agree(compile_config(cfg), IMG)
