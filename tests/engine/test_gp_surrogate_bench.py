"""The pre-registered surrogate comparison (benchmarks/gp_surrogate.py): its inputs encode what
the registration says, the forest learns and knows its spread, support separates the sampled
region from a far-off design, and every model is cross-validated on gp_analysis's folds."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from benchmarks import gp_analysis as ga
from benchmarks import gp_surrogate as gs
from benchmarks.gp_table import DESIGNS_FILE
from nas.engine.stats import kendall_tau

REGISTERED = json.loads(DESIGNS_FILE.read_text())
DESIGNS = [{**d, "split": s} for s in ("fit", "heldout") for d in REGISTERED[s]["designs"]]
PER_PART = len(gs.PART_INPUTS)


def _synthetic(designs: list[dict], seed: int = 0) -> list[dict]:
    """The designs with an AP that rises with the first backbone stage's share of the FLOPs (a
    STAGE input the network metrics do not hold), plus a little noise."""
    rng = np.random.default_rng(seed)
    share = np.array([d["stages"][0]["flops"] / d["flops"] for d in designs])
    ap = 0.2 + 0.5 * share + 0.005 * rng.normal(size=len(designs))
    return [{**d, "AP": float(a)} for d, a in zip(designs, ap, strict=True)]


def test_the_stage_encoding_has_the_registered_length_and_one_hots() -> None:
    x = gs.design_matrix(DESIGNS)
    assert x.shape == (120, len(gs.NET) + 10 * 17 + 2) == (120, len(gs.FEATURES))
    assert tuple(ga.resolve("gp_all+flops", DESIGNS)) == gs.NET and len(gs.NET) == 7
    assert np.array_equal(x[:, :7], ga.model_matrix(DESIGNS, gs.NET))
    parts = x[:, 7:-2].reshape(120, 10, PER_PART)
    col = {n: i for i, n in enumerate(gs.PART_INPUTS)}
    block = parts[:, :, [col[f"block={b}"] for b in gs.BLOCK_KINDS]]
    fusion = parts[:, :, [col[f"fusion={f}"] for f in gs.FUSION_KINDS]]
    assert np.all(block.sum(axis=2) == 1)
    csp = parts[:, :, col["block=csp"]] == 1
    assert np.all(fusion.sum(axis=2)[~csp] == 0) and set(np.unique(fusion.sum(axis=2)[csp])) == {0.0, 1.0}
    res = parts[:, :, col["block=res"]] == 1
    for knob in ("split_ratio", "mask_fraction", "elan_stack"):  # res reads none of them
        assert np.all(parts[:, :, col[knob]][res] == 0)
    assert np.all(parts[:, :, col["elan_stack"]][parts[:, :, col["block=elan"]] == 1] >= 1)
    share = parts[:, :, col["flops_share"]].sum(axis=1)
    assert np.all((share > 0.5) & (share <= 1.0 + 1e-9))  # the head holds the rest
    assert np.allclose(x[:, -2:], [[d["config"]["width"], d["config"]["depth"]] for d in DESIGNS])


def test_a_knob_the_block_does_not_read_does_not_change_the_encoding() -> None:
    d = next(d for d in DESIGNS if d["config"]["backbone"]["stages"][0]["block"] == "res")
    e = copy.deepcopy(d)
    e["config"]["backbone"]["stages"][0].update(split_ratio=0.75, mask_fraction=0.25, elan_stack=3, fusion="last")
    assert np.array_equal(gs.design_matrix([d]), gs.design_matrix([e]))
    e["config"]["backbone"]["stages"][0]["block"] = "prn"
    assert not np.array_equal(gs.design_matrix([d]), gs.design_matrix([e]))


def test_the_forest_recovers_a_stage_level_target_with_a_spread() -> None:
    table = _synthetic(DESIGNS)
    train, test = table[:80], table[80:]
    mean, sd = gs.fit_surrogate(train, "forest").predict(test)
    y = [d["AP"] for d in test]
    assert kendall_tau(mean, y) > 0.5
    assert sd is not None and np.all(sd >= 0) and np.mean(sd > 0) > 0.9
    shuffled = _synthetic(DESIGNS, seed=1)
    rng = np.random.default_rng(0)
    aps = rng.permutation([d["AP"] for d in shuffled[:80]])
    noise = [{**d, "AP": float(a)} for d, a in zip(shuffled[:80], aps, strict=True)]
    mean0, _ = gs.fit_surrogate(noise, "forest").predict(test)
    assert abs(kendall_tau(mean0, y)) < kendall_tau(mean, y) - 0.3  # a permuted target teaches nothing


def test_fitted_models_leave_out_designs_without_ap_and_unfitted_ones_ignore_training() -> None:
    table = _synthetic(DESIGNS)
    holes = [{**d, "AP": None} if i % 2 else d for i, d in enumerate(table[:80])]
    a, _ = gs.fit_surrogate(holes, "linear-stage").predict(table[80:])
    b, _ = gs.fit_surrogate(holes[::2], "linear-stage").predict(table[80:])
    assert np.allclose(a, b)
    flops, sd = gs.fit_surrogate([], "flops").predict(table[:3])
    assert sd is None and list(flops) == [d["flops"] for d in table[:3]]
    assert list(gs.fit_surrogate([], "shipped").predict(table[:3])[0]) == [ga.shipped_score(d) for d in table[:3]]
    with pytest.raises(ValueError, match="accepted"):
        gs.Surrogate("gbm")


def test_support_puts_training_designs_at_zero_and_a_far_design_outside() -> None:
    train = DESIGNS[:80]
    far = copy.deepcopy(DESIGNS[80])
    for s in far["stages"]:
        s["longest_gradient_path"] *= 20
    dist, radius = gs.support_distance(train, [*train[:5], DESIGNS[80], far])
    assert np.allclose(dist[:5], 0) and radius > 0
    assert dist[6] > radius > 0 and dist[6] > 3 * dist[5]
    _, r_all = gs.support_distance(train, train)
    assert r_all == radius


def test_every_model_sees_gp_analysis_folds() -> None:
    table = _synthetic(DESIGNS)
    models = ("flops", "shipped", "linear-net")
    mine = gs.cross_validate(table, repeats=2, models=models)["models"]
    theirs = ga.cross_validate(table, repeats=2)
    assert mine["flops"]["cv_tau"] == pytest.approx(theirs["raw:flops"]["cv_tau"])
    assert mine["shipped"]["cv_tau"] == pytest.approx(theirs["raw:shipped"]["cv_tau"])
    assert mine["linear-net"]["cv_tau"] == pytest.approx(theirs["gp_all+flops"]["cv_tau"])
    assert mine["linear-net"]["cv_tau_range95"] == pytest.approx(theirs["gp_all+flops"]["cv_tau_range95"])
    other = gs.cross_validate(table, repeats=2, seed=1, models=("linear-net",))["models"]
    assert other["linear-net"]["cv_tau"] != pytest.approx(mine["linear-net"]["cv_tau"])


def test_the_prospective_report_on_a_planted_round() -> None:
    table = _synthetic(DESIGNS)
    far = copy.deepcopy(table[80:])
    for d in far[:6]:
        for s in d["stages"]:
            s["gradient_overlap"] = 5.0
    report = gs.prospective_report(table[:80], far, n_boot=50)
    assert report["designs"] == 40 and report["known"] == 80
    assert report["outside_support_share"] >= 6 / 40
    forest = report["models"]["forest"]
    assert forest["tau"] > report["models"]["flops"]["tau"] and forest["minus_flops"]["ci95"][0] > 0
    assert 0 <= forest["within_1sd"] <= forest["within_2sd"] <= 1 and "tau_sd_abs_error" in forest
    assert (
        "minus_flops" not in report["models"]["flops"] and report["models"]["flops"]["partial_tau_given_flops"] is None
    )
    assert "tau_sd_abs_error" not in report["models"]["linear-net"]
    assert report["decision"]["best_fitted"] in gs.FITTED and report["decision"]["ships"]
    json.dumps(report, allow_nan=False)


def test_the_registration_is_written_once(tmp_path, monkeypatch) -> None:
    cv = {"designs": 0, "models": {}}
    doc = gs.registration(cv)
    assert doc["features"] == list(gs.FEATURES) and "linear-stage" in doc["decision"] and doc["sklearn"]
    out = tmp_path / "s.json"
    monkeypatch.setattr(
        gs, "cross_validate", lambda *a, **k: {**cv, "folds": 3, "repeats": 1, "seed": 0, "outside_support_share": 0.0}
    )
    assert gs.main(["--register", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["rule"] == gs.RULE
    monkeypatch.setattr(
        gs, "cross_validate", lambda *a, **k: {**cv, "folds": 3, "repeats": 2, "seed": 0, "outside_support_share": 0.0}
    )
    with pytest.raises(SystemExit):
        gs.main(["--register", "--out", str(out)])
