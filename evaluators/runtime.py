"""How a proxy training runs on its device: the arithmetic, the memory layout, the optimiser kernel.

Why a module of its own: the runtime changes the speed, never what is trained, and the training
loop, the evaluation and the BatchNorm recompute all run a model under it (the same device,
layout and autocast), so none of them owns it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class Runtime:
    """How a recipe runs on one device: the arithmetic, the memory layout and the optimiser kernel.

    Why apart from the recipe: these change the speed, not what is trained, so the same recipe
    resolves differently on a CPU and on CUDA (and the benchmark's profile can
    time the old setup, ``Runtime(dev, "fp32", False, False)``, beside the new one).
    """

    device: torch.device
    #: "fp32", "bf16" (autocast) or "fp16" (CUDA AMP with a grad scaler)
    precision: str
    #: channels-last activations and weights (measured faster on CPU: ``benchmarks.proxy --profile``)
    channels_last: bool
    #: the fused AdamW kernel (one pass over each tensor instead of a dozen elementwise ops)
    fused: bool

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)


def resolve_runtime(precision: str, device: torch.device) -> Runtime:
    """The runtime of ``precision`` (a :data:`evaluators.recipe.PRECISIONS` value) on ``device``.

    ``auto``: fp16 AMP on CUDA (as before), fp32 on a CPU, channels-last with the fused AdamW.
    Not bf16, even where the CPU runs it fast: on an AMX CPU (Sapphire Rapids) bf16 made a default
    training 1.6x faster, but it moved the preset ranking more than a change of seed does, at two
    seeds; on an avx512_bf16 CPU without AMX it was only 1.07x per step (README, "Proxy trainer
    speed"). ``bf16`` is honoured when asked for.
    """
    if device.type == "cuda":
        chosen = {"auto": "fp16", "fp32": "fp32", "bf16": "bf16"}[precision]
        return Runtime(device, chosen, channels_last=False, fused=False)
    chosen = "bf16" if precision == "bf16" else "fp32"
    return Runtime(device, chosen, channels_last=device.type == "cpu", fused=device.type == "cpu")


#: Fewer channels than this and a channels-last BatchNorm runs in NCHW: PyTorch's channels-last
#: BatchNorm backward on a CPU is many times slower there once two threads share it (14 ms against
#: NCHW's 1.4 ms for an (8, 8, 160, 160) activation; at 16 channels the two are even).
NARROW_BATCHNORM = 16


def prepare_model(net: nn.Module, runtime: Runtime) -> nn.Module:
    """Move ``net`` to the runtime's device and memory layout (in place; returned for chaining).

    Channels-last wraps each narrow BatchNorm (:data:`NARROW_BATCHNORM`) in a layout change by
    forward hooks, so the weights, the state dict and the arithmetic stay those of NCHW.
    """
    net.to(runtime.device)
    if runtime.channels_last:
        net.to(memory_format=torch.channels_last)
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d) and m.num_features < NARROW_BATCHNORM:
                m.register_forward_pre_hook(_to_nchw)
                m.register_forward_hook(_to_channels_last)
    return net


class _Relayout(torch.autograd.Function):
    """``x`` in ``layout``, and its gradient back in the layout ``x`` came in: a plain
    ``contiguous`` would hand the gradient on in the new layout, and a BatchNorm backward with
    mixed layouts takes PyTorch's slowest path."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, layout: torch.memory_format) -> torch.Tensor:
        ctx.back = (
            torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        )
        return x.contiguous(memory_format=layout)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad.contiguous(memory_format=ctx.back), None


def _to_nchw(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return (_Relayout.apply(inputs[0], torch.contiguous_format), *inputs[1:])


def _to_channels_last(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
    return _Relayout.apply(output, torch.channels_last)


def autocast(runtime: Runtime) -> Any:
    """The autocast context of ``runtime``'s precision (a disabled one in fp32)."""
    dtype = runtime.autocast_dtype
    return torch.autocast(runtime.device.type, dtype=dtype or torch.float32, enabled=dtype is not None)
