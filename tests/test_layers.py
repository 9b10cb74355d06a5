"""The layers of docs/architecture.md hold: every import (module level or inside a function)
points down, and no files import each other in a circle. Read from the source with ``ast``, so
an import hidden in a function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nas", "search_spaces", "evaluators")
#: (module prefix, layer): lower layers never import higher ones; the longest prefix wins. The
#: engine's sub-packages are layers of their own, in the order a search runs through them.
LAYERS = (
    ("nas.core", 0),
    ("search_spaces", 10),
    ("evaluators", 20),
    ("nas.engine.options", 30),  # what every stage reads: the options, the search's statistics,
    ("nas.engine.stats", 30),  # the latency model
    ("nas.engine.latency", 30),
    ("nas.engine.record", 31),  # the trial attributes, the storage, the report, the dashboard
    ("nas.engine.scores", 32),  # the registry, one candidate scored, calibration, features
    ("nas.engine.cheap", 33),  # the two stages, side by side: neither imports the other
    ("nas.engine.proxy", 33),
    ("nas.engine.view", 33),  # report.html: reads what the stages wrote, beside them
    ("nas.engine", 34),  # validate, driver, export, and the package's re-exports
    ("nas", 40),  # the facade: nas/__init__.py, nas/api.py
    ("nas.cli", 50),
    ("nas.__main__", 50),  # `python -m nas` is the CLI
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> int:
    best = max((p for p, _ in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return dict(LAYERS)[best]


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def imports(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports anywhere in its body (``from a import b`` counts as
    ``a.b`` when that is a module, else ``a``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module for a in node.names
            ]
        else:
            continue
        out |= {n for n in names if n.split(".")[0] in PACKAGES}
    return out


def import_graph() -> nx.DiGraph:
    mods = modules()
    g = nx.DiGraph()
    g.add_nodes_from(mods)
    for name, path in mods.items():
        for target in imports(path, set(mods)):
            while target not in mods and "." in target:  # an attribute of a module
                target = target.rsplit(".", 1)[0]
            if target in mods and target != name:
                g.add_edge(name, target)
    return g


def test_the_graph_sees_function_level_imports() -> None:
    g = import_graph()
    assert g.has_edge("nas.core.fx", "nas.core.summary")  # imported inside analyze()
    assert len(g) > 30 and g.number_of_edges() > 60


def test_no_import_points_up() -> None:
    up = [
        f"{a} (layer {layer(a)}) imports {b} (layer {layer(b)})" for a, b in import_graph().edges if layer(b) > layer(a)
    ]
    assert not up, "\n".join(up)


def test_the_two_stages_do_not_import_each_other() -> None:
    """The cheap and the proxy stage share a layer: what both need lives below them."""
    across = [
        (a, b)
        for a, b in import_graph().edges
        for x, y in (("nas.engine.cheap", "nas.engine.proxy"), ("nas.engine.proxy", "nas.engine.cheap"))
        if a.startswith(x) and b.startswith(y)
    ]
    assert not across, across


def test_every_engine_module_has_its_sub_layer() -> None:
    """A module added straight under nas/engine/ lands on the top layer unless it is named here."""
    top = {m for m in modules() if m.startswith("nas.engine") and layer(m) == 34}
    assert top == {"nas.engine", "nas.engine.validate", "nas.engine.driver", "nas.engine.export"}, top


def test_no_circle_of_files() -> None:
    g = import_graph()
    # a package's __init__ re-exporting its own modules is not a circle of files
    g.remove_edges_from([(a, b) for a, b in list(g.edges) if b.startswith(a + ".")])
    cycles = [c for c in nx.strongly_connected_components(g) if len(c) > 1]
    assert not cycles, cycles


@pytest.mark.parametrize("module", sorted(m for m in modules() if not m.endswith("__main__")))
def test_every_user_error_derives_from_gradpath_error(module: str) -> None:
    import importlib
    import inspect

    from nas.core.errors import GradpathError

    mod = importlib.import_module(module)
    errors = [
        obj
        for _, obj in inspect.getmembers(mod, inspect.isclass)
        if obj.__module__ == module and issubclass(obj, Exception) and obj.__name__.endswith("Error")
    ]
    assert all(issubclass(e, GradpathError) for e in errors), errors
