"""``--storage postgresql://…`` against a real PostgreSQL server: a tiny search killed in its proxy
stage and resumed loses and duplicates nothing, and optuna-dashboard's API (read-only) sees both
studies.

The server is Debian's ``postgresql`` package (installed here by apt-get when missing and this
runs as root), ``initdb`` into a temp folder as a non-root user, listening on a loopback port
only, and stopped by its process group at the end."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.kill_resume import dashboard_api, wsgi_request
from nas.core.cost import parse_flops
from nas.engine import SearchOptions, select_candidates
from nas.engine.cheap.select import feasible_pool, inside_support
from nas.engine.record.dashboard import read_only
from nas.engine.record.storage import open_storage
from tests.support.helpers import TINY, search_cmd


def postgres_bin() -> Path | None:
    """The folder of Debian's PostgreSQL server binaries (newest version), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[4]))
    return Path(found[-1]).parent if found else None


INSTALL = "sudo apt-get install -y --no-install-recommends postgresql"


def ensure_postgres() -> Path:
    """Install Debian's ``postgresql`` package when it is missing (root only), as CI's set-up;
    where that cannot be done, skip with one line naming the package, why, and the command."""
    bindir = postgres_bin()
    why = "not root" if os.geteuid() != 0 else "no apt-get" if not shutil.which("apt-get") else ""
    if bindir is None and not why:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "postgresql"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        last = (proc.stderr or proc.stdout).strip().splitlines()
        why = f"apt-get said: {last[-1][:160]}" if proc.returncode != 0 and last else "apt-get failed"
        bindir = postgres_bin()
    if bindir is None:
        pytest.skip(f"postgresql is not installed ({why}); install it with: {INSTALL}")
    return bindir


def as_server_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the package's ``postgres`` user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    import psycopg

    bindir = ensure_postgres()
    root = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(
        as_server_user([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "nas", "-N", "-E", "UTF8"]),
        capture_output=True,
        check=True,
    )
    server = [str(bindir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(root)]
    server += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(as_server_user(server), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = psycopg.connect(host="127.0.0.1", port=port, user="nas", dbname="postgres", autocommit=True)
                break
            except psycopg.OperationalError:
                assert proc.poll() is None, (root / "server.log").read_text(errors="replace")[-2000:]
                assert time.monotonic() < deadline, "postgres did not accept connections in 60 s"
                time.sleep(0.3)
        with conn:
            conn.execute("CREATE DATABASE nas")
        yield f"postgresql://nas@127.0.0.1:{port}/nas"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)  # postgres' "fast" shutdown
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def _trials(url: str, study: str) -> list:
    import optuna

    return optuna.load_study(study_name=study, storage=open_storage(url, Path("."))).get_trials()


@pytest.mark.slow
def test_search_on_postgres_killed_and_resumed_then_the_dashboard_api(postgres_url, tmp_path):
    run = tmp_path / "pg"
    cmd = search_cmd(tmp_path, "pg", *TINY, "--storage", postgres_url)
    err = tmp_path / "first.err"  # a file, not a pipe: nobody reads a pipe while we wait
    with err.open("wb") as f:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=f)
    try:
        deadline = time.monotonic() + 600
        while not any(run.glob("trials/*/checkpoint.pt")):  # kill mid-training of the first proxy trial
            assert proc.poll() is None, err.read_text(errors="replace")[-2000:]
            assert time.monotonic() < deadline, err.read_text(errors="replace")[-2000:]
            time.sleep(0.2)
    finally:  # also when an assert failed: no search may outlive the test (or its server)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (run / "optuna.journal").exists()  # the record is in PostgreSQL, not a journal
    before = {
        t.user_attrs["key"]: t.number for t in _trials(postgres_url, "pg") if t.state.name in ("COMPLETE", "PRUNED")
    }

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    proxy = _trials(postgres_url, "pg")
    finished = [t for t in proxy if t.state.name in ("COMPLETE", "PRUNED")]
    keys = [t.user_attrs["key"] for t in finished]
    assert len(keys) == len(set(keys)) == 2  # nothing duplicated
    for key, number in before.items():  # nothing finished was recomputed
        assert any(t.number == number and t.user_attrs["key"] == key for t in finished)
    cheap = _trials(postgres_url, "pg-cheap")
    assert len(cheap) == 120
    only = (
        inside_support(feasible_pool(cheap, parse_flops("45G"))) or None
    )  # the default trust region and picks, as the driver applies them
    default = SearchOptions(budget=1).picks
    assert set(keys) == {t.user_attrs["key"] for t in select_candidates(cheap, 2, parse_flops("45G"), only, default)}
    assert all(t.user_attrs.get("interrupted") for t in proxy if t.state.name == "FAIL")

    # optuna-dashboard on the same database, read-only as `nas dashboard` serves it
    from optuna_dashboard import wsgi

    app = read_only(wsgi(open_storage(postgres_url, run)))
    studies = {s["study_name"]: s["study_id"] for s in dashboard_api(app, "/api/studies")["study_summaries"]}
    assert set(studies) == {"pg", "pg-cheap"}
    shown = dashboard_api(app, f"/api/studies/{studies['pg']}", "after=0")["trials"]
    assert sorted(t["number"] for t in shown) == sorted(t.number for t in proxy)
    assert all(t["constraints"][0] <= 0 for t in shown)  # every trained trial is within the budget
    code, _ = wsgi_request(app, "DELETE", f"/api/studies/{studies['pg']}")
    assert code.startswith("403")
    assert len(_trials(postgres_url, "pg")) == len(proxy)  # still there


def test_without_postgresql_the_skip_says_in_one_line_what_it_lacked(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(sys.modules[__name__], "postgres_bin", lambda: None)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.skip.Exception) as skipped:
        ensure_postgres()
    reason = str(skipped.value)
    assert "\n" not in reason and "postgresql is not installed" in reason and INSTALL in reason
