"""The two topologies of the space, compiled from an ArchConfig into the LayerGraph IR.

``yolor``: a YOLOR-style detector — stem, five Darknet-53 stages (depths 1, 2, 8, 8, 4), SPP,
a PAN neck (top-down FPN then bottom-up: five nodes top5, top4, out3, out4, out5) and an
anchor-free P3–P5 head. Each backbone stage and neck node takes its own :class:`StageConfig`
(``cfg.backbone_plan()`` / ``cfg.neck_plan()``: all the same part in a schema-1 config). ``yolor-v3`` (all ``res``) is the paper's baseline.

``classifier``: the ImageNet backbone of Table 2 (Darknet-53 / CSPDarknet53) with global
pooling and a 1000-way linear layer; only ``backbone`` applies.
"""

from __future__ import annotations

from typing import Any

from nas.core.ir import GraphError, LayerGraph
from search_spaces.blocks import csp_block, elan_convs, make_channels, repeats, share, stage_block
from search_spaces.config import BACKBONE_STAGES, NECK_NODES, ArchConfig, ConfigError, PartConfig, StageConfig
from search_spaces.registry import FAMILIES, register_family

STAGE_CHANNELS = (64, 128, 256, 512, 1024)
STAGE_DEPTHS = (1, 2, 8, 8, 4)
STEM_CHANNELS = 32
NECK_REPEATS = 2
SPP_KERNELS = (5, 9, 13)


NECK_NODE_NAMES = ("top5", "top4", "out3", "out4", "out5")
NECK_NODE_CHANNELS = (1024, 512, 256, 512, 1024)
assert len(NECK_NODE_NAMES) == NECK_NODES == len(NECK_NODE_CHANNELS)
assert len(STAGE_CHANNELS) == BACKBONE_STAGES == len(STAGE_DEPTHS)


def stage_shape(c0: int, n0: int, stage: StageConfig, cfg: ArchConfig) -> tuple[int, int, float]:
    """(channels, repeats, depth) a stage is built with: its multipliers times the global ones.
    ``x * 1.0 == x`` exactly, so a uniform stage gets the schema-1 numbers bit for bit."""
    depth = cfg.depth * stage.repeats
    return make_channels(c0, cfg.width * stage.width), repeats(n0, depth), depth


def backbone(g: LayerGraph, cfg: ArchConfig, first_stage_expand: bool = False) -> list[str]:
    """Stem + five stages; returns the output of every stage (strides 2 … 32)."""
    with g.scope("backbone"):
        x = g.conv(g.input_name, make_channels(STEM_CHANNELS, cfg.width), 3, name="stem")
        outs = []
        plan = cfg.backbone_plan()
        for i, (c0, n0, s) in enumerate(zip(STAGE_CHANNELS, STAGE_DEPTHS, plan, strict=True), start=1):
            c, n, depth = stage_shape(c0, n0, s, cfg)
            p = s.part
            with g.scope(f"stage{i}"):
                x = g.conv(x, c, 3, 2, name="down")
                if first_stage_expand and i == 1 and p.block == "csp":
                    x = csp_block(g, x, c, n, p, "backbone", expand=2)
                else:
                    x = stage_block(g, x, c, n, p, "backbone", depth)
            outs.append(x)
    return outs


def _neck_node(g: LayerGraph, xs: list[str], cfg: ArchConfig, index: int) -> str:
    node = cfg.neck_plan()[index]
    c, n, depth = stage_shape(NECK_NODE_CHANNELS[index], NECK_REPEATS, node, cfg)
    with g.scope(NECK_NODE_NAMES[index]):
        x = g.concat(xs) if len(xs) > 1 else xs[0]
        x = g.conv(x, c, 1, name="entry")
        return stage_block(g, x, c, n, node.part, "neck", depth)


def stage_plan(cfg: ArchConfig) -> list[dict[str, Any]]:
    """What each searched stage is built with — the knob prefix (``backbone.s3``), the graph
    scope, the design, the repeats the block gets and the output channels — computed by the same
    ``stage_shape`` the compiler uses, for ``nas show``'s per-stage summary."""
    rows = []
    for i, (c0, n0, s) in enumerate(zip(STAGE_CHANNELS, STAGE_DEPTHS, cfg.backbone_plan(), strict=True), start=1):
        rows.append(_plan_row(f"backbone.s{i}", f"backbone.stage{i}", c0, n0, s, cfg))
    if cfg.family == "yolor":
        for i, (name, c0, s) in enumerate(zip(NECK_NODE_NAMES, NECK_NODE_CHANNELS, cfg.neck_plan(), strict=True)):
            rows.append(_plan_row(f"neck.n{i + 1}", f"neck.{name}", c0, NECK_REPEATS, s, cfg))
    return rows


def _plan_row(knob: str, scope: str, c0: int, n0: int, s: StageConfig, cfg: ArchConfig) -> dict[str, Any]:
    c, n, depth = stage_shape(c0, n0, s, cfg)
    return {
        "knob": knob,
        "scope": scope,
        "design": s.describe(),
        "repeats": elan_convs(depth) if s.part.block == "elan" else n,
        "channels": c,
    }


@register_family("yolor")
def yolor(cfg: ArchConfig) -> LayerGraph:
    g = LayerGraph(3, (cfg.img_size, cfg.img_size))
    _, _, p3, p4, p5 = backbone(g, cfg, first_stage_expand=True)
    w3, w4, w5 = (make_channels(c, cfg.width) for c in (256, 512, 1024))
    with g.scope("neck"):
        with g.scope("spp"):
            x = g.conv(p5, share(0.5, w5), 1, name="reduce")
            x = g.concat([x] + [g.maxpool(x, k, name=f"pool{k}") for k in SPP_KERNELS])
        t5 = _neck_node(g, [x], cfg, 0)
        up = g.upsample(g.conv(t5, share(0.5, w4), 1, name="lateral5"))
        t4 = _neck_node(g, [up, p4], cfg, 1)
        up = g.upsample(g.conv(t4, share(0.5, w3), 1, name="lateral4"))
        o3 = _neck_node(g, [up, p3], cfg, 2)
        down = g.conv(o3, share(0.5, w4), 3, 2, name="down3")
        o4 = _neck_node(g, [down, t4], cfg, 3)
        down = g.conv(o4, share(0.5, w5), 3, 2, name="down4")
        o5 = _neck_node(g, [down, t5], cfg, 4)
    with g.scope("head"):
        for level, (x, stride) in enumerate(zip((o3, o4, o5), (8, 16, 32), strict=True), start=3):
            y = g.conv(x, 4 + 1 + cfg.num_classes, 1, bn=False, act=False, bias=True, name=f"pred{level}")
            g.output(y, stride=stride, name=f"p{level}")
    return g


@register_family("classifier")
def classifier(cfg: ArchConfig) -> LayerGraph:
    g = LayerGraph(3, (cfg.img_size, cfg.img_size))
    x = backbone(g, cfg, first_stage_expand=True)[-1]
    with g.scope("classifier"):
        g.output(g.linear(g.gap(x), cfg.num_classes, name="fc"), name="logits")
    return g


def compile_config(cfg: ArchConfig) -> LayerGraph:
    """ArchConfig -> LayerGraph. Deterministic: the same config always gives the same graph.
    Raises ConfigError when the knobs cannot be realised (e.g. channels that do not divide).

    >>> from search_spaces.config import load_config
    >>> len(compile_config(load_config("darknet53")).layers())
    53
    """
    try:
        return FAMILIES[cfg.family](cfg)
    except GraphError as e:
        raise ConfigError(f"config cannot be built: {e}") from None


__all__ = ["compile_config", "PartConfig"]
