"""The gradient-path table's analysis (benchmarks/gp_analysis.py): its statistics against plain
implementations, and the fit → held-out procedure on a table with a planted signal."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from benchmarks import gp_analysis as ga
from benchmarks.gp_table import DESIGNS_FILE

REGISTERED = json.loads(DESIGNS_FILE.read_text())


def _loop_p(x: np.ndarray, y: np.ndarray, z: np.ndarray | None, n_perm: int, seed: int) -> float:
    """The permutation p-value the slow way: the same permutations, one statistic at a time."""
    rng = np.random.default_rng(seed)
    stat = (lambda a, b: ga.partial_tau(a, b, z)) if z is not None else (lambda a, b: sps.kendalltau(a, b)[0])
    obs = abs(stat(x, y))
    hits = sum(abs(stat(x, y[rng.permutation(len(y))])) >= obs - 1e-12 for _ in range(n_perm))
    return (1 + hits) / (1 + n_perm)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.booleans())
def test_permutation_p_equals_the_plain_loop(seed: int, partial: bool) -> None:
    rng = np.random.default_rng(seed)
    n = 12
    z = rng.integers(0, 5, n).astype(float)  # ties, as integer path lengths have
    x = np.vstack([z + rng.normal(0, 1, n), rng.integers(0, 3, n).astype(float)])
    y = np.round(x[0] + rng.normal(0, 1, n), 1)
    got = ga.permutation_p(x, y, z if partial else None, n_perm=60, seed=seed)
    want = [_loop_p(row, y, z if partial else None, 60, seed) for row in x]
    assert np.allclose(got, want)


def test_partial_tau_follows_scipys_taus_and_is_tau_when_the_control_is_unrelated() -> None:
    rng = np.random.default_rng(0)
    z = rng.integers(0, 6, 200).astype(float)
    x, y = z + rng.normal(size=200), z + rng.normal(size=200)
    t = {k: sps.kendalltau(a, b)[0] for k, (a, b) in {"xy": (x, y), "xz": (x, z), "yz": (y, z)}.items()}
    want = (t["xy"] - t["xz"] * t["yz"]) / math.sqrt((1 - t["xz"] ** 2) * (1 - t["yz"] ** 2))
    assert ga.partial_tau(x, y, z) == pytest.approx(want) and ga.partial_tau(x, y, z) < t["xy"]
    w = rng.normal(size=200)
    assert ga.partial_tau(x, y, w) == pytest.approx(t["xy"], abs=0.05)


@given(st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_holm_is_monotone_and_never_below_the_raw_p(p: list[float]) -> None:
    adj = ga.holm(p)
    order = np.argsort(p, kind="stable")
    assert np.all(adj >= np.asarray(p) - 1e-12) and np.all(adj <= 1.0)
    assert np.all(np.diff(adj[order]) >= -1e-12)
    for alpha in (0.01, 0.05, 0.2):  # the adjusted p-values reject what Holm's step-down procedure rejects
        rejected = set()
        for i, k in enumerate(order):
            if p[k] > alpha / (len(p) - i):
                break
            rejected.add(int(k))
        assert {k for k in range(len(p)) if adj[k] <= alpha} == rejected


def _table(planted: str | None, noise: float = 0.0, seed: int = 0) -> list[dict]:
    """The registered designs with a synthetic AP: rank of log FLOPs, plus (``planted``) minus
    the rank of one gradient-path feature, plus noise."""
    rng = np.random.default_rng(seed)
    out = []
    for split in ("fit", "heldout"):
        ds = REGISTERED[split]["designs"]
        f = ga.column(ds, "flops")
        g = ga.column(ds, planted) if planted else np.zeros(len(ds))
        ap = (
            0.1
            + 0.01 * sps.rankdata(f)
            - 0.02 * sps.rankdata(g) / (1 if planted else 1e9)
            + noise * rng.normal(size=len(ds))
        )
        for d, a in zip(ds, ap, strict=True):
            seeds = {0: {"AP": float(a) + 0.001}, 1: {"AP": float(a) - 0.001}}
            out.append({**d, "split": split, "AP": float(a), "trainings": {"full": seeds}})
    return out


def test_a_planted_feature_is_found_chosen_fitted_and_beats_flops_on_the_heldout() -> None:
    planted = "agg.alpha.max_shortest_gradient_path"
    table = _table(planted, noise=0.002)
    report = ga.analyze(table, n_boot=50, n_perm=500)  # Holm over 19 needs p < 0.05 / 19
    assert report["best_feature"] == planted
    row = next(r for r in report["features"] if r["feature"] == planted)
    assert row["partial_tau"] < -0.3 and row["p_partial_holm"] < 0.05
    assert report["cv"]["best+flops"]["cv_tau"] > report["cv"]["flops"]["cv_tau"] + 0.1
    assert report["chosen_model"] != "flops"
    doc = ga.fit_document(table, report)
    held = ga.heldout_report(table, doc, n_boot=50)
    committed = held[f"committed:{doc['model']}"]
    assert committed["tau"] > held["flops"]["tau"] and held["committed_minus_flops_tau"]["ci95"][0] > 0


def test_without_a_signal_nothing_survives_holm_and_flops_is_not_beaten() -> None:
    table = _table(None, noise=0.0)  # AP is a function of FLOPs alone
    report = ga.analyze(table, n_boot=20, n_perm=200)
    assert report["cv"]["raw:flops"]["cv_tau"] == pytest.approx(1.0)
    assert report["cv"]["flops"]["cv_tau"] == pytest.approx(1.0)
    assert all(r["p_partial_holm"] > 0.05 or not math.isfinite(r["partial_tau"]) for r in report["features"])


def test_fit_file_is_written_once_and_the_heldout_needs_it(tmp_path, capsys) -> None:
    results = tmp_path / "results.jsonl"
    rows = []
    for d, a in ((d, d["AP"]) for d in _table("gp.max_shortest_gradient_path", noise=0.001) if d["split"] == "fit"):
        for s in (0, 1):
            rows.append({"scale": "reduced", "fidelity": "full", "design": d["id"], "seed": s, "status": "ok", "AP": a})
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    fit_file = tmp_path / "gp_fit.json"
    common = ["--results-file", str(results), "--fit-file", str(fit_file), "--bootstrap", "20", "--permutations", "50"]
    with pytest.raises(SystemExit) as e:
        ga.main([*common, "--heldout"])
    assert e.value.code == 2 and "is missing" in capsys.readouterr().err
    assert ga.main([*common, "--write-fit"]) == 0
    doc = json.loads(fit_file.read_text())
    assert doc["features"] and doc["model"] in ga.MODELS
    with pytest.raises(SystemExit) as e:
        ga.main([*common, "--write-fit"])
    assert e.value.code == 2 and "written once" in capsys.readouterr().err
    assert json.loads(fit_file.read_text()) == doc


def test_the_docstring_examples_run() -> None:
    import doctest

    assert doctest.testmod(ga).failed == 0


def test_a_loss_that_mirrors_the_ap_is_as_reliable_and_its_rank_average_agrees() -> None:
    rng = np.random.default_rng(1)
    designs = []
    for k in range(20):
        seeds = {s: rng.normal(k, 3.0) for s in (0, 1)}
        full = {s: {"AP": a, "val_loss": 5.0 - 2 * a} for s, a in seeds.items()}  # a monotone image of AP
        designs.append({"AP": (seeds[0] + seeds[1]) / 2, "trainings": {"full": full}})
    out = ga.score_reliability(designs)
    assert out["-val_loss"]["seed_tau"] == pytest.approx(out["AP"]["seed_tau"])
    assert out["rankavg(AP,-val_loss)"]["seed_tau"] == pytest.approx(out["AP"]["seed_tau"])
    assert out["AP"]["tau_mean_with_AP"] == pytest.approx(1.0)
    assert out["AP"]["icc"] == pytest.approx(out["-val_loss"]["icc"])  # ICC is scale-free


def test_a_fit_designs_simulation_score_never_saw_its_own_ap() -> None:
    table = _table("gp.max_shortest_gradient_path", noise=0.002)
    doc = ga.fit_document(table, ga.analyze(table, n_boot=10, n_perm=50))
    before = ga.table_scores(table, doc)
    fit_ids = [d["id"] for d in table if d["split"] == "fit"]
    changed = [dict(d, AP=-1.0) if d["id"] == fit_ids[3] else d for d in table]
    after = ga.table_scores(changed, doc)
    assert after[fit_ids[3]] == pytest.approx(before[fit_ids[3]])  # out of fold: its own AP is unseen
    assert any(after[i] != pytest.approx(before[i]) for i in fit_ids if i != fit_ids[3])  # others' folds saw it
    held = [d for d in table if d["split"] == "heldout"]
    assert before[held[0]["id"]] == pytest.approx(ga.apply_fit(held[0], doc["features"]))


def test_a_fit_ships_only_past_flops_and_the_search_then_scores_as_the_analysis_did(tmp_path) -> None:
    from nas.engine.scores.registry import Candidate, fitted_weights, linear_rank_score

    table = _table("gp.longest_gradient_path", noise=0.002)
    doc = ga.fit_document(table, ga.analyze(table, n_boot=10, n_perm=50))
    path = tmp_path / "fitted_score.json"
    held = {f"committed:{doc['model']}": {"tau": 0.3}, "flops": {"tau": 0.3}, "designs": 40}
    assert ga.ship(doc, held, path).startswith("not shipped") and not path.exists()  # a tie is not a win
    held[f"committed:{doc['model']}"]["tau"] = 0.5
    assert ga.ship(doc, held, path).startswith("shipped")
    features = fitted_weights(path)["features"]
    for d in table[:10]:  # the cheap stage's reading of the shipped file = the analysis's score
        c = Candidate(d["flops"], d["params"], d["metrics"])
        assert linear_rank_score(c, features) == pytest.approx(
            ga.apply_fit(d, doc["features"]), abs=1e-4
        )  # 6 decimals kept
