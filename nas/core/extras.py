"""Importing a dependency that only some commands need, with one line that says what to install.

``nas latency`` without ONNX Runtime, ``nas export --onnx`` without onnx, ``--storage
postgresql://`` without psycopg: each ended in a ``ModuleNotFoundError`` traceback. Every such
late import goes through :func:`require`, which names what installs the module as a
:class:`MissingDependencyError` — a :class:`~nas.core.errors.GradpathError`, so the CLI prints
it as one ``error:`` line, exit 2. gradpath-nas is not published on PyPI, so the hint gives the
two installs that work: the extra from a checkout (``pip install -e ".[onnx]"``) or the extra's
packages by name, read from ``pyproject.toml``'s optional dependencies (the installed package's
metadata when there is no checkout). :data:`PROVIDERS` is the one table of which extra provides
which module; a test holds it equal to ``pyproject.toml``'s extras.

>>> require("json", "a doctest").__name__
'json'
"""

from __future__ import annotations

import importlib
import re
import tomllib
from importlib import metadata
from pathlib import Path
from types import ModuleType

from nas.core.errors import GradpathError

#: module -> (the distribution pip installs, the extra of gradpath-nas that brings it; None: a
#: dependency every install has, named so a broken install can be repaired)
PROVIDERS: dict[str, tuple[str, str | None]] = {
    "onnx": ("onnx", "onnx"),
    "onnxruntime": ("onnxruntime", "onnx"),
    "psycopg": ("psycopg", "postgres"),
    "optuna_dashboard": ("optuna-dashboard", None),
}


class MissingDependencyError(GradpathError):
    """A module the command needs is not installed (or cannot be imported)."""


def install_hint(module: str) -> str:
    """The pip commands that install ``module`` for this project."""
    dist, extra = PROVIDERS.get(module, (module, None))
    if extra is not None:
        packages = " ".join(f'"{r}"' for r in extra_requirements(extra))
        return f'pip install -e ".[{extra}]" in a checkout of gradpath-nas, or pip install {packages}'
    if module in PROVIDERS:
        return f'pip install "{dist}" (a dependency of gradpath-nas: this install lacks it)'
    return f'pip install "{dist}"'


def extra_requirements(extra: str) -> list[str]:
    """The requirements of one extra of gradpath-nas, as ``pyproject.toml`` lists them: read from
    the checkout's file, else from the installed package's metadata (built from that file), else
    the distributions :data:`PROVIDERS` names.

    >>> extra_requirements("onnx")
    ['onnx>=1.15', 'onnxruntime>=1.17']
    """
    try:
        project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text("utf-8"))["project"]
        if project.get("name") == "gradpath-nas":
            return list(project["optional-dependencies"][extra])
    except (OSError, UnicodeDecodeError, KeyError, TypeError, tomllib.TOMLDecodeError):
        pass
    try:
        listed = metadata.requires("gradpath-nas") or []
    except metadata.PackageNotFoundError:
        listed = []
    found = [r.split(";")[0].strip() for r in listed if re.search(rf"extra\s*==\s*['\"]{re.escape(extra)}['\"]", r)]
    return found or [dist for dist, e in PROVIDERS.values() if e == extra]


def require(module: str, needed_for: str) -> ModuleType:
    """``import module``, or one line naming what needs it and what to install. An ImportError
    raised while the module itself imports (a missing shared library) is the same problem."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        why = " ".join(str(e).split())[:160]
        raise MissingDependencyError(
            f"{needed_for} needs {PROVIDERS.get(module, (module,))[0]}, which cannot be imported ({why}); "
            f"accepted: install it with {install_hint(module)}"
        ) from None
