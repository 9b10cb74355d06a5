"""torch.fx front end: any ``nn.Module`` -> :class:`~nas.core.ir.LayerGraph`, so that every gradient-path
metric (and the cost) works on models this project did not write.

``from_module(model, input_shape)`` captures ``model`` with a torch.fx tracer whose proxies carry
meta tensors (:mod:`nas.core.fx.trace`: shapes, ``len()``, iteration and shape branches are concrete, so
``list(x.chunk(2, 1))`` loops and ``if x.shape[-1] > 32`` trace; weights are swapped for meta copies,
nothing is computed or changed), then maps the fx graph to the IR:

- ``Conv2d`` (any kh×kw, stride, dilation, groups) -> ``conv`` (``bn=True`` when its only user is an
  affine ``BatchNorm2d``), ``Linear`` -> ``linear``, or a 1×1 ``conv`` over the positions when it
  runs on channels-last tokens: the *layers*, named by their qualified module name; a module called
  twice gives a second layer ``name#1``.
- Norms (Batch/Group/Layer/Instance), activations, dropout, ``contiguous``/``clone``, scaling by a
  constant or a parameter -> pass-through.
- A product of two feature maps (SE, ECA, CBAM gates; broadcast from N×C×1×1 or N×1×H×W) or a
  broadcast sum -> ``mul``, a merge; a mean/max over the channels -> ``reduce``.
- ``permute``/``transpose`` and reshapes that keep, split or re-merge the channel dim move it (the
  value records which dim(s) hold the channels); a channel shuffle becomes the permutation it is.
- max / avg / adaptive pooling -> ``maxpool`` (the traced output size); ``upsample`` /
  ``interpolate`` -> ``upsample``; global mean or flatten of a 1×1 map -> ``gap``, flatten of a
  C×H×W map into a vector -> ``flatten``; ``detach`` -> ``detach``.
- Channel routing (``torch.cat``, slicing, ``chunk``, ``split``, ``narrow`` on the channel dim,
  ``+``/``add``/``iadd``/``sub``) is resolved *symbolically*: every fx value is a list of channel
  segments, each the sum of slices of IR tensors, and only becomes IR nodes when a layer, a pool,
  a gate, a detach or an output reads it, so ``torch.cat([a[:, :lo], a[:, lo:hi] + b[:, s:t],
  a[:, hi:]], 1)`` comes out as one partial ``add``.
- Every tensor returned by ``forward`` (tuple, list, dict, nested) feeds the loss (``output``).

Anything else raises :class:`UnsupportedOpError` naming the op, the fx node and the module path and
class (attention's products over tokens, reshapes that mix channels with other dims, softmax over
channels, transposed/1-d/3-d convolutions). Parameters of a norm that does not follow a conv are not
in the IR's params (``analyze`` counts the module's own parameters).

This module is the entry point; the package holds the parts: :mod:`~nas.core.fx.trace` the capture,
:mod:`~nas.core.fx.ops` the op tables and errors, :mod:`~nas.core.fx.values` the symbolic channels, and
the builder — :mod:`~nas.core.fx.build` the walk, :mod:`~nas.core.fx.routing` the channel routing,
:mod:`~nas.core.fx.lower` symbolic values to IR nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from nas.core.fx.build import _Builder, _trace
from nas.core.fx.ops import TraceError, UnsupportedOpError
from nas.core.ir import LayerGraph

__all__ = ["TraceError", "UnsupportedOpError", "analyze", "from_module"]


def _check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    shape = tuple(input_shape)
    if len(shape) not in (2, 4) or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise TraceError(f"input shape {list(shape)}: expected positive integers N,C,H,W (or N,F)")
    return shape


def from_module(model: nn.Module, input_shape: Sequence[int] = (1, 3, 224, 224)) -> LayerGraph:
    """The LayerGraph of ``model`` for an input of ``input_shape`` (N, C, H, W), via torch.fx.

    Raises :class:`UnsupportedOpError` for an op the IR cannot express and :class:`TraceError`
    when the model cannot be traced; both name the module (path and class) they sit in. The model
    is not run (shapes come from meta tensors) and not changed. ``graph.batch`` is N, so the cost
    counts the whole batch. O(fx nodes) after tracing.

    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1))
    >>> g = from_module(net, (1, 3, 16, 16))
    >>> [(n.name, n.channels, n.size) for n in g.layers()]
    [('0', 8, (16, 16)), ('3', 4, (16, 16))]
    """
    return _from_module(model, input_shape)[0]


def _from_module(model: nn.Module, input_shape: Sequence[int]) -> tuple[LayerGraph, list[str]]:
    shape = _check_shape(input_shape)
    graph, others = _trace(model, shape)
    return _Builder(model, graph, shape).build(), others


def analyze(model: nn.Module, input_shape: Sequence[int] = (1, 3, 224, 224), name: str | None = None) -> dict[str, Any]:
    """Params, FLOPs and gradient-path metrics of ``model`` — the object ``nas analyze --json``
    prints. ``params`` is the module's own parameter count; ``flops`` and the metrics come from
    the traced LayerGraph (FLOPs of one forward pass at ``input_shape``, batch included: what
    ``torch.utils.flop_counter.FlopCounterMode`` counts). Also: ``model`` (``name`` or the class),
    ``input_shape``, ``mode`` (``train``/``eval``), ``other_inputs`` (forward's further arguments,
    not analysed) and per layer its ``channels``, ``flops`` and ``stage``.

    >>> out = analyze(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 1)), (1, 3, 8, 8))
    >>> out["params"], out["max_shortest_gradient_path"], out["longest_gradient_path"]
    (260, 2, 2)
    """
    from nas.core.cost import node_cost
    from nas.core.summary import summarize

    graph, others = _from_module(model, input_shape)
    out = summarize(graph)
    out["params"] = sum(p.numel() for p in model.parameters())
    for rec in out["layers"]:
        node = graph.node(rec["name"])
        rec["channels"] = node.channels
        rec["flops"] = node_cost(node, graph.node(node.inputs[0]).channels)[1] * graph.batch
    info = {
        "model": name or type(model).__name__,
        "input_shape": list(input_shape),
        "mode": "train" if model.training else "eval",
        "other_inputs": others,
    }
    return {**info, **out}
