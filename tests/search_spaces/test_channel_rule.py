"""Every channel count of the space is a multiple of 8 (export issue, item 0): the rule YOLOv7's
and YOLOv9's parsers apply, so a searched design is exact in the authors' code. The presets
were already on the rule and must compile exactly as before."""

from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nas.core.cost import cost
from search_spaces import blocks, compile_config, families, load_config
from search_spaces.blocks import CHANNEL_DIVISOR, share
from search_spaces.config import preset_names
from search_spaces.space import SPACES


def channel_counts(graph) -> list[tuple[str, int]]:
    """Every channel count a full-scale graph carries: each layer's output, each split's bounds,
    each partial add's range, the head's prediction convs excepted (their width is the classes)."""
    out = []
    for n in graph:
        if n.op == "conv" and not n.name.startswith("head."):
            out.append((n.name, n.channels))
        elif n.op == "split":
            out += [(n.name, n.attrs["lo"]), (n.name, n.attrs["hi"])]
        elif n.op == "add" and not n.attrs["full"]:
            out += [(n.name, v) for v in (*n.attrs["dst"], *n.attrs["src"])]
    return out


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_random_designs_of_the_space_have_channels_in_multiples_of_8(seed):
    cfg = SPACES["yolor"].sample(random.Random(seed))
    counts = channel_counts(compile_config(cfg))
    assert counts, "the graph has convs"
    bad = [(name, c) for name, c in counts if c % CHANNEL_DIVISOR]
    assert not bad, f"{cfg.describe() if hasattr(cfg, 'describe') else cfg}: {bad[:5]}"


def exact_share(fraction: float, c: int, *, keep_rest: bool = False) -> int:
    """The rule before rounding: the exact share, which must be whole."""
    n = fraction * c
    assert n == int(n), (fraction, c)
    return int(n)


@pytest.mark.parametrize("name", preset_names())
def test_presets_compile_exactly_as_with_exact_shares(name, monkeypatch):
    cfg = load_config(name)
    rounded = compile_config(cfg)
    monkeypatch.setattr(blocks, "share", exact_share)
    monkeypatch.setattr(families, "share", exact_share)
    exact = compile_config(cfg)
    assert [(n.name, n.channels, n.attrs) for n in rounded] == [(n.name, n.channels, n.attrs) for n in exact]
    assert cost(rounded) == cost(exact)


def test_a_fraction_off_the_grid_rounds_to_the_nearest_multiple():
    csp = load_config("yolor-csp")
    cfg = dataclasses.replace(csp, backbone=dataclasses.replace(csp.backbone, split_ratio=0.3))
    graph = compile_config(cfg)
    splits = [n for n in graph if n.op == "split" and n.name.endswith("block_path")]
    # stage 2 of yolor-csp has 128 channels: 0.3 x 128 = 38.4 -> 40
    assert any(n.attrs["hi"] == 40 for n in splits)
    assert all(n.attrs["hi"] % 8 == 0 for n in splits)


@given(st.floats(0.01, 0.99), st.sampled_from([16, 24, 32, 48, 72, 136, 1024]))
def test_a_split_keeps_both_sides_and_a_multiple_of_8(fraction, c):
    b = share(fraction, c, keep_rest=True)
    assert b % 8 == 0 and 8 <= b <= c - 8
    assert abs(b - fraction * c) <= 4 or b in (8, c - 8)


def test_shares_below_16_channels_halve_the_multiple():
    """Only a proxy's reduced width (×0.25) has 8-channel stages; they still split in two."""
    assert share(0.25, 8, keep_rest=True) == share(0.75, 8, keep_rest=True) == 4
    assert share(0.5, 8) == 4 and share(1.0, 8) == 8 and share(0.0, 8) == 0
