"""The cheap stage's optimiser and its records: NSGA-II's survivors against brute-force
non-dominated ranking, genome operators against ``SearchSpace.params_of``, deduplication before
scoring, resume from a journal cut inside a generation, and diverse picks."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nas.engine.cheap.stage as cheap_module
from nas.core.cost import parse_flops
from nas.engine import SearchOptions, cheap_stage, select_candidates
from nas.engine.cheap.evolution import NSGA2, Member, crossover, mutate, random_genome, survivors
from nas.engine.cheap.select import DIVERSITY_MARGIN_SD, block_pattern
from nas.engine.record.storage import open_storage
from nas.engine.record.trials import config_of, key_hash
from search_spaces import load_config
from search_spaces.space import SPACES

SPACE = SPACES["yolor"]


def _brute_rank(members):
    """Constraint-dominated rank by definition: feasible fronts by peeling non-dominated sets,
    then the over-budget members by violation."""

    def dominates(a, b):
        return a.score >= b.score and a.cost <= b.cost and (a.score, a.cost) != (b.score, b.cost)

    feasible = [i for i, m in enumerate(members) if m.violation <= 0]
    rank, r, left = {}, 0, set(feasible)
    while left:
        front = {i for i in left if not any(dominates(members[j], members[i]) for j in left)}
        rank.update(dict.fromkeys(front, r))
        left -= front
        r += 1
    for i in sorted((i for i, m in enumerate(members) if m.violation > 0), key=lambda i: members[i].violation):
        rank[i] = r
        r += 1
    return rank


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9), st.integers(-3, 3)), min_size=1, max_size=30),
    st.integers(1, 30),
)
def test_survivors_keep_the_better_fronts(points, n):
    members = [Member({"i": i}, float(s), float(c), float(v)) for i, (s, c, v) in enumerate(points)]
    kept = survivors(list(members), n)
    assert len(kept) == min(n, len(members)) and len({id(m) for m in kept}) == len(kept)
    rank = _brute_rank(members)
    kept_idx = {m.genome["i"] for m in kept}
    dropped = set(range(len(members))) - kept_idx
    if dropped:  # nothing dropped ranks better than anything kept
        assert max(rank[i] for i in kept_idx) <= min(rank[i] for i in dropped)


def test_genomes_are_the_params_the_space_asks_for():
    rng = random.Random(1)
    for _ in range(50):
        p = random_genome(SPACE, rng)
        assert p.genome == SPACE.params_of(p.config)  # the genome is exactly Optuna's params
        assert p.canonical == p.config.canonical()
        same = mutate(SPACE, p.genome, rng, 0.0)  # p = 0 keeps every gene
        assert same.config == p.config
        q = random_genome(SPACE, rng)
        child = crossover(p.genome, q.genome, rng)
        assert all(child[k] in (p.genome.get(k), q.genome.get(k)) for k in child)
        kid = mutate(SPACE, child, rng, 0.0)
        assert kid.genome == SPACE.params_of(kid.config)  # knobs a new block needs were drawn


def test_proposals_are_new_distinct_and_a_function_of_seed_and_generation():
    opt = NSGA2(SPACE, seed=3, population=20)
    first = opt.propose(0, 20, seen=set())
    seen = {p.canonical for p in first}
    assert len(seen) == 20
    opt.tell([Member(p.genome, float(i), float(i % 7), -1.0) for i, p in enumerate(first)])
    second = opt.propose(1, 20, seen)
    assert not seen & {p.canonical for p in second} and len({p.canonical for p in second}) == 20
    again = NSGA2(SPACE, seed=3, population=20)
    again.propose(0, 20, set())
    again.tell([Member(p.genome, float(i), float(i % 7), -1.0) for i, p in enumerate(first)])
    assert [p.genome for p in again.propose(1, 20, seen)] == [p.genome for p in second]
    assert [p.genome for p in NSGA2(SPACE, seed=4, population=20).propose(0, 20, set())] != [p.genome for p in first]


def test_a_small_space_is_exhausted_not_looped_on():
    import dataclasses

    tiny = dataclasses.replace(SPACES["yolor-uniform"], blocks=("res",), widths=(0.5, 1.0), depths=(0.33,))
    opt = NSGA2(tiny, seed=0, population=10)
    got = opt.propose(0, 10, set(), max_tries=500)
    assert len(got) == len(tiny) == 2


def _counting(monkeypatch):
    scored = []
    real = cheap_module.evaluate_batch

    def counting(cfgs, kind, latency=None):
        scored.extend(c.key() for c in cfgs)
        return real(cfgs, kind, latency)

    monkeypatch.setattr(cheap_module, "evaluate_batch", counting)
    return scored


def test_only_unique_configs_are_scored_and_all_are_recorded(tmp_path, monkeypatch):
    scored = _counting(monkeypatch)
    opts = SearchOptions(budget=parse_flops("60G"), name="u", candidates=250, runs_dir=str(tmp_path))
    study = cheap_stage(open_storage(None, opts.run_dir), opts, progress=False, population=50)
    trials = study.get_trials()
    keys = [t.user_attrs["key"] for t in trials]
    assert len(trials) == 250 and len(set(keys)) == 250
    assert sorted(key_hash(k) for k in scored) == sorted(keys)  # each stored candidate scored once, nothing else scored
    assert study.user_attrs["proposed_duplicates"] > 0  # the optimiser did propose duplicates
    assert {t.user_attrs["generation"] for t in trials} == set(range(5))
    for t in trials[:20]:
        cfg = SPACE.configure(lambda name, _c, t=t: t.params[name])
        assert key_hash(cfg.key()) == t.user_attrs["key"] and cfg.to_yaml() == config_of(t)
        assert t.user_attrs["pattern"] == "/".join(block_pattern(cfg))
        over = t.values[1] - opts.budget / 1e9  # GFLOPs
        assert t.system_attrs["constraints"] == pytest.approx([over]) and t.user_attrs["feasible"] == (over <= 0)


def test_resume_from_a_journal_cut_inside_a_generation_loses_and_recomputes_nothing(tmp_path, monkeypatch):
    opts = SearchOptions(budget=parse_flops("60G"), name="r", candidates=250, runs_dir=str(tmp_path / "a"))
    unbroken = cheap_stage(open_storage(None, opts.run_dir), opts, progress=False, population=50)
    reference = {t.user_attrs["key"] for t in unbroken.get_trials()}
    # what a kill -9 inside generation 2's append leaves: its first 10 records and a torn one
    lines = (opts.run_dir / "optuna.journal").read_text().splitlines(keepends=True)
    out, created = [], 0
    for line in lines:
        if "datetime_start" in json.loads(line):  # a CREATE_TRIAL record
            created += 1
            if created > 110:
                out.append(line[: len(line) // 2])  # torn, no newline
                break
        out.append(line)
    cut = dataclass_replace(opts, runs_dir=str(tmp_path / "b"))
    cut.run_dir.mkdir(parents=True)
    (cut.run_dir / "optuna.journal").write_text("".join(out))
    from nas.engine.record.storage import prepare_journal

    prepare_journal(cut.run_dir / "optuna.journal", lambda _s: None)
    scored = _counting(monkeypatch)
    resumed = cheap_stage(open_storage(None, cut.run_dir), cut, progress=False, population=50).get_trials()
    assert {t.user_attrs["key"] for t in resumed} == reference and len(resumed) == 250
    assert len(scored) == 140  # 250 − the 110 the cut journal kept: nothing recomputed
    assert [t.user_attrs["key"] for t in resumed[:110]] == [t.user_attrs["key"] for t in unbroken.get_trials()[:110]]


def dataclass_replace(obj, **kw):
    import dataclasses

    return dataclasses.replace(obj, **kw)


def test_block_pattern_is_the_block_of_every_stage_and_node():
    cfg = load_config("yolor-prn")
    assert block_pattern(cfg) == ("prn",) * 10  # uniform: 5 backbone stages + 5 neck nodes
    hetero = load_config("yolor-elan-hetero")
    assert block_pattern(hetero) == hetero.pattern() and block_pattern(hetero)[:5] == ("elan",) * 5
    assert set(block_pattern(hetero)[5:]) == {"csp"}
    cfg = SPACE.sample(random.Random(3))
    assert block_pattern(cfg) == tuple(cfg.pattern()) and len(block_pattern(cfg)) == 10


# -- diverse picks -------------------------------------------------------------------------------
def _fake(number, score, flops, pattern):
    return SimpleNamespace(
        number=number,
        state=SimpleNamespace(name="COMPLETE"),
        values=[score, flops],
        user_attrs={"key": f"k{number}", "pattern": pattern, "config": ""},
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 100), st.integers(1, 100), st.sampled_from("ABC")), min_size=2, max_size=30),
    st.integers(2, 5),
)
def test_picks_are_not_all_one_pattern_when_a_near_best_alternative_exists(points, k):
    trials = [_fake(n, s / 10, f, p) for n, (s, f, p) in enumerate(points)]
    budget = 100
    chosen = select_candidates(trials, k, budget)
    import statistics

    margin = DIVERSITY_MARGIN_SD * statistics.pstdev(t.values[0] for t in trials)
    low = min(t.values[1] for t in trials)
    width = (budget - low) / k or 1.0
    bands = {}
    for t in trials:
        bands.setdefault(min(k - 1, int((t.values[1] - low) / width)), []).append(t)
    best = {b: max(ts, key=lambda t: (t.values[0], -t.values[1], -t.number)) for b, ts in bands.items()}
    alternative = any(
        t.user_attrs["pattern"] != best[b].user_attrs["pattern"] and t.values[0] >= best[b].values[0] - margin
        for b, ts in bands.items()
        for t in ts
    )
    if len(bands) >= 2 and alternative and margin > 0:
        assert len({t.user_attrs["pattern"] for t in chosen}) >= 2
    # each band still gives a near-best candidate of its own band
    for b, ts in bands.items():
        assert any(t in ts and t.values[0] >= best[b].values[0] - margin for t in chosen)


def test_a_band_keeps_its_best_when_no_alternative_is_near():
    trials = [_fake(0, 9.0, 90, "A"), _fake(1, 1.0, 85, "B"), _fake(2, 5.0, 20, "A"), _fake(3, 4.9, 21, "B")]
    # margin = 0.1 × sd(9, 1, 5, 4.9) ≈ 0.28: band [20, 55) has B within 0.1 of A; band [55, 90] has none
    assert [t.number for t in select_candidates(trials, 2, budget=90)] == [0, 3]


@pytest.mark.slow
def test_search_with_trials_0_prints_the_picks_and_trains_nothing(tmp_path):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "nas.cli", "search", "--budget", "60G", "--name", "z", "--runs-dir", str(tmp_path)]
    proc = subprocess.run(
        [*cmd, "--candidates", "600", "--trials", "0", "--json"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert len(summary["picks"]) == 4 and all(p["flops"] <= parse_flops("60G") for p in summary["picks"])
    assert not (tmp_path / "z" / "trials").exists()
    import optuna

    names = {s.study_name for s in optuna.get_all_study_summaries(open_storage(None, tmp_path / "z"))}
    assert names == {"z-cheap"}
    top = subprocess.run(
        [*cmd[:-4], "--name", "t", *cmd[-2:], "--candidates", "600", "--trials", "0", "--picks", "top", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert top.returncode == 0, top.stderr[-2000:]
    near = [p["flops"] for p in json.loads(top.stdout)["picks"]]  # the same candidates, all near the budget
    assert len(near) == 4 and all(0.75 * parse_flops("60G") <= f <= parse_flops("60G") for f in near)
    assert json.loads((tmp_path / "t" / "search.json").read_text())["picks"] == "top"
