"""The cost objective (GFLOPs or predicted latency), the budgets as constraints, the readable
attributes of a candidate, the dashboard's Best Trials and pareto.png (issue 14 item 2, issue 15
item 4). Latency runs on a real table built in seconds from two tiny graphs (not the 10-minute
build); every latency a trial records is checked against ``predict_latency_ms`` on the graph
compiled again from the trial's YAML."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import optuna
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nas.core.cost import parse_flops
from nas.core.errors import UsageError
from nas.core.ir import LayerGraph
from nas.engine import SearchOptions, cheap_stage, score_candidate, select_candidates
from nas.engine.latency import build_latency_model, device_fingerprint, predict_latency_ms
from nas.engine.options import SearchError
from nas.engine.record.report import pareto_figure, pareto_rows
from nas.engine.record.storage import open_storage
from nas.engine.record.trials import (
    config_of,
    constraints_of,
    flops_of,
    key_hash,
    metrics_of,
    params_of,
    parse_ms,
    violation,
    within_budgets,
)
from nas.engine.validate import validate_options
from search_spaces import compile_config, parse_yaml


def tiny_graph(c: int, size: int = 32) -> LayerGraph:
    g = LayerGraph(3, (size, size))
    x = g.conv(g.input_name, c, k=3, stride=2)
    y = g.conv(x, c, k=3)
    z = g.concat([g.add(x, y), g.split(y, 0, c // 2), g.maxpool(y, 5)])
    g.output(g.conv(g.upsample(z), 4, bn=False, act=False, bias=True))
    return g


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A real latency table of this CPU, built in seconds from two tiny graphs' ops (the search
    predicts the space's ops by the table's per-kind fallback fit)."""
    runs = tmp_path_factory.mktemp("runs")
    graphs = [tiny_graph(8), tiny_graph(16)]
    model = build_latency_model("cpu", 1, runs_dir=runs, progress=False, graphs=graphs, calibration=graphs)
    return runs, model


def scalar(v) -> bool:
    return isinstance(v, bool | int | float | str) and (not isinstance(v, str) or "\n" not in v)


# -- GFLOPs: the default objective ----------------------------------------------------------------
def test_cheap_trials_store_gflops_and_readable_scalar_attributes(tmp_path):
    opts = SearchOptions(budget=parse_flops("60G"), name="g", candidates=30, runs_dir=str(tmp_path))
    study = cheap_stage(open_storage(None, opts.run_dir), opts, progress=False)
    assert study.metric_names == ["fitted_score", "GFLOPs"]
    assert study.user_attrs["cost"] == "GFLOPs" and study.user_attrs["budget_GFLOPs"] == 60.0
    assert "device_fingerprint" not in study.user_attrs  # no latency asked: no table needed
    for t in study.trials:
        cfg = parse_yaml(config_of(t))
        again = score_candidate(cfg)
        assert t.values[1] == again["flops"] / 1e9 == t.user_attrs["GFLOPs"]
        assert flops_of(t) == again["flops"] and params_of(t) == again["params"]  # exact despite the units
        assert metrics_of(t) == again["metrics"]
        assert t.user_attrs["key"] == key_hash(cfg.key()) and len(t.user_attrs["key"]) == 16
        # every attribute is one readable scalar; the config YAML is a system attribute
        names = list(t.user_attrs)
        assert "config" not in names and all(scalar(t.user_attrs[k]) for k in names)
        assert t.system_attrs["nas:config"] == cfg.to_yaml()
        assert names[:2] == ["GFLOPs", "MParams"] and sorted(names)[0] == "GFLOPs"
        assert "metrics" not in names and "params" not in names and "flops" not in names
        assert " | " in t.user_attrs["design"]
        assert t.system_attrs["constraints:GFLOPs_over_budget"] == pytest.approx(again["flops"] / 1e9 - 60)


def test_an_old_run_with_raw_flops_is_refused_with_one_clear_line(tmp_path):
    opts = SearchOptions(budget=parse_flops("60G"), name="old", candidates=10, runs_dir=str(tmp_path))
    storage = open_storage(None, opts.run_dir)
    old = optuna.create_study(study_name="old-cheap", storage=storage, directions=["maximize", "minimize"])
    old.set_metric_names(["fitted_score", "flops"])
    with pytest.raises(SearchError, match="older nas search"):
        cheap_stage(storage, opts, progress=False)


# -- latency: objective and budget -----------------------------------------------------------------
def test_latency_objective_and_budget_are_the_tables_predictions(table, tmp_path):
    runs, model = table
    base = SearchOptions(budget=parse_flops("500G"), name="l0", candidates=40, runs_dir=str(runs))
    probe = cheap_stage(open_storage(None, tmp_path / "probe"), dataclasses.replace(base, cost="latency"), False)
    lats = sorted(t.values[1] for t in probe.trials)
    limit = lats[len(lats) // 2]  # about half the candidates are over the latency budget
    opts = dataclasses.replace(base, name="l1", cost="latency", latency_budget_ms=limit)
    study = cheap_stage(open_storage(None, opts.run_dir), opts, progress=False)
    assert study.metric_names == ["fitted_score", "latency_ms"]
    assert study.user_attrs["device_fingerprint"] == device_fingerprint("cpu", 1) == model.fingerprint
    assert study.user_attrs["latency_table_version"] == model.version
    assert study.user_attrs["latency_budget_ms"] == limit
    feasible = 0
    for t in study.trials:
        graph = compile_config(parse_yaml(config_of(t)))
        ms = predict_latency_ms(graph, model)
        assert t.values[1] == pytest.approx(ms, rel=1e-12) and t.user_attrs["latency_ms"] == t.values[1]
        over = [flops_of(t) / 1e9 - 500, ms - limit]
        assert t.system_attrs["constraints"] == pytest.approx(over)  # one entry per active constraint
        assert t.system_attrs["constraints:latency_ms_over_budget"] == pytest.approx(ms - limit)
        assert t.user_attrs["feasible"] == (max(over) <= 0)
        feasible += t.user_attrs["feasible"]
    assert 0 < feasible < len(study.trials)
    # selection keeps FLOPs bands but honours the latency budget
    picks = select_candidates(study.trials, 3, opts.budget)
    assert picks and all(t.user_attrs["latency_ms"] <= limit for t in picks)
    assert all(within_budgets(t, opts.budget, limit) for t in picks)


def test_latency_budget_with_the_flops_objective_keeps_gflops_as_the_value(table):
    runs, model = table
    opts = SearchOptions(
        budget=parse_flops("500G"), name="l2", candidates=12, runs_dir=str(runs), latency_budget_ms=1e6
    )
    study = cheap_stage(open_storage(None, opts.run_dir), opts, progress=False)
    assert study.metric_names[1] == "GFLOPs"
    assert study.user_attrs["latency_table_version"] == model.version
    assert all(t.values[1] == t.user_attrs["GFLOPs"] and "latency_ms" in t.user_attrs for t in study.trials)
    assert all(len(t.system_attrs["constraints"]) == 2 for t in study.trials)


@given(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=2))
def test_violation_is_feasible_exactly_when_every_constraint_holds(values):
    opts = SearchOptions(budget=10**11, latency_budget_ms=20.0)
    v = violation(values, opts)
    assert (v <= 0) == all(x <= 0 for x in values)
    if v > 0:  # the sum of the relative excesses
        assert v == pytest.approx(sum(max(0, x) / c.limit for x, c in zip(values, constraints_of(opts), strict=True)))


# -- options and flags ------------------------------------------------------------------------------
def test_identity_records_the_cost_options_only_when_used():
    plain = SearchOptions(budget=10**11)
    assert not {"cost", "latency_budget_ms", "device"} & set(plain.identity())  # old search.json still match
    lat = SearchOptions(budget=10**11, cost="latency", latency_budget_ms=30.0)
    ident = lat.identity()
    assert (ident["cost"], ident["latency_budget_ms"], ident["device"]) == ("latency", 30.0, "cpu")
    assert SearchOptions.from_identity(ident) == lat


def test_identity_records_the_proxy_stage_and_reads_older_runs_as_halving():
    """``select`` is the default since issue 28; a search.json from before the option halved."""
    select = SearchOptions(budget=10**11)
    assert select.identity()["proxy_stage"] == "select"
    halving = SearchOptions(budget=10**11, proxy_stage="halving")
    assert "proxy_stage" not in halving.identity()  # old search.json files still match
    assert SearchOptions.from_identity(halving.identity()) == halving
    assert SearchOptions.from_identity(select.identity()) == select


def test_identity_records_the_seeds_and_reads_older_runs_as_one_seed():
    """Two seeds per pick since the proxy moved to the search's own scale; a search.json from
    before trained each pick once."""
    two = SearchOptions(budget=10**11)
    assert two.seeds == 2 and two.identity()["seeds"] == 2
    one = SearchOptions(budget=10**11, seeds=1)
    assert "seeds" not in one.identity()  # old search.json files still match
    assert SearchOptions.from_identity(one.identity()) == one
    assert SearchOptions.from_identity(two.identity()) == two
    assert SearchOptions.identity_differences(one.identity(), two.identity()) == ["--seeds 1 (now: 2)"]


def test_identity_records_the_trust_region_and_reads_older_runs_as_none():
    default = SearchOptions(budget=10**11)
    assert default.trust_region == "table" and default.identity()["trust_region"] == "table"
    anywhere = SearchOptions(budget=10**11, trust_region="none")
    assert "trust_region" not in anywhere.identity()  # what every run before the option did
    assert SearchOptions.from_identity(anywhere.identity()) == anywhere
    assert SearchOptions.identity_differences({}, {"trust_region": "table"}) == ["--trust-region none (now: table)"]


def test_identity_records_the_picks_and_reads_older_runs_as_front():
    from nas.engine.options import PICKS

    for picks in PICKS:
        opts = SearchOptions(budget=10**11, picks=picks)
        assert ("picks" in opts.identity()) == (picks != "front")  # front: what every run before the option did
        assert SearchOptions.from_identity(opts.identity()) == opts
    assert SearchOptions.identity_differences({}, {"picks": "top"}) == ["--picks front (now: top)"]


def test_the_search_trains_at_the_tables_reduced_scale_by_default():
    from benchmarks.lib.recipes import SCALES
    from evaluators.recipe import DEFAULT

    recipe = SearchOptions(budget=10**11).recipe
    assert recipe == DEFAULT.replace(**SCALES["reduced"])  # the scale the table and its noise were measured at
    assert (recipe.img_size, recipe.epochs) != (DEFAULT.img_size, DEFAULT.epochs)  # nas train keeps its own


def test_identity_records_the_precision_only_when_set():
    """A resumed run must train at the precision it started with; ``auto`` runs' search.json is unchanged."""
    from evaluators.recipe import Recipe

    assert "precision" not in SearchOptions(budget=10**11).identity()
    fp32 = SearchOptions(budget=10**11, recipe=Recipe(precision="fp32"))
    assert fp32.identity()["precision"] == "fp32"
    assert SearchOptions.from_identity(fp32.identity()) == fp32


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"cost": "watts"}, "--cost: 'watts' is unknown; accepted: flops, latency"),
        ({"latency_budget_ms": -3.0}, "--latency-budget"),
        ({"latency_budget_ms": math.inf}, "--latency-budget"),
        ({"device": "tpu", "cost": "latency"}, "--device: 'tpu' is not known"),
        ({"device": "tpu"}, "--device: 'tpu' is not known"),
        ({"proxy_stage": "hyperband"}, "--proxy-stage: 'hyperband' is unknown; accepted: select, halving"),
        ({"seeds": 0}, "--seeds: 0 is out of range; accepted: an integer from 1 to 16"),
        ({"trust_region": "box"}, "--trust-region: 'box' is unknown; accepted: none, table"),
        ({"picks": "all"}, "--picks: 'all' is unknown; accepted: front, top, families"),
        ({"seeds": 17}, "--seeds: 17 is out of range"),
    ],
)
def test_bad_cost_options_are_refused(kw, needle):
    with pytest.raises(SearchError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        validate_options(SearchOptions(budget=10**11, **kw))


def test_parse_ms_accepts_units_and_rejects_the_rest():
    assert parse_ms("30ms") == parse_ms("30") == parse_ms("0.03s") == parse_ms("30000us") == 30.0
    for bad in ("", "fast", "-5ms", "0", "30 parsecs", "nan"):
        with pytest.raises(UsageError, match="--latency-budget"):
            parse_ms(bad)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--cost", "watts"], "--cost"),
        (["--latency-budget", "30parsecs"], "--latency-budget"),
        (["--device", "tpu", "--cost", "latency"], "--device"),
    ],
)
def test_cli_bad_cost_flags_are_one_line_exit_2(tmp_path, args, needle):
    cmd = [sys.executable, "-m", "nas.cli", "search", "--budget", "45G", "--runs-dir", str(tmp_path), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr
    assert not (tmp_path / "default").exists()  # nothing written


def test_cli_cuda_without_a_gpu_is_one_line_exit_2(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    cmd = [sys.executable, "-m", "nas.cli", "search", "--budget", "45G", "--runs-dir", str(tmp_path)]
    proc = subprocess.run([*cmd, "--cost", "latency", "--device", "cuda"], capture_output=True, text=True, timeout=120)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "no CUDA GPU" in lines[0], proc.stderr


# -- the dashboard's Best Trials ------------------------------------------------------------------------
def _study_with_a_dominating_infeasible_trial(tmp_path):
    from nas.engine.record.storage import mark_constraint

    storage = open_storage(None, tmp_path / "dash")
    study = optuna.create_study(study_name="dash-cheap", storage=storage, directions=["maximize", "minimize"])
    for score, gflops in ((0.5, 10.0), (0.7, 40.0), (0.9, 80.0)):  # the last is over a 50 GFLOPs budget
        t = study.ask()
        mark_constraint(study, t, gflops - 50.0)
        study.tell(t, [score, gflops])
    return storage, study


def test_dashboard_best_trials_lists_feasible_trials_only(tmp_path):
    from optuna_dashboard import _pareto_front

    from benchmarks.kill_resume import dashboard_api
    from nas.engine.record.dashboard import _feasible_best_trials

    storage, study = _study_with_a_dominating_infeasible_trial(tmp_path)
    # upstream: the over-budget trial is non-dominated, so its Pareto list shows it
    upstream = _pareto_front.get_pareto_front_trials(study.trials, study.directions)
    assert 2 in {t.number for t in upstream}
    _feasible_best_trials()
    from optuna_dashboard import wsgi

    detail = dashboard_api(wsgi(storage), f"/api/studies/{study._study_id}", "after=0")
    assert sorted(t["number"] for t in detail["best_trials"]) == [0, 1]
    assert len(detail["trials"]) == 3  # every trial is still listed, only Best Trials is constrained


# -- pareto.png ---------------------------------------------------------------------------------------------
def _rows(pruned: bool):
    rows = [
        {"trial": i, "state": "COMPLETE", "AP": ap, "last_AP": None, "flops": int(g * 1e9), "latency_ms": ms}
        for i, (ap, g, ms) in enumerate(((0.10, 20, 5.0), (0.20, 35, 9.0), (0.15, 40, 7.0), (0.30, 44, 12.0)))
    ]
    if pruned:
        rows.append({"trial": 9, "state": "PRUNED", "AP": None, "last_AP": 0.05, "flops": int(30e9), "latency_ms": 6.0})
    return rows


@pytest.mark.parametrize("pruned", [False, True])
@pytest.mark.parametrize("cost", ["flops", "latency"])
def test_pareto_png_legend_budget_title(pruned, cost):
    import matplotlib.pyplot as plt

    opts = SearchOptions(budget=parse_flops("45G"), name="demo", cost=cost, latency_budget_ms=10.0)
    rows = _rows(pruned)
    front = pareto_rows(rows, opts.budget, cost, opts.latency_budget_ms if cost == "latency" else None)
    fig = pareto_figure(rows, front, opts.budget, opts)
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("stopped" in s for s in labels) == pruned  # "stopped" only when something was stopped
    assert ("budget 45 GFLOPs" if cost == "flops" else "budget 10 ms") in labels  # the line has its value
    assert "demo" in ax.get_title() and "proxy recipe" in ax.get_title() and "epochs" in ax.get_title()
    assert ("GFLOPs" if cost == "flops" else "latency") in ax.get_xlabel()
    # no point lies under the legend
    box = ax.get_legend().get_window_extent()
    for coll in ax.collections:
        for x, y in ax.transData.transform(coll.get_offsets()):
            assert not box.contains(x, y)
    for line in ax.get_lines():
        for x, y in ax.transData.transform(line.get_xydata()):
            if line.get_marker() not in (None, "None", ""):
                assert not box.contains(x, y)
    plt.close(fig)
    if cost == "latency":  # trial 3 is over the 10 ms budget; the other three trade AP for ms
        assert [r["trial"] for r in front] == [0, 2, 1]
    else:  # trial 2 is dominated by trial 1 (more AP for fewer GFLOPs)
        assert [r["trial"] for r in front] == [0, 1, 3]
    json.dumps(front)


def test_pareto_png_names_low_fidelity_trainings():
    """The adaptive stage's bottom rung is PRUNED with a ``fidelity``: grey points named for what they are."""
    opts = SearchOptions(budget=parse_flops("45G"), name="demo")
    rows = _rows(True)
    rows[-1]["fidelity"] = {"epochs": 2, "of": 6}
    fig = pareto_figure(rows, pareto_rows(rows, opts.budget), opts.budget, opts)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "low fidelity (short-schedule AP)" in labels and not any("stopped" in s for s in labels)
