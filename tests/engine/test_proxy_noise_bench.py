"""benchmarks/proxy_noise.py: its reliability arithmetic against an independent computation,
and a toy run end to end (register-free: the committed design list, the smoke scale)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks import proxy_noise as pn


@settings(max_examples=50, deadline=None)
@given(st.integers(3, 12), st.integers(2, 4), st.integers(0, 2**31 - 1), st.floats(0.01, 10))
def test_icc_of_balanced_designs_matches_the_anova_definition(designs, seeds, seed, spread):
    rng = np.random.default_rng(seed)
    y = rng.normal(0, spread, (designs, 1)) + rng.normal(0, 1, (designs, seeds))
    msb = seeds * y.mean(1).var(ddof=1)
    msw = y.var(1, ddof=1).mean()
    expected = (msb - msw) / (msb + (seeds - 1) * msw)
    got = pn.icc1([list(row) for row in y])
    assert got["icc"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert got["seed_sd"] == pytest.approx(np.sqrt(msw))


def test_icc_tends_to_one_without_seed_noise_and_to_zero_without_design_spread():
    rng = np.random.default_rng(0)
    designs = rng.normal(0, 1, 40)
    assert pn.icc1([[d + rng.normal(0, 1e-4) for _ in range(2)] for d in designs])["icc"] > 0.999
    assert abs(pn.icc1([list(rng.normal(0, 1, 3)) for _ in range(400)])["icc"]) < 0.1


def test_the_registered_designs_are_the_rule_applied():
    """The committed list is what its stated rule draws: nobody picked designs after the fact."""
    doc = json.loads(pn.DESIGNS_FILE.read_text())
    assert len(doc["designs"]) >= 30 and f"seed={pn.DESIGN_SEED}" in doc["rule"]
    assert pn.register(pn.DESIGNS_FILE) == doc  # re-drawing gives the same list (and rewrites nothing)
    assert all(d["flops"] < 150e9 for d in doc["designs"])
    assert sum(len(d["seeds"]) == 3 for d in doc["designs"]) >= len(doc["designs"]) // 3


def test_a_toy_study_trains_scores_collects_and_reports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # data, trainings and runs/bench of the toy stay in tmp
    study, results = tmp_path / "study", tmp_path / "results.jsonl"
    common = ["--study-dir", str(study), "--results-file", str(results)]
    for shard in ("0/2", "1/2"):
        assert pn.main(["--scale", "smoke", "--arms", "v2", "--designs", "3", "--shard", shard, *common]) == 0
    assert pn.main(["--collect", "--analyze", "--bootstrap", "20", *common]) == 0
    rows = pn.read_rows(results)
    assert len(rows) == 7 and {r["status"] for r in rows} == {"ok"}  # 3 designs x 2 seeds + 1 third seed
    assert all(r["AP.own.ema"] == r["reported_AP"] for r in rows)  # the post-hoc score is the trainer's
    assert all(r["AP.large.ema"] is not None for r in rows)  # and the study's large set scores it too
    report = json.loads((tmp_path / "runs" / "bench" / "proxy_noise.json").read_text())["report"]
    v = report["smoke"]["v2"]["variants"]["AP.own.ema"]
    assert {"icc", "icc_ci95", "seed_tau", "tau_flops", "eval_noise_sd", "train_noise_sd"} <= set(v)
    assert (tmp_path / "runs" / "bench" / "proxy_noise.png").stat().st_size > 0
    # resumable: a second run trains nothing
    assert pn.main(["--scale", "smoke", "--arms", "v2", "--designs", "3", *common]) == 0
    assert len(pn.read_rows(results)) == 7


def test_bad_arms_and_shards_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        pn.main(["--arms", "v7"])
    assert e.value.code == 2 and capsys.readouterr().err.startswith("error: --arms: v7 not accepted; accepted: v1")
    with pytest.raises(SystemExit) as e:
        pn.main(["--shard", "3/2"])
    assert e.value.code == 2 and "--shard '3/2' is not accepted" in capsys.readouterr().err


def test_fidelity_to_the_reference_ranks_each_default_against_the_3x_training():
    from scipy.stats import kendalltau

    from benchmarks.proxy_noise import FIDELITY_ARMS, fidelity_to_reference

    rng = np.random.default_rng(0)
    truth = rng.normal(size=10)
    rows = []
    for k, t in enumerate(truth):
        for seed in (0, 1):
            base = {"scale": "reduced", "design": f"d{k:02d}", "seed": seed, "status": "ok"}
            rows.append({**base, "arm": "v2-ref3x", "AP.own.ema": t + 0.01 * seed})
            # the old score is noisy, the new one (the same training scored v2's way) is not
            rows.append({**base, "arm": "v1", "AP.own.last": t + rng.normal(0, 1.0), "AP.large.ema": t})
    entry = fidelity_to_reference(rows, n_boot=50)["reduced"]
    old, new = (label for label, _, _ in FIDELITY_ARMS[:2])
    ref = [t + 0.005 for t in truth]
    got_old = [
        np.mean([r["AP.own.last"] for r in rows if r["arm"] == "v1" and r["design"] == f"d{k:02d}"]) for k in range(10)
    ]
    assert entry[old]["tau_2seed_mean"] == pytest.approx(kendalltau(got_old, ref)[0])
    assert entry[new]["tau_2seed_mean"] == pytest.approx(1.0) and entry["reference_designs"] == 10
    assert entry["new_minus_old_tau"]["mean"] == pytest.approx(1.0 - entry[old]["tau_2seed_mean"])
    assert FIDELITY_ARMS[2][0] not in entry  # no v2-arm trainings here: not reported
