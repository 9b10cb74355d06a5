"""The options of a search checked, before anything is written, against every registry they
name: the spaces, the cheap scores, the proxy stages, the costs, the latency devices, the recipe
and the Ray cluster. It sits above the stages because it reads each stage's registry; the
options themselves (:mod:`nas.engine.options`) sit below them all."""

from __future__ import annotations

import math
from pathlib import Path

from evaluators.recipe import RecipeError
from nas.engine.options import PICKS, TRUST_REGIONS, SearchError, SearchOptions

#: the URI schemes of the filesystems Ray Tune's storage resolves through pyarrow
STORAGE_SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file")


def validate_options(opts: SearchOptions) -> None:
    """Reject bad options before anything is written."""
    from nas.engine.scores.registry import SCORES
    from search_spaces.space import SPACES

    if (
        not opts.name
        or any(c in opts.name for c in "/\\\0")
        or opts.name.startswith(".")
        or len(opts.name.encode("utf-8", "surrogatepass")) > 200
    ):
        raise SearchError(
            f"--name: {opts.name[:60]!r} is not a usable run name; accepted: a plain folder name of at most 200 bytes"
        )
    if opts.space not in SPACES:
        raise SearchError(f"--space: {opts.space!r} is unknown; accepted: {', '.join(SPACES)}")
    from nas.engine.proxy.fidelity import PROXY_STAGES

    if opts.proxy_stage not in PROXY_STAGES:
        raise SearchError(f"--proxy-stage: {opts.proxy_stage!r} is unknown; accepted: {', '.join(PROXY_STAGES)}")
    if opts.cheap_score not in SCORES:
        raise SearchError(f"--cheap-score: {opts.cheap_score!r} is unknown; accepted: {', '.join(SCORES)}")
    from nas.engine.record.trials import COSTS

    if opts.cost not in COSTS:
        raise SearchError(f"--cost: {opts.cost!r} is unknown; accepted: {', '.join(COSTS)}")
    lat = opts.latency_budget_ms
    if lat is not None and not (isinstance(lat, int | float) and math.isfinite(lat) and lat > 0):
        raise SearchError(f"--latency-budget: {lat!r} is not a latency; accepted: a positive time such as 30ms")
    from nas.engine.latency import DEVICES, LatencyError, check_device

    if opts.device not in DEVICES:
        raise SearchError(f"--device: {opts.device!r} is not known; accepted: {', '.join(DEVICES)}")
    if opts.cost == "latency" or lat is not None:
        try:
            check_device(opts.device)
        except LatencyError as e:
            raise SearchError(str(e)) from None
    if opts.trust_region not in TRUST_REGIONS:
        raise SearchError(f"--trust-region: {opts.trust_region!r} is unknown; accepted: {', '.join(TRUST_REGIONS)}")
    if opts.picks not in PICKS:
        raise SearchError(f"--picks: {opts.picks!r} is unknown; accepted: {', '.join(PICKS)}")
    for flag, value, lo, hi in (
        ("--candidates", opts.candidates, 1, 10**6),
        ("--trials", opts.trials, 0, 10**4),
        ("--seeds", opts.seeds, 1, 16),
        ("--workers", opts.workers, 1, 1024),
    ):
        if not lo <= value <= hi:
            raise SearchError(f"{flag}: {value} is out of range; accepted: an integer from {lo} to {hi}")
    try:
        opts.recipe.validate()
    except RecipeError as e:
        raise SearchError(str(e)) from None
    if opts.data != "shapes" and not Path(opts.data).exists():
        raise SearchError(
            f"--data: {opts.data} does not exist; accepted: shapes or a COCO-format annotation file/folder"
        )
    scheme = (opts.ray_storage or "").partition("://")[0] if "://" in (opts.ray_storage or "") else None
    if opts.ray_storage is not None and (not opts.ray_storage.strip() or (scheme and scheme not in STORAGE_SCHEMES)):
        raise SearchError(
            f"--ray-storage: {opts.ray_storage!r} is not a folder or a storage URI Ray supports; accepted: a folder "
            f"(on a cluster: mounted at the same path on every node) or {', '.join(s + '://…' for s in STORAGE_SCHEMES)}"
        )
    if opts.trials:  # a cluster that cannot be joined is said now, not after the cheap stage
        from nas.engine.proxy.ray_cluster import RayClusterError, check_cluster, requested_address

        address = requested_address(opts.ray_address)
        if address is not None:
            try:
                check_cluster(address)
            except RayClusterError as e:
                raise SearchError(str(e)) from None
