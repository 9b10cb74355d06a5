"""ArchConfig: the small, typed, validated, versioned value an Optuna trial samples, ``nas export``
writes and ``nas show/train`` read. It only names design choices; ``compile`` turns it into the IR.

A validation error names the field, the bad value and what is accepted — it is what the user
sees (one line, exit 2) when a YAML file is wrong.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nas.core.errors import GradpathError
from search_spaces.registry import BLOCKS, block_names, family_names

SCHEMA_VERSION = 1
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
        d = PartConfig()
        return dataclasses.replace(
            self, **{f.name: getattr(d, f.name) for f in dataclasses.fields(self) if f.name not in ("block", *used)}
        )

    def describe(self) -> str:
        """The block and the knobs it reads, in one short line (``csp r=0.5,fusion``)."""
        return f"{self.block} {BLOCKS[self.block].describe(self)}".strip()


@dataclass(frozen=True)
class ArchConfig:
    """A point of the search space. ``family`` picks the topology (``yolor`` detector or
    ``classifier``); ``width``/``depth`` scale channels and per-stage repeats; FLOPs are
    counted at ``img_size`` × ``img_size``."""

    family: str = "yolor"
    img_size: int = 640
    num_classes: int = 80
    width: float = 1.0
    depth: float = 1.0
    backbone: PartConfig = field(default_factory=PartConfig)
    neck: PartConfig = field(default_factory=PartConfig)
    schema: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        out: dict[str, Any] = {"schema": d.pop("schema")}
        out.update(d)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def canonical(self) -> ArchConfig:
        return dataclasses.replace(self, backbone=self.backbone.canonical(), neck=self.neck.canonical())

    def key(self) -> str:
        """A stable identity of the design (for deduplication)."""
        return yaml.safe_dump(self.canonical().to_dict(), sort_keys=True, default_flow_style=True).strip()


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


def _part_from_dict(path: str, raw: Any) -> PartConfig:
    if raw is None:
        return PartConfig()
    if not isinstance(raw, dict):
        raise _fail(path, raw, "a mapping with keys " + ", ".join(f.name for f in dataclasses.fields(PartConfig)))
    known = {f.name for f in dataclasses.fields(PartConfig)}
    for k in raw:
        if k not in known:
            raise _fail(f"{path}.{k}", raw[k], "keys " + ", ".join(sorted(known)), "is an unknown key")
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


def from_dict(raw: Any) -> ArchConfig:
    """Validate a plain mapping (parsed YAML) into an ArchConfig. Missing keys take defaults,
    except ``schema``, which must be present and equal to the supported version."""
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping of fields, got {type(raw).__name__}; accepted: a YAML mapping")
    if "schema" not in raw:
        raise ConfigError(f"schema: missing; accepted: schema: {SCHEMA_VERSION}")
    if raw["schema"] != SCHEMA_VERSION or isinstance(raw["schema"], bool):
        raise _fail("schema", raw["schema"], str(SCHEMA_VERSION), "is not a supported schema version")
    known = {f.name for f in dataclasses.fields(ArchConfig)}
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
    return ArchConfig(
        family=family,
        img_size=int(img),
        num_classes=int(nc),
        width=width,
        depth=depth,
        backbone=_part_from_dict("backbone", raw.get("backbone")),
        neck=_part_from_dict("neck", raw.get("neck")),
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
        raise ConfigError(f"{source}: malformed YAML{where}; accepted: a YAML mapping with schema: 1") from None
    except (RecursionError, ValueError) as e:  # nesting deeper than the parser's stack; a 5000-digit int
        raise ConfigError(
            f"{source}: YAML not accepted ({type(e).__name__}); accepted: a YAML mapping with schema: 1"
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
    """Write ``cfg`` as YAML atomically (temp file + rename), so a killed run leaves no half file."""
    import os
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(cfg.to_yaml())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
