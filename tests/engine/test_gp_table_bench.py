"""benchmarks/gp_table.py: the registered designs are its stated rule applied (pure, stratified,
never rewritten), the recorded features recompute, and a toy table trains, resumes, collects and
reads back end to end."""

from __future__ import annotations

import collections
import doctest
import json

import pytest

from benchmarks import gp_table as gt
from benchmarks.lib import designs
from search_spaces import from_dict


def test_docstring_examples() -> None:
    assert doctest.testmod(gt).failed == 0


def test_registration_is_a_pure_function_of_the_rule_and_its_seeds(tmp_path) -> None:
    a, b = gt.registration(fit=3, heldout=2), gt.registration(fit=3, heldout=2)
    assert json.dumps(a) == json.dumps(b)
    assert [d["config"] for d in gt.draw(gt.FIT_SEED, 3, "f")] == [d["config"] for d in a["fit"]["designs"]]
    assert [d["config"] for d in gt.draw(gt.FIT_SEED + 1, 3, "f")] != [d["config"] for d in a["fit"]["designs"]]
    # the committed file is the rule applied, and registering again rewrites nothing
    committed = gt.DESIGNS_FILE.read_bytes()
    assert gt.register() == json.loads(committed) and gt.DESIGNS_FILE.read_bytes() == committed
    assert json.loads(committed)["heldout"]["note"] == gt.HELDOUT_NOTE


def test_a_different_list_is_refused_and_the_file_kept(tmp_path) -> None:
    path = tmp_path / "designs.json"
    gt.register(path, fit=2, heldout=1)
    before = path.read_bytes()
    assert gt.register(path, fit=2, heldout=1) == json.loads(before)
    with pytest.raises(SystemExit, match="never rewritten"):
        gt.register(path, fit=3, heldout=1)
    assert path.read_bytes() == before


def test_the_strata_are_covered() -> None:
    doc = json.loads(gt.DESIGNS_FILE.read_text())
    fit, held = doc["fit"]["designs"], doc["heldout"]["designs"]
    assert len(fit) == gt.FIT_DESIGNS == 80 and len(held) == gt.HELDOUT_DESIGNS == 40
    assert set(collections.Counter(d["blocks"] for d in fit).values()) == {5}  # 16 pairs x 5
    assert set(collections.Counter(d["band"] for d in fit).values()) == {20}  # 4 bands x 20
    assert len({(d["blocks"], d["band"]) for d in fit[: gt.LOW_FIDELITY_DESIGNS]}) == 64  # every cell once
    assert len({d["blocks"] for d in held}) == 16 and len({d["band"] for d in held}) == 4
    for d in fit + held:
        lo, hi = designs.BANDS[d["band"]]
        assert lo <= d["flops"] < hi <= 150e9
        assert len(set(d["pattern"].split("/"))) > 1  # heterogeneous
    keys = [from_dict(d["config"]).key() for d in fit + held]
    assert len(set(keys)) == len(keys)  # no design in both splits, none twice


@pytest.mark.parametrize("index", [0, 41, 79])
def test_the_recorded_features_recompute_from_the_config(index: int) -> None:
    d = json.loads(gt.DESIGNS_FILE.read_text())["fit"]["designs"][index]
    again = gt.design_record(from_dict(d["config"]), d["id"], d["band"])
    assert json.loads(json.dumps(again)) == d


@pytest.mark.slow
def test_a_toy_table_trains_resumes_collects_and_reads(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)  # data and trainings of the toy stay in tmp
    study, results = tmp_path / "study", tmp_path / "results.jsonl"
    common = ["--scale", "smoke", "--study-dir", str(study), "--results-file", str(results)]
    train = ["--fidelity", "full,low", "--designs", "2", "--low-designs", "1", *common]
    for shard in ("0/2", "1/2"):
        assert gt.main([*train, "--shard", shard]) == 0
    assert gt.main(["--collect", *common]) == 0
    rows = gt.read_rows(results)
    assert sorted((r["fidelity"], r["design"], r["seed"]) for r in rows) == [
        ("full", "f00", 0),
        ("full", "f00", 1),
        ("full", "f01", 0),
        ("full", "f01", 1),
        ("low", "f00", 0),
        ("low", "f00", 1),
    ]
    for r in rows:
        assert r["status"] == "ok" and r["recipe"] == gt.RECIPE_VERSION
        assert len(r["history_AP"]) == len(r["history_loss"]) == r["epochs"] == (2 if r["fidelity"] == "full" else 1)
        assert r["history_AP"][-1] == r["AP"]
    table = gt.load_table(results=results, scale="smoke")
    by_id = {d["id"]: d for d in table}
    f00 = by_id["f00"]
    assert f00["AP"] == pytest.approx((f00["trainings"]["full"][0]["AP"] + f00["trainings"]["full"][1]["AP"]) / 2)
    assert by_id["f02"]["AP"] is None and by_id["h00"]["trainings"] == {}
    # resumable: a second run trains nothing, and collecting again keeps every row once
    capsys.readouterr()
    assert gt.main(train) == 0
    assert capsys.readouterr().out == ""
    assert gt.main(["--collect", *common]) == 0 and gt.read_rows(results) == rows
    assert not (tmp_path / "runs" / "bench" / "gp_table").exists()
    # in a later session (runs/ is not kept) the committed rows alone mark the jobs done
    import shutil

    shutil.rmtree(study)
    capsys.readouterr()
    assert gt.main(train) == 0
    assert capsys.readouterr().out == "" and not study.exists()


def test_bad_input_is_one_line_and_the_held_out_set_waits_for_the_fit(capsys) -> None:
    for argv, says in (
        (
            ["--fidelity", "medium"],
            "error: --fidelity 'medium' is not accepted; accepted: a comma-separated list of full, low",
        ),
        (["--shard", "2/2"], "error: --shard '2/2' is not accepted"),
        (["--split", "heldout"], "error: --split heldout needs --fit-commit"),
        (["--split", "heldout", "--fit-commit", "0" * 40], "error: --split heldout needs --fit-commit"),
    ):
        with pytest.raises(SystemExit) as e:
            gt.main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith(says) and err.count("\n") == 1, argv
