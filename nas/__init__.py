"""gradpath-nas: neural architecture search guided by gradient-path analysis.

The public API (each CLI subcommand is a thin shell over one of these)::

    import nas
    cfg = nas.load_config("yolor-elan-2-1")
    graph = nas.compile(cfg)          # the LayerGraph IR
    nas.cost(graph)                   # Cost(params=..., flops=...)
    model = nas.build(graph)          # torch.nn.Module
"""

from nas.cost import Cost, cost
from nas.ir import GraphError, LayerGraph, Node


def build(graph: LayerGraph):  # noqa: ANN201 - torch is imported lazily to keep the CLI fast
    """LayerGraph -> torch.nn.Module (see ``nas.module.build``)."""
    from nas.module import build as _build

    return _build(graph)


def compile(cfg):  # noqa: A001 - the name the design uses
    """ArchConfig -> LayerGraph (see ``search_spaces.compile_config``)."""
    from search_spaces import compile_config

    return compile_config(cfg)


def analyze(model, input_shape=(1, 3, 224, 224)):  # noqa: ANN001, ANN201
    """Params, FLOPs and gradient-path metrics of any ``torch.nn.Module`` (traced with torch.fx);
    the same object ``nas analyze --json`` prints."""
    from nas.fx import analyze as _analyze

    return _analyze(model, input_shape)


def show(spec, img_size=None):  # noqa: ANN001, ANN201
    """Params, FLOPs, per-stage summary and metrics of a preset/YAML/ArchConfig (``nas show``)."""
    from nas.api import show as _show

    return _show(spec, img_size)


def load_config(spec):
    """A preset name or YAML path -> validated ArchConfig."""
    from search_spaces import load_config as _load

    return _load(spec)


__all__ = ["Cost", "GraphError", "LayerGraph", "Node", "analyze", "build", "compile", "cost", "load_config", "show"]
