"""ArchConfig: exact YAML round-trip, validation messages that name field, value and what is accepted."""

import random

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

import nas
from search_spaces import ArchConfig, ConfigError, compile_config, from_dict, load_config, parse_yaml, preset_names
from search_spaces.config import save_config
from search_spaces.space import SearchSpace


@pytest.mark.parametrize("name", preset_names())
def test_presets_round_trip(name, tmp_path):
    cfg = load_config(name)
    save_config(cfg, tmp_path / "a.yaml")
    again = load_config(tmp_path / "a.yaml")
    assert again == cfg
    assert again.to_yaml() == cfg.to_yaml()


@given(seed=st.integers(0, 2**32 - 1))
def test_sampled_configs_round_trip_and_rebuild_identically(seed):
    cfg = SearchSpace().sample(random.Random(seed))
    again = parse_yaml(cfg.to_yaml())
    assert again == cfg
    a, b = compile_config(cfg), compile_config(again)
    assert [(n.name, n.op, n.inputs, n.channels, n.size, n.attrs) for n in a] == [
        (n.name, n.op, n.inputs, n.channels, n.size, n.attrs) for n in b
    ]
    assert nas.cost(a) == nas.cost(b)


def _cfg(**changes):
    d = load_config("yolor-csp").to_dict()
    for key, value in changes.items():
        if "__" in key:
            part, knob = key.split("__")
            d[part][knob] = value
        else:
            d[key] = value
    return d


@pytest.mark.parametrize(
    ("changes", "field", "bad"),
    [
        ({"backbone__split_ratio": 0}, "backbone.split_ratio", "0"),
        ({"backbone__split_ratio": 1.2}, "backbone.split_ratio", "1.2"),
        ({"neck__mask_fraction": -1}, "neck.mask_fraction", "-1"),
        ({"backbone__elan_stack": 0}, "backbone.elan_stack", "0"),
        ({"backbone__block": "dense"}, "backbone.block", "'dense'"),
        ({"neck__fusion": "middle"}, "neck.fusion", "'middle'"),
        ({"schema": 2}, "schema", "2"),
        ({"img_size": 100}, "img_size", "100"),
        ({"width": "wide"}, "width", "'wide'"),
        ({"depth": True}, "depth", "True"),
        ({"num_classes": 0}, "num_classes", "0"),
        ({"colour": "red"}, "colour", "'red'"),
    ],
)
def test_validation_names_field_value_and_accepted(changes, field, bad):
    with pytest.raises(ConfigError) as e:
        from_dict(_cfg(**changes))
    msg = str(e.value)
    assert msg.startswith(f"{field}: {bad} ")
    assert "accepted:" in msg
    assert "\n" not in msg


def test_missing_schema_and_non_mapping():
    with pytest.raises(ConfigError, match="schema: missing"):
        from_dict({"family": "yolor"})
    with pytest.raises(ConfigError, match="expected a mapping"):
        from_dict([1, 2])


def test_malformed_yaml_is_one_line():
    with pytest.raises(ConfigError, match=r"malformed YAML at line \d+") as e:
        parse_yaml("schema: 1\nbackbone: {block: res\n")
    assert "\n" not in str(e.value)


def test_defaults_fill_missing_keys():
    cfg = from_dict({"schema": 1})
    assert cfg == ArchConfig()
    assert yaml.safe_load(cfg.to_yaml())["schema"] == 1


def test_canonical_key_ignores_knobs_the_block_does_not_use():
    a = from_dict(_cfg(backbone__block="res", backbone__mask_fraction=0.25))
    b = from_dict(_cfg(backbone__block="res", backbone__mask_fraction=0.75))
    assert a != b and a.key() == b.key()
    assert nas.cost(compile_config(a)) == nas.cost(compile_config(b))
