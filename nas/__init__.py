"""gradpath-nas: neural architecture search guided by gradient-path analysis.

The public API; each CLI subcommand is a thin shell over one of these (docs/architecture.md):

>>> import nas
>>> cfg = nas.load_config("yolor-elan-2-1")    # preset name or YAML path -> ArchConfig
>>> graph = nas.compile(cfg)                   # the LayerGraph IR
>>> nas.cost(graph)
Cost(params=50414111, flops=111085977600)
>>> model = nas.build(graph)                   # torch.nn.Module; forward returns [P3, P4, P5]
>>> nas.show("darknet53")["max_shortest_gradient_path"]
7

``nas.analyze(model, input_shape)`` gives the same for any ``torch.nn.Module``;
``nas.train(cfg, nas.Recipe(...))`` trains it on the proxy task; ``nas.search(nas.SearchOptions(
budget=nas.parse_flops("150GFLOPs")))`` runs the two-stage search, ``nas.export(run_dir)``
writes its chosen config. Heavy parts (torch, optuna, Ray) load on first use, so ``import nas``
stays cheap.
"""

from __future__ import annotations

from typing import Any

from nas.core.cost import Cost, cost, parse_flops
from nas.core.errors import GradpathError
from nas.core.ir import GraphError, LayerGraph, Node


def build(graph: LayerGraph) -> Any:
    """LayerGraph -> torch.nn.Module (:func:`nas.core.module.build`)."""
    from nas.core.module import build as _build

    return _build(graph)


def compile(cfg: Any) -> LayerGraph:  # noqa: A001 - the name the design uses
    """ArchConfig -> LayerGraph (:func:`search_spaces.compile_config`)."""
    from search_spaces import compile_config

    return compile_config(cfg)


def load_config(spec: Any) -> Any:
    """A preset name or YAML path -> validated ArchConfig (:func:`search_spaces.load_config`)."""
    from search_spaces import load_config as _load

    return _load(spec)


def analyze(model: Any, input_shape: tuple[int, ...] = (1, 3, 224, 224)) -> dict[str, Any]:
    """Params, FLOPs and gradient-path metrics of any ``torch.nn.Module`` (captured with
    torch.fx); the same object ``nas analyze --json`` prints."""
    from nas.core.fx import analyze as _analyze

    return _analyze(model, input_shape)


def show(spec: Any, img_size: int | None = None) -> dict[str, Any]:
    """Params, FLOPs, per-stage summary and metrics of a preset/YAML/ArchConfig (``nas show``)."""
    from nas.api import show as _show

    return _show(spec, img_size)


def train(cfg: Any, recipe: Any = None, **runtime: Any) -> dict[str, Any]:
    """Train a preset/YAML/ArchConfig on the proxy task (``nas train``;
    :func:`evaluators.train.train_from_config`)."""
    from evaluators.recipe import DEFAULT
    from evaluators.train import train_from_config

    return train_from_config(cfg, recipe or DEFAULT, **runtime)


def search(opts: Any, progress: bool = True) -> dict[str, Any]:
    """Run or resume a two-stage search (``nas search``; :func:`nas.engine.driver.search`)."""
    from nas.engine import search as _search

    return _search(opts, progress=progress)


def export(run_dir: Any, out: Any = "arch.yaml", **kwargs: Any) -> dict[str, Any]:
    """Write a search's chosen trial as an ArchConfig YAML (``nas export``; :func:`nas.engine.export.export`)."""
    from nas.engine.export import export as _export

    return _export(run_dir, out, **kwargs)


def report(run_dir: Any, out: Any = None) -> dict[str, Any]:
    """Write a search's ``report.html`` (``nas report``; :func:`nas.engine.view.write_report`)."""
    from nas.engine.view import write_report

    return write_report(run_dir, out=out)


def __getattr__(name: str) -> Any:
    # the option types of train/search, loaded on first use (PEP 562)
    if name == "Recipe":
        from evaluators.recipe import Recipe

        return Recipe
    if name == "SearchOptions":
        from nas.engine import SearchOptions

        return SearchOptions
    raise AttributeError(f"module 'nas' has no attribute {name!r}")


__all__ = [
    "Cost",
    "GradpathError",
    "GraphError",
    "LayerGraph",
    "Node",
    "Recipe",
    "SearchOptions",
    "analyze",
    "build",
    "compile",
    "cost",
    "export",
    "load_config",
    "parse_flops",
    "report",
    "search",
    "show",
    "train",
]
