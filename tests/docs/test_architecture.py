"""docs/architecture.md matches the code: every package and module of the repository (the
product's three packages and the benchmarks) has a line there, and every file the page names
exists. Adding a module without saying where it sits in the layers fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "architecture.md"
FOLDERS = ("nas", "search_spaces", "evaluators", "benchmarks")


def modules(root: Path = ROOT) -> set[str]:
    """Every ``.py`` file of the documented folders, as a path relative to ``root``."""
    return {p.relative_to(root).as_posix() for f in FOLDERS for p in (root / f).rglob("*.py")}


def named_files(text: str) -> set[str]:
    """The ``.py`` paths the page names in backticks."""
    pattern = "`((?:" + "|".join(FOLDERS) + r")/[\w/]*\.py)`"
    return set(re.findall(pattern, text))


def missing_and_stale(root: Path, text: str) -> tuple[set[str], set[str]]:
    have, named = modules(root), named_files(text)
    return have - named, named - have


def test_every_module_has_a_line_and_every_named_file_exists() -> None:
    missing, stale = missing_and_stale(ROOT, PAGE.read_text(encoding="utf-8"))
    assert not missing, f"modules with no line in docs/architecture.md: {sorted(missing)}"
    assert not stale, f"docs/architecture.md names files that do not exist: {sorted(stale)}"


def test_the_check_catches_a_new_module_and_a_stale_line(tmp_path: Path) -> None:
    (tmp_path / "nas" / "engine").mkdir(parents=True)
    (tmp_path / "nas" / "engine" / "driver.py").write_text("")
    (tmp_path / "nas" / "engine" / "new_stage.py").write_text("")
    text = "| `nas/engine/driver.py` | the driver |\n| `nas/engine/gone.py` | was here |\n"
    assert missing_and_stale(tmp_path, text) == ({"nas/engine/new_stage.py"}, {"nas/engine/gone.py"})


def test_every_sub_package_of_the_engine_has_its_layer_in_the_table() -> None:
    text = PAGE.read_text(encoding="utf-8")
    subs = sorted(p.name for p in (ROOT / "nas" / "engine").iterdir() if (p / "__init__.py").is_file())
    assert subs, "the engine has sub-packages"
    for sub in subs:
        assert re.search(rf"^\| 3\.\d \| [^|]*`nas\.engine\.{sub}`", text, re.M), sub
