"""The search space as knobs: what an Optuna trial samples (``suggest``) and what a small space
enumerates. Knobs are conditional on the block type — a CSP stage has no mask fraction — so
trials only carry the parameters that shape the network."""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from search_spaces.config import FUSIONS, ArchConfig, PartConfig
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

    def _config(self, choose: Any) -> ArchConfig:
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
        """Sample a config with an Optuna trial; parameter names are ``backbone.block`` etc."""
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

    def __len__(self) -> int:
        n = len(self.parts())
        return n * n * len(self.widths) * len(self.depths)

    def enumerate(self) -> Iterator[ArchConfig]:
        """Every config of the space (use on small spaces: ``len(space)`` says how many)."""
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


def _get(cfg: ArchConfig, name: str) -> Any:
    obj: Any = cfg
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


SPACES = {"yolor": SearchSpace()}
