"""Real Ray nodes for the cluster tests: a ``ray start --head`` and worker nodes that cannot see a
given folder of this machine, each in its own process group, stopped by that group (never by
name, never with ``ray stop``, which would stop every Ray on the machine)."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

RAY_ENV = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_TMPDIR")
RAY = str(Path(sys.executable).with_name("ray"))


def clean_env(**extra: str) -> dict[str, str]:
    """This interpreter's environment without any Ray setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in RAY_ENV}
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _started(cmd: list[str], log: Path, env: dict[str, str], what: str) -> subprocess.Popen:
    """``cmd`` in its own process group, once its log says the Ray node is up."""
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while "Ray runtime started" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_group(proc)
            raise AssertionError(f"{what} did not come up in 120 s: {log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.5)
    return proc


@contextlib.contextmanager
def ray_head(home: Path, temp: Path, num_cpus: int = 1, env: dict[str, str] | None = None) -> Iterator[str]:
    """A ``ray start --head`` as the docs give it (plus loopback, a free port, its own temp folder),
    in its own process group; yields its address and kills that group at the end."""
    port = free_port()
    cmd = [RAY, "start", "--head", "--block", "--port", str(port), "--node-ip-address", "127.0.0.1"]
    cmd += ["--num-cpus", str(num_cpus), "--include-dashboard", "false", "--disable-usage-stats"]
    cmd += ["--temp-dir", str(temp / "ray")]
    proc = _started(cmd, temp / "head.log", env or clean_env(HOME=str(home)), "ray start --head")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop_group(proc)


def ray_worker(address: str, env: dict[str, str], hidden: Path, log: Path, num_cpus: int = 2) -> subprocess.Popen:
    """A worker node joined to ``address`` that cannot see ``hidden``: it runs in its own mount
    namespace with a private tmpfs over that folder (as a node of another machine sees its own
    disk there). Stop it with :func:`stop_group`; its tmpfs goes with its last process. A worker
    node sends the token (``~/.ray/auth_token`` of ``env``'s HOME) only with ``RAY_AUTH_MODE=token``
    (Ray 2.60), as the README's cluster steps say."""
    join = [RAY, "start", "--address", address, "--block", "--num-cpus", str(num_cpus)]
    join += ["--node-ip-address", "127.0.0.1", "--resources", '{"gp_worker": 1}']
    join += ["--dashboard-agent-listen-port", "0", "--disable-usage-stats"]  # 52365 is the head's
    script = f"mount -t tmpfs gp-node-disk {shlex.quote(str(hidden))} && exec {shlex.join(join)}"
    cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
    return _started(cmd, log, dict(env, RAY_AUTH_MODE="token"), "the worker node")


def can_hide_folders() -> bool:
    """Whether this machine lets us make a mount namespace with a tmpfs (root, or CAP_SYS_ADMIN)."""
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs probe /mnt"],
        capture_output=True,
    )
    return probe.returncode == 0


def stop_group(proc: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM the process group we started, then SIGKILL what is left of it."""
    if grace:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
