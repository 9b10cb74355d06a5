"""Checks of the Markdown docs (README.md, docs/*.md), so a link, an example or a flag cannot rot:

- every relative link and ``#anchor`` resolves (anchors as GitHub slugs its headings);
- every ``pycon`` block runs as a doctest (the marker of a runnable example; ``python`` blocks
  are shown, not run);
- every ``--flag`` written after ``nas SUBCOMMAND`` in a code span or block exists in that
  subcommand's argparse parser;
- every flag table (a table under a heading "Flags of `nas SUBCOMMAND`") lists exactly the
  subcommand's flags, each with the parser's default;
- a glossary term is linked to its entry in docs/glossary.md where a page first uses it.

Each check returns a list of problems (``file:line: what``); empty means fine.
"""

from __future__ import annotations

import argparse
import doctest
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Block:
    """A fenced code block: its info string, its text and the line its first text line is on."""

    lang: str
    text: str
    line: int


_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")


def split_blocks(text: str) -> tuple[list[Block], str]:
    """The fenced blocks of a Markdown text, and the text with each block's lines blanked (so
    line numbers in the rest stay right)."""
    blocks: list[Block] = []
    prose: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            prose.append(lines[i])
            i += 1
            continue
        fence, lang, start = m.group(2), m.group(3).strip(), i + 1
        j = start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        blocks.append(Block(lang, "\n".join(lines[start:j]), start + 1))
        prose.extend([""] * (j + 1 - i))
        i = j + 1
    return blocks, "\n".join(prose[: len(lines)])


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: the rendered text lower-cased, everything but letters,
    digits, ``_``, ``-`` and spaces dropped, spaces made hyphens.

    >>> slug("torch.fx front end (`nas analyze`)")
    'torchfx-front-end-nas-analyze'
    >>> slug("The paper's claims at equal FLOPs (`benchmarks/paper_ablation.py --match-flops`)")
    'the-papers-claims-at-equal-flops-benchmarkspaper_ablationpy---match-flops'
    """
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.replace("`", "").replace("*", "").strip().lower()
    keep = (c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LNM")
    return "".join(keep).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor in a Markdown text (repeats get ``-1``, ``-2`` as on GitHub)."""
    _, prose = split_blocks(text)
    seen: dict[str, int] = {}
    out = set()
    for line in prose.split("\n"):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        s = slug(m.group(1))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _code_spans_removed(prose: str) -> str:
    """Inline code blanked (a ``[x](y)`` inside backticks is not a link); newlines kept."""
    return re.sub(r"`[^`]*`", lambda m: re.sub(r"[^\n]", " ", m.group(0)), prose)


def check_links(path: Path) -> list[str]:
    """Relative links that point at no file, and ``#anchors`` that name no heading."""
    text = path.read_text(encoding="utf-8")
    _, prose = split_blocks(text)
    prose = _code_spans_removed(prose)
    problems = []
    for m in _LINK.finditer(prose):
        target = m.group(1)
        line = prose.count("\n", 0, m.start()) + 1
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{path}:{line}: link to {target}: no such file {file_part}")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
            problems.append(f"{path}:{line}: link to {target}: {dest.name} has no heading #{anchor}")
    return problems


class _Runner(doctest.DocTestRunner):
    """A doctest runner that keeps one short line per failing example."""

    def __init__(self) -> None:
        super().__init__(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
        self.problems: list[tuple[int, str]] = []

    def report_failure(self, out, test, example, got):  # noqa: ANN001
        want = " ".join(example.want.split())
        self.problems.append(
            (
                test.lineno + example.lineno,
                f"{example.source.strip()!r} printed {' '.join(got.split())!r}, not {want!r}",
            )
        )

    def report_unexpected_exception(self, out, test, example, exc_info):  # noqa: ANN001
        err = f"{exc_info[0].__name__}: {exc_info[1]}".split("\n")[0]
        self.problems.append((test.lineno + example.lineno, f"{example.source.strip()!r} raised {err}"))


def check_examples(path: Path) -> list[str]:
    """Run the file's ``pycon`` blocks as doctests, in order, sharing one namespace."""
    blocks, _ = split_blocks(path.read_text(encoding="utf-8"))
    parser, runner = doctest.DocTestParser(), _Runner()
    globs: dict = {"__name__": f"doc:{path.name}"}
    for b in blocks:
        if b.lang.split()[:1] == ["pycon"]:
            test = parser.get_doctest(b.text, globs, f"{path.name}:{b.line}", str(path), b.line - 1)
            runner.run(test, out=lambda _: None, clear_globs=False)
    return [f"{path}:{line + 1}: example fails: {what}" for line, what in runner.problems]


def parser_options(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    """``{"": top-level flags, "search": its flags, …}`` read from a built parser."""
    opts = {"": {o for a in parser._actions for o in a.option_strings}}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                opts[name] = {o for a in sub._actions for o in a.option_strings}
    return opts


#: a ``nas`` command: at the start of a block line or a code span, after ``$`` or ``VAR=value``
_NAS = re.compile(r"^\s*(?:\$\s+)?(?:[A-Z_]+=\S*\s+)*nas\s+(--?[a-z][\w-]*|[a-z][\w-]*)")


def commands(path: Path) -> Iterable[tuple[int, str]]:
    """``(line, "nas SUB …")`` for each ``nas`` command in code blocks (continuation lines
    joined) and in inline code spans (which may wrap); ``sudo -u postgres createdb -O nas nas``
    is not one."""
    text = path.read_text(encoding="utf-8")
    blocks, prose = split_blocks(text)
    for b in blocks:
        if b.lang.split()[:1] not in ([], ["sh"], ["bash"], ["console"], ["shell"]):
            continue
        lines = b.text.split("\n")
        for i, line in enumerate(lines):
            if not _NAS.match(line):
                continue
            cmd = line
            k = i + 1
            while k < len(lines) and (cmd.rstrip().endswith("\\") or re.match(r"^\s+[\[-]", lines[k])):
                cmd = cmd.rstrip().rstrip("\\") + " " + lines[k].strip()
                k += 1
            yield b.line + i, cmd
    for m in re.finditer(r"`([^`]+)`", prose):
        if _NAS.match(m.group(1)):
            yield prose.count("\n", 0, m.start()) + 1, " ".join(m.group(1).split())


def check_flags(path: Path, parser: argparse.ArgumentParser) -> list[str]:
    """Flags written after ``nas SUB`` that SUB's parser does not define."""
    known = parser_options(parser)
    problems = []
    for line, cmd in commands(path):
        m = _NAS.match(cmd)
        if m is None:
            continue
        sub = m.group(1)
        rest = cmd[m.start(1) :] if sub.startswith("-") else cmd[m.end(1) :]
        sub = "" if sub.startswith("-") else sub
        if sub not in known:
            problems.append(f"{path}:{line}: `nas {sub}`: no such subcommand")
            continue
        rest = re.split(r"\s#\s|\s#$|;|&&|\|\|", rest)[0]
        for flag in re.findall(r"(?<![\w-])(--[a-z][\w-]*)", rest):
            if flag not in known[sub]:
                where = f"nas {sub}" if sub else "nas"
                problems.append(f"{path}:{line}: `{where} {flag}`: {where} has no option {flag}")
    return problems


def documented_options(parser: argparse.ArgumentParser) -> dict[str, dict[str, object]]:
    """``{"search": {"--budget": default, …}, …}``: each subcommand's flags a user is meant to
    see (its long form; not ``--help``, not those hidden with ``help=SUPPRESS``), read from the
    parser itself, with their defaults."""
    out: dict[str, dict[str, object]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[name] = {
                    max(a.option_strings, key=len): a.default
                    for a in sub._actions
                    if a.option_strings and a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)
                }
    return out


@dataclass(frozen=True)
class FlagRow:
    """One row of a flag table: the subcommand, the flags its first cell names, its default cell."""

    sub: str
    flags: tuple[str, ...]
    default: str
    line: int


_FLAG_HEADING = re.compile(r"^#{2,6}\s+Flags of `nas ([a-z][\w-]*)`")


def flag_tables(path: Path) -> list[FlagRow]:
    """The rows of the flag tables of a page: the table right under each "Flags of `nas SUB`"
    heading; a row's first cell names its flags in code spans (`-o`, `--out`), the second is
    the default."""
    _, prose = split_blocks(path.read_text(encoding="utf-8"))
    rows: list[FlagRow] = []
    sub, in_table = None, False
    for n, line in enumerate(prose.split("\n"), 1):
        m = _FLAG_HEADING.match(line)
        if m or line.startswith("#"):
            sub, in_table = (m.group(1) if m else None), False
            continue
        if sub is None:
            continue
        if line.startswith("|"):
            in_table = True
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            flags = tuple(
                f for span in re.findall(r"`([^`]+)`", cells[0]) for f in re.findall(r"^--?[a-z][\w-]*", span)
            )
            if flags:
                rows.append(FlagRow(sub, flags, cells[1] if len(cells) > 1 else "", n))
        elif in_table:  # the table ended
            sub, in_table = None, False
    return rows


def check_flag_tables(paths: Iterable[Path], parser: argparse.ArgumentParser) -> list[str]:
    """Both directions, per subcommand: every flag of the parser is a row of a flag table, with
    the parser's default in its default cell (when it has one), and every row's flag exists."""
    options = documented_options(parser)
    known = parser_options(parser)
    problems: list[str] = []
    seen: dict[str, set[str]] = {}
    for path in paths:
        for row in flag_tables(path):
            if row.sub not in known:
                problems.append(f"{path}:{row.line}: flag table of `nas {row.sub}`: no such subcommand")
                continue
            for flag in row.flags:
                if flag not in known[row.sub]:
                    problems.append(f"{path}:{row.line}: `nas {row.sub} {flag}`: nas {row.sub} has no option {flag}")
                default = options[row.sub].get(flag)
                if default not in (None, False) and str(default) not in row.default:
                    problems.append(
                        f"{path}:{row.line}: `nas {row.sub} {flag}`: the default cell does not say {default}"
                    )
            seen.setdefault(row.sub, set()).update(row.flags)
    for sub, flags in options.items():
        for flag in sorted(set(flags) - seen.get(sub, set())):
            problems.append(f"`nas {sub} {flag}` is in no flag table (a table under '### Flags of `nas {sub}`')")
    return problems


_ANY_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\([^)]*\)")


def _blocks_blanked(text: str) -> str:
    """The text with each fenced block's lines (fences included) blanked character by character:
    offsets into the result are offsets into ``text``."""
    out, fence = [], None
    for line in text.split("\n"):
        m = _FENCE.match(line)
        if fence is None and m:
            fence = m.group(2)
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is None:
            out.append(line)
            continue
        out.append(" " * len(line))
    return "\n".join(out)


def plain_prose(text: str) -> str:
    """The text with everything that is not plain prose blanked, offsets kept: fenced blocks,
    code spans, headings, links (their text too: it is already a link) and bare URLs."""
    prose = _code_spans_removed(_blocks_blanked(text))
    blank = lambda m: re.sub(r"[^\n]", " ", m.group(0))  # noqa: E731
    prose = re.sub(r"(?m)^#{1,6}\s.*$", blank, prose)
    prose = _ANY_LINK.sub(blank, prose)
    return re.sub(r"<?https?://\S+", blank, prose)


def glossary_links(text: str, target: str) -> dict[str, int]:
    """``{anchor: offset of the first link to target#anchor}`` in a Markdown text (code aside)."""
    prose = _code_spans_removed(_blocks_blanked(text))
    out: dict[str, int] = {}
    for m in _LINK.finditer(prose):
        file_part, _, anchor = m.group(1).partition("#")
        if file_part == target and anchor:
            out.setdefault(anchor, m.start())
    return out


def check_glossary(path: Path, terms: dict[str, str], target: str) -> list[str]:
    """Each term (``anchor: regex``) a page uses in plain prose is linked to ``target#anchor`` at
    or before its first plain use."""
    text = path.read_text(encoding="utf-8")
    prose, links = plain_prose(text), glossary_links(text, target)
    problems = []
    for anchor, pattern in terms.items():
        m = re.search(pattern, prose)
        if m is not None and links.get(anchor, len(text)) > m.start():
            line = text.count("\n", 0, m.start()) + 1
            problems.append(f"{path}:{line}: {m.group(0)!r} is not linked to {target}#{anchor} where it first appears")
    return problems


def doc_files(root: Path) -> list[Path]:
    """README.md and every docs/*.md of a checkout."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]
