"""A budget carries its unit, and bad budgets are refused while the command line is read.

``--budget 150`` was read as 150 FLOPs: the search ran its whole cheap stage before saying no
candidate fits. ``--budget -5G`` got argparse's "expected one argument". Now a bare number and a
negative value are each one ``error:`` line naming what is accepted, exit 2, before any work
(the search's work is stubbed here: reaching it fails the test)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest

import nas.cli.search as cli_search
from nas.cli import main
from tests.support.fuzz_cases import Reached, build_run, stubbed_work


@pytest.fixture
def stub_search(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The options the CLI passes to the search, which is not run."""
    seen: list[Any] = []

    def search(opts: Any, **_k: Any) -> None:
        seen.append(opts)
        raise Reached("search")

    monkeypatch.setattr(cli_search, "search", search)
    return seen


def _run(argv: list[str]) -> tuple[int | None, list[str]]:
    err = io.StringIO()
    with stubbed_work(), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except Reached:
            rc = None
    return rc, err.getvalue().strip().splitlines()


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--budget", "150"], "--budget: 150 has no unit; accepted: a positive FLOPs count with its unit"),
        (["--budget", "1.5e11"], "--budget: 1.5e11 has no unit"),
        (["--budget", "-5G"], "--budget: -5G is negative; accepted: a positive FLOPs count with its unit"),
        (["--budget", "-150"], "--budget: -150 is negative"),
        (["--budget", "0G"], "--budget: 0G is out of range"),
        (["--budget", "150G", "--latency-budget", "-3ms"], "--latency-budget: -3ms is negative; accepted:"),
        (["--budget", "150G", "--latency-budget", "30"], "--latency-budget: 30 has no unit; accepted:"),
    ],
)
def test_bad_search_budget_is_one_line_before_any_work(argv, needle, tmp_path):
    rc, lines = _run(["search", *argv, "--runs-dir", str(tmp_path)])
    assert rc == 2, "the search started its work"
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert needle in lines[0], lines[0]
    assert "expected one argument" not in lines[0]
    if "budget: " in needle and "--latency" not in needle:
        assert "150GFLOPs" in lines[0] and "150G" in lines[0] and "1.5e11FLOPs" in lines[0], lines[0]
    else:
        assert "30ms" in lines[0], lines[0]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "flops"),
    [("150GFLOPs", 150e9), ("150G", 150e9), ("1.5e11FLOPs", 150e9), ("900MFLOPs", 900e6), ("0.15tflops", 150e9)],
)
def test_a_budget_with_its_unit_is_accepted(text, flops, stub_search, tmp_path):
    rc, _ = _run(["search", "--budget", text, "--runs-dir", str(tmp_path)])
    assert rc is None and stub_search[0].budget == int(flops)


def test_a_latency_budget_with_its_unit_is_accepted(stub_search, tmp_path):
    for text, ms in (("30ms", 30.0), ("0.03s", 30.0), ("500us", 0.5)):
        rc, _ = _run(["search", "--budget", "150G", "--latency-budget", text, "--runs-dir", str(tmp_path)])
        assert rc is None and stub_search[-1].latency_budget_ms == pytest.approx(ms)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_run(tmp_path_factory.mktemp("budget") / "runs")


@pytest.mark.parametrize(
    ("text", "needle"),
    [("120", "--max-flops: 120 has no unit"), ("-5G", "--max-flops: -5G is negative")],
)
def test_export_max_flops_takes_the_same_units(text, needle, run_dir, tmp_path):
    rc, lines = _run(["export", str(run_dir), "--max-flops", text, "-o", str(tmp_path / "a.yaml")])
    assert rc == 2 and len(lines) == 1 and needle in lines[0], lines
    assert "150GFLOPs" in lines[0] and not (tmp_path / "a.yaml").exists()


def test_a_negative_value_for_any_flag_reaches_its_own_check(tmp_path):
    """Not argparse's "expected one argument": the flag's own validation names what is accepted."""
    rc, lines = _run(["search", "--budget", "150G", "--epochs", "-3", "--runs-dir", str(tmp_path)])
    assert rc == 2 and len(lines) == 1 and "--epochs" in lines[0] and "accepted" in lines[0], lines
    rc, lines = _run(["search", "--budget", "150G", "--width-mult", "-.5", "--runs-dir", str(tmp_path)])
    assert rc == 2 and len(lines) == 1 and "--width-mult" in lines[0] and "accepted" in lines[0], lines
