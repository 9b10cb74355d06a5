"""Where the proxy stage's Ray runs: a private loopback Ray started for this search, or a cluster
the user named with ``--ray-address`` / ``RAY_ADDRESS``.

Why this is more than ``ray.init()``: a bare ``ray.init()`` joins whatever cluster Ray's temp
folder last recorded (``ray_current_cluster``, left behind by any ``ray start``, running or long
dead), and then fails on ``num_cpus``. And since Ray 2.59 a ``ray start --head`` cluster checks an
auth token that Ray only sends when ``RAY_AUTH_MODE=token`` is set, while an explicit address never
turns that mode on by itself: without help, joining prints a screen of ``InvalidAuthToken`` lines
and ends in ``Failed to connect``. Here the token is found where Ray keeps it, the cluster is probed
once in a child process (its log lines stay there, a deadline bounds it) and any failure is one
line that says what to do.

>>> parse_address("127.0.0.1:6379")
('127.0.0.1', 6379)
>>> parse_address("head") is None
True
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nas.core.errors import GradpathError

#: Seconds the probe of a cluster may take; the whole check stays under 10 s.
PROBE_TIMEOUT_S = 8.0
_INIT_KWARGS: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}


class RayClusterError(GradpathError):
    """The Ray cluster named by ``--ray-address`` / ``RAY_ADDRESS`` cannot be joined."""


def requested_address(address: str | None) -> str | None:
    """The cluster the user asked for: the flag, else ``RAY_ADDRESS``; ``None`` (or ``local``) means
    a private local Ray. Nothing else (no Ray file, no running cluster) selects a cluster."""
    address = (address or os.environ.get("RAY_ADDRESS") or "").strip()
    return None if address in ("", "local") else address


def parse_address(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``HOST:PORT`` GCS address, or ``None`` when it is not one."""
    m = re.fullmatch(r"\[?([A-Za-z0-9._:-]+?)\]?:(\d{1,5})", address)
    if not m or not 0 < int(m.group(2)) < 65536:
        return None
    return m.group(1), int(m.group(2))


def find_token() -> tuple[str, str] | None:
    """``(token, where)`` from the places Ray itself reads, in Ray's order: ``RAY_AUTH_TOKEN``, the
    file ``RAY_AUTH_TOKEN_PATH`` names, ``~/.ray/auth_token``."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return os.environ["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN"
    for path in (os.environ.get("RAY_AUTH_TOKEN_PATH"), str(Path.home() / ".ray" / "auth_token")):
        if path:
            try:
                token = Path(path).read_text(encoding="utf-8").strip()
            except OSError:
                continue
            if token:
                return token, path
    return None


_PROBE = """
import sys
from ray._raylet import GcsClient
GcsClient(address=sys.argv[1])
print("RAY-CLUSTER-OK", flush=True)
"""

_FIX = (
    "copy the head node's token (`ray get-auth-token` on the head, or its ~/.ray/auth_token) to "
    "~/.ray/auth_token on this machine, or set RAY_AUTH_TOKEN"
)


def _probe(address: str, env: dict[str, str]) -> str:
    """``ok``, ``auth`` (the cluster refused our token, or we sent none), ``timeout`` or the child's
    last error line. A child process: Ray's C++ client logs every retry to stderr and cannot be
    interrupted in-process."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE, address],
            env=env,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        out = (e.stderr or b"").decode("utf-8", "replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        return "auth" if "InvalidAuthToken" in out or "Unauthenticated" in out else "timeout"
    if "RAY-CLUSTER-OK" in proc.stdout:
        return "ok"
    err = proc.stderr
    if "InvalidAuthToken" in err or "AuthenticationError" in err or "Unauthenticated" in err:
        return "auth"
    lines = [ln.strip() for ln in err.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else f"the probe exited with status {proc.returncode}"


@functools.cache
def check_cluster(address: str) -> None:
    """Make sure the cluster at ``address`` can be joined, and set ``RAY_AUTH_MODE=token`` (for
    this process and its children, as Ray itself does) when a token is found and the user has not
    chosen a mode. Raises :class:`RayClusterError`, one line, within about ``PROBE_TIMEOUT_S``."""
    if address == "auto" or address.startswith("ray://"):
        return  # Ray's own discovery / Ray Client: nothing to probe, ray.init reports for itself
    if parse_address(address) is None:
        raise RayClusterError(
            f"--ray-address: {address!r} is not a Ray cluster address; accepted: HOST:PORT of the head node "
            "(the address `ray start --head` prints, e.g. 10.0.0.5:6379), auto, or ray://HOST:PORT"
        )
    env = dict(os.environ)
    token = find_token()
    mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower()
    if mode == "token" and token is None:
        raise RayClusterError(f"RAY_AUTH_MODE=token is set but no Ray auth token was found: {_FIX}")
    if not mode and token is not None:
        env["RAY_AUTH_MODE"] = "token"
    result = _probe(address, env)
    if result == "auth":
        if token is None or env.get("RAY_AUTH_MODE", "").lower() != "token":
            raise RayClusterError(f"the Ray cluster at {address} requires an auth token and none was found: {_FIX}")
        raise RayClusterError(
            f"the Ray cluster at {address} rejected the auth token from {token[1]}: use the head node's token "
            "(`ray get-auth-token` on the head) in ~/.ray/auth_token or RAY_AUTH_TOKEN"
        )
    if result == "timeout":
        raise RayClusterError(
            f"no Ray cluster answered at {address} within {PROBE_TIMEOUT_S:g} s: start one with "
            "`ray start --head --port PORT` on the head node, and check the host, the port and the firewall"
        )
    if result != "ok":
        raise RayClusterError(f"cannot join the Ray cluster at {address}: {result}")
    if env.get("RAY_AUTH_MODE") == "token" and not mode:
        _enable_token_mode()


def _enable_token_mode() -> None:
    """What Ray does when it turns token auth on: the environment (inherited by every worker this
    driver starts) and Ray's cached config, which may already have been read."""
    os.environ["RAY_AUTH_MODE"] = "token"
    try:
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
    except (ImportError, AttributeError):  # another Ray version: the environment is what it reads
        pass


LOOPBACK = "127.0.0.1"
#: Ray's switch for "this node may be part of a multi-node cluster" (default: on, except macOS/Windows)
_CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """While the private Ray starts, make ``_node_ip_address="127.0.0.1"`` stick.

    Why: Ray (checked in 2.60, ``services.resolve_ip_for_localhost``) replaces a loopback node
    address by the machine's network address unless its cluster switch is off, and its GCS, raylet
    and workers then listen on every interface (``::``); with the node address 127.0.0.1 they
    listen on 127.0.0.1 only (their gRPC servers bind loopback exactly when the node address is
    127.0.0.1). The switch is read once, when Ray is imported, so both the environment (for the
    processes this start spawns) and Ray's constant (for this process) are set, then restored: a
    later ``--ray-address`` join from the same process must advertise the real address."""
    try:
        from ray._private import ray_constants
    except ImportError:  # another Ray layout: the test of the listening sockets says whether it held
        ray_constants = None
    saved_env = os.environ.get(_CLUSTER_SWITCH)
    saved = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    os.environ[_CLUSTER_SWITCH] = "0"
    if saved is not None:
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop(_CLUSTER_SWITCH, None)
        else:
            os.environ[_CLUSTER_SWITCH] = saved_env
        if saved is not None:
            ray_constants.ENABLE_RAY_CLUSTER = saved


def start_or_join(address: str | None, num_cpus: int | None = None) -> bool:
    """Connect this process to Ray; True when it started a private local Ray (the caller stops it
    with ``ray.shutdown()``), False when it joined a cluster or Ray was already initialised.

    The local Ray is started with ``address="local"``, so no recorded or running cluster is joined
    by accident, and bound to loopback (:func:`_loopback_only`): nothing of it is reachable from
    the network."""
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        return False
    target = requested_address(address)
    if target is not None:
        check_cluster(target)  # before importing Ray here: the probe's deadline is the user's wait
    import ray

    if ray.is_initialized():
        return False
    if target is None:
        with _loopback_only():
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), _node_ip_address=LOOPBACK, **_INIT_KWARGS)
        return True
    try:
        ray.init(address=target, **_INIT_KWARGS)
    except Exception as e:  # noqa: BLE001 - Ray raises several types here; the user needs one line
        text = str(e).strip().splitlines()
        raise RayClusterError(
            f"cannot join the Ray cluster at {target}: {text[-1] if text else type(e).__name__}"
        ) from e
    return False
