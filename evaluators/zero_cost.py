"""Zero-cost (training-free) proxies: the baselines the gradient-path score must beat.

The field's finding (NAS-Bench-Suite-Zero; "A Deeper Look at Zero-Cost Proxies") is that most
training-free proxies rank architectures about as well as FLOPs or params. To claim that the
gradient-path score is worth a cheap stage, we compare it with the two strongest common proxies:

* ``synflow`` (Tanaka et al. 2020): the synaptic saliency of the sign-linearised network on an
  all-ones input, in float64, with batch norm removed (``bn=False``, as the reference
  implementations in zero-cost-nas / NAS-Bench-Suite-Zero do). Reported as a natural log, since
  the raw sum overflows easily on deep nets.
* ``naswot`` (Mellor et al. 2021): log|det K| of the kernel of binary activation codes over a
  minibatch of real images. The original codes ReLU outputs; our activations are SiLU, so the
  code of a unit is the sign of the activation's *input* (``x > 0``), which is the same linear
  region indicator SiLU's ReLU-like half defines.

Both run on the proxy-scale model (``proxy_model``) — the one the proxy stage trains — so they
see the same network as the accuracy they are meant to predict.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import torch
from torch import nn

from nas.core.module import build
from search_spaces import compile_config

PROXY_WIDTH = 0.25
PROXY_IMG = 96  # the rank study's proxy image size (benchmarks/rank_study.py RECIPE)
PROXY_CLASSES = 6


def proxy_model(cfg: Any, width_mult: float = PROXY_WIDTH, img_size: int = PROXY_IMG, seed: int = 0) -> nn.Module:
    """The proxy-scale detector of ``cfg``, initialised after ``torch.manual_seed(seed)`` so that
    a zero-cost score is a deterministic function of the architecture."""
    arch = dataclasses.replace(cfg, width=cfg.width * width_mult, img_size=img_size, num_classes=PROXY_CLASSES)
    torch.manual_seed(seed)
    return build(compile_config(arch))


def _outputs(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for o in out for t in _outputs(o)]


def _strip_bn(model: nn.Module) -> nn.Module:
    """A copy with every BatchNorm replaced by identity (synflow's ``bn=False``)."""
    net = copy.deepcopy(model)
    for module in list(net.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, child_name, nn.Identity())
    return net


def synflow(model: nn.Module, input_shape: tuple[int, ...] = (1, 3, PROXY_IMG, PROXY_IMG)) -> float:
    """log Σ|θ ⊙ ∂R/∂θ| over conv/linear weights, R = sum of the outputs of the |θ| network in
    float64 on an all-ones input, BN removed. Larger means more 'signal flow'. The per-layer
    sums are combined in log space; ``-inf`` when every saliency is zero, ``inf`` if a layer's
    float64 sum itself overflows (not seen at proxy scale: logs are 70–210 on the study's pool)."""
    net = _strip_bn(model).double()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    net.eval()  # nothing stochastic remains without BN; eval keeps e.g. dropout off
    net.zero_grad(set_to_none=True)
    x = torch.ones(input_shape, dtype=torch.float64)
    with torch.enable_grad():
        total = sum(o.sum() for o in _outputs(net(x)))
        total.backward()
    logs = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d | nn.Linear) and m.weight.grad is not None:
            s = float((m.weight * m.weight.grad).detach().abs().sum())
            if s > 0:
                logs.append(math.log(s) if math.isfinite(s) else math.inf)
    if not logs:
        return -math.inf
    if any(math.isinf(v) for v in logs):
        return math.inf
    top = max(logs)
    return top + math.log(sum(math.exp(v - top) for v in logs))


def naswot(model: nn.Module, batch: torch.Tensor) -> float:
    """log|det K|, K[i, j] = Σ_layers (N_A − Hamming(c_i, c_j)) with c the binary code (input of
    each SiLU > 0) of image i. Higher means the untrained net separates the images better.

    Duplicate images make K singular (log|det| = −inf); then a ridge of 1e-6·mean(diag K) is
    added, so the score stays finite and ranks a collapsed batch far below a separable one."""
    codes: list[torch.Tensor] = []

    def hook(_module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        codes.append((inputs[0].detach().flatten(1) > 0).double())

    handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, nn.SiLU | nn.ReLU)]
    was_training = model.training
    try:
        model.train()  # the reference computes codes in train mode (batch statistics)
        with torch.no_grad():
            model(batch.float())
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    n = batch.shape[0]
    k = torch.zeros(n, n, dtype=torch.float64)
    for c in codes:
        k += c @ c.T + (1 - c) @ (1 - c).T  # = N_A − Hamming distance
    sign, logdet = torch.linalg.slogdet(k)
    if sign <= 0 or not torch.isfinite(logdet):
        ridge = 1e-6 * float(k.diagonal().mean().clamp_min(1.0))
        sign, logdet = torch.linalg.slogdet(k + ridge * torch.eye(n, dtype=torch.float64))
    return float(logdet)


def proxy_batch(n: int = 32, img_size: int = PROXY_IMG, seed: int = 0) -> torch.Tensor:
    """``n`` real training images of the shapes proxy set (float in [0, 1]), a fixed subset."""
    from evaluators.coco_data import load_proxy_data

    data = load_proxy_data("shapes", img_size=img_size, images=max(n, 64))
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data.train.images), generator=g)[:n]
    return data.train.images[idx].float().div(255)


def zero_cost_scores(
    cfg: Any, width_mult: float = PROXY_WIDTH, img_size: int = PROXY_IMG, batch: torch.Tensor | None = None
) -> dict[str, float]:
    """Both proxies of one config on its proxy-scale model (one model build, ~0.1–1 s on CPU)."""
    model = proxy_model(cfg, width_mult, img_size)
    if batch is None:
        batch = proxy_batch(img_size=img_size)
    return {
        "synflow": synflow(model, (1, 3, img_size, img_size)),
        "naswot": naswot(model, batch),
    }
