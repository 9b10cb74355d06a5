"""The paper's claims (docs/metrics.md, Table 1 and sections 2.2–3.3) on small networks, each checked
through both front ends: the LayerGraph built with the IR methods (and the search space's own
blocks), and the torch module — ``nas.build(graph)`` or a hand-written ``nn.Module`` — traced back
by the torch.fx front end."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nas
from nas.core.fx import from_module
from nas.core.ir import LayerGraph
from nas.core.metrics import gradient_path_metrics
from search_spaces.blocks import csp_block, elan_block, residual_unit
from search_spaces.config import PartConfig

C = 32  # PRN masks of 0.25-0.75 stay strictly between 0 and C under the multiple-of-8 rule
IMG = 16
FRONTS = ["ir", "fx"]


# -- measuring through either front end -------------------------------------------------------
def _strip(d: dict[str, Any]) -> dict[str, Any]:
    """fx names a conv layer by its module (``unit0.cv1.conv``); the IR by its node (``unit0.cv1``)."""
    for layer in d["layers"]:
        if layer["name"].endswith(".conv"):
            layer["name"] = layer["name"][: -len(".conv")]
    return d


def measure(g: LayerGraph, front: str) -> dict[str, Any]:
    """The metrics of ``g`` as ``to_dict()``: from the IR itself, or from ``nas.build(g)`` traced."""
    if front == "ir":
        return gradient_path_metrics(g).to_dict()
    with torch.device("meta"):
        model = nas.build(g)
    return _strip(gradient_path_metrics(from_module(model, (1, 3, IMG, IMG))).to_dict())


def measure_module(model: nn.Module) -> dict[str, Any]:
    return gradient_path_metrics(from_module(model, (1, 3, IMG, IMG))).to_dict()


def shortest(d: dict[str, Any]) -> dict[str, int]:
    return {r["name"]: r["shortest_gradient_path"] for r in d["layers"]}


def unnamed(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, "layers": [{k: v for k, v in r.items() if k != "name"} for r in d["layers"]]}


def network(d: dict[str, Any]) -> tuple:
    return tuple(v for k, v in d.items() if k != "layers")


# -- the networks, as LayerGraphs ------------------------------------------------------------
def _graph() -> tuple[LayerGraph, str]:
    g = LayerGraph(3, (IMG, IMG))
    return g, g.conv(g.input_name, C, 3, name="stem")


def _head(g: LayerGraph, x: str) -> LayerGraph:
    g.output(g.conv(x, C, 1, name="head"))
    return g


def plainnet(n: int) -> LayerGraph:
    g, x = _graph()
    for i in range(n):
        x = g.conv(x, C, 3, name=f"layer{i}")
    return _head(g, x)


def plain_units(n: int) -> LayerGraph:
    """A ResNet's layers without its identity connections (the same names)."""
    g, x = _graph()
    for i in range(n):
        with g.scope(f"unit{i}"):
            x = g.conv(g.conv(x, C // 2, 1, name="cv1"), C, 3, name="cv2")
    return _head(g, x)


def resnet(n: int, stop_gradient: str = "none") -> LayerGraph:
    g, x = _graph()
    p = PartConfig(block="res", stop_gradient=stop_gradient)
    for i in range(n):
        with g.scope(f"unit{i}"):
            x = residual_unit(g, x, C, C // 2, p, "backbone", prn=False)
    return _head(g, x)


def prn(n: int, mask_fraction: float) -> LayerGraph:
    g, x = _graph()
    p = PartConfig(block="prn", mask_fraction=mask_fraction)
    for i in range(n):
        with g.scope(f"unit{i}"):
            x = residual_unit(g, x, C, C // 2, p, "backbone", prn=True)
    return _head(g, x)


def densenet(n: int, growth: int = 4) -> LayerGraph:
    g, x = _graph()
    feats = [x]
    for i in range(n):
        with g.scope(f"layer{i}"):
            feats.append(g.conv(g.concat(feats) if len(feats) > 1 else feats[0], growth, 3, name="conv"))
    return _head(g, g.concat(feats))


def vovnet(modules: int, convs: int = 3) -> LayerGraph:
    """Stacked OSA modules: a chain of 3×3 convs, every output (and the input) aggregated once,
    one transition layer per module."""
    g, x = _graph()
    for j in range(modules):
        with g.scope(f"osa{j}"):
            taps, y = [x], x
            for k in range(convs):
                y = g.conv(y, C, 3, name=f"cv{k}")
                taps.append(y)
            x = g.conv(g.concat(taps), C, 1, name="transition")
    return _head(g, x)


def elan(stack: int) -> LayerGraph:
    g, x = _graph()
    with g.scope("stage"):
        x = elan_block(g, x, C, 2, PartConfig(block="elan", elan_stack=stack), "backbone")
    return _head(g, x)


def csp(fusion: str, units: int = 2) -> LayerGraph:
    g, x = _graph()
    with g.scope("stage"):
        x = csp_block(g, x, C, units, PartConfig(block="csp", fusion=fusion), "backbone")
    return _head(g, x)


# -- hand-written modules (code this project did not generate) --------------------------------
class ConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int) -> None:
        super().__init__(nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class HandPlainNet(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.stem = ConvBN(3, C, 3)
        self.layers = nn.Sequential(*[ConvBN(C, C, 3) for _ in range(n)])
        self.head = nn.Conv2d(C, C, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


class Bottleneck(nn.Module):
    def __init__(self, stop_identity: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(C, C // 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(C // 2)
        self.conv2 = nn.Conv2d(C // 2, C, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(C)
        self.stop_identity = stop_identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out += x.detach() if self.stop_identity else x
        return out


class HandResNet(nn.Module):
    def __init__(self, n: int, stop_identity: bool = False) -> None:
        super().__init__()
        self.stem = ConvBN(3, C, 3)
        self.blocks = nn.ModuleList([Bottleneck(stop_identity) for _ in range(n)])
        self.head = nn.Conv2d(C, C, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


class HandDenseNet(nn.Module):
    def __init__(self, n: int, growth: int = 4) -> None:
        super().__init__()
        self.stem = ConvBN(3, C, 3)
        self.layers = nn.ModuleList([ConvBN(C + i * growth, growth, 3) for i in range(n)])
        self.head = nn.Conv2d(C + n * growth, C, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [self.stem(x)]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return self.head(torch.cat(feats, dim=1))


# -- Table 1: PlainNet / ResNet / DenseNet ----------------------------------------------------
DEPTHS = (1, 2, 4, 8)


@pytest.mark.parametrize("front", FRONTS)
def test_plainnet_shortest_gradient_path_grows_with_depth(front: str) -> None:
    sgp = [measure(plainnet(n), front)["max_shortest_gradient_path"] for n in DEPTHS]
    assert sgp == [n + 2 for n in DEPTHS]  # stem + n layers + head: one path, every layer on it


@pytest.mark.parametrize("front", FRONTS)
def test_resnet_shortest_gradient_path_does_not_grow_with_depth(front: str) -> None:
    ms = [measure(resnet(n), front) for n in DEPTHS]
    assert [m["max_shortest_gradient_path"] for m in ms] == [3] * len(DEPTHS)  # cv1 -> cv2 -> head
    assert [m["longest_gradient_path"] for m in ms] == [2 * n + 2 for n in DEPTHS]  # only the longest grows


@pytest.mark.parametrize("front", FRONTS)
def test_densenet_shortest_gradient_path_does_not_grow_with_depth(front: str) -> None:
    ms = [measure(densenet(n), front) for n in DEPTHS]
    assert [m["max_shortest_gradient_path"] for m in ms] == [2] * len(DEPTHS)  # every layer -> concat -> head
    assert [m["longest_gradient_path"] for m in ms] == [n + 2 for n in DEPTHS]


@pytest.mark.parametrize(
    ("hand", "graph"),
    [
        (HandPlainNet, plainnet),
        (HandResNet, resnet),
        (lambda n: HandResNet(n, stop_identity=True), lambda n: resnet(n, "identity")),
        (HandDenseNet, densenet),
    ],
    ids=["plainnet", "resnet", "resnet-stop-identity", "densenet"],
)
def test_hand_written_modules_trace_to_the_same_metrics(hand: Any, graph: Any) -> None:
    """torch.fx on code we did not generate: the same metrics, layer by layer in forward order."""
    for n in (1, 3):
        assert unnamed(measure_module(hand(n))) == unnamed(measure(graph(n), "ir"))


def test_hand_written_networks_show_table_1() -> None:
    plain = [measure_module(HandPlainNet(n))["max_shortest_gradient_path"] for n in DEPTHS]
    res = [measure_module(HandResNet(n))["max_shortest_gradient_path"] for n in DEPTHS]
    dense = [measure_module(HandDenseNet(n))["max_shortest_gradient_path"] for n in DEPTHS]
    assert plain == sorted(plain) and plain[-1] - plain[0] == DEPTHS[-1] - DEPTHS[0]
    assert len(set(res)) == 1 and len(set(dense)) == 1
    assert measure_module(HandResNet(2))["layers"][0]["name"] == "stem.0"


# -- ELAN §2.4: OSA stacking vs stack in computational block ---------------------------------
@pytest.mark.parametrize("front", FRONTS)
def test_stacking_an_osa_module_adds_one_to_every_layers_shortest_gradient_path(front: str) -> None:
    for m in (1, 2, 3):
        before, after = shortest(measure(vovnet(m), front)), shortest(measure(vovnet(m + 1), front))
        for name, sgp in before.items():
            assert after[name] == (sgp if name == "head" else sgp + 1), name
        assert max(after.values()) == max(before.values()) + 1


@pytest.mark.parametrize("front", FRONTS)
def test_stacking_inside_an_elan_block_does_not_lengthen_any_shortest_gradient_path(front: str) -> None:
    for s in (1, 2, 3):
        before, after = measure(elan(s), front), measure(elan(s + 1), front)
        b, a = shortest(before), shortest(after)
        assert set(b) < set(a)
        assert all(a[name] == sgp for name, sgp in b.items())
        assert after["max_shortest_gradient_path"] == before["max_shortest_gradient_path"]
        assert after["longest_gradient_path"] == before["longest_gradient_path"] + 2  # only the longest grows


# -- CSP fusion §2.3 / §2.4 -------------------------------------------------------------------
@pytest.mark.parametrize("front", FRONTS)
def test_csp_fusion_first_cuts_the_computational_blocks_shortest_gradient_path_by_one(front: str) -> None:
    fusion, first = shortest(measure(csp("fusion"), front)), shortest(measure(csp("first"), front))
    assert set(first) == set(fusion) - {"stage.transition_block"}
    block = {name for name in first if ".unit" in name}
    assert block  # the residual units of the computational block
    for name, sgp in first.items():
        assert sgp == fusion[name] - (1 if name in block else 0), name


@pytest.mark.parametrize("front", FRONTS)
def test_csp_fusion_last_cuts_every_layers_shortest_gradient_path_by_one(front: str) -> None:
    fusion, last = shortest(measure(csp("fusion"), front)), shortest(measure(csp("last"), front))
    assert set(last) == set(fusion) - {"stage.transition"}
    for name, sgp in last.items():
        assert sgp == fusion[name] - (0 if name == "head" else 1), name


@pytest.mark.parametrize("front", FRONTS)
def test_csp_fusion_truncates_duplicated_gradient_information(front: str) -> None:
    ratio = {f: measure(csp(f), front)["duplicate_gradient_ratio"] for f in ("fusion", "first", "last", "none")}
    assert ratio["fusion"] == min(ratio.values()) < ratio["none"] == max(ratio.values())


# -- stop gradient §3.3, Fig. 9 ---------------------------------------------------------------
@pytest.mark.parametrize("front", FRONTS)
def test_stop_gradient_on_the_identity_makes_a_resnet_a_plainnet(front: str) -> None:
    for n in (1, 2, 4):
        stopped = measure(resnet(n, "identity"), front)
        assert stopped == measure(plain_units(n), front)
        assert all(r["shortest_gradient_path"] == r["longest_gradient_path"] for r in stopped["layers"])
        assert stopped["max_shortest_gradient_path"] == stopped["longest_gradient_path"] == 2 * n + 2
    assert (
        measure(resnet(4), front)["max_shortest_gradient_path"]
        < measure(resnet(4, "identity"), front)["max_shortest_gradient_path"]
    )


def resnet_stop_block_input(n: int) -> LayerGraph:
    """Fig. 9(b): the gradient stops before each computational block (its input is detached), so
    the identity chain carries every gradient to the start; no head after the last unit."""
    g, x = _graph()
    for i in range(n):
        with g.scope(f"unit{i}"):
            y = g.conv(g.conv(g.detach(x), C // 2, 1, name="cv1"), C, 3, name="cv2")
            x = g.add(y, x)
    g.output(x)
    return g


@pytest.mark.parametrize("front", FRONTS)
def test_stop_gradient_on_the_block_gives_shortest_one_and_longest_two(front: str) -> None:
    for n in (1, 3, 6):
        d = measure(resnet_stop_block_input(n), front)
        assert shortest(d)["stem"] == 1
        assert d["longest_gradient_path"] == 2  # each computational block has two layers
        assert min(r["shortest_gradient_path"] for r in d["layers"]) == 1


# -- PRN §2.2, §3.1 ---------------------------------------------------------------------------
@pytest.mark.parametrize("front", FRONTS)
def test_prn_mask_one_is_a_resnet_and_mask_zero_a_plainnet(front: str) -> None:
    for n in (1, 3):
        assert measure(prn(n, 1.0), front) == measure(resnet(n), front)
        assert measure(prn(n, 0.0), front) == measure(plain_units(n), front)


@pytest.mark.parametrize("front", FRONTS)
def test_prn_in_between_has_more_distinct_gradient_combinations_than_either(front: str) -> None:
    for n in (1, 3):
        res = measure(resnet(n), front)["distinct_gradient_combinations"]
        plain = measure(plain_units(n), front)["distinct_gradient_combinations"]
        for mask in (0.25, 0.5, 0.75):
            d = measure(prn(n, mask), front)
            assert d["distinct_gradient_combinations"] > max(res, plain), mask
            # and the masked channels get their own timestamps (Fig. 7b): more than one unit per cv2
            assert all(len(r["units"]) == 2 for r in d["layers"] if r["name"].endswith("cv2"))


def resnet_stop_block_from_space(n: int) -> LayerGraph:
    """The same network from the search space's knob (``stop_gradient: block``), no head."""
    g, x = _graph()
    p = PartConfig(block="res", stop_gradient="block")
    for i in range(n):
        with g.scope(f"unit{i}"):
            x = residual_unit(g, x, C, C // 2, p, "backbone", prn=False)
    g.output(x)
    return g


@pytest.mark.parametrize("front", FRONTS)
def test_the_spaces_stop_gradient_block_knob_is_figure_9b(front: str) -> None:
    for n in (1, 3):
        assert measure(resnet_stop_block_from_space(n), front) == measure(resnet_stop_block_input(n), front)
