"""Formatting shared by the subcommands: numbers as the tables show them, JSON as ``--json`` prints it.

>>> fmt_int(41609928), fmt_flops(18.57e9)
('41.61M', '18.57G')
"""

from __future__ import annotations

import json
import sys
from typing import Any

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


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")
