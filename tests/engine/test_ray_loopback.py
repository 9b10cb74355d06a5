"""A local search's private Ray listens on loopback only (issue 31).

The Ray is started the way a search starts it (``nas.engine.proxy.ray_cluster.start_or_join`` with no
address) in a child process of its own session, with one task run so a worker exists; every
listening TCP socket of that process, its descendants and the processes of its Ray session is
read from ``/proc``. Before ``_loopback_only`` Ray replaced the requested 127.0.0.1 by the
machine's address and the GCS, raylet and workers listened on ``::`` (every interface)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.sockets import is_loopback

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, os, time
import ray
from nas.engine.proxy.ray_cluster import start_or_join
from tests.support.sockets import descendants, listening, processes_mentioning

assert start_or_join(None, 1)
try:
    ray.get(ray.remote(lambda: os.getpid()).remote())  # a worker process, with its own server
    time.sleep(1)
    session = os.path.basename(ray._private.worker._global_node.get_session_dir_path())
    pids = sorted({os.getpid(), *descendants(os.getpid()), *processes_mentioning(session)})
    names = {p: open(f"/proc/{p}/cmdline", "rb").read().split(b"\\0")[0].decode(errors="replace")[-40:] for p in pids}
    print("SOCKETS " + json.dumps([[names[p], a, port] for p, a, port in listening(pids)]), flush=True)
finally:
    ray.shutdown()
"""


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads listening sockets from Linux /proc")
def test_local_search_ray_listens_on_loopback_only(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": "", "TMPDIR": "/tmp"}
    proc = subprocess.Popen(
        [sys.executable, "-c", PROBE],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:  # stuck: stop what it started, by its own process group
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    line = next((ln for ln in out.splitlines() if ln.startswith("SOCKETS ")), None)
    assert line is not None, out[-3000:]
    sockets = json.loads(line[len("SOCKETS ") :])
    names = {name.rsplit("/", 1)[-1] for name, _, _ in sockets}
    assert {"gcs_server", "raylet"} <= names, sockets  # the servers were found: the check is not vacuous
    wide = [s for s in sockets if not is_loopback(s[1])]
    assert not wide, f"listening beyond loopback: {wide}"
