"""A missing optional dependency is one line naming the extra to install (issue 31).

Each case hides the module in this process (``sys.modules[name] = None``: any import of it
fails, as in an install without the extra) and runs the command through ``nas.cli.main``: exit 2,
exactly one ``error:`` line naming the ``pip install`` that fixes it, nothing new on disk. Before
:func:`nas.core.extras.require` these ended in a ``ModuleNotFoundError`` traceback (or, for
psycopg, a driver error that named no fix)."""

from __future__ import annotations

import contextlib
import io
import re
import sys
import tomllib
from pathlib import Path

import pytest

from nas.core.extras import PROVIDERS, install_hint
from tests.support.fuzz_cases import build_run, stubbed_work

ROOT = Path(__file__).resolve().parents[2]
ONNX = 'pip install -e ".[onnx]"'


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_run(tmp_path_factory.mktemp("extras") / "runs")


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


CASES = [
    ("onnxruntime", ["latency", "yolor-v3", "--runs-dir", "{tmp}/runs"], ONNX),
    ("onnx", ["latency", "yolor-v3", "--runs-dir", "{tmp}/runs", "--measure"], ONNX),
    ("onnx", ["export", "{run}", "-o", "{tmp}/arch.yaml", "--onnx", "{tmp}/model.onnx"], ONNX),
    ("onnxruntime", ["search", "--budget", "150G", "--latency-budget", "30ms", "--runs-dir", "{tmp}/runs"], ONNX),
    (
        "psycopg",
        ["search", "--budget", "150G", "--storage", "postgresql://u@127.0.0.1:9/db", "--runs-dir", "{tmp}/runs"],
        'pip install -e ".[postgres]"',
    ),
    ("optuna_dashboard", ["dashboard", "{run}", "--port", "0"], 'pip install "optuna-dashboard"'),
]


@pytest.mark.parametrize(("hidden", "argv", "fix"), CASES, ids=[f"{c[0]}-{c[1][0]}" for c in CASES])
def test_missing_module_is_one_error_line_naming_the_extra(
    hidden: str, argv: list[str], fix: str, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nas.cli import main

    argv = [a.replace("{tmp}", str(tmp_path)).replace("{run}", str(run_dir)) for a in argv]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, hidden, None)
    before, run_before = _files(tmp_path), _files(run_dir)
    err = io.StringIO()
    with stubbed_work(), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    lines = err.getvalue().strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), err.getvalue()
    assert fix in lines[0], lines[0]
    assert _files(tmp_path) == before and _files(run_dir) == run_before  # nothing written


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].strip().lower() for r in requirements}


def test_every_provider_is_in_the_extra_it_names() -> None:
    """PROVIDERS and pyproject.toml agree: each module's distribution is in the extra its hint
    names (or in the core dependencies), and every package of a user-facing extra is listed."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = {k: _names(v) for k, v in project["optional-dependencies"].items()}
    core = _names(project["dependencies"])
    for module, (dist, extra) in PROVIDERS.items():
        assert dist in (extras[extra] if extra else core), (module, dist, extra)
        assert (f"[{extra}]" if extra else dist) in install_hint(module)
    listed = {dist for dist, _ in PROVIDERS.values()}
    for extra, names in extras.items():
        if extra != "test":  # the developer's tools: never imported by a command
            assert names <= listed, (extra, names - listed)


def test_the_hint_names_what_pip_can_install() -> None:
    """gradpath-nas is not on PyPI, so ``pip install "gradpath-nas[onnx]"`` fails: the hint gives
    the checkout's editable install of the extra, or the extra's packages by name, exactly as
    pyproject.toml lists them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for module, (_, extra) in PROVIDERS.items():
        hint = install_hint(module)
        assert "gradpath-nas[" not in hint, hint
        if extra is None:
            continue
        assert f'pip install -e ".[{extra}]"' in hint and "checkout" in hint, hint
        packages = " ".join(f'"{r}"' for r in project["optional-dependencies"][extra])
        assert f"pip install {packages}" in hint, hint


def test_without_a_checkout_the_hint_reads_the_installed_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    """An install from a wheel has no pyproject.toml beside it: the package's metadata, built
    from that file, names the same requirements."""
    import nas.core.extras as extras

    def no_checkout(_text: str) -> dict:
        raise OSError("no pyproject.toml")

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    monkeypatch.setattr(extras.tomllib, "loads", no_checkout)
    for extra in ("onnx", "postgres"):
        assert extras.extra_requirements(extra) == project["optional-dependencies"][extra]
