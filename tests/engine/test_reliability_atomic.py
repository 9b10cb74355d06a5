"""Atomic outputs: a killed run never leaves a truncated file that a later run trusts.

What is written how (docs/reliability.md): ``best.yaml``, ``summary.json``, ``pareto.png``,
``search.json``, exported YAML/ONNX — temp file + fsync + rename (``nas.core.runio``); per-trial
``checkpoint.pt`` / ``metrics.json`` — temp file + rename; the shapes cache — a temp folder renamed
into place; the Optuna journal — append-only records (a torn last one is dropped by the next
writer). And what a later run does with a damaged one: an unreadable ``search.json`` stops the
search (exit 2, one line: it holds the run's options); an unreadable checkpoint is ignored with a
warning and the trial trains from epoch 0 (it is a cache of finished epochs)."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nas.core.cost import parse_flops
from nas.engine import SearchOptions, cheap_stage
from nas.engine.record.storage import open_storage, prepare_journal

_WRITER = """
import sys
from nas.core.runio import atomic_write_json
path, i = sys.argv[1], 0
blobs = [{"n": k, "pad": "x" * (1 << 20)} for k in range(2)]  # 1 MiB each: a kill lands mid-write
while True:
    atomic_write_json(path, blobs[i % 2])
    i += 1
"""


def test_sigkill_during_atomic_writes_never_leaves_a_truncated_file(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    rng = random.Random(0)
    kills = 0
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)])
        deadline = time.time() + 30
        while not target.exists() and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        data = json.loads(target.read_text())  # whole, every time
        assert data["n"] in (0, 1) and len(data["pad"]) == 1 << 20
    # a kill between mkstemp and rename leaves a ".summary.json.*.tmp": never read by anything
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "summary.json"]
    assert all(n.startswith(".summary.json.") and n.endswith(".tmp") for n in leftovers)
    assert kills == 12


def test_truncated_checkpoint_is_ignored_with_a_warning_and_retrained_identically(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from evaluators.recipe import Recipe
    from evaluators.train import train_from_config

    recipe = Recipe(epochs=2, images=8, val_images=8, img_size=64)
    args = {"num_threads": 1, "progress": False, "data_root": tmp_path / "runs"}
    unbroken = train_from_config("yolor-elan-1-1", recipe, out_dir=tmp_path / "a", **args)
    ckpt = tmp_path / "a" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])  # a disk that lost the tail
    (tmp_path / "a" / ".checkpoint.pt.tmp").write_bytes(b"half a save from a killed process")
    with caplog.at_level(logging.WARNING, logger="evaluators.train"):
        again = train_from_config("yolor-elan-1-1", recipe, out_dir=tmp_path / "a", **args)
    assert "unusable checkpoint ignored" in caplog.text
    assert again["status"] == "ok"
    strip = ("epoch_time_s",)
    assert [{k: v for k, v in h.items() if k not in strip} for h in again["history"]] == [
        {k: v for k, v in h.items() if k not in strip} for h in unbroken["history"]
    ]
    import torch

    assert torch.load(ckpt, weights_only=True)["epoch"] == 2  # whole again


def test_checkpoint_of_another_run_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib
    import io

    from nas.cli import main

    monkeypatch.chdir(tmp_path)
    base = [
        "train",
        "yolor-elan-1-1",
        "--out",
        str(tmp_path / "o"),
        "--images",
        "8",
        "--val-images",
        "8",
        "--img-size",
        "64",
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*base, "--epochs", "1", "--threads", "1"]) == 0
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([*base, "--epochs", "2", "--threads", "1"])
    assert rc == 2 and err.getvalue().count("\n") == 1
    assert "holds a checkpoint of a different run (epochs: 1 -> 2)" in err.getvalue()


def test_damaged_search_json_is_not_trusted(tmp_path: Path) -> None:
    """search.json holds the options a run was started with; damaged (it is written atomically,
    so only from outside), the search refuses rather than guess, and changes nothing."""
    opts = SearchOptions(budget=parse_flops("45G"), name="s", candidates=10, runs_dir=str(tmp_path))
    cheap_stage(open_storage(None, opts.run_dir), opts, progress=False)
    meta = opts.run_dir / "search.json"
    meta.write_text(json.dumps(opts.identity())[:25])
    before = {p.name: p.read_bytes() for p in opts.run_dir.iterdir() if p.is_file()}
    cmd = [sys.executable, "-m", "nas.cli", "search", "--budget", "45G", "--name", "s", "--candidates", "10"]
    proc = subprocess.run([*cmd, "--runs-dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and f"{meta} cannot be read (JSONDecodeError)" in proc.stderr
    after = {p.name: p.read_bytes() for p in opts.run_dir.iterdir() if p.is_file() and p.name != ".lock"}
    assert after == {k: v for k, v in before.items() if k != ".lock"}


def test_torn_journal_record_and_stale_lock_are_repaired_by_the_next_writer(tmp_path: Path) -> None:
    import optuna

    opts = SearchOptions(budget=parse_flops("45G"), name="j", candidates=20, runs_dir=str(tmp_path))
    cheap_stage(open_storage(None, opts.run_dir), opts, progress=False)
    journal = opts.run_dir / "optuna.journal"
    whole = journal.read_bytes()
    with open(journal, "ab") as f:  # killed (or out of space) half way through a record
        f.write(b'{"op_code":5,"worker_id":"w","trial_id":3,"state":1,"val')
    lock = journal.with_name("optuna.journal.lock")
    lock.symlink_to(journal)  # Optuna's lock, left by the killed writer

    # why the repair exists: the next append is glued to the torn record (and lost), and after
    # one more, Optuna cannot read the journal at all
    glued = tmp_path / "glued.journal"
    record = b'{"op_code":0,"worker_id":"w","study_name":"z","directions":[1]}\n'
    glued.write_bytes(journal.read_bytes() + record + record.replace(b'"z"', b'"y"'))
    with pytest.raises(ValueError):  # json.JSONDecodeError or "Invalid log format"
        optuna.load_study(study_name="j-cheap", storage=open_storage(str(glued), tmp_path))

    messages: list[str] = []
    t = time.perf_counter()
    prepare_journal(journal, messages.append)
    assert time.perf_counter() - t < 5  # not Optuna's 30 s grace period
    assert journal.read_bytes() == whole and not lock.exists() and not lock.is_symlink()
    assert messages and "dropped a torn last record" in messages[0]
    study = cheap_stage(open_storage(None, opts.run_dir), opts, progress=False)
    assert len(study.get_trials()) == 20


_GENERATE = """
import sys
from evaluators.shapes import generate_shapes
generate_shapes(sys.argv[1], train_images=400, val_images=50, size=64)
"""


def test_dataset_cache_killed_mid_generation_is_not_trusted(tmp_path: Path) -> None:
    from evaluators.shapes import dataset_name, generate_shapes

    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-c", _GENERATE, str(tmp_path)])
    deadline = time.time() + 60
    while time.time() < deadline and not any(data.glob(".tmp-*/train/*.jpg")):
        time.sleep(0.05)
    time.sleep(0.3)
    assert proc.poll() is None, "generation finished before the kill: make it bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    name = dataset_name(seed=0, train_images=400, val_images=50, size=64)
    assert not (data / name).exists()  # only the temp folder, under another name
    stale = list(data.glob(".tmp-*"))
    assert len(stale) == 1 and 0 < len(list(stale[0].glob("train/*.jpg"))) < 400

    folder = generate_shapes(tmp_path, train_images=400, val_images=50, size=64)
    assert folder == data / name
    for split, n in (("train", 400), ("val", 50)):
        ann = json.loads((folder / f"instances_{split}.json").read_text())
        assert len(ann["images"]) == n and all((folder / i["file_name"]).is_file() for i in ann["images"])
    assert stale[0].is_dir()  # left as it was: never read (documented; delete runs/data/.tmp-* freely)
