"""Bad input never crashes the ``nas`` command: every generated invalid input exits 2 with one
line naming the problem and leaves nothing behind; every valid one succeeds. The generators are
``benchmarks/fuzz.py``'s (which runs thousands of cases); CI runs a sample here (< 60 s), plus the
inputs that once crashed, plus a sample through the real entry point as a subprocess."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import HealthCheck, given, settings

from tests.support.fuzz_cases import (
    PWNED,
    RUN_NAME,
    STRATEGIES,
    TRAIN_TINY,
    Case,
    Fixtures,
    _checkpoint_bytes,
    _ckpt_state,
    _Runs,
    _tree,
    execute,
    judge,
    materialize,
    run_subprocess,
    stubbed_work,
    train_ok_case,
)

EXAMPLES = {"show": 60, "train": 30, "checkpoint": 5, "export": 30, "analyze": 15, "search": 60, "dashboard": 25}


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixtures:
    return Fixtures(tmp_path_factory.mktemp("fuzz"))


@pytest.fixture(scope="module", autouse=True)
def _no_search_no_server():
    """Valid ``search``/``dashboard`` arguments reach a stub: no Ray, no server in this test."""
    with stubbed_work():
        yield


@pytest.mark.parametrize("command", sorted(EXAMPLES))
def test_generated_inputs_exit_0_or_one_clear_line(command: str, fx: Fixtures) -> None:
    count = [0]

    @settings(
        max_examples=EXAMPLES[command],
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(STRATEGIES[command]())
    def check(case: Case) -> None:
        count[0] += 1
        res, _ = execute(case, fx, count[0])
        problems = judge(case, res)
        assert not problems, (case.label, case.argv, problems)

    check()


def _c(command: str, argv: list[str], label: str, mention: str | None = None, **kw) -> Case:  # noqa: ANN003
    return Case(command, argv, "error", label, mention, **kw)


_DEEP = b"schema: 1\nneck: " + b"{a: " * 3000 + b"1" + b"}" * 3000
_COCO_LIST_ID = b'{"images": [{"id": [1], "file_name": "a.jpg"}], "categories": [{"id": 1}]}'

# inputs that crashed (a traceback) or misbehaved before the fixes listed in docs/reliability.md
REGRESSIONS = [
    _c(
        "show", ["show", "{tmp}/c.yaml"], "nesting deeper than the YAML parser's stack", "YAML", files={"c.yaml": _DEEP}
    ),
    _c(
        "show",
        ["show", "{tmp}/c.yaml"],
        "5000-digit int",
        "YAML",
        files={"c.yaml": b"schema: 1\nwidth: 1" + b"0" * 5000},
    ),
    _c(
        "show",
        ["show", "{tmp}/c.yaml"],
        "int too large for a float",
        "width",
        files={"c.yaml": b"schema: 1\nwidth: 1" + b"0" * 400},
    ),
    _c("show", ["show", "x" * 5000], "name too long for the file system", "not a usable name"),
    _c("train", ["train", "yolor-v3", "--epochs", "0"], "train --epochs 0", "--epochs"),
    _c("train", ["train", "yolor-v3", "--img-size", "65"], "train --img-size 65", "--img-size"),
    _c("train", ["train", "yolor-v3", "--width-mult", "nan"], "train --width-mult nan", "--width-mult"),
    _c("train", ["train", "yolor-v3", "--threads", "-3", *TRAIN_TINY[:-2]], "train --threads -3", "--threads"),
    _c("train", ["train", "yolor-v3", "--seed", str(2**70)], "train --seed 2**70", "--seed"),
    _c("train", ["train", "yolor-v3", "--out", "{tmp}/afile", *TRAIN_TINY], "train --out FILE", "--out"),
    _c(
        "train",
        ["train", "yolor-v3", "--data", "{tmp}/a.json", "--out", "{tmp}/o", *TRAIN_TINY],
        "COCO image id a list",
        "integer 'id'",
        files={"a.json": _COCO_LIST_ID},
    ),
    _c(
        "search",
        ["search", "--budget", "45G", "--img-size", "32", "--runs-dir", "{tmp}/r"],
        "search 32 px",
        "--img-size",
    ),
    _c("search", ["search", "--budget", "45G", "--seed", "-1", "--runs-dir", "{tmp}/r"], "search --seed -1", "--seed"),
    _c("search", ["search", "--budget", "45G", "--name", "n" * 300, "--runs-dir", "{tmp}/r"], "long --name", "--name"),
    _c("search", ["search", "--budget", "45G", "--runs-dir", "{tmp}/afile"], "--runs-dir a file", "Not a directory"),
    _c(
        "search",
        ["search", "--budget", "45G", "--storage", "bogus://x", "--runs-dir", "{tmp}/r"],
        "bad --storage URL",
        "--storage",
    ),
    _c(
        "search",
        ["search", "--budget", "45G", "--storage", "{tmp}/adir", "--runs-dir", "{tmp}/r"],
        "--storage a folder",
        "--storage",
    ),
    _c(
        "search",
        ["search", "--budget", "45G", "--data", "{tmp}/a.json", "--runs-dir", "{tmp}/r"],
        "broken annotation file",
        "--data",
        files={"a.json": b'{"images": []}'},
    ),
    _c("export", ["export", "{tmp}/" + RUN_NAME, "-o", "{tmp}/adir"], "export -o FOLDER", "-o", run=RUN_NAME),
    _c(
        "export",
        ["export", "{tmp}/" + RUN_NAME],
        "search.json truncated",
        "search.json",
        run=RUN_NAME,
        damage=("search.json", "truncate", 40),
    ),
    _c(
        "export",
        ["export", "{tmp}/" + RUN_NAME],
        "a broken record mid-journal",
        "optuna.journal",
        run=RUN_NAME,
        damage=("optuna.journal", "middle", 3),
    ),
    _c(
        "export",
        ["export", "{tmp}/" + RUN_NAME, "--max-flops", "abc"],
        "export --max-flops abc",
        "--max-flops",
        run=RUN_NAME,
    ),
    _c("dashboard", ["dashboard", "{tmp}/" + RUN_NAME, "--port", "99999"], "port out of range", "--port", run=RUN_NAME),
    _c(
        "dashboard",
        ["dashboard", "{tmp}/" + RUN_NAME, "--host", "1.2.3.4"],
        "address not local",
        "--host",
        run=RUN_NAME,
    ),
    _c(
        "dashboard",
        ["dashboard", "{tmp}/" + RUN_NAME, "--port", "{port}"],
        "port in use",
        "cannot listen",
        run=RUN_NAME,
        busy_port=True,
    ),
]


@pytest.mark.parametrize("case", REGRESSIONS, ids=[c.label for c in REGRESSIONS])
def test_inputs_that_once_crashed(case: Case, fx: Fixtures) -> None:
    res, _ = execute(case, fx, 0)
    assert not judge(case, res), (res.stderr, res.crash)


# one per command but analyze, through the real entry point (``python -m nas.cli``), judged the same way
_BY_LABEL = {c.label: c for c in REGRESSIONS}
SUBPROCESS = [
    *(
        _BY_LABEL[label]
        for label in (
            "nesting deeper than the YAML parser's stack",
            "COCO image id a list",
            "search 32 px",
            "search.json truncated",
            "port out of range",
        )
    ),
    Case("show", ["show", "yolor-csp", "--json"], "ok", "valid show"),
]


@pytest.mark.slow
def test_real_entry_point_sample(fx: Fixtures) -> None:
    jobs = []
    for i, case in enumerate(SUBPROCESS):
        tmp = fx.sandbox(case, 1000 + i)
        jobs.append((case, tmp, materialize(case, tmp), _tree(tmp)))
    with ThreadPoolExecutor(3) as pool:  # each start imports torch: a few seconds
        results = list(pool.map(lambda job: run_subprocess(job[2], job[1]), jobs))
    for (case, tmp, _argv, before), sub in zip(jobs, results, strict=True):
        sub.new_paths = sorted(_tree(tmp) - before) if sub.rc == 2 else []
        assert not judge(case, sub), (case.label, sub.rc, sub.stderr[-500:])
        assert sub.rc == (0 if case.expect == "ok" else 2), case.label


def test_a_valid_tiny_training_succeeds(fx: Fixtures) -> None:
    case = train_ok_case()
    res, _ = execute(case, fx, 2000)
    assert res.rc == 0 and not judge(case, res), (res.stderr, res.crash)


_TRAIN_OUT = ["train", "yolor-elan-1-1", "--out", "{tmp}/out", *TRAIN_TINY]
PLANTED = [
    Case(
        "checkpoint",
        _TRAIN_OUT,
        "ok",
        label,
        files={"out/checkpoint.pt": data},
        forbidden=PWNED,
    )
    for label, data in (
        ("os.system as the whole raw pickle", _checkpoint_bytes(_Runs(os.system, f"touch {PWNED}"), raw_pickle=True)),
        ("open() in the rng state of a torch.save zip", _checkpoint_bytes(_ckpt_state(rng=_Runs(open, PWNED, "w")))),
    )
]


@pytest.mark.parametrize("case", PLANTED, ids=[c.label for c in PLANTED])
def test_a_planted_checkpoint_runs_no_code_and_the_training_starts_over(case: Case, fx: Fixtures) -> None:
    res, _ = execute(case, fx, 3000)
    assert res.rc == 0 and not judge(case, res), (res.stderr[-500:], res.crash)
