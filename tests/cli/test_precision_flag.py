"""``--precision`` of ``nas train`` and ``nas search`` reaches the recipe; a bad value is one line, exit 2."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from evaluators.recipe import DEFAULT
from nas.cli.search import add_search_parsers
from nas.cli.train import add_train_parser, recipe_of


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nas")
    sub = parser.add_subparsers(dest="command")
    add_train_parser(sub)
    add_search_parsers(sub)
    return parser


def test_precision_flag_reaches_the_recipe() -> None:
    parser = _parser()
    assert recipe_of(parser.parse_args(["train", "yolor-elan-2-1"])).precision == DEFAULT.precision == "auto"
    assert recipe_of(parser.parse_args(["train", "yolor-elan-2-1", "--precision", "bf16"])).precision == "bf16"
    assert parser.parse_args(["search", "--budget", "45G", "--precision", "fp32"]).precision == "fp32"


@pytest.mark.parametrize("command", [["train", "yolor-elan-2-1"], ["search", "--budget", "45G", "--name", "p"]])
def test_bad_precision_is_one_line_exit_2(command: list[str], tmp_path: object) -> None:
    args = [*command, "--precision", "fp16"]
    if command[0] == "search":
        args += ["--runs-dir", str(tmp_path)]
    proc = subprocess.run([sys.executable, "-m", "nas.cli", *args], capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "--precision: 'fp16' is not accepted; accepted: auto, fp32, bf16" in lines[0]
