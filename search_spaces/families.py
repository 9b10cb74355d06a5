"""The two topologies of the space, compiled from an ArchConfig into the LayerGraph IR.

``yolor``: a YOLOR-style detector — stem, five Darknet-53 stages (depths 1, 2, 8, 8, 4), SPP,
a PAN neck (top-down FPN then bottom-up) and an anchor-free P3–P5 head, where backbone and neck
each take their own :class:`PartConfig`. ``yolor-v3`` (all ``res``) is the paper's baseline.

``classifier``: the ImageNet backbone of Table 2 (Darknet-53 / CSPDarknet53) with global
pooling and a 1000-way linear layer; only ``backbone`` applies.
"""

from __future__ import annotations

from nas.core.ir import GraphError, LayerGraph
from search_spaces.blocks import csp_block, make_channels, repeats, stage_block
from search_spaces.config import ArchConfig, ConfigError, PartConfig
from search_spaces.registry import FAMILIES, register_family

STAGE_CHANNELS = (64, 128, 256, 512, 1024)
STAGE_DEPTHS = (1, 2, 8, 8, 4)
STEM_CHANNELS = 32
NECK_REPEATS = 2
SPP_KERNELS = (5, 9, 13)


def backbone(g: LayerGraph, cfg: ArchConfig, first_stage_expand: bool = False) -> list[str]:
    """Stem + five stages; returns the output of every stage (strides 2 … 32)."""
    p = cfg.backbone
    with g.scope("backbone"):
        x = g.conv(g.input_name, make_channels(STEM_CHANNELS, cfg.width), 3, name="stem")
        outs = []
        for i, (c0, n0) in enumerate(zip(STAGE_CHANNELS, STAGE_DEPTHS, strict=True), start=1):
            c = make_channels(c0, cfg.width)
            with g.scope(f"stage{i}"):
                x = g.conv(x, c, 3, 2, name="down")
                if first_stage_expand and i == 1 and p.block == "csp":
                    x = csp_block(g, x, c, repeats(n0, cfg.depth), p, "backbone", expand=2)
                else:
                    x = stage_block(g, x, c, repeats(n0, cfg.depth), p, "backbone", cfg.depth)
            outs.append(x)
    return outs


def _neck_node(g: LayerGraph, xs: list[str], c: int, cfg: ArchConfig, name: str) -> str:
    with g.scope(name):
        x = g.concat(xs) if len(xs) > 1 else xs[0]
        x = g.conv(x, c, 1, name="entry")
        return stage_block(g, x, c, repeats(NECK_REPEATS, cfg.depth), cfg.neck, "neck", cfg.depth)


@register_family("yolor")
def yolor(cfg: ArchConfig) -> LayerGraph:
    g = LayerGraph(3, (cfg.img_size, cfg.img_size))
    _, _, p3, p4, p5 = backbone(g, cfg, first_stage_expand=True)
    w3, w4, w5 = (make_channels(c, cfg.width) for c in (256, 512, 1024))
    with g.scope("neck"):
        with g.scope("spp"):
            x = g.conv(p5, w5 // 2, 1, name="reduce")
            x = g.concat([x] + [g.maxpool(x, k, name=f"pool{k}") for k in SPP_KERNELS])
        t5 = _neck_node(g, [x], w5, cfg, "top5")
        up = g.upsample(g.conv(t5, w4 // 2, 1, name="lateral5"))
        t4 = _neck_node(g, [up, p4], w4, cfg, "top4")
        up = g.upsample(g.conv(t4, w3 // 2, 1, name="lateral4"))
        o3 = _neck_node(g, [up, p3], w3, cfg, "out3")
        down = g.conv(o3, w4 // 2, 3, 2, name="down3")
        o4 = _neck_node(g, [down, t4], w4, cfg, "out4")
        down = g.conv(o4, w5 // 2, 3, 2, name="down4")
        o5 = _neck_node(g, [down, t5], w5, cfg, "out5")
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
