"""Importing a dependency that only some commands need, with one line that says what to install.

``nas latency`` without ONNX Runtime, ``nas export --onnx`` without onnx, ``--storage
postgresql://`` without psycopg: each ended in a ``ModuleNotFoundError`` traceback. Every such
late import goes through :func:`require`, which names the ``gradpath-nas`` extra that installs
the module (``pip install "gradpath-nas[onnx]"``) as a :class:`MissingDependencyError` — a
:class:`~nas.core.errors.GradpathError`, so the CLI prints it as one ``error:`` line, exit 2.
:data:`PROVIDERS` is the one table of which extra provides which module; a test holds it equal
to ``pyproject.toml``'s extras.

>>> require("json", "a doctest").__name__
'json'
"""

from __future__ import annotations

import importlib
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
    """The pip command that installs ``module`` for this project."""
    dist, extra = PROVIDERS.get(module, (module, None))
    if extra is not None:
        return f'pip install "gradpath-nas[{extra}]"'
    if module in PROVIDERS:
        return f'pip install "{dist}" (a dependency of gradpath-nas: this install lacks it)'
    return f'pip install "{dist}"'


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
