"""benchmarks/search_vs_presets.py: the stretch compares the winners with the table's best designs,
chosen by their committed 2-seed AP (active rounds included on request) and retrained as the
winners are, from their config."""

from __future__ import annotations

import pytest

from benchmarks import search_vs_presets as svp
from benchmarks.gp_table import load_table
from nas.core.cost import cost
from search_spaces import compile_config, from_dict


def test_the_table_best_are_the_top_designs_by_committed_ap_and_rebuild_from_their_config() -> None:
    table = sorted((d["AP"] for d in load_table() if d["AP"] is not None), reverse=True)
    best = svp.table_best()
    assert len(best) == svp.TABLE_BEST and [d["AP"] for d in best] == table[: svp.TABLE_BEST]
    assert {d["split"] for d in best} <= {"fit", "heldout"}
    with_rounds = svp.table_best(rounds=2)
    assert with_rounds[0]["AP"] >= best[0]["AP"]
    assert [d["AP"] for d in with_rounds] == sorted((d["AP"] for d in with_rounds), reverse=True)
    for d in best:  # what retrain() builds is the registered design, to the FLOP
        assert cost(compile_config(from_dict(d["config"]))).flops == d["flops"]


def test_the_prototype_picks_its_winner_by_the_searchs_rule_and_checks_the_rounds_best() -> None:
    from benchmarks import search_rescored as sr

    rows = [
        {"AP": 0.30, "val_loss": 4.0, "GFLOPs": 90.0},
        {"AP": 0.31, "val_loss": 4.6, "GFLOPs": 80.0},
        {"AP": 0.29, "val_loss": 4.2, "GFLOPs": 70.0},
    ]
    assert sr.winner(rows) is rows[0]  # AP ranks 2, 3, 1 and val loss 3, 1, 2: the first leads
    best = sr.round_best((4,))
    a4 = sorted((d["AP"] for d in load_table(rounds=4) if d["split"] == "a4" and d["AP"] is not None), reverse=True)
    assert [d["AP"] for d in best] == a4[:3] and {d["split"] for d in best} == {"a4"}
    assert {d["split"] for d in sr.round_best((1, 2, 3), n=40)} == {"a1", "a2", "a3"}


@pytest.mark.parametrize("variant", ["top", "families", "confirm"])
def test_the_near_budget_variants_committed_searches_follow_their_registered_rule(variant: str) -> None:
    """search_top.json, search_families.json and its confirmation on ten searches: every pick near
    the budget (families: of distinct
    block families), each winner the product's choice among its picks, and the comparison with
    the presets recomputed from the rows."""
    import json
    from types import SimpleNamespace

    from benchmarks import search_rescored as sr
    from nas.engine.cheap.select import TOP_SHARE, family_of
    from search_spaces import parse_yaml

    result = json.loads((sr.CONFIRM_OUT if variant == "confirm" else sr.OUT[variant]).read_text())
    seeds = (*svp.SEARCH_SEEDS, *sr.CONFIRM_SEEDS) if variant == "confirm" else svp.SEARCH_SEEDS
    variant = "families" if variant == "confirm" else variant
    assert result["variant"] == variant
    for r in result["searches"]:
        families = [
            family_of(SimpleNamespace(user_attrs={"pattern": p["pattern"].replace(",", "/")})) for p in r["picks"]
        ]
        assert variant == "top" or len(set(families)) == len(families)
    assert [r["search_seed"] for r in result["searches"]] == list(seeds)
    for r in result["searches"]:
        assert len(r["picks"]) == sr.PICKS
        for p in r["picks"]:
            flops = cost(compile_config(parse_yaml(p["config"]))).flops
            assert TOP_SHARE * 150e9 <= flops <= 150e9 and abs(flops / 1e9 - p["GFLOPs"]) < 1e-6
            assert abs(sum(p["AP_seeds"]) / 2 - p["AP"]) < 1e-12
        assert r["winner"] == sr.winner(r["picks"]) and abs(sum(r["fresh_APs"]) / 2 - r["AP"]) < 1e-12
    presets = json.loads(svp.DATA.read_text())["presets"]
    again = svp.against_presets([r["AP"] for r in result["searches"]], presets)
    assert again == {k: result[k] for k in again}


def test_pick_noise_is_the_spearman_brown_icc_of_the_picks_seed_pairs() -> None:
    import numpy as np

    from benchmarks.lib.stats import icc1
    from benchmarks.search_rescored import pick_noise

    rng = np.random.default_rng(1)
    designs = rng.normal(0.15, 0.02, 40)
    picks = [{"AP_seeds": list(d + rng.normal(0, 0.01, 2))} for d in designs]
    n = pick_noise(picks, n_boot=300)
    one = icc1([p["AP_seeds"] for p in picks])["icc"]
    assert abs(n["icc_of_2_seed_mean"] - 2 * one / (1 + one)) < 1e-12
    assert n["icc_of_2_seed_mean_ci95"][0] <= n["icc_of_2_seed_mean"] <= n["icc_of_2_seed_mean_ci95"][1]
    assert abs(n["seed_sd"] - 0.01) < 0.004 and abs(n["design_sd"] - 0.02) < 0.008  # the simulated sds
    alike = pick_noise([{"AP_seeds": list(0.15 + rng.normal(0, 0.01, 2))} for _ in range(40)], n_boot=300)
    assert alike["icc_of_2_seed_mean"] < n["icc_of_2_seed_mean"]  # designs alike: the mean cannot rank them


def test_the_families_confirmation_repeats_the_first_five_searches_and_reports_the_new_five() -> None:
    import json

    from benchmarks import search_rescored as sr

    confirm = json.loads(sr.CONFIRM_OUT.read_text())
    first = json.loads(sr.OUT["families"].read_text())
    assert confirm["searches"][: len(first["searches"])] == first["searches"]  # the same trainings, read back
    presets = json.loads(svp.DATA.read_text())["presets"]
    new = [r["AP"] for r in confirm["searches"] if r["search_seed"] in sr.CONFIRM_SEEDS]
    assert len(new) == len(sr.CONFIRM_SEEDS) and confirm["new_searches"] == svp.against_presets(new, presets)


def test_search_efficiency_fresh_judges_the_fresh_mean_the_front_and_the_support() -> None:
    """A task's figures: the mean of its fresh APs, the hypervolume of its trained designs at the
    budget, and the share outside the table's support (a table design lies inside it)."""
    from benchmarks import search_efficiency_fresh as sef
    from benchmarks.pool_sim import hypervolume
    from search_spaces import from_dict

    designs = [d for d in load_table() if d["AP"] is not None][:3]
    picks = [{"config": from_dict(d["config"]).to_yaml(), "AP": d["AP"], "flops": d["flops"]} for d in designs]
    judged = sef.judge({"picks": picks, "reported": picks[0]["config"], "fresh_APs": [0.1, 0.2]})
    assert judged["fresh_AP"] == pytest.approx(0.15)
    assert judged["hypervolume"] == hypervolume([(d["AP"], d["flops"]) for d in designs], 150e9)
    assert judged["outside_support"] == 0.0
