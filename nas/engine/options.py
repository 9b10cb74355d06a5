"""What defines a search: :class:`SearchOptions` (the budget, the space, the cheap stage and the
proxy :class:`~evaluators.recipe.Recipe`, passed whole) and their validation."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

from evaluators.recipe import DEFAULT as DEFAULT_RECIPE
from evaluators.recipe import RECIPES, Recipe
from nas.core.errors import GradpathError
from search_spaces.blocks import CHANNEL_RULE


class SearchError(GradpathError):
    """A user-facing search problem (bad options, storage that cannot be used, run in use)."""


#: the proxy scale ``nas search`` trains at, on top of its named recipe (``--recipe``): the
#: gradient-path table's ``reduced`` scale. Measured on 32 table designs (docs/results.md): one
#: training here has ICC 0.77, one at the recipe's own 160 px scale 0.75 for 3.3 x the CPU, and
#: the 2-seed mean here 0.87 (``benchmarks.gp_analysis --scale-noise default``)
SEARCH_SCALE: dict[str, Any] = {"epochs": 5, "images": 480, "img_size": 96, "width_mult": 0.25}
#: ``--trust-region``: picks anywhere feasible, or only inside the gradient-path table's support
TRUST_REGIONS = ("none", "table")
#: ``--picks``: spread the K picks over the FLOPs range (the AP-vs-FLOPs front), or put them all near
#: the budget, where ``best.yaml`` comes from, by FLOPs band or one per block family
#: (:func:`nas.engine.cheap.select.select_candidates`)
PICKS = ("front", "top", "families")
#: the search's default recipe: ``v2`` at :data:`SEARCH_SCALE`
SEARCH_RECIPE = DEFAULT_RECIPE.replace(**SEARCH_SCALE)


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    """Everything that defines a search; stored in ``runs/<name>/search.json`` so that a re-run
    with other options is refused instead of silently mixing two searches in one study.

    >>> SearchOptions(budget=10**11, recipe=Recipe(epochs=3)).identity()["epochs"]
    3
    """

    budget: int
    name: str = "default"
    space: str = "yolor"
    #: unique cheap-stage candidates: about 40 s on 2 idle cores, and a run nas dashboard opens in
    #: about 7 s (journal replay + its view of 1,500 trials); 30,000 took 10.7 s (benchmarks/cheap_stage.py)
    candidates: int = 20000
    #: the proxy budget: the compute of this many full trainings (nas.engine.proxy.fidelity.plan_proxy);
    #: 0 = the cheap stage and the selection only
    trials: int = 4
    #: how the proxy stage spends ``trials`` (nas.engine.proxy.fidelity.PROXY_STAGES): ``select`` trains
    #: the K best picks at full fidelity, ``halving`` spends the same compute by successive halving
    proxy_stage: str = "select"
    #: trainings per pick, seeds ``seed``, ``seed + 1``, …: a pick's AP and val loss are their
    #: means (the 2-seed mean's ICC at the search's scale is 0.87, one training's 0.77)
    seeds: int = 2
    #: where the picks may lie: ``table`` (inside the gradient-path table's support,
    #: :mod:`nas.engine.scores.support`, where the fitted score was tested) or ``none`` (anywhere
    #: feasible). ``table`` by the rule registered before round 1 (docs/gp-features.md): the score
    #: did not beat FLOPs on the designs the search proposed (τ 0.657 against 0.658)
    trust_region: str = "table"
    #: how the K picks spread (:data:`PICKS`): ``front`` (one per FLOPs band
    #: from the smallest candidate to the budget), ``top`` (all at 75 % of the budget or more) or
    #: ``families`` (the same, one per block family)
    picks: str = "front"
    data: str = "shapes"
    recipe: Recipe = SEARCH_RECIPE
    workers: int = 1
    cheap_score: str = "fitted"
    #: the cost objective of the cheap stage and the proxy study: ``flops`` (GFLOPs) or ``latency``
    cost: str = "flops"
    #: a latency constraint (ms, batch 1, predicted on ``device``) beside the FLOPs budget
    latency_budget_ms: float | None = None
    #: the device latency is predicted for (``cpu`` | ``cuda``); used only with latency
    device: str = "cpu"
    ray_address: str | None = None
    #: where Ray Tune persists the trainings' checkpoints and results (``--ray-storage``): a folder
    #: (on a cluster: one every node mounts at the same path) or a URI Ray supports; None: the run folder
    ray_storage: str | None = None
    storage: str | None = None
    runs_dir: str = "runs"

    # options that may differ between a run and its resume (where and how, not what)
    RUNTIME_ONLY = ("workers", "ray_address", "ray_storage", "storage", "runs_dir")
    # the recipe fields a search records (and checks on resume); the rest are fixed defaults
    RECIPE_FIELDS = ("epochs", "img_size", "width_mult", "images", "seed")
    #: recipe fields recorded only when not at their named recipe's value, so older ``search.json`` files still match
    OPTIONAL_RECIPE_FIELDS = ("precision", "val_images")
    #: options added later, recorded only when not at the value every run before them had
    LEGACY: ClassVar[dict[str, Any]] = {"proxy_stage": "halving", "seeds": 1, "trust_region": "none", "picks": "front"}

    @property
    def seed(self) -> int:
        """The search's seed: the cheap stage's sampler and every training (``--seed``)."""
        return self.recipe.seed

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    @property
    def tune_storage(self) -> str:
        """This run's Tune storage root: ``--ray-storage``/NAME, else ``runs/NAME/ray``; an
        absolute path (what every node is given) or a URI.

        >>> SearchOptions(budget=1, name="s", ray_storage="s3://bucket/nas/").tune_storage
        's3://bucket/nas/s'
        """
        if self.ray_storage is None:
            return str((self.run_dir / "ray").resolve())
        if "://" in self.ray_storage:
            return f"{self.ray_storage.rstrip('/')}/{self.name}"
        return str((Path(self.ray_storage) / self.name).resolve())

    @classmethod
    def from_identity(cls, identity: dict[str, Any], **runtime: Any) -> SearchOptions:
        """The options a ``search.json`` records, plus the runtime-only ones (inverse of :meth:`identity`)."""
        fields = {k: v for k, v in identity.items() if k != "channels"}
        names = cls.RECIPE_FIELDS + cls.OPTIONAL_RECIPE_FIELDS
        version = fields.pop("recipe", "v1")  # search.json files before recipe versions were v1
        fields = {**cls.LEGACY, **fields}
        recipe = Recipe.named(version, **{k: fields.pop(k) for k in names if k in fields})
        return cls(**fields, recipe=recipe, **runtime)

    @classmethod
    def identity_differences(cls, before: dict[str, Any], now: dict[str, Any]) -> list[str]:
        """Where two identities (``search.json`` and a re-run's) differ, one ``--flag OLD (now: NEW)``
        per option, over the keys either side records: an option a side leaves out reads as the
        value :meth:`identity` leaves out (the default, the named recipe's, or :data:`LEGACY`).

        >>> SearchOptions.identity_differences({"latency_budget_ms": 30.0}, {})
        ['--latency-budget 30ms (now: none)']
        >>> SearchOptions.identity_differences({}, {"proxy_stage": "select"})
        ['--proxy-stage halving (now: select)']
        """
        keys = [k for k in {**before, **now} if k != "channels"]  # the channel rule has its own message
        old, new = cls._read_identity(before), cls._read_identity(now)
        return [f"{cls._flag(k)} {_show(k, old(k))} (now: {_show(k, new(k))})" for k in keys if old(k) != new(k)]

    @classmethod
    def _read_identity(cls, ident: dict[str, Any]) -> Any:
        """``key -> value`` of an identity, a left-out key read as :meth:`identity` leaves it out."""
        version = ident.get("recipe", "v1")  # search.json files before recipe versions were v1
        recipe = RECIPES.get(version, DEFAULT_RECIPE)
        defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}

        def value(key: str) -> Any:
            if key in ident:
                return ident[key]
            if key == "recipe":
                return version
            if key in cls.LEGACY:
                return cls.LEGACY[key]
            if key in cls.RECIPE_FIELDS + cls.OPTIONAL_RECIPE_FIELDS:
                return getattr(recipe, key)
            return defaults.get(key)

        return value

    @staticmethod
    def _flag(key: str) -> str:
        return "--latency-budget" if key == "latency_budget_ms" else "--" + key.replace("_", "-")

    def identity(self) -> dict[str, Any]:
        """The options that define the run, as a flat JSON object (the format of ``search.json``),
        with the space's channel rule (:data:`search_spaces.blocks.CHANNEL_RULE`).
        The cost options appear only when they differ from a FLOPs-only search (and ``device``
        only when latency is used); ``proxy_stage`` only when not ``halving``, which every run
        before the option was.

        >>> SearchOptions(budget=1).identity()["proxy_stage"], "proxy_stage" in SearchOptions(budget=1, proxy_stage="halving").identity()
        ('select', False)
        """
        out: dict[str, Any] = {"channels": CHANNEL_RULE}  # the same knobs compile to other models under another rule
        latency = self.cost == "latency" or self.latency_budget_ms is not None
        for f in dataclasses.fields(self):
            if f.name in self.RUNTIME_ONLY:
                continue
            if (
                (f.name == "cost" and self.cost == "flops")
                or (f.name == "latency_budget_ms" and self.latency_budget_ms is None)
                or (f.name == "device" and not latency)
                or (f.name in self.LEGACY and getattr(self, f.name) == self.LEGACY[f.name])
            ):
                continue
            if f.name == "recipe":
                out["recipe"] = self.recipe.version
                out.update({k: getattr(self.recipe, k) for k in self.RECIPE_FIELDS})
                out.update(
                    {
                        k: getattr(self.recipe, k)
                        for k in self.OPTIONAL_RECIPE_FIELDS
                        if getattr(self.recipe, k) != getattr(RECIPES[self.recipe.version], k)
                    }
                )
            else:
                out[f.name] = getattr(self, f.name)
        return out


def _show(key: str, value: Any) -> str:
    """An identity value as its flag takes it: ``150GFLOPs``, ``30ms``, ``none``."""
    if value is None:
        return "none"
    if key == "budget" and isinstance(value, int) and value > 0:
        for prefix, scale in (("T", 10**12), ("G", 10**9), ("M", 10**6), ("K", 10**3)):
            if value % scale == 0:
                return f"{value // scale}{prefix}FLOPs"
        return f"{value}FLOPs"
    if key == "latency_budget_ms" and isinstance(value, int | float):
        return f"{value:g}ms"
    return str(value)
