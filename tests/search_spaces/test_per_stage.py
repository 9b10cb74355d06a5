"""The per-stage space (config schema 2): every backbone stage and neck node chooses its own block,
knobs, repeats and channels; the space's size is counted exactly (checked against brute force);
a schema-1 config and its schema-2 spelling are one design (same graph, same key)."""

import dataclasses
import itertools
import json
import random
import subprocess
import sys

import optuna
import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

import nas
from nas.cli import main
from search_spaces import ArchConfig, ConfigError, PartConfig, compile_config, from_dict, load_config, parse_yaml
from search_spaces.config import BACKBONE_STAGES, NECK_NODES, StageConfig
from search_spaces.families import stage_plan
from search_spaces.space import SPACES, SearchSpace, walk

PER_STAGE = SPACES["yolor"]


def graph_rows(cfg: ArchConfig) -> list[tuple]:
    return [(n.name, n.op, n.inputs, n.channels, n.size, n.attrs) for n in compile_config(cfg)]


def tiny(**kw) -> SearchSpace:
    base = dict(
        blocks=("res",),
        split_ratios=(0.5,),
        fusions=("fusion",),
        mask_fractions=(0.5,),
        elan_stacks=(1,),
        widths=(0.25,),
        depths=(0.33,),
        stage_repeats=(1.0,),
        stage_widths=(1.0,),
        img_size=64,
        per_stage=True,
    )
    return SearchSpace(**{**base, **kw})


# -- size: counted, and the count is what brute force finds ------------------------------------
def test_default_space_has_at_least_1e15_configs_and_the_uniform_one_is_unchanged():
    assert PER_STAGE.size() >= 10**15
    assert PER_STAGE.size() == (28 * 3 * 3) ** (BACKBONE_STAGES + NECK_NODES) * 4 * 4
    assert len(SPACES["yolor-uniform"]) == 12544 == 28 * 28 * 4 * 4
    with pytest.raises(OverflowError, match="use size"):
        len(PER_STAGE)


def _brute_force_keys(space: SearchSpace) -> set[str]:
    """Independent of ``configure``: every stage's options from itertools, every combination built."""
    parts = space.parts()
    stage_opts = [StageConfig(p, r, w) for p, r, w in itertools.product(parts, space.stage_repeats, space.stage_widths)]
    n = len(space.stage_prefixes())
    keys = set()
    for w, d, *stages in itertools.product(space.widths, space.depths, *[stage_opts] * n):
        cfg = ArchConfig(
            img_size=space.img_size,
            width=w,
            depth=d,
            backbone_stages=tuple(stages[:BACKBONE_STAGES]),
            neck_nodes=tuple(stages[BACKBONE_STAGES:]),
        )
        keys.add(cfg.key())
    return keys


@pytest.mark.parametrize(
    "space",
    [
        tiny(blocks=("res", "csp")),  # a choice of block
        tiny(blocks=("prn",), mask_fractions=(0.25, 0.75)),  # a conditional knob
        tiny(stage_repeats=(0.5, 1.5), widths=(0.25, 0.5)),  # repeats, and the global width
        tiny(stage_widths=(1.0, 1.25), depths=(0.33, 1.0)),  # channels, and the global depth
    ],
    ids=["block", "knob", "repeats", "width"],
)
def test_size_matches_brute_force_on_tiny_sub_spaces(space):
    walked = [c.key() for c in walk(space)]
    assert len(walked) == len(set(walked)) == space.size()  # every choice sequence a different design
    assert set(walked) == _brute_force_keys(space)


def test_part_count_with_conditional_knobs_matches_enumeration():
    space = SearchSpace(blocks=("res", "prn", "elan"), mask_fractions=(0.25, 0.5), elan_stacks=(1, 2, 3))
    assert space.part_count() == 1 + 2 + 3 * 3 == len({p.canonical() for p in space.parts()})
    assert SPACES["yolor"].part_count() == 28


def test_walk_of_the_uniform_space_is_its_enumeration():
    space = SearchSpace(blocks=("res", "csp"), fusions=("fusion", "last"), split_ratios=(0.5,), widths=(0.25, 0.5))
    assert sorted(c.key() for c in walk(space)) == sorted(c.key() for c in space.enumerate())
    assert len(space) == 3 * 3 * 2 * 4  # parts: res, csp x 2 fusions


# -- the interface the cheap stage drives --------------------------------------------------------
def test_parameter_names_and_conditional_knobs_per_stage():
    for seed in range(30):
        params = PER_STAGE.params_of(PER_STAGE.sample(random.Random(seed)))
        assert {"width", "depth"} <= params.keys()
        prefixes = [f"backbone.s{i}" for i in range(1, 6)] + [f"neck.n{i}" for i in range(1, 6)]
        assert list(PER_STAGE.stage_prefixes()) == prefixes
        for pre in prefixes:
            block = params[f"{pre}.block"]
            assert f"{pre}.repeats" in params and f"{pre}.width" in params
            assert (f"{pre}.mask_fraction" in params) == (block == "prn")
            assert (f"{pre}.fusion" in params) == (block == "csp")
            assert (f"{pre}.elan_stack" in params) == (block == "elan")
            assert (f"{pre}.split_ratio" in params) == (block in ("csp", "elan"))
        assert len(params) == 2 + sum(
            3 + {"res": 0, "prn": 1, "csp": 2, "elan": 2}[params[f"{p}.block"]] for p in prefixes
        )


def test_optuna_suggest_and_params_of_invert():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    blocks = set()
    for _ in range(30):
        trial = study.ask()
        cfg = PER_STAGE.suggest(trial)
        assert PER_STAGE.params_of(cfg) == trial.params
        blocks |= {s.part.block for s in cfg.backbone_plan()}
        study.tell(trial, 0.0)
    assert blocks == set(PER_STAGE.blocks)


def test_configure_asks_in_a_fixed_order_and_replays():
    asked: list[str] = []
    rng = random.Random(3)

    def choose(name, choices):
        asked.append(name)
        return rng.choice(list(choices))

    cfg = PER_STAGE.configure(choose)
    assert asked[:3] == ["width", "depth", "backbone.s1.block"]
    assert asked[-2:] == ["neck.n5.repeats", "neck.n5.width"]
    params = PER_STAGE.params_of(cfg)
    assert list(params) == asked
    assert PER_STAGE.configure(lambda name, choices: params[name]) == cfg


# -- schema 1 == its schema-2 spelling -------------------------------------------------------------
def _as_schema2(cfg: ArchConfig) -> dict:
    d = cfg.to_dict()
    d["schema"] = 2
    d["backbone"] = {"stages": [dict(d["backbone"], repeats=1.0, width=1.0) for _ in range(5)]}
    d["neck"] = {"nodes": [dict(d["neck"]) for _ in range(5)]}  # repeats / width default to 1
    return d


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_schema1_and_its_uniform_schema2_spelling_are_one_design(seed):
    cfg = SearchSpace().sample(random.Random(seed))
    two = from_dict(_as_schema2(cfg))
    assert two == cfg and two.schema == 1 and two.key() == cfg.key()
    assert two.to_yaml() == cfg.to_yaml()  # a uniform design is written as schema 1
    assert graph_rows(two) == graph_rows(cfg)
    # the per-stage space reaches the same design, through its own parameter names
    again = PER_STAGE.configure(lambda name, choices: PER_STAGE.params_of(cfg)[name])
    assert again == cfg and again.key() == cfg.key()


@pytest.mark.parametrize("name", ["yolor-v3", "yolor-csp", "yolor-elan-2-1", "cspdarknet53"])
def test_presets_keep_their_schema_1_file_and_key(name):
    cfg = load_config(name)
    assert cfg.schema == 1 and cfg.backbone_stages is None and cfg.neck_nodes is None
    # the key is the one schema-1 runs have always stored
    old = yaml.safe_dump(cfg.canonical().to_dict(), sort_keys=True, default_flow_style=True).strip()
    assert cfg.key() == old


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_per_stage_configs_round_trip_yaml_exactly(seed):
    cfg = PER_STAGE.sample(random.Random(seed))
    assert cfg.schema == 2
    again = parse_yaml(cfg.to_yaml())
    assert again == cfg and again.key() == cfg.key() and again.to_yaml() == cfg.to_yaml()
    assert graph_rows(again) == graph_rows(cfg)
    json.loads(cfg.key())  # per-stage keys are compact JSON


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), preset=st.sampled_from(["yolor-v3", "yolor-csp", "yolor-elan-hetero"]))
def test_to_yaml_writes_what_the_pure_python_dumper_writes(seed, preset):
    """to_yaml uses libyaml's emitter for speed; its text must stay yaml.safe_dump's, byte for byte
    (exports, presets and stored trials keep their files)."""
    for cfg in (PER_STAGE.sample(random.Random(seed)), load_config(preset)):
        flow = {} if cfg.schema == 1 else {"default_flow_style": None, "width": 120}
        assert cfg.to_yaml() == yaml.safe_dump(cfg.to_dict(), sort_keys=False, **flow)


def test_key_is_canonical_per_stage():
    cfg = PER_STAGE.sample(random.Random(7))
    stages = list(cfg.backbone_plan())
    i = next(i for i, s in enumerate(stages) if s.part.block != "prn")
    stages[i] = dataclasses.replace(stages[i], part=dataclasses.replace(stages[i].part, mask_fraction=0.125))
    same = dataclasses.replace(cfg, backbone_stages=tuple(stages))
    assert same != cfg and same.key() == cfg.key()
    assert nas.cost(compile_config(same)) == nas.cost(compile_config(cfg))
    stages[i] = dataclasses.replace(stages[i], width=0.5 if stages[i].width != 0.5 else 0.75)
    assert dataclasses.replace(cfg, backbone_stages=tuple(stages)).key() != cfg.key()


# -- what each stage's knobs do to the graph --------------------------------------------------------
def _units(cfg: ArchConfig, scope: str) -> int:
    return len({n.name.split(".")[2] for n in compile_config(cfg) if n.name.startswith(scope + ".unit")})


def test_stage_multipliers_change_only_their_stage():
    base = load_config("yolor-v3")
    stages = [StageConfig(PartConfig())] * 5
    stages[2] = StageConfig(PartConfig(), repeats=0.5, width=1.25)
    cfg = dataclasses.replace(base, backbone_stages=tuple(stages))
    g, g0 = compile_config(cfg), compile_config(base)
    assert _units(base, "backbone.stage3") == 8 and _units(cfg, "backbone.stage3") == 4
    assert g.node("backbone.stage3.down").channels == 320 and g0.node("backbone.stage3.down").channels == 256
    for other in ("backbone.stage2", "backbone.stage4"):
        assert _units(cfg, other) == _units(base, other)
    assert g.node("backbone.stage4.down").channels == g0.node("backbone.stage4.down").channels
    plan = {r["knob"]: r for r in stage_plan(cfg)}
    assert (plan["backbone.s3"]["repeats"], plan["backbone.s3"]["channels"]) == (4, 320)
    assert (plan["backbone.s4"]["repeats"], plan["backbone.s4"]["channels"]) == (8, 512)


def torch_counts(graph: nas.LayerGraph) -> tuple[int, int]:
    with torch.device("meta"):
        model = nas.build(graph)
        x = torch.empty(1, 3, *graph.node(graph.input_name).size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops()


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_heterogeneous_config_cost_matches_torch(seed):
    cfg = dataclasses.replace(PER_STAGE.sample(random.Random(seed)), img_size=64)
    graph = compile_config(cfg)
    c = nas.cost(graph)
    assert (c.params, c.flops) == torch_counts(graph)


def test_hetero_preset_is_yolov7_like():
    cfg = load_config("yolor-elan-hetero")
    assert cfg.schema == 2 and cfg.neck_nodes is None and cfg.neck.block == "csp"
    stacks = [s.part.elan_stack for s in cfg.backbone_plan()]
    assert {s.part.block for s in cfg.backbone_plan()} == {"elan"} and len(set(stacks)) > 1
    c = nas.cost(compile_config(cfg))
    assert (c.params, c.flops) == (56237983, 107940249600)
    # between the uniform ELAN presets of the same neck family, as its stacks are
    assert nas.cost(compile_config(load_config("yolor-elan-1-1"))).params < c.params


# -- validation names the field path -----------------------------------------------------------------
def _hetero_dict() -> dict:
    return yaml.safe_load(load_config("yolor-elan-hetero").to_yaml())


def _with(path_fn):
    d = _hetero_dict()
    path_fn(d)
    return d


@pytest.mark.parametrize(
    ("change", "starts"),
    [
        (lambda d: d["backbone"]["stages"][2].update(block="dense"), "backbone.stages[2].block: 'dense' "),
        (lambda d: d["backbone"]["stages"][4].update(elan_stack=0), "backbone.stages[4].elan_stack: 0 "),
        (lambda d: d["backbone"]["stages"][1].update(repeats=9), "backbone.stages[1].repeats: 9 "),
        (lambda d: d["backbone"]["stages"][0].update(width="wide"), "backbone.stages[0].width: 'wide' "),
        (lambda d: d["backbone"]["stages"][3].update(colour=1), "backbone.stages[3].colour: 1 "),
        (lambda d: d["backbone"]["stages"].pop(), "backbone.stages: "),
        (lambda d: d["backbone"].update(block="res"), "backbone.block: 'res' "),
        (lambda d: d["backbone"].update(stages="all"), "backbone.stages: 'all' "),
        (lambda d: d["backbone"]["stages"].__setitem__(0, 3), "backbone.stages[0]: 3 "),
        (lambda d: d.update(neck={"nodes": [{"block": "csp", "fusion": "middle"}] * 5}), "neck.nodes[0].fusion:"),
        (lambda d: d.update(schema=1), "backbone.stages: "),
        (lambda d: d.update(backbone={"block": "elan"}), "schema: 2 "),
    ],
)
def test_schema2_validation_names_the_path(change, starts):
    with pytest.raises(ConfigError) as e:
        from_dict(_with(change))
    msg = str(e.value)
    assert msg.startswith(starts) and "accepted:" in msg and "\n" not in msg


def test_a_schema1_file_with_stage_lists_is_told_to_use_schema_2():
    with pytest.raises(ConfigError, match=r"^backbone\.stages: .* is an unknown key; .*need schema: 2"):
        from_dict(_with(lambda d: d.update(schema=1)))


def test_cli_show_space_json_and_table(capsys):
    assert main(["show", "--space", "yolor", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["size"] == PER_STAGE.size() >= 10**15
    assert out["stages"] == list(PER_STAGE.stage_prefixes())
    knobs = {k["knob"]: k for k in out["stage_knobs"]}
    assert knobs["mask_fraction"]["values"] == [0.25, 0.5, 0.75] and knobs["mask_fraction"]["when"] == "block in prn"
    assert knobs["repeats"]["values"] == list(PER_STAGE.stage_repeats)
    assert main(["show", "--space", "yolor-uniform"]) == 0
    assert "12,544 configs" in capsys.readouterr().out


def test_cli_show_prints_one_line_per_stage(capsys):
    assert main(["show", "yolor-elan-hetero"]) == 0
    lines = capsys.readouterr().out.splitlines()
    s5 = next(line for line in lines if line.startswith("backbone.stage5"))
    assert "backbone.s5" in s5 and "elan r=0.5,s=3" in s5 and "1024" in s5
    assert sum("neck.n" in line and "csp r=0.5,fusion" in line for line in lines) == 5


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["show", "--space", "bogus"], "--space: 'bogus' is unknown"),
        (["show", "yolor-csp", "--space", "yolor"], "--space"),
    ],
)
def test_cli_show_space_errors_are_one_line(args, needle):
    r = subprocess.run([sys.executable, "-m", "nas.cli", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: ") and needle in r.stderr


def test_every_per_stage_config_compiles_at_proxy_width():
    for seed in range(60):
        cfg = PER_STAGE.sample(random.Random(seed))
        compile_config(dataclasses.replace(cfg, width=cfg.width * 0.25, img_size=64))


def test_int_and_float_spellings_share_a_key():
    a = from_dict({"schema": 1, "width": 1, "backbone": {"block": "prn", "mask_fraction": 1}})
    b = from_dict({"schema": 1, "width": 1.0, "backbone": {"block": "prn", "mask_fraction": 1.0}})
    assert a.key() == b.key() == ArchConfig(backbone=PartConfig(block="prn", mask_fraction=1.0)).key()


def test_pattern_and_part_summary_read_both_schemas():
    from search_spaces.config import part_summary

    hetero = load_config("yolor-elan-hetero")
    assert hetero.pattern() == ("elan",) * 5 + ("csp",) * 5
    d = hetero.to_dict()
    assert part_summary(d["backbone"]) == "elan×5" and part_summary(d["neck"]) == "csp r=0.5,fusion"
    cfg = PER_STAGE.sample(random.Random(11))
    blocks = [s["block"] for s in cfg.to_dict()["backbone"]["stages"]]
    expanded = [
        b
        for run in part_summary(cfg.to_dict()["backbone"]).split(",")
        for b in [run.split("×")[0]] * int((run.split("×") + ["1"])[1])
    ]
    assert expanded == blocks == list(cfg.pattern()[:5])


_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**20),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=6),
)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_damage_to_a_schema2_file_is_a_config_error_or_a_valid_config(data):
    d = _hetero_dict()
    where = data.draw(st.sampled_from(["entry", "list", "part", "neck"]))
    if where == "entry":
        i = data.draw(st.integers(0, 4))
        key = data.draw(st.sampled_from(["block", "split_ratio", "elan_stack", "repeats", "width", "fusion", "x"]))
        d["backbone"]["stages"][i][key] = data.draw(_JUNK)
    elif where == "list":
        d["backbone"]["stages"] = data.draw(st.one_of(_JUNK, st.lists(_JUNK, max_size=6)))
    elif where == "part":
        d["backbone"] = data.draw(st.one_of(_JUNK, st.dictionaries(st.text(max_size=8), _JUNK, max_size=3)))
    else:
        d["neck"] = {
            "nodes": data.draw(
                st.lists(st.fixed_dictionaries({"block": st.sampled_from(["csp", "prn", "x"])}), max_size=6)
            )
        }
    try:
        cfg = from_dict(d)
    except ConfigError as e:
        assert "\n" not in str(e) and "accepted:" in str(e)
        return
    assert parse_yaml(cfg.to_yaml()) == cfg
