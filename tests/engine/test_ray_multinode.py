"""A search on a real 2-node Ray cluster where no node shares the driver's disk: every training runs
on a worker node that cannot see the driver's run folder (its own mount namespace, a private tmpfs
over that folder), checkpoints reach the Tune storage (``--ray-storage``, the one folder both
see, as an NFS mount would be), and a search killed mid-training, whose worker node is lost with
it, resumes on a fresh node from the stored checkpoint and loses nothing. A ``--data`` or a
``--ray-storage`` the worker cannot see is one line naming the fix.

The head (``ray start --head``, token auth as Ray >= 2.59 sets it up, no CPUs: it schedules only)
and the worker nodes are started in their own process groups and stopped by them."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nas.engine.record.storage import open_storage
from nas.engine.record.trials import config_of
from tests.support.helpers import search_cmd, tiny_search
from tests.support.ray_nodes import can_hide_folders, clean_env, ray_head, ray_worker, stop_group

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not can_hide_folders(), reason="needs a mount namespace (root or CAP_SYS_ADMIN)"),
]

#: with --proxy-stage halving: 3 one-epoch trainings, then one of 3 epochs (the one killed and resumed)
TINY = tiny_search(epochs=3, images=48)


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict]:
    root = Path(tempfile.mkdtemp(prefix="rm", dir="/tmp"))  # short: Ray's socket paths are limited
    home, runs, storage = root / "home", root / "runs", root / "storage"
    for d in (home / ".ray", runs, storage):
        d.mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    env = clean_env(HOME=str(home))
    try:
        with ray_head(home, root, num_cpus=0, env=env) as address:
            yield {"address": address, "env": env, "root": root, "runs": runs, "storage": storage}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _search(cluster: dict, name: str, *extra: str, storage: Path | None = None) -> list[str]:
    cmd = search_cmd(
        cluster["runs"], name, *TINY, "--proxy-stage", "halving", "--workers", "2", "--no-progress", *extra
    )
    return [*cmd, "--ray-address", cluster["address"], "--ray-storage", str(storage or cluster["storage"])]


def _worker_node(cluster: dict, log: Path, gone: str | None = None) -> tuple[subprocess.Popen, str]:
    """A new worker node that hides the run folder, and its id's 8-character prefix, once it is
    the cluster's only alive worker node (``gone``, a lost node, marked dead). A node that does not
    get there is stopped before the error, so it cannot linger into the next test."""
    node = ray_worker(cluster["address"], cluster["env"], cluster["runs"], log)
    try:
        return node, _only_worker(cluster, gone)
    except BaseException:
        stop_group(node, grace=0)
        raise


def _only_worker(cluster: dict, gone: str | None, wait: float = 180) -> str:
    """The 8-character id of the cluster's only alive worker node, once it is not ``gone``. A probe
    that connects while the head marks a lost node dead also prints Ray's notice of it (``... (2)
    raylet has lagging heartbeats ...``) on its stdout, so the answer is the line behind a marker."""
    code = (
        f"import json, ray; ray.init(address={cluster['address']!r}, log_to_driver=False, configure_logging=False);"
        "print('gp-alive:', json.dumps([n['NodeID'][:8] for n in ray.nodes() if n['Alive'] and 'gp_worker' in n['Resources']]))"
    )
    env = dict(cluster["env"], RAY_AUTH_MODE="token")
    deadline = time.monotonic() + wait
    while True:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=wait)
        answers = [line.removeprefix("gp-alive:") for line in out.stdout.splitlines() if line.startswith("gp-alive:")]
        alive = json.loads(answers[-1]) if out.returncode == 0 and answers else []
        if len(alive) == 1 and alive[0] != gone:
            return alive[0]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"worker nodes alive after {wait:.0f} s: {alive} ({out.stdout[-500:]}{out.stderr[-1000:]})"
            )
        time.sleep(2)


def _stored(cluster: dict, name: str) -> dict[Path, int]:
    """Every checkpoint persisted in the Tune storage for run ``name`` -> its epoch."""
    out = {}
    for meta in (cluster["storage"] / name).glob("tune-*/trial_*/checkpoint_*/.metadata.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):  # being written
            out[meta.parent] = json.loads(meta.read_text())["epoch"]
    return out


def _full(path: Path) -> bool:
    """A checkpoint of a full-fidelity training (its folder has no ``-eN`` low-rung suffix)."""
    return "-e" not in path.parent.name.split("_", 2)[2]


def test_a_search_needs_no_shared_run_folder_and_a_killed_one_resumes_on_a_new_node(cluster, tmp_path):
    name, runs = "multi", cluster["runs"]
    node_a, id_a = _worker_node(cluster, tmp_path / "node-a.log")
    try:
        driver = subprocess.Popen(
            _search(cluster, name),
            env=cluster["env"],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "driver.log", "wb"),  # noqa: SIM115 - closed with the process
            start_new_session=True,
        )
        deadline = time.monotonic() + 600
        while not (seen := {p: e for p, e in _stored(cluster, name).items() if _full(p) and e < 3}):
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no full-fidelity checkpoint in 600 s"
            time.sleep(0.1)
        os.killpg(driver.pid, signal.SIGKILL)  # mid-training of the full-fidelity candidate ...
        driver.wait(timeout=30)
        killed_at = max(seen.values())
        history = json.loads((max(seen, key=seen.get) / "metrics.json").read_text())["history"]
    finally:
        stop_group(node_a, grace=0)  # ... and its node is lost with it: its disk (the tmpfs) is gone

    node_b, id_b = _worker_node(cluster, tmp_path / "node-b.log", gone=id_a)
    try:
        proc = subprocess.run(_search(cluster, name), env=cluster["env"], capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
    finally:
        stop_group(node_b, grace=0)

    import optuna

    run = runs / name
    storage = open_storage(None, run)
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert sorted(t.state.name for t in finished) == ["COMPLETE", "PRUNED", "PRUNED", "PRUNED"]
    assert [t for t in trials if t not in finished] == [t for t in trials if t.user_attrs.get("interrupted")]
    # every training ran on a worker node, none on the head, and nothing of them reached the driver's disk
    assert {t.user_attrs["ray_node"].split("node ")[1].rstrip(")") for t in finished} <= {id_a, id_b}
    assert not (run / "trials").exists() and not (runs / "data").exists()
    (full,) = [t for t in finished if t.state.name == "COMPLETE"]
    assert full.user_attrs["ray_node"].endswith(f"(node {id_b})")  # re-run on the new node ...
    assert full.user_attrs["resumed_from"] >= killed_at  # ... from the checkpoint the lost node persisted
    low = [t for t in finished if t.state.name == "PRUNED"]
    assert all(t.number < full.number for t in low)  # the rung-0 trainings were not run again

    # and lost nothing: the resumed training ends where an unbroken one does, epoch for epoch
    (final,) = [p for p, e in _stored(cluster, name).items() if _full(p) and e == 3]
    resumed = json.loads((final / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in resumed] == [1, 2, 3]
    assert resumed[: len(history)] == history
    (tmp_path / "cfg.yaml").write_text(config_of(full))
    cmd = [
        sys.executable,
        "-m",
        "nas.cli",
        "train",
        str(tmp_path / "cfg.yaml"),
        *TINY[TINY.index("--images") : TINY.index("--seeds")],
        "--epochs",
        "3",
    ]
    cmd += ["--threads", "1", "--out", str(tmp_path / "unbroken"), "--json"]
    ref = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr[-2000:]
    unbroken = json.loads((tmp_path / "unbroken" / "metrics.json").read_text())["history"]
    assert [(h["AP"], h["loss"]) for h in resumed] == [(h["AP"], h["loss"]) for h in unbroken]
    assert full.values[0] == pytest.approx(unbroken[-1]["AP"])


@pytest.mark.parametrize("hidden", ["data", "ray-storage"])
def test_a_path_the_worker_node_cannot_see_is_one_line_naming_the_fix(cluster, tmp_path, hidden):
    """``--data`` (or ``--ray-storage``) in the run folder, which the driver sees and the node does not."""
    from evaluators.shapes import generate_shapes

    runs = cluster["runs"]
    if hidden == "data":
        data = generate_shapes(runs / "coco", seed=1, train_images=12, val_images=8, size=64)
        cmd = _search(cluster, "hidden-data", "--data", str(data))
    else:
        cmd = _search(cluster, "hidden-storage", storage=runs / "tune")
    node, _ = _worker_node(cluster, tmp_path / "node.log")
    try:
        t0 = time.monotonic()
        proc = subprocess.run(cmd, env=cluster["env"], capture_output=True, text=True, timeout=600)
    finally:
        stop_group(node, grace=0)
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: --{hidden} ") and "Ray node" in last, proc.stderr[-3000:]
    assert ("every node sees" if hidden == "data" else "same path on every node") in last
    assert "Traceback" not in proc.stderr
    assert time.monotonic() - t0 < 300
