"""Every human-readable table of ``nas`` stays aligned however long a design string is, and shows
figures rounded to what they mean (``--json`` keeps the exact values)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nas.cli import main
from nas.cli.train import _table as train_table
from nas.engine.driver import format_picks
from nas.engine.record.report import format_front

LONG_STAGE = {"block": "csp", "split_ratio": 0.25, "fusion": "none", "repeats": 0.5, "width": 0.75}
LONG_CONFIG = f"""schema: 2
family: yolor
img_size: 640
num_classes: 80
width: 1.0
depth: 1.0
backbone:
  stages:
  - {json.dumps(LONG_STAGE)}
  - {{block: prn, mask_fraction: 0.25, repeats: 1.5, width: 1.25}}
  - {{block: elan, split_ratio: 0.75, elan_stack: 4, repeats: 0.5, width: 0.75}}
  - {{block: res}}
  - {json.dumps(LONG_STAGE)}
neck: {{nodes: [{json.dumps(LONG_STAGE)}, {{block: res}}, {{block: elan, elan_stack: 3}}, {{block: prn}}, {{block: res}}]}}
"""


def cells(line: str) -> list[tuple[int, int]]:
    """(start, end) of each cell: runs of text separated by two or more blanks."""
    return [m.span() for m in re.finditer(r"\S+(?: \S+)*", line)]


def assert_aligned(lines: list[str]) -> None:
    """An independent reading of alignment: every cell of every row starts where one header
    label starts (left-aligned column) or ends where one ends (right-aligned column), and the
    cells of a row sit in distinct columns, left to right."""
    header, rows = cells(lines[0]), lines[1:]
    assert rows, "a table without rows"
    for line in rows:
        cols = []
        for start, end in cells(line):
            hits = [i for i, (hs, he) in enumerate(header) if start == hs or end == he]
            assert hits, f"cell {line[start:end]!r} is under no column:\n{lines[0]}\n{line}"
            cols.append(hits[0])
        assert cols == sorted(set(cols)), f"cells out of their columns:\n{lines[0]}\n{line}"


def table_after(out: str, header_start: str, stop: str | None = None) -> list[str]:
    lines = out.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(header_start))
    j = next((k for k in range(i + 1, len(lines)) if stop and lines[k].startswith(stop)), len(lines))
    return lines[i:j]


def _write(tmp_path_factory, name: str, text: str) -> Path:
    p = tmp_path_factory.mktemp("tables") / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def long_yaml(tmp_path_factory) -> Path:
    return _write(tmp_path_factory, "long.yaml", LONG_CONFIG)


def test_show_stage_table_with_long_designs(long_yaml, capsys):
    assert main(["show", str(long_yaml)]) == 0
    out = capsys.readouterr().out
    table = table_after(out, "stage")
    assert any("csp r=0.25,none x0.5 repeats x0.75 width" in line for line in table)
    assert max(len(line) for line in table) > 80  # the design column did widen
    assert_aligned(table)


def test_show_rounds_ratios_and_json_keeps_them(long_yaml, capsys):
    assert main(["show", str(long_yaml)]) == 0
    out = capsys.readouterr().out
    ratio = re.search(r"dup grad ratio: (\S+)", out).group(1)
    assert re.fullmatch(r"\d\.\d{3}", ratio)
    assert main(["show", str(long_yaml), "--json"]) == 0
    exact = json.loads(capsys.readouterr().out)["duplicate_gradient_ratio"]
    assert isinstance(exact, float) and f"{exact:.3f}" == ratio


def test_show_all_table(capsys):
    assert main(["show", "--all"]) == 0
    assert_aligned(capsys.readouterr().out.splitlines())


MODELS = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a_rather_long_stem_name_for_a_convolution = nn.Conv2d(3, 8, 3, padding=1)
        self.blocks = nn.Sequential(*[nn.Conv2d(8, 8, 3, padding=1) for _ in range(3)])
        self.x = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        y = self.a_rather_long_stem_name_for_a_convolution(x)
        return self.x(self.blocks(y) + y)

def net():
    return Net()

def a_factory_with_a_long_name_for_comparison():
    return Net()
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return _write(tmp_path_factory, "m.py", MODELS)


def test_analyze_tables(models, capsys):
    assert main(["analyze", f"{models}:net", "--input-shape", "1,3,32,32"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"duplicate gradient ratio: \d\.\d{3}\n", out)
    assert_aligned(table_after(out, "layer", stop="* = "))
    assert_aligned(table_after(out, "stage"))


def test_analyze_comparison_table(models, capsys):
    args = [f"{models}:net", f"{models}:a_factory_with_a_long_name_for_comparison"]
    assert main(["analyze", *args, "--input-shape", "1,3,32,32"]) == 0
    assert_aligned(table_after(capsys.readouterr().out, "model"))


def test_train_table():
    history = [
        {"epoch": e, "loss": 12.3456789 / e, "AP": 0.1 * e, "AP50": None, "epoch_time_s": 1234.5678} for e in (1, 2, 10)
    ]
    result = {"history": history, "status": "ok", "wall_time_s": 1.0, "images_per_s": 2.0, "out_dir": "x"}
    assert_aligned(train_table(result).splitlines()[:-1])


def _part(blocks: list[str]) -> dict:
    return {"stages": [{"block": b} for b in blocks]}


@pytest.mark.parametrize("latency", [False, True])
def test_search_front_table(latency):
    trials = []
    for n, (bb, neck) in enumerate(
        [
            (_part(["res", "prn", "csp", "elan", "res"]), {"block": "csp", "split_ratio": 0.25, "fusion": "none"}),
            ({"block": "res"}, _part(["elan", "elan", "prn", "res", "csp"])),
            ({"block": "prn", "mask_fraction": 0.25}, {"block": "res"}),
        ]
    ):
        row = {
            "trial": n * 7,
            "flops": (30 + 50 * n) * 1e9,
            "AP": 0.2 + 0.01 * n,
            "config": {"backbone": bb, "neck": neck},
        }
        if latency:
            row["latency_ms"] = 12.34 * 10**n
        trials.append(row)
    summary = {"trials": trials, "pareto": [0, 7, 14], "best_trial": 7}
    lines = format_front(summary).splitlines()
    assert_aligned(lines)
    assert lines[2].endswith("*") and "res,prn,csp,elan,res" in lines[1]


def test_search_picks_table():
    picks = [
        {
            "trial": 3,
            "score": 1.23456,
            "flops": 45.6e9,
            "params": 12.3e6,
            "pattern": "res/prn/csp/elan/res/res/res/res/res/prn",
        },
        {"trial": 1234, "score": -0.5, "flops": 149.9e9, "params": 75.9e6, "pattern": "/".join(["elan"] * 10)},
    ]
    assert_aligned(format_picks(picks).splitlines())
