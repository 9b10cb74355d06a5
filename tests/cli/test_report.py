"""``nas report runs/NAME`` and ``report.html``: the page of a finished run (built without
training, ``tests/support/report_run.py``) is self-contained and has every section; the recipe
decides which references it shows; a run made before the report gets one from its files; a
missing or damaged file is one ``error:`` line naming it. And ``nas show --svg / --compare``.
The page in a real browser: ``tests/cli/test_report_browser.py``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from nas.cli import main
from nas.engine.view.references import reference
from tests.support.helpers import TINY, search_cmd
from tests.support.report_run import APS, finished_tiny_run

FIGURES = ("fig-front", "fig-cheap", "fig-anatomy")
#: how a page could reach outside itself: a script or style file, an image or frame source, a CSS url
OUTSIDE = re.compile(r"<script|<link|<iframe|<img|\bsrc=|url\((?!#)|@import", re.I)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny run under a 150 GFLOPs budget (presets fit in it), without report.html."""
    return finished_tiny_run(tmp_path_factory.mktemp("runs"), budget=150 * 10**9)


def _copy(run: Path, tmp_path: Path, **changes: object) -> Path:
    """The run copied, its search.json recording ``changes`` (e.g. another recipe)."""
    out = tmp_path / run.name
    shutil.copytree(run, out)
    meta = out / "search.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), **changes}))
    (out / "report.html").unlink(missing_ok=True)
    return out


def _report(run: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"report: {run / 'report.html'} (")
    return (run / "report.html").read_text(encoding="utf-8")


def _text(html: str) -> str:
    """The page's words, tags stripped, spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_report_is_one_self_contained_page_with_every_section(tiny, tmp_path, capsys):
    run = _copy(tiny, tmp_path)
    html = _report(run, capsys)
    assert len(html.encode()) < 6e6
    assert not OUTSIDE.search(html), OUTSIDE.search(html)
    assert "default-src 'none'" in html  # the page's own policy refuses any request
    for fig in FIGURES:
        body = html.split(f'id="{fig}"', 1)[1].split("</figure>", 1)[0]
        assert "<svg" in body and "<path" in body and "<figcaption" in body, fig
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})[:5]
    text = _text(html)
    summary = json.loads((run / "summary.json").read_text())
    best = summary["best_trial"]
    assert f"The winner is trial {best} (" in text and f"proxy AP {max(APS):.3f}" in text
    assert f"{len(summary['trials'])} trainings" not in text or "proxy stage" in text
    for r in summary["trials"]:  # hover fallback: each trial's row, with the command that rebuilds it
        assert f"nas export {run} --trial {r['trial']} -o trial{r['trial']}.yaml" in text or r["trial"] == best
    assert f"nas show {run}/best.yaml" in text
    assert f"<title>trial {best}:" in html  # the point's tooltip
    # the winner beside the best preset measured at the search's default recipe (the table's reduced scale)
    preset = next(e for e in reference()["recipes"] if e["id"] == "v2-reduced")
    measured = {p["name"]: p for p in preset["presets"]}
    assert "beside yolor-elan-2-2" in text and "no preset has been measured at this recipe" not in text
    assert f"Against yolor-elan-2-2 (AP {measured['yolor-elan-2-2']['AP']:.3f}, the mean of 2 training(s)" in text
    assert re.search(
        r"the winner differs in \d+ of 10 parts: (another block|the same block set otherwise) in stage 1", text
    )
    assert "not additive per stage" in text and "rank-linear on network-level metrics" in text
    assert f"ICC {preset['noise']['icc']:.2f}" in text and "single-run ICC(1)" in text  # the default recipe's noise
    assert f"It was chosen by {summary['winner']['method']}" in text
    assert "f" * 64 in text  # the data fingerprint a training recorded
    assert "τ (cheap score vs AP)" in text and "within the budget" in text


def test_at_a_recipe_where_no_preset_is_measured_the_rule_says_so(tiny, tmp_path, capsys):
    run = _copy(tiny, tmp_path, epochs=6, img_size=160, images=800)  # nas train's 160 px scale
    text = _text(_report(run, capsys))
    assert "beside yolor-" in text and "no preset has been measured at this recipe" in text
    noise = next(e for e in reference()["recipes"] if e["id"] == "v2-default")["noise"]
    assert f"ICC {noise['icc']:.2f}" in text


def test_the_figures_and_tables_agree_with_the_run(tiny, tmp_path, capsys):
    run = _copy(tiny, tmp_path)
    html = _report(run, capsys)
    summary = json.loads((run / "summary.json").read_text())
    front = html.split('id="fig-front"', 1)[1].split("</figure>", 1)[0]
    for r in summary["trials"]:
        assert f'id="front-trial-{r["trial"]}"' in front
    cheap = html.split('id="fig-cheap"', 1)[1].split("</figure>", 1)[0]
    assert cheap.count('id="cheap-pick-') == len(summary["trials"])  # the picks are the trained ones
    anatomy = html.split('id="anatomy-table"', 1)[1].split("</table>", 1)[0]
    assert anatomy.count("<tr") == 11  # a header and one row per backbone stage and neck node


@pytest.mark.parametrize(
    ("changes", "present", "absent"),
    [
        (  # the reduced scale of recipe v2: the presets were measured there
            {"epochs": 5, "img_size": 96, "images": 480},
            [
                "paper presets measured at this recipe",
                "Against yolor-elan-2-2 (AP 0.144, the mean of 2 training(s) at this recipe)",
                "ICC 0.78",
            ],
            ["No reference is measured"],
        ),
        (  # nothing measured: the page says so, and chooses the preset by the next rule
            {"epochs": 3},
            ["No reference is measured at this recipe", "No noise is measured at this recipe"],
            ["paper presets measured at this recipe"],
        ),
    ],
)
def test_the_recipe_decides_the_references(tiny, tmp_path, capsys, changes, present, absent):
    text = _text(_report(_copy(tiny, tmp_path, **changes), capsys))
    for needle in present:
        assert needle in text, needle
    for needle in absent:
        assert needle not in text, needle


def test_a_latency_run_is_drawn_against_its_predicted_latency(tiny, tmp_path, capsys):
    run = _copy(tiny, tmp_path, cost="latency", latency_budget_ms=30.0)
    summary = json.loads((run / "summary.json").read_text())
    for i, r in enumerate(summary["trials"]):
        r["latency_ms"] = 10.0 + 5 * i
    (run / "summary.json").write_text(json.dumps(summary))
    html = _report(run, capsys)
    front = html.split('id="fig-front"', 1)[1].split("</figure>", 1)[0]
    assert "predicted latency, ms (batch 1, cpu)" in front and "GFLOPs (full size" not in front
    assert "<th>ms</th>" in html and "and 30.0 ms" in html


def test_a_run_made_before_the_report_gets_one_from_its_summary_and_journal(tiny, tmp_path, capsys):
    run = _copy(tiny, tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    for key in ("calibration", "plan"):  # a summary as the searches before the ledger wrote it
        summary.pop(key)
    for r in summary["trials"]:
        r.pop("fidelity")
    (run / "summary.json").write_text(json.dumps(summary))
    shutil.rmtree(run / "trials")
    text = _text(_report(run, capsys))
    assert "No ledger" in text and "not recorded on this disk" in text
    assert f"The winner is trial {summary['best_trial']}" in text


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda run: (run / "summary.json").unlink(), "summary.json is missing"),
        (lambda run: (run / "summary.json").write_text('{"trials": [1'), "summary.json cannot be read"),
        (lambda run: (run / "summary.json").write_text("[]"), "summary.json is not the summary of a nas search"),
        (lambda run: (run / "search.json").write_text("{"), "search.json cannot be read"),
        (lambda run: (run / "search.json").unlink(), "search.json is missing"),
        (lambda run: (run / "optuna.journal").unlink(), "optuna.journal is missing"),
        (lambda run: (run / "optuna.journal").write_text('{"op_code": 99}\n'), "optuna.journal cannot be replayed"),
        (lambda run: (run / "optuna.journal").write_text("not json\n{}\n"), "optuna.journal"),
        (lambda run: shutil.rmtree(run), "no such run folder"),
    ],
)
def test_a_missing_or_damaged_file_is_one_error_line_naming_it(tiny, tmp_path, capsys, damage, needle):
    run = _copy(tiny, tmp_path)
    damage(run)
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err, err
    assert not (run / "report.html").exists()


def test_show_compare_is_a_table_of_per_stage_differences(capsys):
    assert main(["show", "yolor-csp", "--compare", "yolor-csp-fusion-last"]) == 0
    out = capsys.readouterr().out
    assert "10 of 10 parts differ" in out and "knobs" in out and "block" not in out.split("\n", 2)[2]
    assert main(["show", "yolor-elan-2-2", "--compare", "yolor-elan-2-2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["compare"]
    assert len(rows) == 10 and not any(r["differs"] for r in rows)


def test_show_svg_draws_each_part(tmp_path, capsys):
    path = tmp_path / "d.svg"
    assert main(["show", "yolor-elan-2-2", "--compare", "yolor-csp", "--svg", str(path)]) == 0
    assert f"per-stage drawing -> {path}" in capsys.readouterr().out
    words = " ".join(t for t in ET.parse(path).getroot().itertext())
    for word in ("stage 1", "stage 5", "out5", "elan", "csp", "yolor-elan-2-2", "yolor-csp", "FLOPs share"):
        assert word in words, word
    assert words.count("≠") == 1 + 10  # the title's, then one mark per part


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["show", "--all", "--svg", "x.svg"], "give one PRESET or FILE.yaml"),
        (["show", "darknet53", "--compare", "yolor-csp"], "--compare: darknet53 (classifier) and yolor-csp (yolor)"),
        (["show", "yolor-csp", "--compare", "nope"], "nope: unknown preset"),
    ],
)
def test_show_drawing_refuses_bad_input_in_one_line(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err


def test_show_svg_into_a_folder_is_refused(tmp_path, capsys):
    assert main(["show", "yolor-csp", "--svg", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_the_fitted_scores_terms_sum_to_the_score_and_flops_split_by_stage():
    from nas.engine.scores.candidate import score_candidate
    from nas.engine.view.anatomy import anatomy, score_terms
    from search_spaces import load_config

    designs = [anatomy("yolor-elan-2-2"), anatomy("yolor-csp")]
    terms = score_terms("fitted", designs)
    assert not terms["additive"] and terms["per_stage"] is None
    for i, name in enumerate(("yolor-elan-2-2", "yolor-csp")):
        total = sum(v[i] for v in terms["terms"].values())
        assert total == pytest.approx(score_candidate(load_config(name))["score"], abs=1e-9)
    flops = score_terms("flops", designs)
    assert flops["additive"]
    for d, per_stage in zip(designs, flops["per_stage"], strict=True):
        assert 0.9 * d["flops"] < sum(per_stage) < d["flops"]  # the stem, SPP, laterals and head are the rest


def test_the_shipped_references_are_what_the_generator_writes():
    from benchmarks.report_reference import OUT, reference

    shipped, now = json.loads(OUT.read_text()), json.loads(json.dumps(reference()))
    assert shipped == now, f"{OUT} is out of date with benchmarks/data/: run python -m benchmarks.report_reference"


@pytest.mark.slow
def test_a_search_writes_the_report_last_and_rewrites_it_on_resume(tmp_path):
    cmd = search_cmd(tmp_path, "rep", *TINY)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = tmp_path / "rep" / "report.html"
    last = proc.stdout.strip().split("\n")[-1]
    assert last.startswith(f"report: {page} (") and "open it in a browser" in last
    first = page.read_text(encoding="utf-8")
    assert 'id="fig-front"' in first and "The winner is trial" in first
    page.write_text("stale")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)  # resume: nothing left to train
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'id="fig-front"' in page.read_text(encoding="utf-8")


def test_a_search_that_trains_nothing_writes_the_cheap_stage_report(tmp_path):
    cmd = search_cmd(tmp_path, "zero", "--candidates", "100", "--trials", "0", "--no-progress", budget="60G")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = tmp_path / "zero" / "report.html"
    assert proc.stdout.strip().split("\n")[-1].startswith(f"report: {page} (")
    text = _text(page.read_text(encoding="utf-8"))
    assert "Nothing was trained (--trials 0)" in text and "100 candidates scored by fitted" in text
    assert 'id="fig-cheap"' in page.read_text(encoding="utf-8")
