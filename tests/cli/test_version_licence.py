"""`nas --version` names the installed distribution; the licence is a file and in its metadata."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib.metadata import metadata, version
from pathlib import Path

import pytest

from nas.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_version_is_the_installed_distributions(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"nas {version('gradpath-nas')}"


def test_version_agrees_with_pyproject_through_the_entry_point():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    out = subprocess.run([sys.executable, "-m", "nas.cli", "--version"], capture_output=True, text=True, timeout=120)
    assert (out.returncode, out.stdout.strip()) == (0, f"nas {declared}")


def test_licence_file_and_metadata_agree():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License")
    assert tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["license"] == "MIT"
    assert metadata("gradpath-nas")["License-Expression"] == "MIT"  # what `pip show` prints
