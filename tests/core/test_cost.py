"""IR cost == torch's own count on the built module, exactly; Table 2 and Tables 6-8 anchors."""

import dataclasses
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

import nas
from search_spaces import ArchConfig, PartConfig, compile_config, load_config, preset_names
from search_spaces.space import SearchSpace


def torch_counts(graph: nas.LayerGraph) -> tuple[int, int]:
    """(params, FLOPs) measured by torch on the module built from the IR (meta device: no memory)."""
    with torch.device("meta"):
        model = nas.build(graph)
        x = torch.empty(1, 3, *graph.node(graph.input_name).size)
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return params, counter.get_total_flops()


@pytest.mark.parametrize("name", preset_names())
def test_preset_cost_matches_torch(name):
    graph = compile_config(load_config(name))
    c = nas.cost(graph)
    assert (c.params, c.flops) == torch_counts(graph)


@settings(max_examples=200)
@given(seed=st.integers(0, 2**32 - 1), img=st.sampled_from([64, 96, 128, 160]))
def test_random_config_cost_matches_torch(seed, img):
    cfg = dataclasses.replace(SearchSpace().sample(random.Random(seed)), img_size=img)
    graph = compile_config(cfg)
    c = nas.cost(graph)
    assert (c.params, c.flops) == torch_counts(graph)


def test_output_shapes_follow_the_ir():
    cfg = dataclasses.replace(load_config("yolor-elan-2-1"), img_size=128, width=0.25, num_classes=3)
    graph = compile_config(cfg)
    outs = nas.build(graph)(torch.zeros(2, 3, 128, 128))
    assert [tuple(o.shape) for o in outs] == [(2, 8, 16, 16), (2, 8, 8, 8), (2, 8, 4, 4)]


@pytest.mark.parametrize(
    ("name", "params_m", "gflops"),
    [("darknet53", 41.57, 18.57), ("cspdarknet53", 27.61, 13.07)],  # paper Table 2 (FLOPs at 256x256)
)
def test_table2_classifiers_within_one_percent(name, params_m, gflops):
    c = nas.cost(compile_config(load_config(name)))
    assert c.params / 1e6 == pytest.approx(params_m, rel=0.01)
    assert c.flops / 1e9 == pytest.approx(gflops, rel=0.01)


def _gflops(name: str) -> float:
    return nas.cost(compile_config(load_config(name))).flops / 1e9


def test_detector_presets_keep_the_papers_flops_order():
    order = [
        "yolor-elan-1-1",
        "yolor-elan-2-1",
        "yolor-csp-no-fusion",
        "yolor-csp-fusion-last",
        "yolor-csp-fusion-first",
        "yolor-csp",
        "yolor-elan-2-2",
        "yolor-v3",
    ]
    flops = [_gflops(n) for n in order]
    assert flops == sorted(flops) and len(set(flops)) == len(flops)
    assert _gflops("yolor-prn") == pytest.approx(_gflops("yolor-v3"), rel=0.01)


def test_prn_keeps_topology_and_params_of_v3():
    v3, prn = (nas.cost(compile_config(load_config(n))) for n in ("yolor-v3", "yolor-prn"))
    assert prn.params == v3.params


def test_width_and_depth_scale_cost_monotonically():
    base = ArchConfig(img_size=256, backbone=PartConfig(block="csp"), neck=PartConfig(block="elan"))
    flops = [nas.cost(compile_config(dataclasses.replace(base, width=w))).flops for w in (0.5, 0.75, 1.0, 1.25)]
    assert flops == sorted(flops)
    flops = [nas.cost(compile_config(dataclasses.replace(base, depth=d))).flops for d in (0.33, 0.67, 1.0, 1.33)]
    assert flops == sorted(flops)


def test_flops_scale_with_image_area():
    a = nas.cost(compile_config(dataclasses.replace(load_config("yolor-csp"), img_size=320))).flops
    b = nas.cost(compile_config(load_config("yolor-csp"))).flops
    assert b == 4 * a  # every layer is a conv whose cost is proportional to its output area
