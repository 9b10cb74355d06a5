"""Concurrent use of one run: two ``nas search`` processes on the same run (same storage, same
study names) — exactly one proceeds, the other refuses at once with one clear line (the run's
``RunLock``); and optuna-dashboard reads the journal while the search appends to it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from benchmarks.kill_resume import dashboard_api
from nas.engine.record.storage import open_storage


def _count_trials(app, study: str) -> int:  # noqa: ANN001
    ids = {s["study_name"]: s["study_id"] for s in dashboard_api(app, "/api/studies")["study_summaries"]}
    if study not in ids:
        return 0
    return len(dashboard_api(app, f"/api/studies/{ids[study]}", "after=0")["trials"])


@pytest.mark.slow
def test_two_searches_on_one_run_one_refuses_and_the_dashboard_reads_while_the_other_writes(tmp_path: Path) -> None:
    from optuna_dashboard import wsgi

    cmd = [sys.executable, "-m", "nas.cli", "search", "--budget", "45G", "--name", "c", "--runs-dir", str(tmp_path)]
    # the cheap stage appends to the journal for the first polls, then the proxy stage (Ray,
    # trainings of minutes) keeps appending until the test kills it after its polls. Not more
    # candidates: optuna-dashboard spends ~2 ms per trial of this space, so a reader polling a
    # cheap stage of ~480 candidates/s would fall further behind at every poll
    cmd += ["--candidates", "5000"]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        for _ in range(2)
    ]
    try:
        deadline = time.time() + 120
        while time.time() < deadline and all(p.poll() is None for p in procs):
            time.sleep(0.1)
        done = [p for p in procs if p.poll() is not None]
        running = [p for p in procs if p.poll() is None]
        assert len(done) == 1 and len(running) == 1, "exactly one of the two must have refused"
        err = done[0].stderr.read()
        assert done[0].returncode == 2, err
        assert err.count("\n") == 1 and "is in use by another nas search" in err, err
        writer = running[0]

        # the dashboard reads the journal the search is appending to: one long-lived app polled as
        # the browser polls it (``after=`` the trials it has), and per poll a fresh replay of the
        # whole file; the first poll also loads it all in a fresh app (a page reload)
        journal = tmp_path / "c" / "optuna.journal"
        app = wsgi(open_storage(None, journal.parent))
        # the cheap stage writes a generation (100 candidates) at a time: wait for the first
        first = time.time() + 60
        while time.time() < first and writer.poll() is None and not _count_trials(app, "c-cheap"):
            time.sleep(0.1)
        seen, fresh_seen = [], []
        sid = {s["study_name"]: s["study_id"] for s in dashboard_api(app, "/api/studies")["study_summaries"]}["c-cheap"]
        have = 0
        for poll in range(5):
            new = dashboard_api(app, f"/api/studies/{sid}", f"after={have}")["trials"]
            # exactly the trials after those already shown: none skipped, none twice
            assert [t["number"] for t in new] == list(range(have, have + len(new))), (have, len(new))
            have += len(new)
            seen.append(have)
            fresh = optuna.load_study(study_name="c-cheap", storage=open_storage(None, journal.parent))
            fresh_seen.append(len(fresh.get_trials(deepcopy=False)))
            if poll == 0:
                assert _count_trials(wsgi(open_storage(None, journal.parent)), "c-cheap") >= have
            # optuna-dashboard caches a study's trials for up to 10 s: wait that out between polls
            time.sleep(10.5)
        assert writer.poll() is None, "the writer must still be running (its proxy stage)"
        assert seen[-1] > seen[0] > 0, seen
        assert fresh_seen == sorted(fresh_seen) and all(f >= s for f, s in zip(fresh_seen, seen, strict=True))
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            for f in (p.stdout, p.stderr):
                f.close()
    # the killed writer's journal still opens and holds at least what the dashboard saw
    assert _count_trials(wsgi(open_storage(None, tmp_path / "c")), "c-cheap") >= seen[-1]


_HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, str(os.getpid()).encode(), 0)
print("held", flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("argv0", ["ray::ImplicitFunc.train", "python3"])
def test_a_stale_trial_worker_is_stopped_before_a_resumed_one_trains(tmp_path: Path, argv0: str) -> None:
    """A SIGKILLed search leaves Ray trial workers training on; the re-run's worker for the same
    trial kills such a stale one (a ``ray::`` process holding the trial folder) before it trains,
    and never kills anything else: it waits, then gives up with a reason."""
    from nas.engine.proxy.worker import _claim_trial_dir

    lock = tmp_path / ".worker.lock"
    holder = subprocess.Popen(
        [argv0, "-c", _HOLDER, str(lock)], executable=sys.executable, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        t = time.monotonic()
        if argv0.startswith("ray::"):
            fd = _claim_trial_dir(tmp_path, wait_s=30)
            assert holder.wait(timeout=10) == -signal.SIGKILL and time.monotonic() - t < 10
            assert lock.read_text() == str(os.getpid())
            os.close(fd)
        else:
            with pytest.raises(RuntimeError, match=f"in use by process {holder.pid}"):
                _claim_trial_dir(tmp_path, wait_s=1)
            assert holder.poll() is None  # not ours to kill
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()
        holder.stdout.close()
