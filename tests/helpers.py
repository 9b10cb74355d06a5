"""Helpers shared by the end-to-end tests (imported as ``helpers``: pytest puts tests/ on the path)."""

from __future__ import annotations

import sys
from pathlib import Path


def search_cmd(runs_dir: Path, name: str, *extra: str, budget: str = "45G") -> list[str]:
    """``nas search`` as a subprocess command line, in this interpreter, writing under ``runs_dir``."""
    return [
        sys.executable,
        "-m",
        "nas.cli",
        "search",
        "--budget",
        budget,
        "--name",
        name,
        "--runs-dir",
        str(runs_dir),
        *extra,
    ]
