"""``gradient_overlap`` (nas/metrics.py, docs/metrics.md): CSPNet's duplicated gradient information.
DenseNet must score above CSP-DenseNet, parallel branches into one concat must not count, and the
DP must agree with a brute-force reading of the definition on random DAGs."""

from __future__ import annotations

import itertools
import random

import pytest
from torch import nn

from nas.core.fx import from_module
from nas.core.ir import LayerGraph
from nas.core.metrics import gradient_path_metrics


def densenet(csp: bool = False, fusion: str = "first", layers: int = 4, c: int = 16, k: int = 8) -> LayerGraph:
    """Two dense stages; with ``csp`` each stage splits its input: half crosses the stage, half enters
    the dense block (CSPNet Fig. 2/5: ``first`` = concat then transition, ``fusion`` = transition,
    concat, transition)."""
    g = LayerGraph(3, (32, 32))
    x = g.conv(g.input_name, c, name="stem")
    for st in range(2):
        with g.scope(f"stage{st}"):
            feats = [g.split(x, c // 2, c)] if csp else [x]
            cross = g.split(x, 0, c // 2) if csp else None
            for i in range(layers):
                feats.append(g.conv(feats[0] if len(feats) == 1 else g.concat(feats), k, 3, name=f"dense{i}"))
            if not csp:
                x = g.conv(g.concat(feats), c, name="transition")
            elif fusion == "first":
                x = g.conv(g.concat([cross, *feats[1:]]), c, name="transition")
            else:
                t = g.conv(g.concat(feats[1:]), c // 2, name="transition1")
                x = g.conv(g.concat([cross, t]), c, name="transition")
    g.output(x)
    return g


def inception(modules: int = 2) -> LayerGraph:
    """GoogLeNet-style modules: parallel branches from one input into one concat."""
    g = LayerGraph(3, (32, 32))
    x = g.conv(g.input_name, 16, name="stem")
    for m in range(modules):
        with g.scope(f"m{m}"):
            b1 = g.conv(x, 8, name="b1")
            b2 = g.conv(g.conv(x, 8, name="b2a"), 8, 3, name="b2b")
            b3 = g.conv(g.conv(x, 4, name="b3a"), 8, 5, name="b3b")
            x = g.conv(g.concat([b1, b2, b3]), 16, name="out")
    g.output(x)
    return g


def test_densenet_overlaps_more_than_csp_densenet() -> None:
    dense = gradient_path_metrics(densenet()).gradient_overlap
    for fusion in ("first", "fusion"):
        assert dense > gradient_path_metrics(densenet(csp=True, fusion=fusion)).gradient_overlap > 0


def test_residual_shortcuts_count_and_bottleneck_dense_layers_too() -> None:
    g = LayerGraph(3, (8, 8))
    x = g.conv(g.input_name, 4, name="stem")
    for i in range(2):
        x = g.add(x, g.conv(g.conv(x, 2, name=f"u{i}.cv1"), 4, 3, name=f"u{i}.cv2"))
    g.output(g.conv(x, 4, name="head"))
    m = gradient_path_metrics(g)
    assert m.gradient_overlap > 0
    # DenseNet-BC: each dense layer is 1×1 then 3×3; the shortcut duplicates what the next layers get
    g = LayerGraph(3, (8, 8))
    feats = [g.conv(g.input_name, 16, name="stem")]
    for i in range(4):
        inp = feats[0] if i == 0 else g.concat(feats)
        feats.append(g.conv(g.conv(inp, 16, name=f"d{i}.a"), 8, 3, name=f"d{i}.b"))
    g.output(g.conv(g.concat(feats), 16, name="transition"))
    assert gradient_path_metrics(g).gradient_overlap > 0.1  # the 1×1s (one source each) add zeros


def test_parallel_branches_into_one_concat_are_not_duplicates() -> None:
    m = gradient_path_metrics(inception())
    assert m.gradient_overlap == 0.0
    assert m.duplicate_gradient_ratio > 0.3  # the old ratio counted the branches' identical sets


@pytest.mark.parametrize("depth", [3, 6])
def test_plain_chain_has_no_overlap_and_dense_connections_add_it(depth: int) -> None:
    g = LayerGraph(3, (8, 8))
    x = g.conv(g.input_name, 4, name="c0")
    for i in range(1, depth):
        x = g.conv(x, 4, name=f"c{i}")
    g.output(x)
    assert gradient_path_metrics(g).gradient_overlap == 0.0
    assert gradient_path_metrics(densenet(layers=depth)).gradient_overlap > 0.0


def test_the_old_ratio_is_kept_under_its_name() -> None:
    m = gradient_path_metrics(densenet()).to_dict()
    assert m["duplicate_gradient_ratio"] == 0.0 and m["gradient_overlap"] > 0


def test_same_on_a_hand_written_densenet_module() -> None:
    import torch

    class Dense(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 1)
            self.layers = nn.ModuleList(nn.Conv2d(16 + 8 * i, 8, 3, padding=1) for i in range(4))
            self.transition = nn.Conv2d(48, 16, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            feats = [self.stem(x)]
            for layer in self.layers:
                feats.append(layer(torch.cat(feats, 1)))
            return self.transition(torch.cat(feats, 1))

    g = LayerGraph(3, (16, 16))
    feats = [g.conv(g.input_name, 16, name="stem")]
    for i in range(4):
        feats.append(g.conv(feats[0] if i == 0 else g.concat(feats), 8, 3, name=f"layers.{i}"))
    g.output(g.conv(g.concat(feats), 16, name="transition"))
    got = gradient_path_metrics(from_module(Dense(), (1, 3, 16, 16))).gradient_overlap
    assert got == pytest.approx(gradient_path_metrics(g).gradient_overlap) and got > 0


# -- brute force -------------------------------------------------------------------------------
def brute_overlap(g: LayerGraph) -> float:
    """The definition read literally with networkx: for each unit ``u``, the share of its (timestamp,
    source) pairs whose source is also a gradient source of some unit reachable from ``u`` along
    source edges (a layer downstream of ``u``), weighted by ``u``'s channels. Combination sets come
    from the engine's public per-unit API (checked elsewhere against networkx path enumeration)."""
    import networkx as nx

    m = gradient_path_metrics(g)
    combos: dict[str, frozenset] = {}
    width: dict[str, int] = {}
    for rec in m.layers:
        for k, u in enumerate(rec.units):
            if u.gradient_timestamps:
                key = f"{rec.name}[{u.channels[0]}:{u.channels[1]}]"
                combos[key] = m.gradient_combination(rec.name, k)
                width[key] = u.channels[1] - u.channels[0]
    dg = nx.DiGraph()
    dg.add_nodes_from(combos)
    dg.add_edges_from((u, s) for u, comb in combos.items() for _, s in comb if s != "loss")
    num = den = 0.0
    for u, comb in combos.items():
        below = {s for v in nx.descendants(dg, u) for _, s in combos[v]}
        num += width[u] * sum(1 for _, s in comb if s in below) / len(comb)
        den += width[u]
    return num / den if den else 0.0


def random_graph(rng: random.Random) -> LayerGraph:
    g = LayerGraph(3, (8, 8))
    pool = [g.conv(g.input_name, 8, name="stem")]
    for i in range(rng.randint(3, 9)):
        kind = rng.choice(["conv", "conv", "concat", "add", "split", "mul"])
        a = rng.choice(pool)
        if kind == "conv":
            pool.append(g.conv(a, 8, name=f"c{i}"))
        elif kind == "concat":
            b = rng.choice(pool)
            pool.append(g.conv(g.concat([a, b]), 8, name=f"c{i}"))
        elif kind == "add":
            pool.append(g.add(a, rng.choice(pool)))
        elif kind == "split":
            pool.append(g.conv(g.split(a, 0, 4), 8, name=f"c{i}"))
        else:
            pool.append(g.mul(a, rng.choice(pool)))
    g.output(pool[-1])
    if rng.random() < 0.5:
        g.output(rng.choice(pool))
    return g


@pytest.mark.parametrize("seed", range(40))
def test_engine_agrees_with_brute_force(seed: int) -> None:
    g = random_graph(random.Random(seed))
    assert gradient_path_metrics(g).gradient_overlap == pytest.approx(brute_overlap(g))


def test_overlap_is_between_zero_and_one() -> None:
    for seed, csp in itertools.product(range(5), (False, True)):
        v = gradient_path_metrics(densenet(csp=csp, layers=2 + seed)).gradient_overlap
        assert 0.0 <= v <= 1.0
