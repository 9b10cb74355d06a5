"""The studies' proxy recipes and the names of their results.

Two families, both turned into the trainer's :class:`~evaluators.recipe.Recipe` in fp32 (the
studies' arithmetic):

- :data:`RECIPES`: the rank studies' named scales (a whole recipe each), with ``--version`` the
  trainer's named recipe (:func:`study_recipe`, :func:`make_recipe`); the rank study, fidelity,
  paper ablation, live search efficiency and winner-vs-presets studies train with them;
- :data:`SCALES`: changes to a named recipe (``{}``: its defaults), the proxy-noise study's and
  the gradient-path table's.
"""

from __future__ import annotations

import argparse
from typing import Any

from evaluators.recipe import DEFAULT as RECIPE_DEFAULT

RECIPES: dict[str, dict[str, Any]] = {
    # what two shared CPU cores finish for >= 40 candidates in a few hours; nas search's own scale
    "reduced": {"epochs": 5, "images": 480, "img_size": 96, "width_mult": 0.25},
    # the live search-efficiency benchmark: 5 arms x 3 seeds x the compute of 4 trainings in ~30 min
    "live": {"epochs": 5, "images": 240, "img_size": 96, "width_mult": 0.25},
    # a plumbing check of the scripts in seconds, meaningless as a ranking
    "smoke": {"epochs": 1, "images": 16, "img_size": 64, "width_mult": 0.25},
    # nas train's proxy recipe (evaluators.recipe.DEFAULT; nas search's before it moved to reduced)
    "default": {
        "epochs": RECIPE_DEFAULT.epochs,
        "images": RECIPE_DEFAULT.images,
        "img_size": RECIPE_DEFAULT.img_size,
        "width_mult": RECIPE_DEFAULT.width_mult,
    },
}
#: proxy scales: the studies' CPU one, also nas search's own, and nas train's (the recipe's defaults)
SCALES: dict[str, dict[str, Any]] = {
    "reduced": {"epochs": 5, "images": 480, "img_size": 96, "width_mult": 0.25},
    "default": {},
    "smoke": {"epochs": 2, "images": 16, "img_size": 64, "width_mult": 0.25, "val_images": 32, "bn_images": 16},
}


def add_version_flag(p: argparse.ArgumentParser) -> None:
    """``--version``: the trainer's named recipe (v1 reproduces the studies made before v2)."""
    from evaluators.recipe import RECIPES as NAMED

    p.add_argument(
        "--version",
        choices=sorted(NAMED),
        default=RECIPE_DEFAULT.version,
        help="the trainer's named recipe; v1 reproduces the studies made before the proxy-noise study "
        "(default: %(default)s)",
    )


def study_recipe(scale: str, version: str) -> dict[str, Any]:
    """The study recipe of ``--recipe`` (a scale of :data:`RECIPES`) under ``--version``."""
    return {**RECIPES[scale], "version": version}


def make_recipe(recipe: dict[str, Any], seed: int) -> Any:
    """The trainer's :class:`~evaluators.recipe.Recipe` for a study recipe and seed, fp32 pinned
    where the recipe has a precision knob (the studies' figures are all fp32)."""
    from evaluators.recipe import Recipe

    fields = {k: v for k, v in recipe.items() if k != "version"}
    return Recipe.named(recipe.get("version", RECIPE_DEFAULT.version), **fields).replace(seed=seed, precision="fp32")


def recipe_tag(recipe: dict[str, Any]) -> str:
    """The folder tag of a study recipe; v1 trainings keep the tag they had before recipe versions.

    >>> recipe_tag(study_recipe("reduced", "v1")), recipe_tag(study_recipe("reduced", "v2"))
    ('e5-i480-s96-w0.25', 'e5-i480-s96-w0.25-v2')
    """
    tag = "e{epochs}-i{images}-s{img_size}-w{width_mult}".format(**recipe)
    version = recipe.get("version", RECIPE_DEFAULT.version)
    return tag if version == "v1" else f"{tag}-{version}"


def result_name(stem: str, recipe_name: str, version: str = "v1") -> str:
    """``rank_study`` for the reduced recipe (the first study), ``rank_study_default`` etc.; a
    recipe version other than v1 is appended (``paper_ablation_v2``), so that a study under one
    version never reads another's finished trainings.

    >>> result_name("paper_ablation", "reduced"), result_name("paper_ablation", "default", "v2")
    ('paper_ablation', 'paper_ablation_default_v2')
    """
    name = stem if recipe_name == "reduced" else f"{stem}_{recipe_name}"
    return name if version == "v1" else f"{name}_{version}"
