"""``nas analyze`` and the gradient-path metrics that ``nas show`` gains (nas/cli/analyze.py)."""

from __future__ import annotations

import doctest
import json
import textwrap
import time
from pathlib import Path

import pytest

import nas.cli.analyze
from nas.cli import main
from nas.core.errors import GradpathError
from nas.core.fx import TraceError, UnsupportedOpError
from nas.core.summary import summarize
from search_spaces import compile_config, load_config, preset_names
from tests.support.helpers import METRIC_KEYS

SCHEMA = ["model", "input_shape", "mode", "other_inputs", "params", "flops", *METRIC_KEYS, "layers"]
LAYER_KEYS = [
    "name",
    "shortest_gradient_path",
    "longest_gradient_path",
    "gradient_timestamps",
    "units",
    "channels",
    "flops",
]
UNIT_KEYS = ["channels", "gradient_timestamps", "gradient_sources", "gradient_combinations"]

MODELS = textwrap.dedent(
    """
    import dataclasses
    import torch
    from torch import nn

    import nas
    from search_spaces import load_config


    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv1 = nn.Conv2d(c, c, 3, padding=1)
            self.conv2 = nn.Conv2d(c, c, 3, padding=1)

        def forward(self, x):
            return x + self.conv2(torch.relu(self.conv1(x)))


    def resnet():
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), Block(8), Block(8), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(8, 10))


    def prn_small():
        cfg = dataclasses.replace(load_config("yolor-prn"), width=0.25, img_size=64)
        with torch.device("meta"):
            return nas.build(nas.compile(cfg))


    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            y = self.conv(x)
            return y @ y.transpose(2, 3)


    def gated():
        return Gate()


    def broken():
        raise RuntimeError("no weights here")


    def not_a_model():
        return 42


    NOT_CALLABLE = 3
    """
)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("models") / "models.py"
    path.write_text(MODELS)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_docstring_examples() -> None:
    assert doctest.testmod(nas.cli.analyze).failed == 0


def test_analyze_json_is_the_schema(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "analyze", f"{models}:resnet", "--input-shape", "1,3,32,32", "--json")
    assert (code, err) == (0, "")
    d = json.loads(out)
    assert list(d) == SCHEMA
    assert [r["name"] for r in d["layers"]] == ["0", "1.conv1", "1.conv2", "2.conv1", "2.conv2", "5"]
    assert all(list(r) == LAYER_KEYS and all(list(u) == UNIT_KEYS for u in r["units"]) for r in d["layers"])
    assert d["params"] == 224 + 2 * 2 * 584 + 90
    assert (d["max_shortest_gradient_path"], d["longest_gradient_path"]) == (3, 6)
    assert d["layers"][0]["gradient_timestamps"] == [2, 4, 6]


def test_analyze_table(models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "analyze", f"{models}:resnet")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("models.py:resnet @ 1x3x224x224:")
    assert "max shortest gradient path: 3" in out
    header = next(i for i, line in enumerate(lines) if line.startswith("layer"))
    assert lines[header].split() == ["layer", "ch", "MFLOPs", "SGP", "LGP", "units", "comb", "timestamps"]
    assert lines[header + 1].split() == ["0", "8", f"{2 * 27 * 8 * 224 * 224 / 1e6:.2f}", "2", "6", "1", "4", "2,4,6"]
    assert lines[header + 2].split()[:2] == ["1.conv1", "*"]  # at the max shortest gradient path, 3
    assert lines[header + 7].startswith("* = a layer at the max shortest gradient path (3)")


def test_analyze_agrees_with_show_on_a_built_config(
    models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import dataclasses

    from search_spaces import save_config

    cfg = dataclasses.replace(load_config("yolor-prn"), width=0.25, img_size=64)
    save_config(cfg, tmp_path / "small.yaml")
    _, shown, _ = run(capsys, "show", str(tmp_path / "small.yaml"), "--json")
    code, analyzed, _ = run(capsys, "analyze", f"{models}:prn_small", "--input-shape", "1,3,64,64", "--json")
    assert code == 0
    s, a = json.loads(shown), json.loads(analyzed)
    for r in a["layers"]:
        r["name"] = r["name"].removesuffix(".conv")
        del r["channels"], r["flops"]
    keys = ["params", "flops", *METRIC_KEYS, "layers"]
    assert {k: s[k] for k in keys} == {k: a[k] for k in keys}


@pytest.mark.parametrize(
    ("target", "extra", "words"),
    [
        ("{models}:gated", [], "cannot map matmul of feature maps at fx node 'matmul'"),
        ("{models}:nope", [], "defines no 'nope'; callables there:"),
        ("{models}:NOT_CALLABLE", [], "is not callable"),
        ("{models}:broken", [], "broken() failed: RuntimeError: no weights here"),
        ("{models}:not_a_model", [], "returned int; accepted: a torch.nn.Module"),
        ("{models}", [], "accepted: FILE.py:FACTORY"),
        ("{missing}:resnet", [], "no such file"),
        ("{syntax}:f", [], "cannot load"),
        ("{models}:resnet", ["--input-shape", "1,3,x,4"], "--input-shape"),
        ("{models}:resnet", ["--input-shape", "1,3,0,4"], "--input-shape"),
        ("{models}:resnet", ["--input-shape", "1,5,32,32"], "shape propagation"),
    ],
)
def test_analyze_errors_are_one_line_and_exit_2(
    models: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, extra: list[str], words: str
) -> None:
    syntax = tmp_path / "bad.py"
    syntax.write_text("def f(:\n")
    target = target.format(models=models, missing=tmp_path / "missing.py", syntax=syntax)
    code, out, err = run(capsys, "analyze", target, *extra)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1
    assert words in err


def test_the_fx_errors_are_user_errors() -> None:
    assert issubclass(UnsupportedOpError, GradpathError) and issubclass(TraceError, GradpathError)


def test_show_gains_the_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "yolor-csp", "--json")
    d = json.loads(out)
    assert code == 0 and all(k in d for k in ["params", "flops", *METRIC_KEYS, "layers"])
    assert all(list(r) == LAYER_KEYS[:5] for r in d["layers"])  # analyze adds channels and flops
    assert d["max_shortest_gradient_path"] == 14 and d["longest_gradient_path"] == 113
    _, table, _ = run(capsys, "show", "yolor-csp")
    assert "max SGP: 14" in table and "dup grad ratio:" in table


def test_show_all_has_the_metric_columns_and_stays_fast(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "--all")
    assert code == 0
    assert out.splitlines()[0].split()[-5:] == ["max", "SGP", "LGP", "grad", "comb"]
    code, out, _ = run(capsys, "show", "--all", "--json")
    rows = json.loads(out)
    assert len(rows) == len(preset_names()) and all("layers" not in r and "gradient_combinations" in r for r in rows)
    graphs = [compile_config(load_config(n)) for n in preset_names()]
    t = time.perf_counter()
    for g in graphs:
        summarize(g)
    assert time.perf_counter() - t < 0.5  # the metrics of all presets: milliseconds each


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("import sys\nsys.exit(3)\n", "SystemExit"),
        ("raise KeyboardInterrupt\n", "KeyboardInterrupt"),
        ("def f():\n    raise SystemExit(0)\n", "f() failed: SystemExit"),
    ],
)
def test_a_module_that_exits_while_loaded_is_one_line_exit_2(tmp_path: Path, body: str, words: str) -> None:
    """A factory file that exits or is interrupted while imported (or called) is reported, not
    obeyed: `nas` would otherwise end silently with that module's exit status."""
    import subprocess
    import sys

    f = tmp_path / "exits.py"
    f.write_text(body)
    proc = subprocess.run(
        [sys.executable, "-m", "nas.cli", "analyze", f"{f}:f"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and words in proc.stderr
