"""The README and docs/ are checked like code: links and anchors resolve, runnable examples run,
and every ``nas SUB --flag`` they name exists. Each check is also shown to catch a break."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.cli import build_parser
from tests.support.doccheck import anchors, check_examples, check_flags, check_links, doc_files

ROOT = Path(__file__).resolve().parents[2]
DOCS = doc_files(ROOT)


@pytest.fixture(scope="module")
def parser():
    return build_parser()


def test_the_docs_are_there():
    names = {p.name for p in DOCS}
    for name in ("README.md", "architecture.md", "metrics.md", "results.md", "search.md", "reliability.md"):
        assert name in names


def test_readme_is_short_and_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").split("\n")
    assert len(lines) <= 251  # `wc -l` <= 250: the text ends with one newline
    assert lines[2:6] == ["```sh", *lines[3:5], "```"]
    assert lines[3].startswith("make search ") and lines[4].startswith("make test ")


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_links_and_anchors_resolve(path):
    assert check_links(path) == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_cli_flags_named_in_the_docs_exist(path, parser):
    assert check_flags(path, parser) == []


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_runnable_examples_run(path):
    assert check_examples(path) == []


def test_the_readme_has_a_runnable_example():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "```pycon\n>>> import nas" in text


# -- each check fails on a break -------------------------------------------------------------
GOOD = """# Title

## A section (`nas show`)

See [the section](#a-section-nas-show), [the other page](other.md#its-heading) and
![a picture](other.md).

```sh
nas show --all --json      # every preset
nas search --budget 150G
    [--trials 4]
```

Run `nas train yolor-v3 --epochs
2` or `nas --version`.

```pycon
>>> 1 + 1
2
```
"""

BREAKS = {
    "missing file": ("[the other page](other.md#its-heading)", "[the other page](gone.md)", "no such file gone.md"),
    "missing anchor in another file": ("(other.md#its-heading)", "(other.md#no-such)", "has no heading #no-such"),
    "missing anchor in the same file": ("(#a-section-nas-show)", "(#a-section)", "has no heading #a-section"),
    "missing image": ("![a picture](other.md)", "![a picture](img/x.png)", "no such file img/x.png"),
    "flag in a block": ("nas show --all --json", "nas show --all --jsn", "nas show has no option --jsn"),
    "flag on a continuation line": ("[--trials 4]", "[--trails 4]", "nas search has no option --trails"),
    "flag in a wrapped code span": ("--epochs\n2`", "--epoch\n2`", "nas train has no option --epoch"),
    "top-level flag": ("`nas --version`", "`nas --versions`", "nas has no option --versions"),
    "subcommand": ("nas search --budget", "nas serch --budget", "`nas serch`: no such subcommand"),
    "example output": (">>> 1 + 1\n2", ">>> 1 + 1\n3", "example fails"),
    "example raises": (">>> 1 + 1\n2", ">>> nas.core.cost(None)\n2", "NameError"),
}


def _check(tmp_path: Path, text: str, parser) -> list[str]:
    (tmp_path / "other.md").write_text("# Other\n\n## Its heading\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(text, encoding="utf-8")
    return check_links(page) + check_flags(page, parser) + check_examples(page)


def test_a_correct_page_passes(tmp_path, parser):
    assert _check(tmp_path, GOOD, parser) == []


@pytest.mark.parametrize("kind", BREAKS)
def test_each_check_reports_a_break(tmp_path, parser, kind):
    old, new, needle = BREAKS[kind]
    assert old in GOOD
    problems = _check(tmp_path, GOOD.replace(old, new, 1), parser)
    assert len(problems) == 1, problems
    assert needle in problems[0]
    assert problems[0].startswith(f"{tmp_path / 'page.md'}:")


def test_links_inside_code_are_not_links(tmp_path, parser):
    assert _check(tmp_path, GOOD + "\n`[x](nowhere.md)`\n\n```\n[y](nowhere.md)\n```\n", parser) == []


def test_repeated_headings_get_numbered_anchors():
    assert anchors("# A\n\n## Notes\n\n## Notes\n\n```\n# not a heading\n```\n") == {"a", "notes", "notes-1"}
