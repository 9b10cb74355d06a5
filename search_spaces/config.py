"""ArchConfig: the small, typed, validated, versioned value an Optuna trial samples, ``nas export``
writes and ``nas show/train`` read. It only names design choices; ``compile`` turns it into the IR.

A validation error names the field, the bad value and what is accepted — it is what the user
sees (one line, exit 2) when a YAML file is wrong.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nas.core.errors import GradpathError
from nas.core.runio import atomic_write_text
from search_spaces.registry import BLOCKS, block_names, family_names

SCHEMA_VERSION = 2
"""The newest schema. 1: one PartConfig per backbone and neck (uniform); 2: per-stage lists."""
SCHEMA_VERSIONS = (1, 2)
BACKBONE_STAGES = 5
"""Backbone stages of both families (Darknet-53's five); schema-2 ``backbone.stages`` has one entry each."""
NECK_NODES = 5
"""Nodes of the yolor PAN neck, in build order: top5 (after SPP), top4, out3, out4, out5."""
STAGE_KEYS = ("repeats", "width")
FUSIONS = ("fusion", "first", "last", "none")
STOP_GRADIENTS = ("none", "identity", "block")
PRESET_DIR = Path(__file__).parent / "presets"


class ConfigError(GradpathError):
    """An invalid configuration; the message is one line meant for the user."""


@dataclass(frozen=True)
class PartConfig:
    """The design strategy of one part of the network (backbone or neck).

    block          res (Darknet residual), prn (masked residual), csp (cross stage partial),
                   elan (efficient layer aggregation).
    split_ratio    csp/elan: share of the stage's channels that enter the computational block.
    fusion         csp: where the transition layers sit (paper Fig. 5): ``fusion`` =
                   transition → concat → transition, ``first`` = concat → transition,
                   ``last`` = transition → concat, ``none`` = concat only.
    mask_fraction  prn: share of channels that take the identity connection (1 = ResNet,
                   0 = PlainNet).
    elan_stack     elan: computational blocks stacked inside each ELAN block.
    stop_gradient  res/prn/csp residual units: ``identity`` or ``block`` stops the gradient on
                   the identity connection / the computational block (paper Fig. 9).
    """

    block: str = "res"
    split_ratio: float = 0.5
    fusion: str = "fusion"
    mask_fraction: float = 0.5
    elan_stack: int = 1
    stop_gradient: str = "none"

    def canonical(self) -> PartConfig:
        """The same design with the knobs its block ignores reset (the block registry says which
        it reads), so equal designs compare equal.

        >>> PartConfig(block="csp", mask_fraction=0.25).canonical() == PartConfig(block="csp")
        True
        """
        used = BLOCKS[self.block].knobs
        kw = {f: getattr(self, f) if f in used else getattr(_DEFAULT_PART, f) for f in _PART_FIELDS}
        # 1 and 1.0 are one value: a float, so equal designs also have one key text
        kw["split_ratio"], kw["mask_fraction"] = float(kw["split_ratio"]), float(kw["mask_fraction"])
        return PartConfig(self.block, **kw)

    def describe(self) -> str:
        """The block and the knobs it reads, in one short line (``csp r=0.5,fusion``)."""
        return f"{self.block} {BLOCKS[self.block].describe(self)}".strip()


_DEFAULT_PART = PartConfig()
_PART_FIELDS = tuple(f.name for f in dataclasses.fields(PartConfig) if f.name != "block")


def _part_dict(p: PartConfig) -> dict[str, Any]:
    """``dataclasses.asdict`` of a part (same keys, same order), ~10x faster: keys are hot."""
    return {"block": p.block, **{k: getattr(p, k) for k in _PART_FIELDS}}


@dataclass(frozen=True)
class StageConfig:
    """One backbone stage or neck node of a per-stage (schema 2) config: its design and the
    multipliers of its repeats and channels, applied on top of the global ``depth`` and ``width``
    (so ``repeats: 1.0, width: 1.0`` is the uniform stage)."""

    part: PartConfig = field(default_factory=PartConfig)
    repeats: float = 1.0
    width: float = 1.0

    def canonical(self) -> StageConfig:
        return StageConfig(self.part.canonical(), float(self.repeats), float(self.width))

    def describe(self) -> str:
        """``elan r=0.5,s=2`` plus the multipliers that are not 1 (``x1.5 repeats``)."""
        extra = [f"x{v:g} {k}" for k, v in (("repeats", self.repeats), ("width", self.width)) if v != 1]
        return " ".join([self.part.describe(), *extra])

    def to_dict(self) -> dict[str, Any]:
        """Flat: the block, the knobs it reads (``stop_gradient`` only when set), any other knob
        that is not the default, then the multipliers — short to read and exact to round-trip."""
        p = self.part
        used = BLOCKS[p.block].knobs if p.block in BLOCKS else ()
        out: dict[str, Any] = {"block": p.block}
        for k in _PART_FIELDS:
            v = getattr(p, k)
            if (k in used and k != "stop_gradient") or v != getattr(_DEFAULT_PART, k):
                out[k] = v
        out.update(repeats=self.repeats, width=self.width)
        return out


def _uniform(stages: tuple[StageConfig, ...] | None) -> PartConfig | None:
    """The one part of a stage list that is the uniform (schema 1) design, else None."""
    if stages and all(s == stages[0] for s in stages) and stages[0].repeats == 1 and stages[0].width == 1:
        return stages[0].part
    return None


@dataclass(frozen=True)
class ArchConfig:
    """A point of the search space. ``family`` picks the topology (``yolor`` detector or
    ``classifier``); ``width``/``depth`` scale channels and per-stage repeats; FLOPs are
    counted at ``img_size`` × ``img_size``.

    Per-stage designs (schema 2) set ``backbone_stages`` (one :class:`StageConfig` per stage)
    and/or ``neck_nodes`` (one per neck node); ``None`` means every stage uses ``backbone``
    (``neck``), the schema-1 uniform case. A stage list that is uniform is stored as that one
    part, so a design has one representation and a schema-1 file and its schema-2 spelling
    compare equal, compile to the same graph and share a key:

    >>> s = StageConfig(PartConfig(block="csp"))
    >>> ArchConfig(backbone_stages=(s,) * 5) == ArchConfig(backbone=PartConfig(block="csp"))
    True
    """

    family: str = "yolor"
    img_size: int = 640
    num_classes: int = 80
    width: float = 1.0
    depth: float = 1.0
    backbone: PartConfig = field(default_factory=PartConfig)
    neck: PartConfig = field(default_factory=PartConfig)
    schema: int = 1
    backbone_stages: tuple[StageConfig, ...] | None = None
    neck_nodes: tuple[StageConfig, ...] | None = None

    def __post_init__(self) -> None:
        for name, part in (("backbone_stages", "backbone"), ("neck_nodes", "neck")):
            stages = getattr(self, name)
            if stages is None:
                continue
            stages = tuple(stages)
            one = _uniform(stages)
            object.__setattr__(self, name, None if one is not None or not stages else stages)
            if one is not None:
                object.__setattr__(self, part, one)
        object.__setattr__(self, "schema", 2 if self.backbone_stages or self.neck_nodes else 1)

    def backbone_plan(self) -> tuple[StageConfig, ...]:
        """The design of each backbone stage, whichever schema the config has."""
        return self.backbone_stages or (StageConfig(self.backbone),) * BACKBONE_STAGES

    def neck_plan(self) -> tuple[StageConfig, ...]:
        """The design of each neck node (top5, top4, out3, out4, out5)."""
        return self.neck_nodes or (StageConfig(self.neck),) * NECK_NODES

    def pattern(self) -> tuple[str, ...]:
        """The block of every backbone stage then every neck node: the design "pattern" two
        configs differ in when they differ in more than knobs and multipliers.

        >>> ArchConfig(backbone=PartConfig(block="csp")).pattern()
        ('csp', 'csp', 'csp', 'csp', 'csp', 'res', 'res', 'res', 'res', 'res')
        """
        return tuple(s.part.block for s in (*self.backbone_plan(), *self.neck_plan()))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": self.schema}
        for f in ("family", "img_size", "num_classes", "width", "depth"):
            out[f] = getattr(self, f)
        for part, stages, key in (("backbone", self.backbone_stages, "stages"), ("neck", self.neck_nodes, "nodes")):
            out[part] = {key: [s.to_dict() for s in stages]} if stages else _part_dict(getattr(self, part))
        return out

    def to_yaml(self) -> str:
        """Schema 1 as it always was (exports and presets stay byte-identical); schema 2 with one
        flow-style line per stage."""
        if self.schema == 1:
            return yaml.dump(self.to_dict(), Dumper=_DUMPER, sort_keys=False)
        return yaml.dump(self.to_dict(), Dumper=_DUMPER, sort_keys=False, default_flow_style=None, width=120)

    def canonical(self) -> ArchConfig:
        bs = tuple(s.canonical() for s in self.backbone_stages) if self.backbone_stages else None
        nn = tuple(s.canonical() for s in self.neck_nodes) if self.neck_nodes else None
        return dataclasses.replace(
            self,
            width=float(self.width),
            depth=float(self.depth),
            backbone=PartConfig() if bs else self.backbone.canonical(),
            neck=PartConfig() if nn else self.neck.canonical(),
            backbone_stages=bs,
            neck_nodes=nn,
        )

    def key(self) -> str:
        """A stable identity of the design (for deduplication). Schema-1 designs keep the YAML
        key they always had (stored runs and caches stay valid); per-stage ones use compact JSON,
        ~10x faster. Memoised: a search asks the same key many times."""
        return _key(self)


@functools.lru_cache(maxsize=1 << 16)
def _key(cfg: ArchConfig) -> str:
    c = cfg.canonical()
    if c.schema == 1:
        return yaml.dump(c.to_dict(), Dumper=_DUMPER, sort_keys=True, default_flow_style=True).strip()
    return json.dumps(c.to_dict(), sort_keys=True, separators=(",", ":"))


#: libyaml's emitter: the same text as ``yaml.safe_dump`` (tests/search_spaces check it on random
#: configs), ~3x faster; the cheap stage writes one config YAML per candidate
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def part_summary(raw: dict[str, Any]) -> str:
    """One short line for a table from a part as ``to_dict`` writes it: the design of a uniform
    part (``csp r=0.5,fusion``), else the stages' blocks run-length coded (``res,elan×3,csp``).

    >>> part_summary({"block": "prn", "mask_fraction": 0.5})
    'prn m=0.5'
    >>> part_summary({"stages": [{"block": "res"}] + [{"block": "elan"}] * 3 + [{"block": "csp"}]})
    'res,elan×3,csp'
    """
    entries = raw.get("stages", raw.get("nodes")) if isinstance(raw, dict) else None
    if entries is None:
        return PartConfig(**raw).describe()
    runs: list[list[Any]] = []
    for e in entries:
        if runs and runs[-1][0] == e["block"]:
            runs[-1][1] += 1
        else:
            runs.append([e["block"], 1])
    return ",".join(b if n == 1 else f"{b}×{n}" for b, n in runs)


# -- validation ---------------------------------------------------------------------------------
def _fail(path: str, value: Any, accepted: str, what: str = "is not accepted") -> ConfigError:
    return ConfigError(f"{_short(path)}: {_short(repr(value))} {what}; accepted: {accepted}")


def _short(text: str, limit: int = 80) -> str:
    """Clip a user value in a message, so a huge or deeply nested one stays a readable line."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(path: str, value: Any, accepted: str, integer: bool = False) -> float:
    ok_types = (int,) if integer else (int, float)
    # an int too large for a float is finite: isfinite() would raise OverflowError on it
    finite = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if isinstance(value, bool) or not isinstance(value, ok_types) or not finite:
        raise _fail(path, value, accepted, "is not " + ("an integer" if integer else "a number"))
    return value


def _choice(path: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _fail(path, value, " | ".join(choices))
    return value


def _part_from_dict(path: str, raw: Any, schema: int = 1, list_key: str = "stages") -> PartConfig:
    if raw is None:
        return PartConfig()
    if not isinstance(raw, dict):
        raise _fail(path, raw, "a mapping with keys " + ", ".join(f.name for f in dataclasses.fields(PartConfig)))
    known = {f.name for f in dataclasses.fields(PartConfig)}
    for k in raw:
        if k not in known:
            hint = f" (per-stage {list_key} need schema: 2)" if k == list_key and schema == 1 else ""
            raise _fail(f"{path}.{k}", raw[k], "keys " + ", ".join(sorted(known)) + hint, "is an unknown key")
    p = PartConfig(**raw)
    _choice(f"{path}.block", p.block, block_names())
    sr = _number(f"{path}.split_ratio", p.split_ratio, "a number with 0 < r < 1, e.g. 0.25, 0.5, 0.75")
    if not 0 < sr < 1:
        raise _fail(f"{path}.split_ratio", sr, "a number with 0 < r < 1, e.g. 0.25, 0.5, 0.75", "is out of range")
    _choice(f"{path}.fusion", p.fusion, FUSIONS)
    mf = _number(f"{path}.mask_fraction", p.mask_fraction, "a number with 0 <= m <= 1, e.g. 0.25, 0.5, 0.75")
    if not 0 <= mf <= 1:
        raise _fail(f"{path}.mask_fraction", mf, "a number with 0 <= m <= 1, e.g. 0.25, 0.5, 0.75", "is out of range")
    es = _number(f"{path}.elan_stack", p.elan_stack, "an integer from 1 to 8", integer=True)
    if not 1 <= es <= 8:
        raise _fail(f"{path}.elan_stack", es, "an integer from 1 to 8", "is out of range")
    _choice(f"{path}.stop_gradient", p.stop_gradient, STOP_GRADIENTS)
    return p


_MULTIPLIER = "a number with 0.1 <= x <= 4 (multiplies the global {})"


def _stage_from_dict(path: str, raw: Any) -> StageConfig:
    """One entry of ``backbone.stages`` / ``neck.nodes``: the part's keys plus ``repeats`` and ``width``."""
    part_keys = [f.name for f in dataclasses.fields(PartConfig)]
    if not isinstance(raw, dict):
        raise _fail(path, raw, "a mapping with keys " + ", ".join([*part_keys, *STAGE_KEYS]))
    for k in raw:
        if k not in part_keys and k not in STAGE_KEYS:
            raise _fail(
                f"{path}.{k}", raw[k], "keys " + ", ".join(sorted([*part_keys, *STAGE_KEYS])), "is an unknown key"
            )
    mult = {}
    for k, glob in (("repeats", "depth"), ("width", "width")):
        v = _number(f"{path}.{k}", raw.get(k, 1.0), _MULTIPLIER.format(glob))
        if not 0.1 <= v <= 4:
            raise _fail(f"{path}.{k}", v, _MULTIPLIER.format(glob), "is out of range")
        mult[k] = v
    part = _part_from_dict(path, {k: v for k, v in raw.items() if k not in STAGE_KEYS})
    return StageConfig(part, **mult)


def _part_or_stages(
    part: str, raw: Any, schema: int, list_key: str, count: int
) -> tuple[PartConfig, tuple[StageConfig, ...] | None]:
    """Schema 2 lets a part be one PartConfig (uniform) or ``{list_key: [count entries]}``."""
    if schema == 2 and isinstance(raw, dict) and list_key in raw:
        others = [k for k in raw if k != list_key]
        if others:
            raise _fail(
                f"{part}.{others[0]}",
                raw[others[0]],
                f"{part}.{list_key} alone (each entry holds its block and knobs), or one part without {list_key}",
                "is not accepted next to " + list_key,
            )
        entries = raw[list_key]
        what = f"a list of {count} mappings, one per {'stage' if list_key == 'stages' else 'node'}"
        if not isinstance(entries, list):
            raise _fail(f"{part}.{list_key}", entries, what)
        if len(entries) != count:
            raise _fail(f"{part}.{list_key}", entries, what, f"is not accepted ({len(entries)} entries)")
        return PartConfig(), tuple(_stage_from_dict(f"{part}.{list_key}[{i}]", e) for i, e in enumerate(entries))
    return _part_from_dict(part, raw, schema, list_key), None


def from_dict(raw: Any) -> ArchConfig:
    """Validate a plain mapping (parsed YAML) into an ArchConfig. Missing keys take defaults,
    except ``schema``, which must be present and a supported version (1: one part per backbone
    and neck; 2: ``backbone.stages`` and/or ``neck.nodes`` lists)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping of fields, got {type(raw).__name__}; accepted: a YAML mapping")
    if "schema" not in raw:
        raise ConfigError("schema: missing; accepted: schema: 1 (one block per part) or 2 (per-stage lists)")
    schema = raw["schema"]
    if isinstance(schema, bool) or schema not in SCHEMA_VERSIONS:
        raise _fail("schema", schema, " | ".join(map(str, SCHEMA_VERSIONS)), "is not a supported schema version")
    schema = int(schema)
    known = ("schema", "family", "img_size", "num_classes", "width", "depth", "backbone", "neck")
    for k in raw:
        if k not in known:
            raise _fail(str(k), raw[k], "keys " + ", ".join(sorted(known)), "is an unknown key")
    family = _choice("family", raw.get("family", "yolor"), family_names())
    img = _number("img_size", raw.get("img_size", 640), "an integer multiple of 32 from 32 to 4096", integer=True)
    if not (32 <= img <= 4096 and img % 32 == 0):
        raise _fail("img_size", img, "an integer multiple of 32 from 32 to 4096", "is out of range")
    nc = _number("num_classes", raw.get("num_classes", 80), "an integer from 1 to 100000", integer=True)
    if not 1 <= nc <= 100000:
        raise _fail("num_classes", nc, "an integer from 1 to 100000", "is out of range")
    width = _number("width", raw.get("width", 1.0), "a number with 0.03 <= w <= 4")
    if not 0.03 <= width <= 4:
        raise _fail("width", width, "a number with 0.03 <= w <= 4", "is out of range")
    depth = _number("depth", raw.get("depth", 1.0), "a number with 0.1 <= d <= 4")
    if not 0.1 <= depth <= 4:
        raise _fail("depth", depth, "a number with 0.1 <= d <= 4", "is out of range")
    backbone, stages = _part_or_stages("backbone", raw.get("backbone"), schema, "stages", BACKBONE_STAGES)
    neck, nodes = _part_or_stages("neck", raw.get("neck"), schema, "nodes", NECK_NODES)
    if schema == 2 and stages is None and nodes is None:
        raise ConfigError(
            "schema: 2 is for per-stage configs, but neither backbone.stages nor neck.nodes is given; "
            "accepted: schema: 1 for one block per part, or per-stage lists"
        )
    return ArchConfig(
        family=family,
        img_size=int(img),
        num_classes=int(nc),
        width=width,
        depth=depth,
        backbone=backbone,
        neck=neck,
        backbone_stages=stages,
        neck_nodes=nodes,
    )


def validate(cfg: ArchConfig) -> ArchConfig:
    """Re-validate a config built in code (e.g. after ``dataclasses.replace``)."""
    return from_dict(cfg.to_dict())


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def parse_yaml(text: str, source: str = "config") -> ArchConfig:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}: malformed YAML{where}; accepted: a YAML mapping with schema: 1 or 2") from None
    except (RecursionError, ValueError) as e:  # nesting deeper than the parser's stack; a 5000-digit int
        raise ConfigError(
            f"{source}: YAML not accepted ({type(e).__name__}); accepted: a YAML mapping with schema: 1 or 2"
        ) from None
    return from_dict(raw)


def load_config(spec: str | Path) -> ArchConfig:
    """A preset name (``yolor-csp``) or a YAML file path -> validated ArchConfig."""
    spec_s = str(spec)
    path = Path(spec_s)
    try:  # is_file() raises (not False) on a name too long for the file system
        is_preset = not spec_s.endswith((".yaml", ".yml")) and PRESET_DIR.joinpath(f"{spec_s}.yaml").is_file()
        is_file = path.is_file()
    except (OSError, ValueError) as e:
        raise ConfigError(
            f"{_short(spec_s)}: not a usable name ({type(e).__name__}); accepted: a preset or a YAML file"
        ) from None
    if is_preset:
        path = PRESET_DIR / f"{spec_s}.yaml"
    elif not is_file:
        if spec_s.endswith((".yaml", ".yml")) or "/" in spec_s:
            raise ConfigError(f"{spec_s}: no such file; accepted: a preset name or an existing YAML file")
        raise ConfigError(f"{spec_s}: unknown preset; accepted: {', '.join(preset_names())} or a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"{spec_s}: cannot read ({e.__class__.__name__}); accepted: a readable UTF-8 YAML file"
        ) from None
    return parse_yaml(text, spec_s)


def save_config(cfg: ArchConfig, path: str | Path) -> None:
    """Write ``cfg`` as YAML atomically (:func:`nas.core.runio.atomic_write_text`), so a killed
    run leaves no half file."""
    atomic_write_text(path, cfg.to_yaml())
