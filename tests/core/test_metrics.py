"""The gradient-path metrics engine (nas/core/metrics.py) against its definitions (docs/metrics.md).

The reference here works channel by channel on an explicit networkx DAG (one node per channel of
every tensor) and, on small graphs, by enumerating every path: the engine's segment DP must agree
with it on every timestamp, source and combination.
"""

from __future__ import annotations

import doctest
import random

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nas.core.metrics
from nas.core.ir import LayerGraph
from nas.core.metrics import gradient_path_metrics
from tests.support.helpers import METRIC_KEYS

LOSS = "loss"


# -- a channel-level reference ------------------------------------------------------------------
def channel_graph(g: LayerGraph) -> nx.DiGraph:
    """The backward graph at channel granularity: an edge u -> v means gradient flows from
    channel u (of a consumer) to channel v (of its input)."""
    bg = nx.DiGraph()
    bg.add_node(LOSS)
    for node in g:
        for c in range(node.channels):
            bg.add_node((node.name, c))
    for node in g:
        k, a = node.name, node.attrs
        if node.op == "output":
            for c in range(node.channels):
                bg.add_edge(LOSS, (k, c))
                bg.add_edge((k, c), (node.inputs[0], c))
        elif node.op in ("maxpool", "gap", "upsample"):
            for c in range(node.channels):
                bg.add_edge((k, c), (node.inputs[0], c))
        elif node.op == "flatten":
            for f in range(node.channels):
                bg.add_edge((k, f), (node.inputs[0], f // a["hw"]))
        elif node.op == "split":
            for c in range(node.channels):
                bg.add_edge((k, c), (node.inputs[0], a["lo"] + c))
        elif node.op == "concat":
            off = 0
            for x in node.inputs:
                for c in range(g.node(x).channels):
                    bg.add_edge((k, off + c), (x, c))
                off += g.node(x).channels
        elif node.op == "add":
            x, y = node.inputs
            (dlo, dhi), (slo, _) = a["dst"], a["src"]
            for c in range(node.channels):
                bg.add_edge((k, c), (x, c))
                if dlo <= c < dhi:
                    bg.add_edge((k, c), (y, c - dlo + slo))
        elif node.op in ("conv", "linear"):
            x = node.inputs[0]
            groups = a.get("groups", 1) if node.op == "conv" else 1
            cin = g.node(x).channels
            go, gi = node.channels // groups, cin // groups
            for c in range(node.channels):
                grp = c // go
                for ci in range(grp * gi, (grp + 1) * gi):
                    bg.add_edge((k, c), (x, ci))
        # detach and input: no gradient edges
    return bg


def reference(g: LayerGraph) -> dict[tuple[str, int], set[tuple[int, object]]]:
    """(layer, channel) -> its gradient combination {(timestamp, source channel or 'loss')}, by a
    channel-level DP over the networkx DAG in topological order."""
    bg = channel_graph(g)
    is_layer = {n.name for n in g.layers()}
    arriving: dict[object, set[tuple[int, object]]] = {v: set() for v in bg}
    arriving[LOSS] = {(0, LOSS)}
    for u in nx.topological_sort(bg):
        through_layer = u != LOSS and u[0] in is_layer
        out = {(d + 1, u) for d, _ in arriving[u]} if through_layer else arriving[u]
        for v in bg.successors(u):
            arriving[v] |= out
    return {
        (name, c): {(d + 1, s) for d, s in arriving[(name, c)]}
        for name in is_layer
        for c in range(g.node(name).channels)
    }


def enumerate_paths(g: LayerGraph) -> dict[tuple[str, int], set[tuple[int, object]]]:
    """The same by enumerating every path from the loss (small graphs only)."""
    bg = channel_graph(g)
    is_layer = {n.name for n in g.layers()}
    out = {}
    for name in is_layer:
        for c in range(g.node(name).channels):
            combos = set()
            target = (name, c)
            if nx.has_path(bg, LOSS, target):
                for path in nx.all_simple_paths(bg, LOSS, target):
                    layers_on = [v for v in path[1:] if v[0] in is_layer]
                    source = layers_on[-2] if len(layers_on) > 1 else LOSS
                    combos.add((len(layers_on), source))
            out[target] = combos
    return out


def engine_per_channel(g: LayerGraph) -> dict[tuple[str, int], set[tuple[int, object]]]:
    """The engine's combinations spread over channels, sources as (layer, channel-range) strings."""
    m = gradient_path_metrics(g)
    out = {}
    for layer in m.layers:
        for k, unit in enumerate(layer.units):
            combo = m.gradient_combination(layer.name, k)
            for c in range(*unit.channels):
                out[(layer.name, c)] = set(combo)
    return out


def unit_name_of(g: LayerGraph) -> dict[object, str]:
    m = gradient_path_metrics(g)
    names: dict[object, str] = {LOSS: "loss"}
    for layer in m.layers:
        for unit in layer.units:
            lo, hi = unit.channels
            for c in range(lo, hi):
                names[(layer.name, c)] = f"{layer.name}[{lo}:{hi}]"
    return names


def assert_matches_reference(g: LayerGraph, ref: dict) -> None:
    names = unit_name_of(g)
    got = engine_per_channel(g)
    for key, combos in ref.items():
        assert got[key] == {(t, names[s]) for t, s in combos}, key


# -- small graphs ---------------------------------------------------------------------------------
def resnet2(prn: bool = False) -> LayerGraph:
    """The worked example of docs/metrics.md: 2 residual units (4 channels), PRN mask 1/2."""
    g = LayerGraph(3, (8, 8))
    x = g.conv(g.input_name, 4, 3, name="stem")
    for i in range(2):
        with g.scope(f"unit{i}"):
            y = g.conv(g.conv(x, 2, 1, name="cv1"), 4, 3, name="cv2")
            x = g.add(y, x, dst=(0, 2), src=(0, 2)) if prn else g.add(y, x)
    g.output(g.conv(x, 4, 1, name="head"))
    return g


def random_graph(seed: int) -> LayerGraph:
    """A random DAG of every IR op over tiny tensors (same spatial size everywhere)."""
    rng = random.Random(seed)
    g = LayerGraph(2, (4, 4))
    tensors = [g.conv(g.input_name, rng.randint(1, 4), name="stem")]
    for _ in range(rng.randint(2, 9)):
        op = rng.choice(["conv", "conv", "conv", "split", "concat", "add", "add", "detach", "maxpool", "output"])
        x = rng.choice(tensors)
        cx = g.node(x).channels
        if op == "conv":
            c = rng.randint(1, 4)
            groups = 2 if cx % 2 == 0 and c % 2 == 0 and rng.random() < 0.3 else 1
            tensors.append(g.conv(x, c, rng.choice([1, 3]), groups=groups))
        elif op == "split" and cx > 1:
            lo = rng.randrange(cx)
            tensors.append(g.split(x, lo, rng.randint(lo + 1, cx)))
        elif op == "concat":
            tensors.append(g.concat([x, rng.choice(tensors)]))
        elif op == "add":
            y = rng.choice(tensors)
            cy = g.node(y).channels
            w = rng.randint(1, min(cx, cy))
            dlo, slo = rng.randint(0, cx - w), rng.randint(0, cy - w)
            tensors.append(g.add(x, y, dst=(dlo, dlo + w), src=(slo, slo + w)))
        elif op == "detach":
            tensors.append(g.detach(x))
        elif op == "maxpool":
            tensors.append(g.maxpool(x, 3))
        elif op == "output":
            g.output(x)
    g.output(g.conv(tensors[-1], rng.randint(1, 3), name="head"))
    return g


# -- the definitions --------------------------------------------------------------------------
def test_docstring_examples() -> None:
    assert doctest.testmod(nas.core.metrics).failed == 0


def test_plain_chain_lengths_count_layers_from_the_loss() -> None:
    g = LayerGraph(3, (8, 8))
    x = g.input_name
    for i in range(4):
        x = g.conv(x, 4, name=f"c{i}")
        x = g.maxpool(x, 3)  # parameter-free: counts 0
    g.output(x)
    m = gradient_path_metrics(g)
    assert [(r.shortest_gradient_path, r.longest_gradient_path) for r in m.layers] == [(4, 4), (3, 3), (2, 2), (1, 1)]
    assert m.max_shortest_gradient_path == 4 == m.longest_gradient_path
    assert all(u.gradient_sources == 1 and u.gradient_combinations == 1 for r in m.layers for u in r.units)
    assert m.gradient_combination("c0") == {(4, "c1[0:4]")}
    assert m.gradient_combination("c3") == {(1, "loss")}


@pytest.mark.parametrize("prn", [False, True])
def test_worked_example_of_the_docs(prn: bool) -> None:
    """The numbers docs/metrics.md shows (checked by hand there)."""
    m = gradient_path_metrics(resnet2(prn))
    rows = {
        r.name: [(u.channels, u.gradient_timestamps, u.gradient_sources, u.gradient_combinations) for u in r.units]
        for r in m.layers
    }
    if not prn:
        assert rows == {
            "stem": [((0, 4), (2, 4, 6), 3, 4)],
            "unit0.cv1": [((0, 2), (3, 5), 1, 2)],
            "unit0.cv2": [((0, 4), (2, 4), 2, 2)],
            "unit1.cv1": [((0, 2), (3,), 1, 1)],
            "unit1.cv2": [((0, 4), (2,), 1, 1)],
            "head": [((0, 4), (1,), 1, 1)],
        }
        net = (3, 6, 38, 6, 0.0)
    else:
        assert rows == {
            "stem": [((0, 2), (2, 4, 6), 3, 4), ((2, 4), (4, 6), 1, 2)],
            "unit0.cv1": [((0, 2), (3, 5), 2, 3)],
            "unit0.cv2": [((0, 2), (2, 4), 2, 2), ((2, 4), (4,), 1, 1)],
            "unit1.cv1": [((0, 2), (3,), 2, 2)],
            "unit1.cv2": [((0, 2), (2,), 1, 1), ((2, 4), (2,), 1, 1)],
            "head": [((0, 4), (1,), 1, 1)],
        }
        net = (3, 6, 36, 8, 0.0)
    assert (
        m.max_shortest_gradient_path,
        m.longest_gradient_path,
        m.gradient_combinations,
        m.distinct_gradient_combinations,
        m.duplicate_gradient_ratio,
    ) == net
    assert m.gradient_combination("stem") == {
        (2, "head[0:4]"),
        (4, "unit1.cv1[0:2]"),
        (4, "unit0.cv1[0:2]"),
        (6, "unit0.cv1[0:2]"),
    }


@pytest.mark.parametrize("prn", [False, True])
def test_dp_equals_path_enumeration_on_the_worked_example(prn: bool) -> None:
    g = resnet2(prn)
    assert enumerate_paths(g) == reference(g)
    assert_matches_reference(g, enumerate_paths(g))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.integers(0, 2**32 - 1))
def test_dp_equals_channel_level_reference_on_random_graphs(seed: int) -> None:
    g = random_graph(seed)
    ref = reference(g)
    assert_matches_reference(g, ref)
    # every channel of a unit has the same combination (units are never too coarse)
    m = gradient_path_metrics(g)
    for layer in m.layers:
        shortest = [
            min(t for t, _ in ref[(layer.name, c)]) for c in range(g.node(layer.name).channels) if ref[(layer.name, c)]
        ]
        longest = [
            max(t for t, _ in ref[(layer.name, c)]) for c in range(g.node(layer.name).channels) if ref[(layer.name, c)]
        ]
        assert layer.shortest_gradient_path == (min(shortest) if shortest else None)
        assert layer.longest_gradient_path == (max(longest) if longest else None)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(0, 2**32 - 1))
def test_dp_equals_path_enumeration_on_random_graphs(seed: int) -> None:
    g = random_graph(seed)
    assert enumerate_paths(g) == reference(g)


# -- units: what cuts a range ---------------------------------------------------------------
def units(m, name: str) -> list[tuple[int, int]]:  # noqa: ANN001
    return [u.channels for u in m.layer(name).units]


def test_csp_split_cuts_the_base_layer_into_block_and_cross_units() -> None:
    g = LayerGraph(3, (8, 8))
    base = g.conv(g.input_name, 8, name="base")
    path = g.conv(g.split(base, 0, 2), 2, name="block")
    g.output(g.conv(g.concat([path, g.split(base, 2, 8)]), 8, name="transition"))
    m = gradient_path_metrics(g)
    assert units(m, "base") == [(0, 2), (2, 8)]
    assert [u.gradient_timestamps for u in m.layer("base").units] == [(3,), (2,)]
    # the cross part and the block output receive the same gradient: duplicated information
    assert m.gradient_combination("base", 1) == m.gradient_combination("block") == {(2, "transition[0:8]")}
    assert m.duplicate_gradient_ratio == pytest.approx((6 + 2) / (8 + 2 + 8))


def test_concat_boundary_and_partial_add_ranges_cut_through_parameter_free_ops() -> None:
    g = LayerGraph(3, (8, 8))
    a = g.conv(g.input_name, 6, name="a")
    b = g.conv(g.input_name, 4, name="b")
    pooled = g.upsample(g.maxpool(a, 3), 1)  # cuts travel through pool/upsample
    s = g.add(pooled, b, dst=(1, 3), src=(2, 4))
    cat = g.concat([s, b])
    g.output(g.conv(g.split(cat, 4, 8), 2, name="left"))  # cuts s at 4 and b at 2
    g.output(g.conv(cat, 2, name="right"))
    m = gradient_path_metrics(g)
    assert units(m, "a") == [(0, 1), (1, 3), (3, 4), (4, 6)]
    assert units(m, "b") == [(0, 2), (2, 4)]


def test_detach_carries_cuts_but_no_gradient() -> None:
    g = LayerGraph(3, (8, 8))
    a = g.conv(g.input_name, 4, name="a")
    d = g.detach(a)
    g.output(g.conv(g.split(d, 0, 1), 2, name="head_detached"))
    g.output(g.conv(a, 2, name="head"))
    m = gradient_path_metrics(g)
    assert units(m, "a") == [(0, 1), (1, 4)]
    assert [u.gradient_timestamps for u in m.layer("a").units] == [(2,), (2,)]


def test_a_layer_without_gradient_has_no_timestamps_and_is_left_out() -> None:
    g = LayerGraph(3, (8, 8))
    a = g.conv(g.input_name, 4, name="a")
    dead = g.conv(g.detach(a), 4, name="dead")
    g.conv(a, 4, name="unread")  # nothing reads it
    g.output(g.add(a, g.detach(dead)))
    m = gradient_path_metrics(g)
    for name in ("dead", "unread"):
        r = m.layer(name)
        assert (r.shortest_gradient_path, r.longest_gradient_path, r.gradient_timestamps) == (None, None, ())
        assert r.to_dict()["units"] == [
            {"channels": [0, 4], "gradient_timestamps": [], "gradient_sources": 0, "gradient_combinations": 0}
        ]
    assert (m.max_shortest_gradient_path, m.longest_gradient_path, m.gradient_combinations) == (1, 1, 4)
    assert m.distinct_gradient_combinations == 1 and m.duplicate_gradient_ratio == 0.0


def test_no_layer_with_gradient() -> None:
    g = LayerGraph(3, (8, 8))
    g.output(g.detach(g.conv(g.input_name, 4, name="a")))
    m = gradient_path_metrics(g)
    assert (m.max_shortest_gradient_path, m.longest_gradient_path, m.duplicate_gradient_ratio) == (None, None, 0.0)


def test_grouped_conv_cuts_its_input_only_where_the_output_units_it_feeds_change() -> None:
    g = LayerGraph(3, (8, 8))
    a = g.conv(g.input_name, 4, name="a")
    dw = g.conv(a, 4, 3, groups=4, name="dw")
    g.output(g.conv(g.split(dw, 0, 2), 2, name="head0"))
    g.output(g.conv(g.split(dw, 2, 4), 2, name="head1"))
    m = gradient_path_metrics(g)
    assert units(m, "dw") == [(0, 2), (2, 4)]
    assert units(m, "a") == [(0, 2), (2, 4)]
    assert m.gradient_combination("a", 0) == {(3, "dw[0:2]")}
    one = LayerGraph(3, (8, 8))
    a = one.conv(one.input_name, 4, name="a")
    one.output(one.conv(a, 4, 3, groups=2, name="g2"))
    assert units(gradient_path_metrics(one), "a") == [(0, 4)]


def test_flatten_maps_features_back_to_channels() -> None:
    g = LayerGraph(3, (2, 2))
    a = g.conv(g.input_name, 3, name="a")
    f = g.flatten(a)
    g.output(g.linear(g.split(f, 0, 4), 5, name="fc0"))
    g.output(g.linear(f, 5, name="fc1"))
    m = gradient_path_metrics(g)
    assert units(m, "a") == [(0, 1), (1, 3)]
    assert [u.gradient_sources for u in m.layer("a").units] == [2, 1]


def test_to_dict_schema() -> None:
    d = gradient_path_metrics(resnet2(True)).to_dict()
    assert list(d) == [*METRIC_KEYS, "layers"]
    layer = d["layers"][0]
    assert list(layer) == ["name", "shortest_gradient_path", "longest_gradient_path", "gradient_timestamps", "units"]
    assert list(layer["units"][0]) == ["channels", "gradient_timestamps", "gradient_sources", "gradient_combinations"]
    assert all(type(t) is int for r in d["layers"] for t in r["gradient_timestamps"])
    assert [r["name"] for r in d["layers"]] == ["stem", "unit0.cv1", "unit0.cv2", "unit1.cv1", "unit1.cv2", "head"]
    assert gradient_path_metrics(resnet2(True)).to_dict(layers=False) == {k: v for k, v in d.items() if k != "layers"}


def test_unknown_op_is_an_error() -> None:
    g = LayerGraph(3, (8, 8))
    x = g.conv(g.input_name, 4)
    g.output(x)
    g.node(x).op = "mystery"
    with pytest.raises(ValueError, match="unknown op 'mystery'"):
        gradient_path_metrics(g)
