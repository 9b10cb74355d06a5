"""The fuzz generators of the ``nas`` command: hypothesis strategies for every subcommand's bad
(and good) input, the in-process and subprocess runners, and the judge.

Each case is judged:

- invalid input → exit 2, exactly one line on stderr starting ``error:`` and naming the
  problem where the case knows it, no traceback, nothing new left in the case's folder;
- valid input → success (``search``/``dashboard``: the arguments pass validation and reach
  the work, which is stubbed here — no Ray, no server is ever started);
- any input → never a traceback, never Ray started, never code from the input run (a planted
  checkpoint's payload would write the case's ``forbidden`` file).

``tests/engine/test_reliability_fuzz.py`` runs a sample in CI; ``python -m benchmarks.fuzz``
runs thousands of cases with the same generators.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from search_spaces.config import FUSIONS, STOP_GRADIENTS

ROOT = Path(__file__).resolve().parents[2]

COMMANDS = ("show", "train", "checkpoint", "export", "analyze", "search", "dashboard")
TRAIN_TINY = ["--epochs", "1", "--images", "8", "--val-images", "8", "--img-size", "64", "--threads", "1"]


# -- cases and outcomes ------------------------------------------------------------------------
@dataclasses.dataclass
class Case:
    """One generated input. ``argv`` and file contents may hold ``{tmp}`` (the case's folder)."""

    command: str
    argv: list[str]
    expect: str  # "ok" | "error" | "any"
    label: str
    mention: str | None = None  # a word the error line must contain: the problem's name
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)
    run: str | None = None  # copy the finished fixture run to {tmp}/<run>
    damage: tuple[str, str, int] | None = None  # (file in the run, how, where)
    busy_port: bool = False  # replace "{port}" by a port this process is listening on
    forbidden: str | None = None  # a file (in the case's folder) that only code run from the input would make


@dataclasses.dataclass
class Outcome:
    rc: int | None
    stdout: str
    stderr: str
    crash: str | None = None  # the traceback of an exception that escaped main()
    reached: str | None = None  # valid arguments reached the (stubbed) search / server
    ray_started: bool = False
    code_ran: bool = False  # the case's ``forbidden`` file appeared: the input executed code
    new_paths: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


class Reached(BaseException):
    """Raised by the stubs where a search would start its work or the dashboard its server.
    A BaseException, so no ``except Exception`` on the way can mistake it for a failure."""


@contextlib.contextmanager
def stubbed_work() -> Iterator[None]:
    """Stub the search's first stage and the dashboard's server for the duration."""
    import nas.engine.driver as search_module
    import nas.engine.record.dashboard as dashboard_module

    saved = (search_module.cheap_stage, dashboard_module.serve)

    def cheap(*_a: Any, **_k: Any) -> None:
        raise Reached("search")

    def server(*_a: Any, **_k: Any) -> None:
        raise Reached("dashboard")

    search_module.cheap_stage, dashboard_module.serve = cheap, server
    try:
        yield
    finally:
        search_module.cheap_stage, dashboard_module.serve = saved


def _ray_started() -> bool:
    ray = sys.modules.get("ray")
    return bool(ray is not None and getattr(ray, "is_initialized", lambda: False)())


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def run_in_process(argv: list[str], cwd: Path) -> Outcome:
    """``nas.cli.main(argv)`` with cwd, stdout and stderr redirected; nothing escapes."""
    from nas.cli import main

    out, err = io.StringIO(), io.StringIO()
    res = Outcome(rc=None, stdout="", stderr="")
    old = os.getcwd()
    os.chdir(cwd)
    t = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            res.rc = main(argv)
    except Reached as r:
        res.reached = str(r.args[0])
    except SystemExit as e:  # --help
        res.rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # noqa: BLE001 - the whole point: record what escaped
        res.crash = traceback.format_exc()
    finally:
        os.chdir(old)
    res.seconds = time.perf_counter() - t
    res.stdout, res.stderr = out.getvalue(), err.getvalue()
    res.ray_started = _ray_started()
    return res


def run_subprocess(argv: list[str], cwd: Path, timeout: float = 180) -> Outcome:
    """The real entry point: ``python -m nas.cli ARGV`` (the ``nas`` script's code path)."""
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "nas.cli", *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    crash = proc.stderr if "Traceback (most recent call last)" in proc.stderr else None
    return Outcome(proc.returncode, proc.stdout, proc.stderr, crash=crash, seconds=time.perf_counter() - t)


def judge(case: Case, res: Outcome) -> list[str]:
    """The problems of one outcome (empty: the case held)."""
    problems = []
    if res.crash:
        last = res.crash.strip().splitlines()[-1]
        problems.append(f"traceback: {last}")
    if res.ray_started:
        problems.append("Ray was started")
    if res.code_ran:
        problems.append(f"code from the input ran: {case.forbidden} was written")
    if res.crash:
        return problems
    if res.reached:
        if case.command not in ("search", "dashboard"):
            problems.append(f"reached {res.reached} from {case.command}")
        if case.expect == "error":
            problems.append("invalid input accepted (reached the work)")
        return problems
    if res.rc == 0:
        if case.expect == "error":
            problems.append("invalid input accepted (exit 0)")
        if case.command in ("search", "dashboard") and case.argv[-1:] != ["--help"] and "--help" not in case.argv:
            problems.append(f"{case.command} exited 0 without reaching its work")
        return problems
    if res.rc != 2:
        return [*problems, f"exit {res.rc} (expected 0 or 2); stderr: {res.stderr.strip()[-300:]}"]
    if case.expect == "ok":
        problems.append(f"valid input rejected: {res.stderr.strip()[:300]}")
    lines = res.stderr.strip().splitlines()
    if len(lines) != 1:
        problems.append(f"{len(lines)} lines on stderr (expected 1): {res.stderr.strip()[:300]!r}")
    elif not lines[0].startswith("error: "):
        problems.append(f"stderr line does not start with 'error: ': {lines[0][:200]!r}")
    if "Traceback" in res.stderr:
        problems.append("a traceback on stderr")
    if case.mention and lines and case.mention.lower() not in lines[0].lower():
        problems.append(f"error does not name {case.mention!r}: {lines[0][:300]!r}")
    if res.new_paths:
        problems.append(f"left behind after the error: {sorted(res.new_paths)[:5]}")
    return problems


# -- fixtures ----------------------------------------------------------------------------------
RUN_NAME = "fz"
TRIAL_PRESETS = ("yolor-elan-1-1", "yolor-csp", "yolor-v3")


def build_run(runs_dir: Path) -> Path:
    """A finished search run without Ray: both studies in a journal, three COMPLETE trained
    trials (presets, real FLOPs and metrics), one PRUNED, one FAIL; search.json as a search writes it."""
    import optuna

    from nas.core.cost import parse_flops
    from nas.core.runio import atomic_write_json
    from nas.engine import SearchOptions, score_candidate
    from nas.engine.record.storage import mark_constraint, open_storage
    from search_spaces import load_config

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opts = SearchOptions(budget=parse_flops("200G"), name=RUN_NAME, candidates=5, trials=5, runs_dir=str(runs_dir))
    storage = open_storage(None, opts.run_dir)
    cheap = optuna.create_study(study_name=f"{RUN_NAME}-cheap", storage=storage, directions=["maximize", "minimize"])
    proxy = optuna.create_study(study_name=RUN_NAME, storage=storage, directions=["maximize", "minimize"])
    for i, preset in enumerate((*TRIAL_PRESETS, "yolor-prn", "yolor-elan-2-2")):
        cfg = load_config(preset)
        s = score_candidate(cfg)
        for study in (cheap, proxy):
            t = study.ask()
            for k, v in (("config", cfg.to_yaml()), ("key", cfg.key()), ("flops", s["flops"])):
                t.set_user_attr(k, v)
            t.set_user_attr("params", s["params"])
            t.set_user_attr("metrics", s["metrics"])
            mark_constraint(study, t, float(s["flops"] - opts.budget))
            if study is cheap:
                study.tell(t, [s["score"], float(s["flops"])])
            elif i < 3:
                study.tell(t, [0.1 * (i + 1), float(s["flops"])])
            elif i == 3:
                t.set_user_attr("reason", "stopped early by ASHA")
                study.tell(t, state=optuna.trial.TrialState.PRUNED)
            else:
                t.set_user_attr("reason", "non-finite loss")
                study.tell(t, state=optuna.trial.TrialState.FAIL)
    atomic_write_json(opts.run_dir / "search.json", opts.identity())
    return opts.run_dir


def damage_file(path: Path, how: str, where: int) -> None:
    """Damage one file of a run copy: ``truncate`` at a byte, ``garbage`` appended, ``middle``
    (a broken line inserted mid-file), ``binary`` (replaced), ``empty``, ``folder`` (replaced by a
    folder), ``missing``."""
    data = path.read_bytes() if path.is_file() else b""
    if how == "truncate":  # at least the last two bytes go: never the whole, still valid file
        path.write_bytes(data[: where % max(1, len(data) - 1)])
    elif how == "garbage":
        path.write_bytes(data + b'{"op": 9, "broken\n{"x"')
    elif how == "middle":
        lines = data.splitlines(keepends=True)
        k = where % max(1, len(lines))
        path.write_bytes(b"".join(lines[:k] + [b'{"op_code": 4, "worker_id": \n'] + lines[k:]))
    elif how == "binary":
        path.write_bytes(random.Random(where).randbytes(200))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "folder":
        path.unlink(missing_ok=True)
        path.mkdir()
    elif how == "missing":
        path.unlink(missing_ok=True)
    else:
        raise ValueError(how)


MODEL_PY = b"""import torch
from torch import nn

def make():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1))

def broken():
    raise RuntimeError("factory failed")

def not_a_module():
    return 3

NOT_CALLABLE = 5
"""

COCO_OK: dict[str, Any] = {
    "images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 64}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1.0, 1.0, 10.0, 10.0], "iscrowd": 0}],
    "categories": [{"id": 1, "name": "thing"}],
}


class Fixtures:
    """Files every case may use, built once: a finished run, a model file, a shared data cache."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.run = build_run(root / "runs")
        self.data_cache = root / "data-cache"
        self.data_cache.mkdir(exist_ok=True)

    def sandbox(self, case: Case, index: int) -> Path:
        """A fresh folder for one case, holding its files (and the run copy it asks for)."""
        tmp = Path(tempfile.mkdtemp(prefix=f"case{index}-", dir=self.root))
        for name, data in case.files.items():
            p = tmp / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data.replace(b"{tmp}", str(tmp).encode()))
        if case.run:
            shutil.copytree(self.run, tmp / case.run, ignore=shutil.ignore_patterns(".lock"))
            if case.damage:
                name, how, where = case.damage
                damage_file(tmp / case.run / name, how, where)
        (tmp / "runs").mkdir(exist_ok=True)
        (tmp / "runs" / "data").symlink_to(self.data_cache)  # nas train's shapes cache, shared
        (tmp / "adir").mkdir(exist_ok=True)
        (tmp / "afile").write_bytes(b"not a folder\n")
        return tmp


def materialize(case: Case, tmp: Path, port: int | None = None) -> list[str]:
    argv = [a.replace("{tmp}", str(tmp)) for a in case.argv]
    if port is not None:
        argv = [a.replace("{port}", str(port)) for a in argv]
    return argv


def execute(case: Case, fx: Fixtures, index: int, subprocess_too: bool = False) -> tuple[Outcome, Outcome | None]:
    """Run one case in process (and optionally as a subprocess) in its own sandbox."""
    tmp = fx.sandbox(case, index)
    busy = None
    try:
        port = None
        if case.busy_port:
            busy = socket.socket()
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            port = busy.getsockname()[1]
        argv = materialize(case, tmp, port)
        before = _tree(tmp)
        res = run_in_process(argv, tmp)
        res.new_paths = sorted(_tree(tmp) - before) if res.rc == 2 else []
        res.code_ran = bool(case.forbidden and (tmp / case.forbidden).exists())
        sub = None
        if subprocess_too:
            before = _tree(tmp)
            sub = run_subprocess(argv, tmp)
            sub.new_paths = sorted(_tree(tmp) - before) if sub.rc == 2 else []
            sub.code_ran = bool(case.forbidden and (tmp / case.forbidden).exists())
        return res, sub
    finally:
        if busy is not None:
            busy.close()
        shutil.rmtree(tmp, ignore_errors=True)


# -- strategies: ArchConfig YAML ---------------------------------------------------------------
RATIOS = (0.25, 0.5, 0.75)


def part_dicts() -> st.SearchStrategy[dict[str, Any]]:
    sg = {"stop_gradient": st.sampled_from(STOP_GRADIENTS)}
    return st.one_of(
        st.fixed_dictionaries({"block": st.just("res")}, optional=sg),
        st.fixed_dictionaries({"block": st.just("prn"), "mask_fraction": st.sampled_from(RATIOS)}, optional=sg),
        st.fixed_dictionaries(
            {"block": st.just("csp"), "split_ratio": st.sampled_from(RATIOS), "fusion": st.sampled_from(FUSIONS)},
            optional=sg,
        ),
        st.fixed_dictionaries(
            {"block": st.just("elan"), "split_ratio": st.sampled_from(RATIOS), "elan_stack": st.integers(1, 4)}
        ),
    )


def valid_configs() -> st.SearchStrategy[dict[str, Any]]:
    """Configs inside the space's knob values: each must compile (``nas show`` exit 0)."""
    return st.fixed_dictionaries(
        {"schema": st.just(1), "backbone": part_dicts(), "neck": part_dicts()},
        optional={
            "family": st.sampled_from(("yolor", "classifier")),
            "img_size": st.integers(2, 32).map(lambda k: 32 * k),
            "num_classes": st.integers(1, 1000),
            "width": st.sampled_from((0.5, 0.75, 1.0, 1.25)),
            "depth": st.sampled_from((0.33, 0.67, 1.0, 1.33)),
        },
    )


_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
_NOT_INT = st.one_of(_JUNK, st.floats())  # a float is never an integer field, not even 5.0
_BAD_FLOAT = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=10),
    st.lists(st.floats(), max_size=2),
    st.just(float("nan")),
    st.just(float("inf")),
)


def _outside(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.one_of(
        st.floats(max_value=lo, exclude_max=True, allow_nan=False),
        st.floats(min_value=hi, exclude_min=True, allow_nan=False),
        st.integers(min_value=10**6, max_value=10**40),
        st.integers(max_value=-1, min_value=-(10**40)),
    ).filter(lambda v: not lo <= v <= hi)


BAD_TOP: dict[str, st.SearchStrategy[Any]] = {
    "family": st.one_of(
        st.text(max_size=30).filter(lambda s: s not in ("yolor", "classifier")), st.integers(), st.none()
    ),
    "img_size": st.one_of(
        st.integers().filter(lambda v: not (32 <= v <= 4096 and v % 32 == 0)),
        st.floats(allow_nan=True),
        st.text(max_size=8),
        st.booleans(),
        st.none(),
    ),
    "num_classes": st.one_of(st.integers().filter(lambda v: not 1 <= v <= 100000), _NOT_INT),
    "width": st.one_of(_outside(0.03, 4), _BAD_FLOAT),
    "depth": st.one_of(_outside(0.1, 4), _BAD_FLOAT),
    "schema": st.one_of(
        st.integers().filter(lambda v: v != 1), st.text(max_size=5), st.booleans(), st.none(), st.just(1.5)
    ),
}
BAD_PART: dict[str, st.SearchStrategy[Any]] = {
    "block": st.one_of(
        st.text(max_size=12).filter(lambda s: s not in ("res", "prn", "csp", "elan")), st.integers(), st.none()
    ),
    "split_ratio": st.one_of(_outside(0.0, 1.0), st.just(0.0), st.just(1.0), _BAD_FLOAT),
    "fusion": st.one_of(st.text(max_size=12).filter(lambda s: s not in FUSIONS), st.integers(), st.none()),
    "mask_fraction": st.one_of(_outside(0.0, 1.0), _BAD_FLOAT),
    "elan_stack": st.one_of(
        st.integers().filter(lambda v: not 1 <= v <= 8), st.floats(), st.text(max_size=4), st.none()
    ),
    "stop_gradient": st.one_of(
        st.text(max_size=12).filter(lambda s: s not in STOP_GRADIENTS), st.integers(), st.none()
    ),
}


@st.composite
def invalid_configs(draw: st.DrawFn) -> tuple[Any, str, str]:
    """A valid config with exactly one thing wrong: (value, what is wrong, the word the error names)."""
    cfg = draw(valid_configs())
    kind = draw(st.sampled_from(("top", "part", "part-type", "unknown", "unknown-part", "no-schema", "not-mapping")))
    if kind == "top":
        key = draw(st.sampled_from(sorted(BAD_TOP)))
        cfg[key] = draw(BAD_TOP[key])
        return cfg, f"bad {key}", key
    if kind in ("part", "part-type", "unknown-part"):
        part = draw(st.sampled_from(("backbone", "neck")))
        if kind == "part-type":
            cfg[part] = draw(
                st.one_of(st.text(max_size=10), st.integers(), st.lists(st.integers(), max_size=3), st.booleans())
            )
            return cfg, f"{part} not a mapping", part
        if kind == "unknown-part":
            key = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in BAD_PART))
            cfg[part][key] = 1
            return cfg, f"unknown key in {part}", "unknown key"
        key = draw(st.sampled_from(sorted(BAD_PART)))
        cfg[part][key] = draw(BAD_PART[key])
        return cfg, f"bad {part}.{key}", f"{part}.{key}"
    if kind == "unknown":
        key = draw(
            st.text(min_size=1, max_size=12).filter(lambda k: k not in BAD_TOP and k not in ("backbone", "neck"))
        )
        cfg[key] = draw(_JUNK)
        return cfg, "unknown top-level key", "unknown key"
    if kind == "no-schema":
        del cfg["schema"]
        return cfg, "schema missing", "schema"
    value = draw(st.one_of(st.lists(st.integers(), max_size=3), st.integers(), st.text(max_size=10), st.none()))
    return value, "not a mapping", "mapping"


def dump_yaml(value: Any, unicode: bool) -> bytes:
    return yaml.safe_dump(value, allow_unicode=unicode, sort_keys=False).encode("utf-8")


@st.composite
def garbage_yaml(draw: st.DrawFn) -> tuple[bytes, str]:
    """Text no schema check can foresee: the only promise is no crash (exit 0 or a clean exit 2)."""
    kind = draw(
        st.sampled_from(("binary", "text", "truncated", "deep-list", "deep-map", "huge-int", "bomb", "tag", "bom"))
    )
    if kind == "binary":
        return draw(st.binary(max_size=600)), kind
    if kind == "text":
        return draw(st.text(max_size=300)).encode("utf-8", "surrogatepass"), kind
    if kind == "truncated":
        full = dump_yaml(draw(valid_configs()), True)
        return full[: draw(st.integers(0, len(full)))], kind
    if kind == "deep-list":
        n = draw(st.integers(10, 3000))
        return b"schema: 1\nbackbone: " + b"[" * n + b"]" * draw(st.sampled_from((n, 0))), kind
    if kind == "deep-map":
        n = draw(st.integers(10, 3000))
        return b"schema: 1\nneck: " + b"{a: " * n + b"1" + b"}" * n, kind
    if kind == "huge-int":
        key = draw(st.sampled_from(("img_size", "num_classes", "width", "schema")))
        return f"schema: 1\n{key}: 1{'0' * draw(st.integers(20, 6000))}\n".encode(), kind
    if kind == "bomb":
        levels = draw(st.integers(2, 7))
        text = 'a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]\n'
        for i in range(1, levels):
            text += f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n"
        return (text + "schema: 1\n").encode(), kind
    if kind == "tag":
        return draw(
            st.sampled_from((b"!!python/object/apply:os.system ['true']\n", b"schema: !!binary AAAA\n", b"--- !x\n"))
        ), kind
    return b"\xef\xbb\xbf" + dump_yaml(draw(valid_configs()), False), kind


# -- strategies: commands ----------------------------------------------------------------------
@st.composite
def show_cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(("valid", "invalid", "invalid", "garbage", "preset", "args")))
    json_flag = ["--json"] if draw(st.booleans()) else []
    if kind == "valid":
        cfg = draw(valid_configs())
        return Case(
            "show",
            ["show", "{tmp}/c.yaml", *json_flag],
            "ok",
            "valid config",
            files={"c.yaml": dump_yaml(cfg, draw(st.booleans()))},
        )
    if kind == "invalid":
        cfg, label, mention = draw(invalid_configs())
        return Case(
            "show",
            ["show", "{tmp}/c.yaml", *json_flag],
            "error",
            label,
            mention,
            files={"c.yaml": dump_yaml(cfg, draw(st.booleans()))},
        )
    if kind == "garbage":
        data, label = draw(garbage_yaml())
        return Case("show", ["show", "{tmp}/c.yaml"], "any", f"garbage {label}", files={"c.yaml": data})
    if kind == "preset":
        from search_spaces import preset_names

        name = draw(st.one_of(st.sampled_from(preset_names()), st.text(min_size=1, max_size=300)))
        ok = name in preset_names()
        return Case("show", ["show", name, *json_flag], "ok" if ok else "any", "preset name", None)
    size = draw(st.one_of(st.integers(-(10**6), 10**6), st.text(max_size=6).filter(lambda t: not t.startswith("-"))))
    preset = draw(st.sampled_from(("yolor-elan-1-1", "darknet53")))
    try:
        value: int | None = int(size)  # what argparse's type=int makes of it
    except ValueError:
        value = None
    extra = draw(st.sampled_from(([], [], ["--all"], ["--bogus"])))
    if extra:
        return Case("show", ["show", preset, "--img-size", str(size), *extra], "error", "bad show args")
    if value is None:
        return Case("show", ["show", preset, "--img-size", str(size)], "error", "img-size not an int", "--img-size")
    valid = 32 <= value <= 4096 and value % 32 == 0
    return Case(
        "show",
        ["show", preset, "--img-size", str(size)],
        "ok" if valid else "error",
        "img-size",
        None if valid else "img_size",
    )


@st.composite
def coco_files(draw: st.DrawFn) -> tuple[bytes, str]:
    """A COCO annotation file with its structure broken (no image file exists: never trainable)."""
    kind = draw(
        st.sampled_from(("drop", "top", "element", "field", "not-object", "truncated", "binary", "valid-no-images"))
    )
    data = json.loads(json.dumps(COCO_OK))
    json_values = st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)),
        lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=6), c, max_size=3)),
        max_leaves=6,
    )
    if kind == "drop":
        del data[draw(st.sampled_from(sorted(data)))]
    elif kind == "top":
        data[draw(st.sampled_from(sorted(data)))] = draw(json_values)
    elif kind == "element":
        key = draw(st.sampled_from(sorted(data)))
        data[key] = [draw(json_values) for _ in range(draw(st.integers(1, 3)))]
    elif kind == "field":
        key = draw(st.sampled_from(sorted(data)))
        field = draw(st.sampled_from(sorted(data[key][0])))
        data[key][0][field] = draw(json_values)
    elif kind == "not-object":
        return json.dumps(draw(json_values)).encode(), kind
    elif kind == "truncated":
        text = json.dumps(data).encode()
        return text[: draw(st.integers(0, len(text) - 1))], kind
    elif kind == "binary":
        return draw(st.binary(max_size=300)), kind
    return json.dumps(data).encode(), kind


@st.composite
def train_cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(("option", "option", "config", "data", "out")))
    out = ["--out", "{tmp}/out"]
    if kind == "option":
        flag, value, mention = draw(
            st.one_of(
                st.tuples(st.just("--epochs"), st.integers(-(10**6), 0).map(str), st.just("--epochs")),
                st.tuples(st.just("--images"), st.integers(-(10**6), 0).map(str), st.just("--images")),
                st.tuples(
                    st.just("--img-size"),
                    st.integers(-(10**5), 10**5).filter(lambda v: v % 32 or not 64 <= v <= 2048).map(str),
                    st.just("--img-size"),
                ),
                st.tuples(
                    st.just("--width-mult"),
                    st.one_of(
                        st.sampled_from(("nan", "inf", "-inf", "0", "-1", "5", "1e308")),
                        st.floats(allow_nan=False).filter(lambda f: not 0 < f <= 4).map(repr),
                    ),
                    st.just("--width-mult"),
                ),
                st.tuples(st.just("--threads"), st.integers(-(10**6), 0).map(str), st.just("--threads")),
                st.tuples(st.just("--seed"), st.integers(2**31, 10**30).map(str), st.just("--seed")),
                st.tuples(
                    st.sampled_from(("--epochs", "--images", "--img-size", "--threads", "--seed")),
                    st.sampled_from(("abc", "1.5", "", "1e3")),
                    st.just("invalid int"),
                ),
                st.tuples(st.just("--width-mult"), st.sampled_from(("abc", "", "1,5")), st.just("invalid float")),
                st.tuples(st.just("--bogus"), st.just("1"), st.just("unrecognized")),
            )
        )
        preset = draw(st.sampled_from(("yolor-elan-1-1", "yolor-csp")))
        return Case("train", ["train", preset, *out, *TRAIN_TINY, flag, value], "error", f"bad {flag}", mention)
    if kind == "config":
        if draw(st.booleans()):
            cfg, label, mention = draw(invalid_configs())
            return Case(
                "train",
                ["train", "{tmp}/c.yaml", *out, *TRAIN_TINY],
                "error",
                label,
                mention,
                files={"c.yaml": dump_yaml(cfg, True)},
            )
        data, label = draw(garbage_yaml())
        # garbage that parses as a valid config would train: too slow for a fuzz case; only
        # the kinds that cannot be a valid config are sent here
        if label in ("truncated", "bom", "text", "binary"):
            data = b"\x00" + data
        return Case(
            "train",
            ["train", "{tmp}/c.yaml", *out, *TRAIN_TINY],
            "error",
            f"garbage config {label}",
            files={"c.yaml": data},
        )
    if kind == "data":
        if draw(st.booleans()):
            data, label = draw(coco_files())
            return Case(
                "train",
                ["train", "yolor-elan-1-1", "--data", "{tmp}/ann.json", *out, *TRAIN_TINY],
                "error",
                f"coco {label}",
                files={"ann.json": data},
            )
        path = draw(st.sampled_from(("{tmp}/missing.json", "{tmp}/adir", "{tmp}/afile")))
        return Case("train", ["train", "yolor-elan-1-1", "--data", path, *out, *TRAIN_TINY], "error", "data path")
    return Case(
        "train", ["train", "yolor-elan-1-1", "--out", "{tmp}/afile", *TRAIN_TINY], "error", "out is a file", "--out"
    )


def train_ok_case(preset: str = "yolor-elan-1-1") -> Case:
    return Case("train", ["train", preset, "--out", "{tmp}/out", "--json", *TRAIN_TINY], "ok", "tiny training")


# -- strategies: checkpoints in a training's --out folder -------------------------------------
PWNED = "PWNED"  # relative: the case runs in its folder, so code run from a checkpoint writes it there


class _Runs:
    """Unpickling it calls ``func(*args)``: a planted checkpoint's payload."""

    def __init__(self, func: Callable[..., Any], *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple:
        return (self.func, self.args)


def _checkpoint_bytes(state: Any, raw_pickle: bool = False) -> bytes:
    import pickle

    import torch

    if raw_pickle:
        return pickle.dumps(state)
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _ckpt_state(**over: Any) -> dict[str, Any]:
    """The keys a proxy checkpoint has; its fingerprint is of no real run (resuming it: exit 2)."""
    import torch

    base = {
        "fingerprint": {"data": "elsewhere", "recipe": "v2"},
        "epoch": 1,
        "model": {"w": torch.zeros(2)},
        "history": [],
    }
    return {**base, **over}


@st.composite
def checkpoint_cases(draw: st.DrawFn) -> Case:
    """``nas train --out DIR`` over a damaged, malformed or malicious ``DIR/checkpoint.pt``: it is
    refused (a warning) and the training starts over, or (another run's, intact) exit 2 — and no
    code in it ever runs."""
    kind = draw(st.sampled_from(("malicious", "malicious", "damaged", "damaged", "malformed", "foreign")))
    argv = ["train", "yolor-elan-1-1", "--out", "{tmp}/out", *TRAIN_TINY]
    if kind == "malicious":
        payload = draw(
            st.sampled_from(
                (
                    ("open", _Runs(open, PWNED, "w")),
                    ("os.system", _Runs(os.system, f"touch {PWNED}")),
                    ("exec", _Runs(exec, f"open({PWNED!r}, 'w')")),
                )
            )
        )
        where = draw(st.sampled_from(("rng", "model", "whole")))
        raw = draw(st.booleans())
        state = payload[1] if where == "whole" else _ckpt_state(**{where: payload[1]})
        data = _checkpoint_bytes(state, raw_pickle=raw)
        label = f"malicious checkpoint: {payload[0]} in {where}{' (raw pickle)' if raw else ''}"
        return Case("checkpoint", argv, "ok", label, files={"out/checkpoint.pt": data}, forbidden=PWNED)
    if kind == "malformed":
        state = draw(
            st.sampled_from(
                (
                    [1, 2, 3],
                    {"epoch": 1},
                    _ckpt_state(fingerprint="not a dict"),
                    _ckpt_state(epoch="one"),
                    _ckpt_state(history={"a": 1}),
                    _ckpt_state(model=[1.0]),
                )
            )
        )
        return Case(
            "checkpoint", argv, "ok", "malformed checkpoint", files={"out/checkpoint.pt": _checkpoint_bytes(state)}
        )
    intact = _checkpoint_bytes(_ckpt_state())
    if kind == "foreign":
        return Case(
            "checkpoint",
            argv,
            "error",
            "another run's checkpoint",
            "different run",
            files={"out/checkpoint.pt": intact},
        )
    how = draw(st.sampled_from(("truncate", "binary", "empty", "flip")))
    where = draw(st.integers(0, 10**6))
    if how == "truncate":
        data = intact[: where % max(1, len(intact) - 1)]
    elif how == "binary":
        data = random.Random(where).randbytes(draw(st.integers(1, 400)))
    elif how == "empty":
        data = b""
    else:  # one byte changed: a zip member's CRC, a pickle opcode, or nothing torch reads
        i = where % len(intact)
        data = intact[:i] + bytes([intact[i] ^ 0xFF]) + intact[i + 1 :]
    # a flipped byte may leave the checkpoint readable: then it is the other run's (exit 2)
    expect = "any" if how == "flip" else "ok"
    return Case("checkpoint", argv, expect, f"damaged checkpoint: {how}", files={"out/checkpoint.pt": data})


@st.composite
def export_cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(("ok", "trial", "max-flops", "out", "damaged", "damaged", "path", "args")))
    base = ["export", "{tmp}/" + RUN_NAME]
    out = ["-o", "{tmp}/arch.yaml"]
    js = ["--json"] if draw(st.booleans()) else []
    if kind == "ok":
        sel = draw(
            st.sampled_from(([], ["--trial", "0"], ["--trial", "2"], ["--max-flops", "1000G"], ["--max-flops", "100G"]))
        )
        return Case("export", [*base, *out, *sel, *js], "ok", "export", run=RUN_NAME)
    if kind == "trial":
        n = draw(st.one_of(st.integers(3, 10**30), st.integers(max_value=-1)))
        return Case("export", [*base, *out, "--trial", str(n)], "error", "trial not completed", "--trial", run=RUN_NAME)
    if kind == "max-flops":
        text = draw(
            st.one_of(
                st.sampled_from(("abc", "-5G", "0", "", "150GB", "nan", "1e30")),
                st.text(max_size=8).filter(lambda t: not any(c.isdigit() for c in t)),
            )
        )
        return Case("export", [*base, *out, "--max-flops", text], "error", "bad max-flops", "--max-flops", run=RUN_NAME)
    if kind == "out":
        target = draw(st.sampled_from(("{tmp}/adir", "{tmp}/afile/x.yaml")))
        return Case("export", [*base, "-o", target], "error", "unwritable -o", run=RUN_NAME)
    if kind == "damaged":
        name = draw(st.sampled_from(("search.json", "optuna.journal")))
        how = draw(st.sampled_from(("truncate", "garbage", "middle", "binary", "empty", "folder", "missing")))
        where = draw(st.integers(0, 10**6))
        # a journal cut at a record boundary or losing only its tail is still a (shorter) valid run
        expect = "any" if (name, how) in (("optuna.journal", "truncate"), ("optuna.journal", "garbage")) else "error"
        # the error names the damaged file, except for a journal that reads as an empty storage
        mention = name if name == "search.json" or how in ("middle", "folder", "missing") else None
        return Case(
            "export", [*base, *out], expect, f"damaged {name}: {how}", mention, run=RUN_NAME, damage=(name, how, where)
        )
    if kind == "path":
        path = draw(
            st.one_of(
                st.sampled_from(("{tmp}/missing", "{tmp}/adir", "{tmp}/afile", "")),
                st.text(max_size=20).filter(lambda t: not t.startswith("-")),
            )
        )
        return Case("export", ["export", path, *out], "error", "not a run")
    extra = draw(st.sampled_from((["--trial", "0", "--max-flops", "1G"], ["--bogus"], ["--trial", "x"], [])))
    if not extra:
        return Case("export", ["export"], "error", "missing run")
    return Case("export", [*base, *out, *extra], "error", "bad export args", run=RUN_NAME)


@st.composite
def analyze_cases(draw: st.DrawFn) -> Case:
    files = {"model.py": MODEL_PY, "syntax.py": b"def make(:\n", "data.txt": b"\x00\x01"}
    target = draw(
        st.sampled_from(
            (
                ("{tmp}/model.py:make", "ok"),
                ("{tmp}/model.py:broken", "error"),
                ("{tmp}/model.py:not_a_module", "error"),
                ("{tmp}/model.py:NOT_CALLABLE", "error"),
                ("{tmp}/model.py:missing", "error"),
                ("{tmp}/syntax.py:make", "error"),
                ("{tmp}/data.txt:make", "error"),
                ("{tmp}/nofile.py:make", "error"),
                ("{tmp}/model.py", "error"),
                ("{tmp}/adir:make", "error"),
            )
        )
    )
    shape_kind = draw(st.sampled_from(("ok", "ok", "bad", "text")))
    if shape_kind == "ok":
        n, h = draw(st.integers(1, 2)), draw(st.sampled_from((16, 32, 48)))
        shape = f"{n},3,{h},{h}"
    elif shape_kind == "bad":
        shape = draw(st.sampled_from(("abc", "0,3,32,32", "1,3,-1,32", "", "1,3,32", "1,,3,32", "1,3,2")))
    else:  # random text: int() takes " 1_0 " too, so it may even be a valid shape
        shape = draw(st.text(max_size=12).filter(lambda t: not t.startswith("-")))
    expect = "error" if target[1] == "error" or shape_kind == "bad" else {"ok": "ok", "text": "any"}[shape_kind]
    return Case("analyze", ["analyze", target[0], "--input-shape", shape], expect, "analyze", files=files)


SEARCH_VALID: dict[str, st.SearchStrategy[str]] = {
    "--budget": st.one_of(
        st.integers(1, 500).map(lambda k: f"{k}G"), st.sampled_from(("1.5e11FLOPs", "900MFLOPs", "0.15TFLOPs"))
    ),
    "--name": st.text(alphabet="abcxyz019_-é漢", min_size=1, max_size=40).filter(lambda s: not s.startswith("-")),
    "--space": st.just("yolor"),
    "--candidates": st.integers(1, 10**6).map(str),
    "--trials": st.integers(0, 10**4).map(str),
    "--epochs": st.integers(1, 1000).map(str),
    "--images": st.integers(8, 10**7).map(str),
    "--workers": st.integers(1, 1024).map(str),
    "--seed": st.integers(0, 2**31 - 1).map(str),
    "--img-size": st.integers(2, 64).map(lambda k: str(32 * k)),
    "--width-mult": st.floats(0.03, 4).map(repr),
    "--cheap-score": st.sampled_from(("gradpath", "flops", "params")),
    "--proxy-stage": st.sampled_from(("select", "halving")),
    "--data": st.just("shapes"),
    "--storage": st.sampled_from(("{tmp}/other.journal", "sqlite:///{tmp}/s.db")),
}
SEARCH_INVALID: dict[str, st.SearchStrategy[str]] = {
    "--budget": st.sampled_from(("abc", "-5G", "0", "150", "1.5e11", "150GB", "", "G", "nan", "inf", "1e30")),
    "--name": st.sampled_from(("", "a/b", ".hidden", "..", "x" * 300, "a\\b")),
    "--space": st.text(max_size=10).filter(lambda s: s != "yolor" and not s.startswith("-")),
    "--candidates": st.one_of(st.integers(max_value=0), st.integers(min_value=10**6 + 1)).map(str),
    "--trials": st.one_of(st.integers(max_value=-1), st.integers(min_value=10**4 + 1)).map(str),
    "--epochs": st.one_of(st.integers(max_value=0), st.integers(min_value=1001)).map(str),
    "--images": st.one_of(st.integers(max_value=7), st.integers(min_value=10**7 + 1)).map(str),
    "--workers": st.one_of(st.integers(max_value=0), st.integers(min_value=1025)).map(str),
    "--seed": st.one_of(st.integers(max_value=-1), st.integers(min_value=2**31)).map(str),
    "--img-size": st.integers(-(10**5), 10**5).filter(lambda v: v % 32 or not 64 <= v <= 2048).map(str),
    "--width-mult": st.one_of(
        st.sampled_from(("nan", "inf", "-inf", "0", "-1", "5")),
        st.floats(allow_nan=False).filter(lambda f: not 0.03 <= f <= 4).map(repr),
    ),
    "--cheap-score": st.text(max_size=10).filter(
        lambda s: s not in ("gradpath", "flops", "params") and not s.startswith("-")
    ),
    "--proxy-stage": st.text(max_size=10).filter(lambda s: s not in ("select", "halving") and not s.startswith("-")),
    "--data": st.sampled_from(("{tmp}/missing", "{tmp}/adir", "{tmp}/afile", "{tmp}/ann.json")),
    "--storage": st.sampled_from(("bogus://x", "{tmp}/adir", "postgresql+nodriver://u@127.0.0.1:1/db")),
}
_INT_FLAGS = ("--candidates", "--trials", "--epochs", "--images", "--workers", "--seed", "--img-size")


@st.composite
def search_cases(draw: st.DrawFn) -> Case:
    flags = draw(st.lists(st.sampled_from(sorted(SEARCH_VALID)), unique=True, max_size=6))
    if "--budget" not in flags and draw(st.integers(0, 9)):
        flags.append("--budget")
    n_bad = draw(st.sampled_from((0, 1, 1, 1, 2)))
    bad = set(draw(st.permutations(flags))[:n_bad]) if flags else set()
    argv, mention = ["search"], None
    for f in flags:
        if f in bad and f in _INT_FLAGS and draw(st.integers(0, 3)) == 0:
            value = draw(st.sampled_from(("abc", "1.5", "", "1e3")))
        elif f in bad:
            value = draw(SEARCH_INVALID[f])
        else:
            value = draw(SEARCH_VALID[f])
        argv += [f, value]
    argv += ["--runs-dir", "{tmp}/runs"]
    argv += draw(st.sampled_from(([], ["--json"], ["--no-progress"])))
    files = {"ann.json": json.dumps({"images": "nope"}).encode()}
    if "--budget" not in flags:  # argparse names the first problem it meets
        return Case("search", argv, "error", "missing --budget", None if bad else "--budget", files=files)
    junk = draw(st.sampled_from((None, None, None, ["--bogus"], ["extra"], ["--candidates"])))
    if junk:
        return Case("search", argv + junk, "error", "bad args", files=files)
    if bad:
        mention = next(iter(bad)) if len(bad) == 1 else None
        if mention == "--budget":
            mention = "budget"
        if mention == "--storage":
            mention = None  # named as --storage or as the path that cannot be used
        return Case("search", argv, "error", "invalid " + ", ".join(sorted(bad)), mention, files=files)
    return Case("search", argv, "ok", "valid search args", files=files)


@st.composite
def dashboard_cases(draw: st.DrawFn) -> Case:
    kind = draw(st.sampled_from(("ok", "port", "host", "busy", "run", "damaged", "args")))
    base = ["dashboard", "{tmp}/" + RUN_NAME]
    if kind == "ok":
        host = draw(st.sampled_from(("127.0.0.1", "localhost")))
        return Case("dashboard", [*base, "--port", "0", "--host", host], "ok", "valid dashboard", run=RUN_NAME)
    if kind == "port":
        port = draw(st.one_of(st.integers(max_value=-1), st.integers(min_value=65536)))
        return Case("dashboard", [*base, "--port", str(port)], "error", "port out of range", "--port", run=RUN_NAME)
    if kind == "host":
        host = draw(st.sampled_from(("1.2.3.4", "999.1.1.1", "no-such-host.invalid", "::g", "[::1]")))
        return Case("dashboard", [*base, "--port", "0", "--host", host], "error", "bad host", "--host", run=RUN_NAME)
    if kind == "busy":
        return Case(
            "dashboard",
            [*base, "--port", "{port}"],
            "error",
            "port in use",
            "cannot listen",
            run=RUN_NAME,
            busy_port=True,
        )
    if kind == "run":
        path = draw(st.sampled_from(("{tmp}/missing", "{tmp}/adir", "{tmp}/afile", "")))
        return Case("dashboard", ["dashboard", path, "--port", "0"], "error", "not a run")
    if kind == "damaged":
        how = draw(st.sampled_from(("binary", "empty", "folder", "middle")))
        name = "search.json" if how != "middle" else "optuna.journal"
        return Case(
            "dashboard",
            [*base, "--port", "0"],
            "error",
            f"damaged {name}",
            name,
            run=RUN_NAME,
            damage=(name, how, draw(st.integers(0, 99))),
        )
    extra = draw(st.sampled_from((["--port", "abc"], ["--bogus"], ["--port"])))
    return Case("dashboard", [*base, *extra], "error", "bad dashboard args", run=RUN_NAME)


STRATEGIES: dict[str, Callable[[], st.SearchStrategy[Case]]] = {
    "show": show_cases,
    "train": train_cases,
    "checkpoint": checkpoint_cases,
    "export": export_cases,
    "analyze": analyze_cases,
    "search": search_cases,
    "dashboard": dashboard_cases,
}


def draw_cases(command: str, n: int, rng_seed: int) -> list[Case]:
    """n cases of one command, reproducible from the seed (Hypothesis's generator, no shrinking)."""
    cases: list[Case] = []

    @seed(rng_seed)
    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(STRATEGIES[command]())
    def collect(case: Case) -> None:
        cases.append(case)

    collect()
    return cases[:n]


# -- the benchmark -----------------------------------------------------------------------------
