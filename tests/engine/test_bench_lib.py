"""benchmarks/lib, the benchmarks' own library: its docstring examples (pytest's doctest run skips
benchmarks/), the on-disk layout the study runner resumes from, the committed rows rewritten
byte for byte, one ``--ship`` path, and the imports: the product never imports benchmarks, the
library never imports a script, and no benchmark modules import each other in a circle."""

from __future__ import annotations

import ast
import doctest
import importlib
import json
import pkgutil
from pathlib import Path

import networkx as nx
import pytest

import benchmarks.lib
from benchmarks import gp_table, proxy_noise, rank_study
from benchmarks.lib import recipes, study

ROOT = Path(__file__).resolve().parents[2]
LIB_MODULES = sorted(m.name for m in pkgutil.iter_modules(benchmarks.lib.__path__, "benchmarks.lib."))


@pytest.mark.parametrize("name", LIB_MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__ and doctest.testmod(module).failed == 0


def test_job_folders_keep_the_layout_of_studies_already_on_disk() -> None:
    """A half-done study resumes only if its jobs map to the folders they were started in."""
    from search_spaces import load_config

    csp = load_config("yolor-csp")
    assert study.cand_dir(csp, recipes.study_recipe("reduced", "v1")) == Path("runs/bench/rank_study/766125bfc019")
    perstage = study.cand_dir(csp, recipes.study_recipe("reduced", "v2"), rank_study.study_dir("yolor"))
    assert perstage == Path("runs/bench/rank_study_perstage/89a556990ad7")
    assert proxy_noise.job_dir("reduced", "v1", {"id": "d03"}, 2) == Path("runs/bench/proxy_noise/reduced/v1/d03/seed2")
    assert gp_table.job_dir("reduced", "low", {"id": "f01"}, 1) == Path("runs/bench/gp_table/reduced/low/f01/seed1")


@pytest.mark.parametrize(
    ("module", "job_dir_of"),
    [
        (proxy_noise, lambda r: proxy_noise.job_dir(r["scale"], r["arm"], {"id": r["design"]}, r["seed"])),
        (gp_table, lambda r: gp_table.job_dir(r["scale"], r["fidelity"], {"id": r["design"]}, r["seed"])),
    ],
)
def test_collecting_the_committed_rows_from_job_folders_rewrites_the_file_byte_for_byte(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    module,
    job_dir_of,  # noqa: ANN001
) -> None:
    monkeypatch.chdir(tmp_path)  # job_dir is under the relative runs/bench
    committed = module.RESULTS_FILE.read_bytes()
    rows = study.read_rows(module.RESULTS_FILE)
    for r in rows:
        study.mark_done(job_dir_of(r) / "scores.json", r)
    root = job_dir_of(rows[0]).parents[3]
    out = tmp_path / "results.jsonl"
    assert study.collect(root, out, module.row_key) == rows
    assert out.read_bytes() == committed
    assert study.collect(root / "nothing", out, module.row_key) == rows and out.read_bytes() == committed


def test_run_once_runs_a_job_once_and_its_marker_is_its_row(tmp_path: Path) -> None:
    calls = []
    marker = tmp_path / "a" / "scores.json"
    first = study.run_once(marker, lambda: calls.append(1) or {"AP": 0.5})
    assert study.run_once(marker, lambda: calls.append(1) or {"AP": 0.0}) == first == {"AP": 0.5}
    assert calls == [1] and marker.read_text() == json.dumps({"AP": 0.5}, indent=1)
    assert list(marker.parent.iterdir()) == [marker]  # no temp file left behind


def test_the_rank_study_refuses_to_ship_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--ship"], ["--ship", "--analyze-only"], ["--ship-fit", "fit.gp_all+flops"]):
        with pytest.raises(SystemExit) as e:
            rank_study.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.count("\n") == 1 and "gp_analysis --heldout --ship" in err, argv


@pytest.mark.parametrize("shard", ["2/2", "x", "1/0"])
def test_a_bad_shard_is_refused_in_one_line(shard: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        rank_study.main(["--shard", shard, "--analyze-only"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err == f"error: --shard {shard!r} is not accepted; accepted: i/n with 0 <= i < n\n"


def _imports(path: Path) -> set[str]:
    """The modules ``path`` imports anywhere in its body (``from a import b``: ``a.b`` and ``a``)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return out


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_product_never_imports_benchmarks_and_benchmarks_import_no_circle() -> None:
    for package in ("nas", "search_spaces", "evaluators"):
        for path in (ROOT / package).rglob("*.py"):
            assert not any(m.split(".")[0] == "benchmarks" for m in _imports(path)), path
    mods = {_module(p): p for p in (ROOT / "benchmarks").rglob("*.py")}
    graph = nx.DiGraph()
    for name, path in mods.items():
        graph.add_edges_from((name, m) for m in _imports(path) if m in mods and m not in (name, "benchmarks"))
        if name.startswith("benchmarks.lib"):  # the library is below every script
            assert all(m.startswith("benchmarks.lib") for m in _imports(path) if m.split(".")[0] == "benchmarks"), name
    assert nx.is_directed_acyclic_graph(graph), nx.find_cycle(graph)


def test_past_its_deadline_a_study_starts_no_job_and_says_so_once(capsys: pytest.CaptureFixture[str]) -> None:
    import time

    past = time.strftime("%H:%M", time.gmtime(time.time() - 300))
    asked = []
    walked = list(study.walk(range(6), study.Shard(), lambda j: asked.append(j) or j == 0, past))
    assert [run for _, _, run in walked] == [False] * 6 and asked == [0, 1]  # job 0 done; job 1 hits the deadline
    assert capsys.readouterr().out == f"deadline {past} UTC reached: stopping\n"
    assert list(study.pending(range(6), study.Shard(), lambda j: False, past)) == []
    assert capsys.readouterr().out.count("\n") == 1
