"""The search space: Optuna can sample it, small spaces enumerate, and every point compiles."""

import dataclasses
import random

import optuna

from search_spaces import compile_config
from search_spaces.space import SearchSpace


def test_optuna_trial_samples_the_space_and_params_invert():
    space = SearchSpace()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen_blocks = set()
    for _ in range(40):
        trial = study.ask()
        cfg = space.suggest(trial)
        assert space.params_of(cfg) == trial.params
        seen_blocks.add(cfg.backbone.block)
        study.tell(trial, 0.0)
    assert seen_blocks == set(space.blocks)


def test_conditional_knobs_only_where_they_matter():
    space = SearchSpace()
    for seed in range(50):
        params = space.params_of(space.sample(random.Random(seed)))
        for part in ("backbone", "neck"):
            block = params[f"{part}.block"]
            assert (f"{part}.mask_fraction" in params) == (block == "prn")
            assert (f"{part}.fusion" in params) == (block == "csp")
            assert (f"{part}.elan_stack" in params) == (block == "elan")
            assert (f"{part}.split_ratio" in params) == (block in ("csp", "elan"))


def test_small_space_enumerates_every_point_once_and_compiles():
    space = SearchSpace(
        blocks=("res", "csp"),
        fusions=("fusion", "last"),
        split_ratios=(0.5,),
        widths=(0.25,),
        depths=(0.33,),
        img_size=64,
    )
    configs = list(space.enumerate())
    assert len(configs) == len(space) == 9
    assert len({c.key() for c in configs}) == 9
    for cfg in configs:
        compile_config(cfg)


def test_every_sampled_config_compiles_at_proxy_width():
    space = SearchSpace()
    for seed in range(100):
        cfg = space.sample(random.Random(seed))
        compile_config(dataclasses.replace(cfg, width=cfg.width * 0.25, img_size=64))
