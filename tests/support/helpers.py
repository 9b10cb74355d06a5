"""Helpers shared by the end-to-end tests (imported as ``helpers``: pytest puts tests/ on the path)."""

from __future__ import annotations

import sys
from pathlib import Path


def tiny_search(epochs: int = 2, images: int = 32, seeds: int = 1) -> list[str]:
    """The smallest search the end-to-end tests run: a few cheap candidates, two picks trained
    ``seeds`` times for ``epochs`` on ``images`` tiny images (``--images`` onward are also ``nas
    train``'s). One seed unless a test is about the seeds: the default's 2 double every training."""
    cheap = ["--candidates", "120", "--trials", "2", "--epochs", str(epochs)]
    return [*cheap, "--images", str(images), "--val-images", "16", "--img-size", "64", "--seeds", str(seeds)]


TINY = tiny_search()


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


#: The network-level gradient-path metrics, in the documented order of ``to_dict()`` and of the
#: ``nas analyze`` / ``nas show --json`` output (docs/metrics.md): one pin for every schema test.
METRIC_KEYS = [
    "max_shortest_gradient_path",
    "longest_gradient_path",
    "gradient_combinations",
    "distinct_gradient_combinations",
    "duplicate_gradient_ratio",
    "gradient_overlap",
]
