"""The search space as knobs: what an Optuna trial samples (``suggest``) and what a small space
enumerates. Knobs are conditional on the block type — a CSP stage has no mask fraction — so
trials only carry the parameters that shape the network.

Two spaces are registered in ``SPACES``: ``yolor`` is per-stage (each of the 5 backbone stages
``backbone.s1``…``s5`` and the 5 neck nodes ``neck.n1``…``n5`` chooses its block, that block's
knobs, and repeat and channel multipliers; 1.65 × 10^25 configs), ``yolor-uniform`` is the schema-1
space (one choice per backbone and neck; 12,544 configs) that plain enumeration covers.

>>> len(SPACES["yolor-uniform"])
12544
>>> SPACES["yolor"].size() >= 10**15
True
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from search_spaces.config import BACKBONE_STAGES, FUSIONS, NECK_NODES, ArchConfig, PartConfig, StageConfig
from search_spaces.registry import BLOCKS, block_names


class TrialLike(Protocol):
    """The part of ``optuna.Trial`` the space needs (keeps this module free of optuna)."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class SearchSpace:
    """Values each knob may take. The defaults are the paper's design strategies around the
    YOLOR presets (README "The search space")."""

    family: str = "yolor"
    blocks: tuple[str, ...] = dataclasses.field(default_factory=block_names)
    split_ratios: tuple[float, ...] = (0.25, 0.5, 0.75)
    fusions: tuple[str, ...] = FUSIONS
    mask_fractions: tuple[float, ...] = (0.25, 0.5, 0.75)
    elan_stacks: tuple[int, ...] = (1, 2, 3, 4)
    widths: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25)
    depths: tuple[float, ...] = (0.33, 0.67, 1.0, 1.33)
    img_size: int = 640
    num_classes: int = 80
    per_stage: bool = False
    stage_repeats: tuple[float, ...] = (0.5, 1.0, 1.5)
    stage_widths: tuple[float, ...] = (0.75, 1.0, 1.25)

    def stage_prefixes(self) -> tuple[str, ...]:
        """The knob prefixes of the per-stage space, in the order ``configure`` asks them."""
        if not self.per_stage:
            return ()
        return tuple(f"backbone.s{i}" for i in range(1, BACKBONE_STAGES + 1)) + tuple(
            f"neck.n{i}" for i in range(1, NECK_NODES + 1)
        )

    def knob_values(self) -> dict[str, tuple[Any, ...]]:
        """The values each sampled block knob may take; a block's knob not listed here (e.g.
        ``stop_gradient``, an ablation) keeps its default."""
        return {
            "split_ratio": self.split_ratios,
            "fusion": self.fusions,
            "mask_fraction": self.mask_fractions,
            "elan_stack": self.elan_stacks,
        }

    def _sampled_knobs(self, block: str) -> list[str]:
        values = self.knob_values()
        return [k for k in BLOCKS[block].knobs if k in values]

    def _part(self, choose: Any, part: str) -> PartConfig:
        block = choose(f"{part}.block", self.blocks)
        values = self.knob_values()
        return PartConfig(block=block, **{k: choose(f"{part}.{k}", values[k]) for k in self._sampled_knobs(block)})

    def _stage(self, choose: Any, prefix: str) -> StageConfig:
        part = self._part(choose, prefix)
        return StageConfig(
            part, choose(f"{prefix}.repeats", self.stage_repeats), choose(f"{prefix}.width", self.stage_widths)
        )

    def _config(self, choose: Any) -> ArchConfig:
        if self.per_stage:
            width, depth = choose("width", self.widths), choose("depth", self.depths)
            stages = [self._stage(choose, prefix) for prefix in self.stage_prefixes()]
            return ArchConfig(
                family=self.family,
                img_size=self.img_size,
                num_classes=self.num_classes,
                width=width,
                depth=depth,
                backbone_stages=tuple(stages[:BACKBONE_STAGES]),
                neck_nodes=tuple(stages[BACKBONE_STAGES:]),
            )
        return ArchConfig(
            family=self.family,
            img_size=self.img_size,
            num_classes=self.num_classes,
            width=choose("width", self.widths),
            depth=choose("depth", self.depths),
            backbone=self._part(choose, "backbone"),
            neck=self._part(choose, "neck"),
        )

    def configure(self, choose: Callable[[str, tuple[Any, ...]], Any]) -> ArchConfig:
        """The config ``choose(name, choices)`` picks, knob by knob, in a fixed order, asking only
        for the knobs the choices so far make relevant (a CSP part is never asked its mask
        fraction). ``suggest``, ``sample`` and ``params_of`` are this with three choosers;
        an optimiser outside Optuna can drive it the same way (mutation: keep the parent's value
        or draw; crossover: take either parent's)."""
        return self._config(choose)

    def suggest(self, trial: TrialLike) -> ArchConfig:
        """Sample a config with an Optuna trial; parameter names are ``backbone.block`` etc.
        (per-stage: ``backbone.s3.block``, ``neck.n2.split_ratio``, ``backbone.s3.repeats``)."""
        return self._config(trial.suggest_categorical)

    def sample(self, rng: random.Random) -> ArchConfig:
        """A uniformly random config (per knob), for tests and random-search baselines."""
        return self._config(lambda _name, choices: rng.choice(list(choices)))

    def params_of(self, cfg: ArchConfig) -> dict[str, Any]:
        """The trial parameters that would produce ``cfg`` (inverse of ``suggest``)."""
        out: dict[str, Any] = {}

        def record(name: str, choices: Any) -> Any:
            value = _get(cfg, name)
            out[name] = value
            return value

        self._config(record)
        return out

    def parts(self) -> list[PartConfig]:
        """Every distinct PartConfig the space can take, block by block."""
        values = self.knob_values()
        out = []
        for block in self.blocks:
            knobs = self._sampled_knobs(block)
            for combo in itertools.product(*(values[k] for k in knobs)):
                out.append(PartConfig(block=block, **dict(zip(knobs, combo, strict=True))))
        return out

    def part_count(self) -> int:
        """Distinct PartConfigs, counted (not enumerated): per block, the product of its knobs' value counts."""
        values = self.knob_values()
        return sum(math.prod(len(values[k]) for k in self._sampled_knobs(b)) for b in self.blocks)

    def size(self) -> int:
        """The exact number of distinct configs (canonical keys), by counting: every choice
        sequence gives a different design, since only the knobs a block reads are asked.
        (Rounding can still make two designs compile alike, e.g. repeats x0.5 of a one-unit stage.)"""
        n, globals_ = self.part_count(), len(self.widths) * len(self.depths)
        if not self.per_stage:
            return n * n * globals_
        per_stage = n * len(self.stage_repeats) * len(self.stage_widths)
        return per_stage ** len(self.stage_prefixes()) * globals_

    def __len__(self) -> int:
        """``size()``; Python's ``len`` stops at 2**63 - 1, so the per-stage space raises here:
        use ``size()``."""
        n = self.size()
        if n > sys.maxsize:
            raise OverflowError(f"the space has {n:.3e} configs, more than len() can return; use size()")
        return n

    def enumerate(self) -> Iterator[ArchConfig]:
        """Every config of the space (use on small spaces: ``len(space)`` says how many)."""
        if self.per_stage:
            yield from walk(self)
            return
        parts = self.parts()
        for w, d, b, n in itertools.product(self.widths, self.depths, parts, parts):
            yield ArchConfig(
                family=self.family,
                img_size=self.img_size,
                num_classes=self.num_classes,
                width=w,
                depth=d,
                backbone=b,
                neck=n,
            )


def walk(space: SearchSpace) -> Iterator[ArchConfig]:
    """Every config ``space.configure`` can produce, by depth-first search over its choice
    sequences (each choice is replayed from a prefix; the first unseen branch takes index 0).
    Generic: it only needs ``configure``, so it is the brute-force check of ``len``."""
    path: list[int] = []
    while True:
        sizes: list[int] = []

        def choose(_name: str, choices: tuple[Any, ...], sizes: list[int] = sizes) -> Any:
            k = len(sizes)
            if k == len(path):
                path.append(0)
            sizes.append(len(choices))
            return choices[path[k]]

        yield space.configure(choose)
        del path[len(sizes) :]
        while path and path[-1] + 1 >= sizes[len(path) - 1]:
            path.pop()
        if not path:
            return
        path[-1] += 1


def _get(cfg: ArchConfig, name: str) -> Any:
    head, _, rest = name.partition(".")
    if head in ("backbone", "neck") and rest[:1] in ("s", "n") and rest[1:2].isdigit():
        index, _, knob = rest[1:].partition(".")
        stage = (cfg.backbone_plan() if head == "backbone" else cfg.neck_plan())[int(index) - 1]
        return getattr(stage if knob in ("repeats", "width") else stage.part, knob)
    obj: Any = cfg
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


SPACES = {"yolor": SearchSpace(per_stage=True), "yolor-uniform": SearchSpace()}
"""Registered spaces (``nas search --space``); ``yolor`` is the default."""
