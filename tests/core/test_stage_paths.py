"""Per-stage gradient-path features (nas.core.stage_paths, docs/gp-features.md) against
independent computations: a part scored in place equals the part built as a network of its own
(checked against the channel-level networkx reference of test_metrics), and on the presets
every stage's and level's path lengths equal networkx shortest / longest paths on the
restricted graph."""

from __future__ import annotations

import dataclasses
import doctest

import networkx as nx
import pytest

import nas.core.stage_paths
from nas.core.cost import cost_by_scope
from nas.core.ir import LayerGraph
from nas.core.metrics import gradient_path_metrics
from nas.core.stage_paths import aggregate, level_max_shortest, stage_paths
from search_spaces import compile_config, load_config
from search_spaces.families import stage_plan
from tests.core.test_metrics import random_graph, reference

PRESETS = ("yolor-v3", "yolor-prn", "yolor-csp", "yolor-csp-fusion-first", "yolor-elan-2-1", "yolor-elan-hetero")


def test_docstring_examples() -> None:
    assert doctest.testmod(nas.core.stage_paths).failed == 0


def embedded(alone: LayerGraph) -> LayerGraph:
    """``alone`` as scope ``s`` of a larger network: a layer before it, and each of its outputs
    replaced by a layer outside it that feeds an output (so ``s`` hands those tensors on)."""
    src = alone.node(alone.input_name)
    g = LayerGraph(src.channels, src.size)
    ren = {alone.input_name: g.conv(g.input_name, src.channels, name="pre")}
    for n in alone:
        if n.op == "input":
            continue
        if n.op == "output":
            g.output(g.conv(ren[n.inputs[0]], 3, name="post"))
            continue
        name = f"s.{n.name}"
        g.nodes[name] = dataclasses.replace(n, name=name, inputs=tuple(ren[i] for i in n.inputs))
        ren[n.name] = name
    return g


@pytest.mark.parametrize("seed", range(60))
def test_a_part_scored_in_place_equals_the_part_alone(seed: int) -> None:
    alone = random_graph(seed)
    whole = embedded(alone)
    part = gradient_path_metrics(whole, within="s")
    own = gradient_path_metrics(alone)
    assert [r.name for r in part.layers] == [f"s.{r.name}" for r in own.layers]
    for a, b in zip(part.layers, own.layers, strict=True):
        assert (a.shortest_gradient_path, a.longest_gradient_path, a.timestamp_mask) == (
            b.shortest_gradient_path,
            b.longest_gradient_path,
            b.timestamp_mask,
        )
        assert [(u.channels, u.gradient_combinations) for u in a.units] == [
            (u.channels, u.gradient_combinations) for u in b.units
        ]
    assert part.to_dict(layers=False) == own.to_dict(layers=False)
    # and the path lengths against the channel-level networkx reference of the part alone
    ref = reference(alone)
    for rec in part.layers:
        ts = {t for (name, _), combos in ref.items() if f"s.{name}" == rec.name for t, _ in combos}
        assert (rec.shortest_gradient_path, rec.longest_gradient_path) == ((min(ts), max(ts)) if ts else (None, None))


def test_the_whole_network_as_one_part_is_the_network() -> None:
    for seed in range(20):
        alone = random_graph(seed)
        src = alone.node(alone.input_name)
        g = LayerGraph(src.channels, src.size)
        ren = {alone.input_name: g.input_name}
        for n in alone:
            if n.op != "input":
                g.nodes[f"all.{n.name}"] = dataclasses.replace(
                    n, name=f"all.{n.name}", inputs=tuple(ren[i] for i in n.inputs)
                )
                ren[n.name] = f"all.{n.name}"
        (s,) = stage_paths(g, ["all"])
        m = gradient_path_metrics(alone)
        assert (s.max_shortest_gradient_path, s.longest_gradient_path) == (
            m.max_shortest_gradient_path,
            m.longest_gradient_path,
        )
        assert (s.gradient_combinations, s.gradient_overlap) == (m.gradient_combinations, m.gradient_overlap)
        assert s.network_max_shortest_gradient_path == m.max_shortest_gradient_path


def nx_paths(g: LayerGraph, keep: set[str], sinks: set[str]) -> dict[str, tuple[int, int]]:
    """Layer -> (shortest, longest) gradient path within the nodes ``keep``, the loss feeding
    ``sinks``: networkx shortest paths (Dijkstra) and the longest path of the DAG of the nodes
    between the loss and the layer, on the node-level backward graph (a layer counts 1)."""
    bg = nx.DiGraph()
    for name in keep:
        for x in g.node(name).inputs:
            if x in keep and g.node(name).op != "detach":
                bg.add_edge(name, x, weight=int(g.node(x).is_layer))
    for name in sinks:
        bg.add_edge("loss", name, weight=int(g.node(name).is_layer))
    short = nx.single_source_dijkstra_path_length(bg, "loss")
    reach = nx.descendants(bg, "loss")
    out = {}
    for name in keep:
        if g.node(name).is_layer and name in reach:
            sub = bg.subgraph(nx.ancestors(bg, name) | {name})
            out[name] = (short[name], nx.dag_longest_path_length(sub, weight="weight"))
    return out


@pytest.mark.parametrize("preset", PRESETS)
def test_stage_paths_of_the_presets_equal_networkx_on_the_restricted_graph(preset: str) -> None:
    cfg = load_config(preset)
    g = compile_config(cfg)
    cons = g.consumers()
    network = gradient_path_metrics(g)
    scopes = [row["scope"] for row in stage_plan(cfg)]
    for s in stage_paths(g, scopes, network):
        keep = {n.name for n in g if n.name.startswith(s.scope + ".")}
        sinks = {k for k in keep if any(c not in keep for c in cons[k])}
        paths = nx_paths(g, keep, sinks)
        assert s.layers == len(paths)
        assert s.max_shortest_gradient_path == max(a for a, _ in paths.values()), s.scope
        assert s.longest_gradient_path == max(b for _, b in paths.values()), s.scope
        assert s.network_max_shortest_gradient_path == max(network.layer(k).shortest_gradient_path for k in paths)
        assert s.flops == cost_by_scope(g)[s.scope].flops
    sides = [s.resolution for s in stage_paths(g, scopes, network)]
    assert sides == [320, 160, 80, 40, 20, 20, 40, 80, 40, 20]  # strides 2..32, then the PAN's nodes


@pytest.mark.parametrize("preset", PRESETS)
def test_each_level_alone_equals_networkx_from_its_output(preset: str) -> None:
    g = compile_config(load_config(preset))
    levels = level_max_shortest(g)
    assert sorted(levels) == ["head.p3", "head.p4", "head.p5"]
    everything = {n.name for n in g}
    for out, value in levels.items():
        paths = nx_paths(g, everything, {out})
        assert value == max(a for a, _ in paths.values())


def test_uniform_designs_have_the_same_stage_maximum_everywhere_and_the_network_maximum_is_a_stage_s() -> None:
    """In a uniform design every stage's own largest shortest path is its block's (residual 2,
    CSP 4, ELAN 3 here); the network maximum is the largest stage value seen from the loss,
    unless the stem (outside every stage) lies deeper."""
    for preset, own in (("yolor-v3", 2), ("yolor-csp", 4), ("yolor-elan-2-1", 3), ("darknet53", 2)):
        cfg = load_config(preset)
        g = compile_config(cfg)
        network = gradient_path_metrics(g)
        stages = stage_paths(g, [row["scope"] for row in stage_plan(cfg)], network)
        assert {s.max_shortest_gradient_path for s in stages} == {own}, preset
        stem = network.layer("backbone.stem").shortest_gradient_path
        assert network.max_shortest_gradient_path == max(stem, *(s.network_max_shortest_gradient_path for s in stages))


def test_aggregates_by_weights_computed_by_hand() -> None:
    cfg = load_config("yolor-elan-hetero")
    g = compile_config(cfg)
    stages = stage_paths(g, [row["scope"] for row in stage_plan(cfg)])
    levels = level_max_shortest(g)
    agg = aggregate(stages, levels, {"backbone.stage5": 6.0, "neck.out3": 1.0})
    flops = [s.flops for s in stages]
    res = [s.resolution for s in stages]
    v = [s.longest_gradient_path for s in stages]
    assert agg["flops_w.longest_gradient_path"] == pytest.approx(
        sum(f * x for f, x in zip(flops, v, strict=True)) / sum(flops)
    )
    assert agg["res_w.longest_gradient_path"] == pytest.approx(
        sum(r * x for r, x in zip(res, v, strict=True)) / sum(res)
    )
    assert agg["alpha.longest_gradient_path"] == 6 * stages[4].longest_gradient_path + stages[7].longest_gradient_path
    assert agg["level.max_shortest_gradient_path"] == pytest.approx(sum(levels.values()) / 3)
