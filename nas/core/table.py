"""Plain-text tables, the one way every human-readable table of ``nas`` is laid out (the CLI's
subcommands and the summaries a search prints): each column as wide as its widest cell, so a
long design string widens its column instead of pushing the rest out of line.

>>> print(format_table(["stage", "FLOPs"], [["backbone.s1", "1.20G"], ["neck.n5", "13.45G"]], "<>"))
stage         FLOPs
backbone.s1   1.20G
neck.n5      13.45G
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

#: the gap between two columns: wide enough that a cell holding one space reads as one cell
GAP = "  "


def format_table(header: Sequence[str] | None, rows: Iterable[Sequence[object]], align: str) -> str:
    """The rows (and header, unless ``None``) as aligned lines; ``align`` has one ``<`` (left) or
    ``>`` (right) per column. Cells are ``str()``-ed; trailing blanks are dropped."""
    body = [[str(c) for c in r] for r in rows]
    lines = ([list(header)] if header is not None else []) + body
    if any(len(r) != len(align) for r in lines) or set(align) - {"<", ">"}:
        raise ValueError(f"format_table: align {align!r} does not fit rows of {sorted({len(r) for r in lines})} cells")
    widths = [max((len(r[i]) for r in lines), default=0) for i in range(len(align))]
    return "\n".join(
        GAP.join(c.ljust(w) if a == "<" else c.rjust(w) for c, w, a in zip(r, widths, align, strict=True)).rstrip()
        for r in lines
    )
