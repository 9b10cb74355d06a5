"""The real YOLOv7 / YOLOv9 model parsers, for checking ``nas export --format yolov7|yolov9``.

Neither repository is a package; PyPI's ``yolov7detect`` (1.0.1) and ``yolov9pip`` (0.0.4) package
them (their ``models/yolo.py`` and ``models/common.py`` are the repositories' code, only the imports
re-rooted and the lines re-wrapped). ``make setup`` installs them with ``--no-deps`` into
``.venv/yolo-repos`` (never into .venv itself: they require torchvision and another torch). Modules
their files import but model building never uses (cv2, torchvision, seaborn, …) get import-only
stand-ins here; ``parse_model``, ``Model`` and every module class under test are the real ones.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import logging
import os
import sys
import types
from copy import deepcopy
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

ROOT = Path(__file__).resolve().parents[2]
#: where ``make setup`` puts the two packages (NAS_YOLO_REPOS overrides)
TARGET = Path(os.environ.get("NAS_YOLO_REPOS", ROOT / ".venv" / "yolo-repos"))
_STUBS = frozenset(
    {
        "cv2",
        "torchvision",
        "seaborn",
        "thop",
        "albumentations",
        "wandb",
        "huggingface_hub",
        "git",
        "IPython",
        "psutil",
        "ultralytics",
        "pkg_resources",
    }
)


class _AnyAttr(type):
    """A stand-in class: any attribute is another stand-in class (``torchvision.datasets.ImageFolder``)."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _AnyAttr(name, (), {"__init__": lambda self, *a, **k: None})


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _AnyAttr(name, (), {"__init__": lambda self, *a, **k: None})


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports of the packages in ``_STUBS`` (absent from .venv) give import-only stand-ins."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        top = name.split(".")[0]
        if top not in _STUBS:
            return None
        if top != "pkg_resources" and importlib.machinery.PathFinder.find_spec(top) is not None:
            return None  # installed: the real one
        return importlib.machinery.ModuleSpec(name, self, is_package=True)

    def create_module(self, spec: Any) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []
        if spec.name == "pkg_resources":  # YOLOv9 compares versions with it
            from packaging.version import parse

            module.parse_version = parse
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def available() -> bool:
    return (TARGET / "yolov7" / "models" / "yolo.py").is_file() and (TARGET / "yolov9" / "models" / "yolo.py").is_file()


def load(flavour: str) -> types.ModuleType:
    """The real ``models/yolo.py`` of ``flavour`` (``yolov7`` or ``yolov9``). The stand-ins live
    only while it imports: left in ``sys.modules`` (an ``IPython`` stand-in, say) they would
    mislead other code of the same test session (Ray's logging looks for IPython)."""
    finder = _StubFinder()
    sys.meta_path.append(finder)  # last: a real package, where installed, wins
    if str(TARGET) not in sys.path:
        sys.path.append(str(TARGET))
    own_root = str(TARGET / "yolov9")
    if flavour == "yolov9":  # its files import ``models``/``utils`` from its own root, which must come first
        sys.path.insert(0, own_root)
    logging.getLogger("yolov7").setLevel(logging.WARNING)
    try:
        module = importlib.import_module(f"{flavour}.models.yolo")
    finally:
        sys.meta_path.remove(finder)
        if own_root in sys.path:
            sys.path.remove(own_root)
        for name in [n for n, m in sys.modules.items() if isinstance(m, _StubModule)]:
            del sys.modules[name]
    logging.disable(logging.NOTSET)
    for name in ("yolov5", "yolov7", "yolov9", "models", "utils", "general"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return module


def parse(flavour: str, text: str, device: str = "meta") -> nn.Sequential:
    """``parse_model`` of the real repository on the YAML ``text`` (on meta: no weights allocated)."""
    yolo = load(flavour)
    with torch.device(device):
        layers, _ = yolo.parse_model(deepcopy(yaml.safe_load(text)), ch=[3])
    return layers


class Body(nn.Module):
    """The first ``n`` rows of a parsed model run as ``Model.forward_once`` routes them (``m.f``), returning
    the features the head reads: the backbone + neck the export must reproduce exactly."""

    def __init__(self, layers: nn.Sequential, n: int) -> None:
        super().__init__()
        self.layers = layers[:n]
        self.head_from = list(layers[n].f)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        y: list[Any] = []
        for m in self.layers:
            if m.f != -1:
                x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
            x = m(x)
            y.append(x)
        return [y[j] for j in self.head_from]
