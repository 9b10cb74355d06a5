"""The dashboard as a user sees it: headless Chromium (Debian's ``chromium``, installed here with
apt-get when missing) renders ``nas dashboard`` of a tiny run. The Pareto plot must render with
the named objectives (``fitted_score`` / ``GFLOPs``, ``AP`` / ``GFLOPs``) and the cheap study's
"Best Trials" must list no over-budget candidate. Screenshots go to ``runs/browser/``."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

SHOTS = Path("runs/browser")


#: what installs the browser on Debian/Ubuntu, as the skip reason names it
INSTALL_CHROMIUM = "sudo apt-get install -y --no-install-recommends chromium"


def _chromium() -> str:
    """The chromium binary, installed with apt-get if missing (CI's fresh machine). Where it
    cannot be had, the test is skipped with one line naming the package and its install."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip(
            f"chromium is not installed and there is no apt-get here; install Chromium ({INSTALL_CHROMIUM} on Debian)"
        )
    sudo = [] if hasattr(__import__("os"), "geteuid") and __import__("os").geteuid() == 0 else ["sudo", "-n"]
    cmd = [*sudo, "apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        proc = subprocess.run([*sudo, "apt-get", "update"], capture_output=True, text=True, timeout=600)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    found = shutil.which("chromium")
    if not found:
        said = [line.strip() for line in (proc.stderr or proc.stdout or "").splitlines() if line.strip()]
        why = said[-1][-160:] if said else f"exit {proc.returncode}"
        pytest.skip(
            f"chromium is not installed and apt-get could not install it ({why}); install it: {INSTALL_CHROMIUM}"
        )
    return found


def _tiny_run(runs: Path) -> Path:
    """A real cheap stage (60 candidates, many over a 60 GFLOPs budget) and a proxy study whose
    three picks carry what the proxy stage records (their APs are made up: nothing is trained)."""
    import optuna

    from nas.core.cost import parse_flops
    from nas.core.runio import atomic_write_json
    from nas.engine import SearchOptions, cheap_stage, select_candidates
    from nas.engine.record.storage import mark_constraint, open_storage
    from nas.engine.record.trials import constraints_of, copied_attrs, metric_name, study_attrs

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opts = SearchOptions(budget=parse_flops("60G"), name="tiny", candidates=60, trials=3, runs_dir=str(runs))
    storage = open_storage(None, opts.run_dir)
    cheap = cheap_stage(storage, opts, progress=False)
    atomic_write_json(opts.run_dir / "search.json", opts.identity())
    proxy = optuna.create_study(study_name="tiny", storage=storage, directions=["maximize", "minimize"])
    proxy.set_metric_names(["AP", metric_name(opts.cost)])
    for k, v in study_attrs(opts).items():
        proxy.set_user_attr(k, v)
    for i, c in enumerate(select_candidates(cheap.trials, 3, opts.budget)):
        t = proxy.ask()
        mark_constraint(proxy, t, c.system_attrs["constraints"], [x.name for x in constraints_of(opts)])
        for k, v in copied_attrs(c).items():
            t.set_user_attr(k, v)
        proxy.tell(t, [0.1 + 0.05 * i, t.user_attrs["GFLOPs"]])
    return opts.run_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


class Browser:
    """Headless Chromium driven over the DevTools protocol (one process for every page: its start
    is most of the time on a loaded machine)."""

    WIDTH, HEIGHT = 1400, 1800

    def __init__(self, chromium: str, profile: Path) -> None:
        import websocket

        port = _free_port()
        self.proc = subprocess.Popen(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-dev-shm-usage",
                f"--user-data-dir={profile}",
                "--remote-debugging-address=127.0.0.1",
                f"--remote-debugging-port={port}",
                f"--window-size={self.WIDTH},{self.HEIGHT}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(300):
            try:
                tabs = _get(f"http://127.0.0.1:{port}/json")
                break
            except OSError:
                assert self.proc.poll() is None, "chromium exited at start"
                time.sleep(0.1)
        page = next(t for t in tabs if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], suppress_origin=True, timeout=60)
        self.n = 0

    def call(self, method: str, **params) -> dict:
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == self.n:
                assert "error" not in m, m
                return m["result"]

    def eval(self, expr: str):
        return self.call("Runtime.evaluate", expression=expr, returnByValue=True)["result"].get("value")

    def open(self, url: str, ready: str, timeout: float = 60) -> None:
        """Navigate and wait until the JS expression ``ready`` is true (the app has rendered)."""
        self.call("Page.navigate", url=url)
        end = time.time() + timeout
        while time.time() < end:
            time.sleep(0.3)
            if self.eval(ready):
                time.sleep(0.5)  # let plotly finish drawing
                return
        raise AssertionError(f"{url}: not rendered within {timeout} s")

    def screenshot(self, path: Path) -> None:
        import base64

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()  # our own browser, by its pid
        self.proc.wait(10)


PARETO_READY = "!!document.querySelector('#graph-pareto-front .point')"
#: (Objective X, Objective Y) of the Pareto Front card: the two select boxes above its plot
PARETO_OBJECTIVES = """(() => {
  const t = document.body.innerText; const i = t.indexOf('Objective X:');
  return t.slice(i).split('\\n').map(s => s.trim()).filter(s => s && s !== '\u200b').slice(0, 4);
})()"""
BEST_TRIALS = """(() => {
  const h = [...document.querySelectorAll('h6')].find(e => e.innerText.trim() === 'Best Trials');
  const card = h.parentElement;
  return [...card.querySelectorAll('a[href*="trials?numbers="]')].map(a => +a.href.split('numbers=')[1]);
})()"""


@pytest.mark.parametrize("apt", ["/usr/bin/apt-get", None])
def test_without_chromium_the_skip_reason_is_one_line_naming_the_package_and_its_install(monkeypatch, apt):
    """``make test`` installs chromium when it can; where it cannot, pytest's ``-ra`` summary says
    in one line what was skipped and the command that installs it."""
    monkeypatch.setattr(shutil, "which", lambda name: apt if name == "apt-get" else None)
    failed = subprocess.CompletedProcess(
        [], 100, "", "Reading package lists...\nE: Unable to locate package chromium\n"
    )
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(pytest.skip.Exception) as skipped:
        _chromium()
    reason = str(skipped.value.msg)
    assert "\n" not in reason and "chromium" in reason, reason
    assert "apt-get install -y --no-install-recommends chromium" in reason, reason
    if apt:
        assert "Unable to locate package chromium" in reason, reason


@pytest.mark.slow
def test_dashboard_renders_named_objectives_and_lists_no_over_budget_trial_as_best(tmp_path):
    from optuna_dashboard._pareto_front import get_pareto_front_trials

    from nas.engine.record.storage import open_storage

    chromium = _chromium()
    run = _tiny_run(tmp_path)
    import optuna

    cheap = optuna.load_study(study_name="tiny-cheap", storage=open_storage(None, run))
    over = {t.number for t in cheap.trials if max(t.system_attrs["constraints"]) > 0}
    upstream = {t.number for t in get_pareto_front_trials(cheap.trials, cheap.directions)}
    assert upstream & over, "the tiny run must have an over-budget candidate upstream would list as best"
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "nas.cli", "dashboard", str(run), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    browser = Browser(chromium, tmp_path / "profile")
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                studies = {s["study_name"]: s["study_id"] for s in _get(f"{base}/api/studies")["study_summaries"]}
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-1000:]
                time.sleep(0.2)
        cheap_id, proxy_id = studies["tiny-cheap"], studies["tiny"]

        browser.open(f"{base}/dashboard/studies/{cheap_id}", PARETO_READY)
        x_label, x, y_label, y = browser.eval(PARETO_OBJECTIVES)
        assert (x_label, x, y_label, y) == ("Objective X:", "fitted_score", "Objective Y:", "GFLOPs")
        assert browser.eval("document.querySelectorAll('#graph-pareto-front .point').length") == len(cheap.trials)
        best = set(browser.eval(BEST_TRIALS))
        assert best and not best & over, (best, over)
        browser.screenshot(SHOTS / "cheap_study.png")

        # a trial's page: readable attributes, no page wider than the window
        trial = min(best)
        browser.open(
            f"{base}/dashboard/studies/{cheap_id}/trials?numbers={trial}", "document.body.innerText.includes('MParams')"
        )
        text = browser.eval("document.body.innerText")
        assert "GFLOPs" in text and "gp.longest_gradient_path" in text and "schema:" not in text
        assert browser.eval("document.documentElement.scrollWidth") <= Browser.WIDTH
        browser.screenshot(SHOTS / "cheap_trial.png")

        browser.open(f"{base}/dashboard/studies/{proxy_id}", PARETO_READY)
        assert browser.eval(PARETO_OBJECTIVES)[1::2] == ["AP", "GFLOPs"]
        browser.screenshot(SHOTS / "proxy_study.png")
        assert (SHOTS / "cheap_study.png").stat().st_size > 10_000
    finally:
        browser.close()
        server.terminate()  # our own server, by its pid
        server.wait(10)
