"""The proxy stage: the training plan (:mod:`~nas.engine.proxy.fidelity`), the driver side that
runs it with Ray Tune and records every training (:mod:`~nas.engine.proxy.stage`), the worker
side inside Ray (:mod:`~nas.engine.proxy.worker`) and the local or joined Ray cluster
(:mod:`~nas.engine.proxy.ray_cluster`)."""

from nas.engine.proxy.fidelity import Rung, plan_proxy
from nas.engine.proxy.stage import fidelity_of, measured_ap, proxy_stage

__all__ = ["Rung", "fidelity_of", "measured_ap", "plan_proxy", "proxy_stage"]
