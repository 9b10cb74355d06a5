"""Where the proxy stage's Ray runs (``nas.engine.proxy.ray_cluster``): a local search starts its own
loopback Ray whatever Ray left on the machine, and ``--ray-address`` joins a default
``ray start --head`` cluster (token auth) with the token where Ray keeps it, or fails in one line.

The slow tests start a real head node on loopback, with ``HOME`` pointed at a temp folder so the
user's own ``~/.ray`` is never read or written, and stop it by its process group."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nas.engine.proxy.ray_cluster import RayClusterError, check_cluster, find_token, parse_address, requested_address
from tests.support.ray_nodes import clean_env, free_port, ray_head


@pytest.fixture(scope="module")
def head() -> Iterator[dict]:
    """One token-auth head node for the module: the token is in its ``~/.ray/auth_token``, so a
    default ``ray start --head`` turns token auth on (Ray >= 2.59), as on a user's machine."""
    root = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths are limited
    home = root / "home"
    (home / ".ray").mkdir(parents=True)
    token = secrets.token_hex(32)
    (home / ".ray" / "auth_token").write_text(token)
    try:
        with ray_head(home, root) as address:
            log = (root / "head.log").read_text(errors="replace")
            assert "Token authentication is enabled" in log, log[-2000:]
            yield {"address": address, "home": home, "token": token, "root": root}
    finally:
        shutil.rmtree(root, ignore_errors=True)


JOIN = """
import ray
from nas.engine.proxy.ray_cluster import start_or_join
started = start_or_join({address!r}, 2)
print(started, int(ray.cluster_resources()["CPU"]), ray.get_runtime_context().gcs_address.rsplit(":", 1)[1])
ray.shutdown()
"""


def run_join(address: str | None, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", JOIN.format(address=address)], env=env, capture_output=True, text=True, timeout=timeout
    )


# --- fast: the pure parts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:6379", ("127.0.0.1", 6379)),
        ("head-node.lan:10001", ("head-node.lan", 10001)),
        ("[::1]:6379", ("::1", 6379)),
    ],
)
def test_parse_address_accepts_host_port(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["head", "head:", ":6379", "head:0", "head:70000", "http://head:6379", "a b:1"])
def test_parse_address_rejects_what_is_not_host_port(text):
    assert parse_address(text) is None


def test_only_the_flag_or_RAY_ADDRESS_select_a_cluster(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert requested_address(None) is None
    assert requested_address("local") is None
    assert requested_address("10.0.0.5:6379") == "10.0.0.5:6379"
    monkeypatch.setenv("RAY_ADDRESS", "")
    assert requested_address(None) is None
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.7:6379")
    assert requested_address(None) == "10.0.0.7:6379"
    assert requested_address("10.0.0.5:6379") == "10.0.0.5:6379"  # the flag wins


def test_token_is_found_where_ray_reads_it_in_rays_order(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for k in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(k, raising=False)
    assert find_token() is None
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("home-token\n")
    assert find_token() == ("home-token", str(tmp_path / ".ray" / "auth_token"))
    (tmp_path / "t").write_text("path-token")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "t"))
    assert find_token() == ("path-token", str(tmp_path / "t"))
    monkeypatch.setenv("RAY_AUTH_TOKEN", "env-token")
    assert find_token() == ("env-token", "RAY_AUTH_TOKEN")


def test_a_malformed_address_is_one_line_naming_the_accepted_form(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "nas.cli", "search", "--budget", "45G", "--ray-address", "head-node"]
        + ["--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: --ray-address: 'head-node'")
    assert "HOST:PORT" in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing written


def test_malformed_address_raises_before_any_probe():
    with pytest.raises(RayClusterError, match="HOST:PORT"):
        check_cluster("no-port-here")


# --- slow: a real Ray -----------------------------------------------------------------------


@pytest.mark.slow
def test_local_search_starts_its_own_ray_despite_a_stale_cluster_file(tmp_path):
    """``ray_current_cluster`` left by a ``ray start`` that was never stopped (the cluster long
    dead): a bare ``ray.init(num_cpus=...)`` raises "When connecting to an existing cluster,
    num_cpus and num_gpus must not be provided"."""
    root = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))
    try:
        (root / "ray").mkdir()
        (root / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{free_port()}")
        proc = run_join(None, clean_env(RAY_TMPDIR=str(root), HOME=str(tmp_path)))
        assert proc.returncode == 0, proc.stderr[-2000:]
        started, cpus, _ = proc.stdout.split()
        assert started == "True" and int(cpus) == 2
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_local_search_ignores_a_running_ray_start_cluster(head):
    """The head of this module is recorded in its temp folder's ``ray_current_cluster``; a local
    search pointed at that folder still starts its own Ray (2 CPUs, another port)."""
    env = clean_env(RAY_TMPDIR=str(head["root"]), HOME=str(head["home"]))
    assert (head["root"] / "ray" / "ray_current_cluster").is_file()
    proc = run_join(None, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    started, cpus, port = proc.stdout.split()
    assert started == "True" and int(cpus) == 2
    assert port != head["address"].rsplit(":", 1)[1]


@pytest.mark.slow
@pytest.mark.parametrize("where", ["home", "env"])
def test_ray_address_joins_a_token_auth_cluster_with_no_other_setting(head, where, tmp_path):
    if where == "home":  # the token where Ray keeps it, and nothing else set
        env = clean_env(HOME=str(head["home"]))
    else:  # a machine without the file: the token in RAY_AUTH_TOKEN
        env = clean_env(HOME=str(tmp_path), RAY_AUTH_TOKEN=head["token"])
    proc = run_join(head["address"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    started, cpus, port = proc.stdout.split()
    assert started == "False" and int(cpus) == 1  # the head's one CPU: joined, not started
    assert port == head["address"].rsplit(":", 1)[1]
    assert "InvalidAuthToken" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("token", [None, "wrong"])
def test_missing_or_wrong_token_is_one_line_within_10_s(head, token, tmp_path):
    env = clean_env(HOME=str(tmp_path / "home"))
    if token:
        env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    runs = tmp_path / "runs"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "nas.cli", "search", "--budget", "45G", "--ray-address", head["address"]]
        + ["--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stdout == "" and proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: "), proc.stderr
    assert "~/.ray/auth_token" in proc.stderr and "RAY_AUTH_TOKEN" in proc.stderr  # the fix is named
    assert ("rejected" if token else "none was found") in proc.stderr
    assert elapsed < 10, elapsed
    assert not runs.exists()


@pytest.mark.slow
def test_unreachable_cluster_is_one_line_within_10_s(tmp_path):
    address = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(RayClusterError, match="no Ray cluster answered") as e:
        check_cluster.__wrapped__(address)
    assert time.monotonic() - t0 < 10
    assert "\n" not in str(e.value)
