"""Every draw of designs for a study, in one place: the rank studies' candidates (uniform and
per-stage space), the per-stage draw in a FLOPs band that the proxy-noise list and the
gradient-path table are made of, the table's stratified rule, and the random arm's draws.

Each draw is a pure function of its seed and index (string-seeded ``random.Random``), so a
larger study extends the same list and a registered list can be re-drawn and compared. The
registered rules in ``benchmarks/data/*_designs.json`` name these functions where they lived when
the lists were registered (``benchmarks.rank_study.perstage_candidate``/``perstage_draw``,
``benchmarks.gp_table.gp_candidate``): they moved here unchanged (``benchmarks.rank_study`` still exports the two names it held), and the
registrations still re-draw to the committed files (tests/engine/test_gp_table_bench.py, test_proxy_noise_bench.py).
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from typing import Any

#: FLOPs at 640 px: the feasibility limit of the studies
BUDGET = 150e9
#: the gradient-path table's FLOPs bands at 640 px: quarters of the budget
BANDS: tuple[tuple[float, float], ...] = tuple((BUDGET * k / 4, BUDGET * (k + 1) / 4) for k in range(4))


def config_flops(cfg: Any) -> int:
    """FLOPs of ``cfg`` at its own image size (640 px for the space's configs)."""
    from nas.core.cost import cost
    from search_spaces import compile_config

    return cost(compile_config(cfg)).flops


def majority_blocks(cfg: Any) -> str:
    """``backbone/neck`` majority block (the studies' stratum; ties: the first in stage order)."""
    pat = cfg.pattern()
    return "/".join(Counter(p).most_common(1)[0][0] for p in (pat[:5], pat[5:]))


def _pairs() -> list[tuple[str, str]]:
    from search_spaces import BLOCKS

    return [(b, n) for b in BLOCKS for n in BLOCKS]


# -- the rank studies ----------------------------------------------------------------------------
def candidate(i: int, seed: int = 0, space: str = "yolor-uniform") -> Any:
    """Candidate ``i`` of the rank study on ``space`` (see :func:`uniform_candidate`, :func:`perstage_candidate`)."""
    return perstage_candidate(i, seed) if space == "yolor" else uniform_candidate(i, seed)


def candidates(n: int, seed: int = 0, space: str = "yolor-uniform") -> list[Any]:
    """The first ``n`` distinct candidates (a duplicate design is skipped, not retrained)."""
    out, seen, i = [], set(), 0
    while len(out) < n:
        cfg = candidate(i, seed, space)
        i += 1
        if cfg.key() not in seen:
            seen.add(cfg.key())
            out.append(cfg)
    return out


def perstage_candidate(i: int, seed: int = 0) -> Any:
    """Per-stage candidate ``i``: majority-block pair ``i mod 16`` of a per-round shuffled pair
    order; 3 random stages (nodes) of each part take the pair's block, the rest is a uniform draw
    of the per-stage space; redrawn until feasible and heterogeneous. A pure function of (seed, i)."""
    pairs = _pairs()
    rnd, pos = divmod(i, len(pairs))
    random.Random(f"{seed}-perstage-round-{rnd}").shuffle(pairs)
    return perstage_draw(pairs[pos], random.Random(f"{seed}-perstage-cand-{i}"))


def perstage_draw(
    pair: tuple[str, str], rng: random.Random, band: tuple[float, float] = (0, BUDGET), tries: int = 1000
) -> Any:
    """A heterogeneous per-stage design whose (backbone, neck) majority blocks are ``pair``: 3
    random stages (nodes) of each part take the pair's block, the rest is a uniform draw of the
    per-stage space; redrawn until its FLOPs at 640 px fall in ``[band[0], band[1])``."""
    from search_spaces import BLOCKS
    from search_spaces.config import PartConfig, StageConfig
    from search_spaces.space import SPACES

    space = SPACES["yolor"]
    values = space.knob_values()
    backbone, neck = pair
    for _ in range(tries):
        cfg = space.sample(rng)
        plans = []
        for plan, block in ((list(cfg.backbone_plan()), backbone), (list(cfg.neck_plan()), neck)):
            for k in sorted(rng.sample(range(len(plan)), 3)):
                part = PartConfig(block=block, **{n: rng.choice(values[n]) for n in BLOCKS[block].knobs if n in values})
                plan[k] = StageConfig(part, plan[k].repeats, plan[k].width)
            plans.append(tuple(plan))
        cfg = dataclasses.replace(cfg, backbone_stages=plans[0], neck_nodes=plans[1]).canonical()
        if cfg.schema == 2 and len(set(cfg.pattern())) > 1 and band[0] <= config_flops(cfg) < band[1]:
            return cfg
    raise RuntimeError(f"no per-stage config for pair {backbone}/{neck} in {band[0] / 1e9:g}-{band[1] / 1e9:g} GFLOPs")


def uniform_candidate(i: int, seed: int = 0) -> Any:
    """Uniform-space candidate ``i``: block pair ``i mod 16`` of a per-round shuffled pair order, other knobs
    uniform, resampled until feasible. A pure function of (seed, i)."""
    from search_spaces.space import SearchSpace

    space = SearchSpace()
    pairs = _pairs()
    rnd, pos = divmod(i, len(pairs))
    random.Random(f"{seed}-round-{rnd}").shuffle(pairs)
    backbone, neck = pairs[pos]
    rng = random.Random(f"{seed}-cand-{i}")
    for _ in range(1000):
        cfg = space.sample(rng)
        cfg = dataclasses.replace(
            cfg,
            backbone=_with_block(space, cfg.backbone, backbone, rng),
            neck=_with_block(space, cfg.neck, neck, rng),
        ).canonical()
        if config_flops(cfg) < BUDGET:
            return cfg
    raise RuntimeError(f"no feasible config for pair {backbone}/{neck}")


def _with_block(space: Any, part: Any, block: str, rng: random.Random) -> Any:
    return dataclasses.replace(
        part,
        block=block,
        split_ratio=rng.choice(space.split_ratios),
        fusion=rng.choice(space.fusions),
        mask_fraction=rng.choice(space.mask_fractions),
        elan_stack=rng.choice(space.elan_stacks),
    )


# -- the gradient-path table ---------------------------------------------------------------------
def gp_candidate(i: int, seed: int) -> tuple[Any, tuple[str, str], int]:
    """Design ``i`` of the gradient-path table's rule: (config, its (backbone, neck) block pair,
    its FLOPs band index). Round ``i div 16`` shuffles the 16 pairs by (seed, round); canonical
    pair p falls in band ``(p + round) mod 4``. A pure function of ``(seed, i)``.

    >>> cfg, pair, band = gp_candidate(0, 28)
    >>> BANDS[band][0] <= config_flops(cfg) < BANDS[band][1], majority_blocks(cfg) == "/".join(pair)
    (True, True)
    """
    canonical = _pairs()
    rnd, pos = divmod(i, len(canonical))
    order = list(canonical)
    random.Random(f"{seed}-gp-table-round-{rnd}").shuffle(order)
    pair = order[pos]
    band = (canonical.index(pair) + rnd) % len(BANDS)
    cfg = perstage_draw(pair, random.Random(f"{seed}-gp-table-cand-{i}"), BANDS[band], tries=5000)
    return cfg, pair, band


# -- a search's random arm -----------------------------------------------------------------------
def random_feasible(seed: int, k: int) -> list[Any]:
    """``k`` distinct uniformly random configs of the per-stage space under the budget (the live
    search-efficiency study's ``random`` arm)."""
    from search_spaces.space import SPACES

    space, rng, out, seen = SPACES["yolor"], random.Random(f"random-arm-{seed}"), [], set()
    while len(out) < k:
        cfg = space.sample(rng).canonical()
        if cfg.key() not in seen and config_flops(cfg) < BUDGET:
            seen.add(cfg.key())
            out.append(cfg)
    return out
