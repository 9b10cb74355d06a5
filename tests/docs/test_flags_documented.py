"""Every flag of every ``nas`` subcommand is documented, and every flag the docs give exists.

The flags are read from the argparse parser itself (``nas.cli.build_parser``), so a new flag
without a row in its subcommand's flag table (under a heading "Flags of `nas SUB`" in README.md
or docs/) fails here, as does a row or a ``nas SUB --flag`` command line naming a flag that is
gone. Flags of other tools (``pytest -m``, ``python -m benchmarks.X --shard``, ``pip install
-e``) are not ``nas`` command lines and are not checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from nas.cli import build_parser
from tests.support.doccheck import check_flag_tables, check_flags, commands, doc_files, documented_options

ROOT = Path(__file__).resolve().parents[2]
DOCS = doc_files(ROOT)


@pytest.fixture(scope="module")
def parser():
    return build_parser()


def test_the_parser_is_read_whole(parser):
    options = documented_options(parser)
    assert set(options) == {"show", "analyze", "train", "search", "export", "dashboard", "latency", "report"}
    assert options["search"]["--candidates"] == 20000 and "--out" in options["export"]
    assert "--runs-dir" not in options["search"] and "--help" not in options["show"]  # hidden, and argparse's own


def test_every_flag_is_in_its_subcommands_flag_table_and_every_row_exists(parser):
    assert check_flag_tables(DOCS, parser) == []


def test_the_top_level_flags_are_named():
    named = {cmd.split()[1] for path in DOCS for _, cmd in commands(path) if cmd.split()[1].startswith("--")}
    assert "--version" in named


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_flag_a_nas_command_line_names_exists(path, parser):
    assert check_flags(path, parser) == []


# -- the check catches each break --------------------------------------------------------------
TABLE = """# Page

### Flags of `nas dashboard`

| flag | default | what it does |
|---|---|---|
| `--port` | `8080` | the port |
| `--host` | `127.0.0.1` | the address |
| `--allow-edit` | off | let viewers edit |

Text after the table, `--not-a-row`.
"""


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("| `--allow-edit` | off | let viewers edit |\n", "", "`nas dashboard --allow-edit` is in no flag table"),
        ("`--host`", "`--hots`", "nas dashboard has no option --hots"),
        ("`8080`", "`80`", "the default cell does not say 8080"),
        ("`nas dashboard`", "`nas dashbord`", "no such subcommand"),
    ],
)
def test_a_break_is_reported(tmp_path, parser, old, new, needle):
    page = tmp_path / "page.md"
    page.write_text(TABLE, encoding="utf-8")
    ok = [p for p in check_flag_tables([page], parser) if "nas dashboard" in p and "no flag table" in p]
    assert ok == []
    page.write_text(TABLE.replace(old, new, 1), encoding="utf-8")
    problems = [p for p in check_flag_tables([page], parser) if "nas dashboard" in p or "dashbord" in p]
    assert any(needle in p for p in problems), problems
