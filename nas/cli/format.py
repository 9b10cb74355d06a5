"""Formatting shared by the subcommands: numbers as the tables show them (rounded to what they
mean), tables laid out by :func:`format_table`, JSON as ``--json`` prints it (unrounded).

>>> fmt_int(41609928), fmt_flops(18.57e9), fmt_ratio(0.06494992846924177), fmt_count(2563519)
('41.61M', '18.57G', '0.065', '2,563,519')
"""

from __future__ import annotations

import json
import sys
from typing import Any

from nas.core.table import format_table

__all__ = [
    "METRIC_COLUMNS",
    "fmt_count",
    "fmt_flops",
    "fmt_int",
    "fmt_metric",
    "fmt_ratio",
    "format_table",
    "print_json",
]

#: network-level metrics shown as table columns: (key, header)
METRIC_COLUMNS = (
    ("max_shortest_gradient_path", "max SGP"),
    ("longest_gradient_path", "LGP"),
    ("gradient_combinations", "grad comb"),
)


def fmt_int(n: float) -> str:
    return f"{n / 1e6:.2f}M"


def fmt_flops(n: float) -> str:
    return f"{n / 1e9:.2f}G"


def fmt_ratio(x: float) -> str:
    """A share of channels (duplicate ratio, overlap): three decimals, one channel in a thousand."""
    return f"{x:.3f}"


def fmt_count(n: int) -> str:
    """A count (gradient combinations): every digit, grouped."""
    return f"{n:,}"


def fmt_metric(v: Any) -> str:
    """A gradient-path metric as a table shows it: ratios rounded, counts grouped, ``-`` for none."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return fmt_ratio(v)
    return fmt_count(v) if isinstance(v, int) and abs(v) >= 10_000 else str(v)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")
