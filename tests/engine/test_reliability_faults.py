"""Faults inside a search are handled as documented (docs/reliability.md):

- a trial that raises, whose Ray worker is SIGKILLed, or whose loss goes NaN: Tune retries once
  (the retry resumes from the trial's checkpoint) or the trial is recorded FAIL with the reason;
  the search goes on and completes;
- a data set with corrupt images / dangling annotations trains (they are skipped and counted); a
  broken annotation file stops the search before anything is written;
- storage faults (disk full, permission denied, a file where a folder must be) stop the search
  with one clear error, exit 2, leave every recorded trial readable, and a re-run resumes.

Faults are injected with the test-only ``GRADPATH_FAULT`` hook (``nas.engine.proxy.stage._fault_injector``)
or by patching the storage in the search process."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from nas.core.cost import parse_flops
from nas.engine import SearchOptions
from nas.engine.proxy.worker import config_hash
from nas.engine.record.storage import open_storage, prepare_journal
from tests.support.helpers import search_cmd

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--candidates",
    "60",
    "--epochs",
    "2",
    "--images",
    "8",
    "--val-images",
    "8",
    "--img-size",
    "64",
    "--workers",
    "2",
    "--seeds",
    "1",
]


def _run(cmd: list[str], env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def _trials(run: Path, study: str) -> list:
    import optuna

    return optuna.load_study(study_name=study, storage=open_storage(None, run)).get_trials()


def _ray_rows(run: Path, number: int) -> list[dict]:
    """Every result Tune recorded for proxy trial ``number``, over all the run's Tune sessions."""
    rows = []
    for f in sorted(run.glob(f"ray/tune-*/trial_{number}_*/result.json")):
        rows += [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return rows


def _corrupt_coco(root: Path) -> Path:
    """A COCO folder (shapes, 64 px) with undecodable images in both splits and a dangling
    annotation: what a real data set downloaded halfway looks like."""
    from evaluators.shapes import generate_shapes

    src = generate_shapes(root / "gen", seed=3, train_images=12, val_images=52, size=64)
    data = root / "coco"
    shutil.copytree(src, data)
    for split, idx in (("train", range(12)), ("val", (0,))):
        for i in idx if split == "val" else (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)[::3]:
            (data / split / f"{i:06d}.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    ann = json.loads((data / "instances_train.json").read_text())
    ann["annotations"].append({"id": 10**6, "image_id": 424242, "category_id": 1, "bbox": [0, 0, 5, 5]})
    (data / "instances_train.json").write_text(json.dumps(ann))
    return data


@pytest.mark.slow
def test_killed_raising_and_nan_trials_are_retried_or_failed_and_the_search_completes(tmp_path: Path) -> None:
    data = _corrupt_coco(tmp_path)
    # trial 0: its Ray worker is SIGKILLed after epoch 1's checkpoint; 1: raises at every start;
    # 2: loss NaN from the first step; 3: raises once after epoch 1's checkpoint
    fault = "0:kill@1,1:raise@0,2:nan@0,3:raise@1"
    proc = _run(
        search_cmd(tmp_path, "f", *TINY, "--trials", "4", "--data", str(data), "--json"), {"GRADPATH_FAULT": fault}
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)  # stdout stays pure JSON although Ray reports the dead worker
    run = tmp_path / "f"
    by_number = {t.number: t for t in _trials(run, "f")}
    assert sorted(by_number) == [0, 1, 2, 3]
    assert {r["trial"] for r in summary["trials"]} == {0, 1, 2, 3}

    for n in (0, 3):  # retried once, resumed after epoch 1: epoch 1 is never reported twice
        t = by_number[n]
        assert t.state.name == "COMPLETE", (n, t.state, t.user_attrs.get("reason"))
        epochs = [r["epoch"] for r in _ray_rows(run, n)]
        assert epochs == [2], (n, epochs)  # the retry began at epoch 2: epoch 1 came from the checkpoint
        assert (next(run.glob(f"ray/tune-*/trial_{n}_*")) / "error.txt").is_file()  # one failure recorded
    assert by_number[1].state.name == "FAIL"
    assert "injected fault" in by_number[1].user_attrs["reason"]
    assert by_number[2].state.name == "FAIL"
    assert "non-finite loss" in by_number[2].user_attrs["reason"]

    # corrupt images and the dangling annotation were skipped and counted, in every trial that trained
    metrics = [json.loads(p.read_text()) for p in run.glob("trials/*/metrics.json")]
    assert metrics and all(m["data_skipped"]["images"] >= 1 and m["data_skipped"]["annotations"] >= 1 for m in metrics)
    # trials 0 and 3 trained each epoch once; trial 2 failed at its first step; trial 1 never began
    # (metrics.json may say "stopped": ASHA ended the retried trial at its last report)
    histories = sorted([h["epoch"] for h in m["history"]] for m in metrics)
    assert histories == [[], [1, 2], [1, 2]], histories
    assert (run / "best.yaml").is_file() and summary["best_trial"] in (0, 3)


def test_broken_annotation_file_stops_the_search_before_anything_is_written(tmp_path: Path) -> None:
    data = tmp_path / "coco"
    data.mkdir()
    (data / "instances_val.json").write_text('{"images": [{"id": 1, "file_name": "a.jpg"}], "categories": [}')
    proc = _run(search_cmd(tmp_path / "runs", "b", "--data", str(data)), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: --data: cannot read COCO annotations")
    assert not (tmp_path / "runs").exists()


# -- storage faults ------------------------------------------------------------------------------
_FAIL_APPENDS = """
import errno, sys
from optuna.storages.journal import JournalFileBackend
import nas.engine.proxy.stage as T

armed = [{armed}]
real_append = JournalFileBackend.append_logs

def append_logs(self, logs):
    if not armed[0]:
        return real_append(self, logs)
    import json
    data = ("\\n".join(json.dumps(x, separators=(",", ":")) for x in logs) + "\\n").encode()
    with open(self._file_path, "ab") as f:  # the disk fills mid-record: a torn write
        f.write(data[: len(data) // 2])
    raise OSError(errno.{err}, "{text}", self._file_path)

JournalFileBackend.append_logs = append_logs
real_run_tune = T._run_tune

def run_tune(*args, **kwargs):  # arm once the proxy stage's trials are about to be told
    armed[0] = True
    return real_run_tune(*args, **kwargs)

T._run_tune = run_tune
from nas.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _patched(code: str, argv: list[str]) -> list[str]:
    return [sys.executable, "-c", code, *argv[3:]]


@pytest.mark.slow
def test_disk_full_while_recording_a_trial_stops_cleanly_and_the_rerun_recomputes_nothing(tmp_path: Path) -> None:
    cmd = search_cmd(tmp_path, "d", *TINY, "--trials", "2")
    code = _FAIL_APPENDS.format(armed="False", err="ENOSPC", text="No space left on device")
    proc = _run(_patched(code, cmd))
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the search stopped: recording a trial in its storage failed (No space left")
    assert "Traceback" not in proc.stderr
    run = tmp_path / "d"
    journal = (run / "optuna.journal").read_bytes()
    assert not journal.endswith(b"\n")  # the torn record is there ...
    assert len([t for t in _trials(run, "d-cheap") if t.state.name == "COMPLETE"]) == 60  # ... and harmless
    before = {t.number: t.state.name for t in _trials(run, "d")}
    assert set(before.values()) == {"RUNNING"}  # nothing was told after the failure
    epochs_before = {p.parent.name: _epoch(p) for p in run.glob("trials/*/checkpoint.pt")}

    proc = _run(cmd)  # the disk has room again: the same command resumes
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dropped a torn last record" in proc.stdout
    proxy = _trials(run, "d")
    finished = [t for t in proxy if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == 2 and len({t.user_attrs["key"] for t in finished}) == 2
    assert all(t.user_attrs.get("interrupted") for t in proxy if t.state.name == "FAIL")
    for name, epoch in epochs_before.items():  # resumed from the checkpoints, none restarted
        assert _epoch(run / "trials" / name / "checkpoint.pt") >= epoch
        history = json.loads((run / "trials" / name / "metrics.json").read_text())["history"]
        assert [h["epoch"] for h in history] == [1, 2]
    for t in finished:  # the re-run reported only epochs its checkpoint did not hold (or the last one)
        done = epochs_before.get(config_hash(t.user_attrs["key"]), 0)
        reported = [r["epoch"] for r in _ray_rows(run, t.number)]
        assert reported == (list(range(done + 1, 3)) or [2]), (t.number, done, reported)


def _epoch(path: Path) -> int:
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])


def test_permission_denied_on_the_journal_is_one_line_and_the_rerun_repairs_it(tmp_path: Path) -> None:
    """Root ignores file modes, so the denial is injected at the journal's append."""
    cmd = search_cmd(tmp_path, "p", "--candidates", "30")
    proc = _run(_patched(_FAIL_APPENDS.format(armed="True", err="EACCES", text="Permission denied"), cmd), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: Permission denied: '{tmp_path / 'p' / 'optuna.journal'}'"], (
        proc.stderr[-2000:]
    )
    # the next run repairs the torn first record and runs the cheap stage from the start
    opts = SearchOptions(budget=parse_flops("45G"), name="p", candidates=30, runs_dir=str(tmp_path))
    prepare_journal(opts.run_dir / "optuna.journal", print)
    from nas.engine import cheap_stage

    study = cheap_stage(open_storage(None, opts.run_dir), opts, progress=False)
    assert len([t for t in study.get_trials() if t.state.name == "COMPLETE"]) == 30


@pytest.mark.parametrize("what", ["search.json", "optuna.journal"])
def test_a_folder_where_a_run_file_must_be_is_one_line_exit_2(tmp_path: Path, what: str) -> None:
    from nas.cli import main

    run = tmp_path / "x"
    (run / what).mkdir(parents=True)
    err = _capture_main(main, ["search", "--budget", "45G", "--name", "x", "--runs-dir", str(tmp_path)])
    assert err[0] == 2 and len(err[1].splitlines()) == 1 and what in err[1], err
    assert sorted(p.name for p in run.iterdir()) == sorted({".lock", what})


def _capture_main(main: Callable[[list[str]], int], argv: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stderr(buf), contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    return rc, buf.getvalue()


def test_disk_full_writing_the_outputs_keeps_the_old_ones_and_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``best.yaml`` / ``summary.json`` / ``pareto.png`` are replaced atomically: a write that
    fails (ENOSPC at the rename) leaves the previous file whole and no temp file behind."""
    import optuna

    import nas.core.runio
    from nas.cli import main
    from nas.engine.record.report import write_outputs
    from tests.support.fuzz_cases import RUN_NAME, build_run

    run = build_run(tmp_path)
    opts = SearchOptions.from_identity(json.loads((run / "search.json").read_text()), runs_dir=str(tmp_path))
    study = optuna.load_study(study_name=RUN_NAME, storage=open_storage(None, run))
    write_outputs(study, opts)
    old = {f: (run / f).read_bytes() for f in ("best.yaml", "summary.json", "pareto.png")}

    real_replace = os.replace

    def full_disk(src, dst):  # noqa: ANN001
        if Path(dst).name == "summary.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(nas.core.runio.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_outputs(study, opts)
    assert {f: (run / f).read_bytes() for f in old} == old
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp")]

    # through the CLI: the whole search (stages stubbed to the finished studies) ends in one line
    import nas.engine.driver as S

    monkeypatch.setattr(
        S,
        "cheap_stage",
        lambda storage, o, progress=True: optuna.load_study(study_name=f"{RUN_NAME}-cheap", storage=storage),
    )
    monkeypatch.setattr(
        S,
        "proxy_stage",
        lambda storage, o, chosen, plan, progress=True, **_: optuna.load_study(study_name=RUN_NAME, storage=storage),
    )
    argv = [
        "search",
        "--budget",
        "200G",
        "--name",
        RUN_NAME,
        "--candidates",
        "5",
        "--trials",
        "5",
        "--runs-dir",
        str(tmp_path),
    ]
    rc, err = _capture_main(main, argv)
    assert rc == 2 and err == f"error: No space left on device: '{run / 'summary.json'}'\n"
    assert {f: (run / f).read_bytes() for f in old} == old
