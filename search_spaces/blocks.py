"""The paper's design strategies as IR building blocks. Each block maps a tensor of ``c``
channels to ``c`` channels at the same resolution, so any block fits any stage.

- residual unit (Darknet): 1×1 c→c/2, 3×3 c/2→c, identity added.
- PRN unit: the same, but only the first ``mask_fraction × c`` channels take the identity
  (masked residual, Fig. 3); mask 1 is ResNet, mask 0 PlainNet.
- CSP block (Fig. 4/5): a 1×1 base conv whose output is split; ``split_ratio`` of it runs
  through residual units (width b, as CSPDarknet53), the rest crosses the stage; ``fusion``
  places the transition layers.
- ELAN block (Fig. 6): split like CSP; the block path stacks ``elan_stack`` computational
  blocks of 3×3 convs, every block's output is aggregated, one transition closes the stage —
  stacking inside the block does not add a transition to anyone's shortest gradient path.

Every channel share (a split, a PRN mask, a hidden width) is rounded by :func:`share` to a
multiple of 8, as the YOLO repos round theirs.
"""

from __future__ import annotations

from nas.core.ir import LayerGraph
from search_spaces.config import PartConfig
from search_spaces.registry import BLOCKS, register_block

#: Every channel count of the space is a multiple of this (YOLOv7/YOLOv9's ``make_divisible``
#: rule, and what accelerators want), so an exported design is exact in the authors' repos.
CHANNEL_DIVISOR = 8
#: The rule's version, recorded by a search (``search.json``): a run made under another rule
#: compiled other models from the same knobs and is refused on resume.
CHANNEL_RULE = "multiple-of-8"


def share(fraction: float, c: int, *, keep_rest: bool = False) -> int:
    """``fraction × c`` channels rounded to a multiple of :data:`CHANNEL_DIVISOR` (at least one
    multiple; at most ``c``, or ``c`` less one multiple with ``keep_rest`` — a split whose other
    side must stay non-empty). Fractions 0 and 1 stay exact (PRN's PlainNet and ResNet ends).
    Below 16 channels (only at a proxy's reduced width) the multiple is half of ``c``.

    >>> share(0.25, 48), share(0.75, 48, keep_rest=True), share(0.5, 24), share(0.25, 8)
    (16, 40, 16, 4)
    """
    if fraction <= 0:
        return 0
    if fraction >= 1 and not keep_rest:
        return c
    d = min(CHANNEL_DIVISOR, max(1, c // 2))
    n = max(d, int(fraction * c / d + 0.5) * d)
    return min(n, c - d if keep_rest else c)


def residual_unit(g: LayerGraph, x: str, c: int, hidden: int, p: PartConfig, part: str, prn: bool) -> str:
    """One (masked) residual unit; honours ``stop_gradient`` (Fig. 9): ``identity`` cuts the
    gradient of the identity connection (the network becomes a PlainNet for gradients);
    ``block`` cuts the gradient the computational block passes back to the trunk, so its layers
    still learn (from the loss through the identities: shortest path 1, longest 2) but every
    gradient path runs along the identities."""
    identity = x
    if p.stop_gradient == "identity":
        identity = g.detach(identity, name="stop_identity")
    elif p.stop_gradient == "block":
        x = g.detach(x, name="stop_block")
    y = g.conv(x, hidden, 1, name="cv1")
    y = g.conv(y, c, 3, name="cv2")
    if not prn:
        return g.add(y, identity)
    m = share(p.mask_fraction, c)
    if m == 0:
        return y
    return g.add(y, identity, dst=(0, m), src=(0, m))


@register_block("res", knobs=("stop_gradient",))
def res_block(g: LayerGraph, x: str, c: int, n: int, p: PartConfig, part: str, depth: float = 1.0) -> str:
    """``n`` Darknet residual units (PRN's masked ones for ``block: prn``)."""
    for i in range(n):
        with g.scope(f"unit{i}"):
            x = residual_unit(g, x, c, share(0.5, c), p, part, prn=p.block == "prn")
    return x


@register_block("prn", knobs=("mask_fraction", "stop_gradient"), describe=lambda p: f"m={p.mask_fraction}")
def prn_block(g: LayerGraph, x: str, c: int, n: int, p: PartConfig, part: str, depth: float = 1.0) -> str:
    """``n`` PRN units: residual units whose identity covers ``mask_fraction`` of the channels."""
    return res_block(g, x, c, n, p, part, depth)


@register_block(
    "csp", knobs=("split_ratio", "fusion", "stop_gradient"), describe=lambda p: f"r={p.split_ratio},{p.fusion}"
)
def csp_stage(g: LayerGraph, x: str, c: int, n: int, p: PartConfig, part: str, depth: float = 1.0) -> str:
    return csp_block(g, x, c, n, p, part)


def csp_block(g: LayerGraph, x: str, c: int, n: int, p: PartConfig, part: str, expand: int = 1) -> str:
    """``expand=2`` is CSPDarknet53's first stage: the base conv doubles the channels and the
    units keep a hidden width of half the block path."""
    base_c = expand * c
    b = share(p.split_ratio, base_c, keep_rest=True)
    base = g.conv(x, base_c, 1, name="split_conv")
    path = g.split(base, 0, b, name="block_path")
    cross = g.split(base, b, base_c, name="cross_path")
    inner = PartConfig(block="res", stop_gradient=p.stop_gradient)
    for i in range(n):
        with g.scope(f"unit{i}"):
            path = residual_unit(g, path, b, share(1 / expand, b), inner, part, prn=False)
    if p.fusion in ("fusion", "last"):
        path = g.conv(path, b, 1, name="transition_block")
    y = g.concat([path, cross])
    if p.fusion in ("fusion", "first") or expand != 1:
        y = g.conv(y, c, 1, name="transition")
    return y


@register_block("elan", knobs=("split_ratio", "elan_stack"), describe=lambda p: f"r={p.split_ratio},s={p.elan_stack}")
def elan_stage(g: LayerGraph, x: str, c: int, n: int, p: PartConfig, part: str, depth: float = 1.0) -> str:
    """An ELAN block whose computational blocks hold ``round(2 × depth)`` 3×3 convs each (``n``,
    the stage's repeats, is not used: ELAN's depth is its stack and its convs per block)."""
    return elan_block(g, x, c, elan_convs(depth), p, part)


def elan_convs(depth: float) -> int:
    """3×3 convs per ELAN computational block at this depth (2 at depth 1, as YOLOv7's ELAN)."""
    return max(1, round(2 * depth))


def elan_block(g: LayerGraph, x: str, c: int, convs: int, p: PartConfig, part: str) -> str:
    b = share(p.split_ratio, c, keep_rest=True)
    base = g.conv(x, c, 1, name="split_conv")
    path = g.split(base, 0, b, name="block_path")
    taps = [base]
    for s in range(p.elan_stack):
        with g.scope(f"stack{s}"):
            for j in range(convs):
                path = g.conv(path, b, 3, name=f"cv{j + 1}")
        taps.append(path)
    return g.conv(g.concat(taps), c, 1, name="transition")


def stage_block(g: LayerGraph, x: str, c: int, n: int, p: PartConfig, part: str, depth: float) -> str:
    """The computational block of one stage/neck node, built by its registered block."""
    return BLOCKS[p.block].build(g, x, c, n, p, part, depth)


def make_channels(c: float, width: float, divisor: int = 8) -> int:
    """Channels scaled by ``width``, rounded to a multiple of ``divisor`` (at least one)."""
    return max(divisor, int(c * width / divisor + 0.5) * divisor)


def repeats(n: int, depth: float) -> int:
    return max(1, round(n * depth))
