"""``report.html`` as a user sees it: headless Chromium (installed as the dashboard's browser test
installs it) opens the report of a tiny run from its file. Every request the page makes is
intercepted (DevTools ``Fetch``, every URL) and counted from ``Network`` events: none may leave
the page; the console must stay free of errors; each figure must be drawn, with its caption;
and the page is screenshotted whole into ``runs/browser/report.png``.

The README's screenshot is taken by the same code from a default run::

    .venv/bin/python -m tests.cli.test_report_browser runs/default docs/img/report.png
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pytest

from tests.cli.test_dashboard_browser import SHOTS, Browser, _chromium
from tests.support.report_run import finished_tiny_run

FIGURES = ["fig-front", "fig-cheap", "fig-anatomy"]
DRAWN = """[...document.querySelectorAll('figure')].map(f => {
  const s = f.querySelector('svg'), r = s ? s.getBoundingClientRect() : {width: 0, height: 0};
  return {id: f.id, width: r.width, height: r.height, marks: s ? s.querySelectorAll('path, use').length : 0,
          caption: (f.querySelector('figcaption') || {innerText: ''}).innerText};
})"""


class PageBrowser(Browser):
    """The dashboard test's browser, listening: every request paused (the page's own file goes
    on, anything else is failed and counted) and every console error kept."""

    def __init__(self, chromium: str, profile: Path) -> None:
        super().__init__(chromium, profile)
        self.page_url = ""
        self.requests: list[str] = []
        self.blocked: list[str] = []
        self.errors: list[str] = []
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable")
        self.call("Fetch.enable", patterns=[{"urlPattern": "*"}])

    def call(self, method: str, **params: object) -> dict:
        self.n += 1
        mine = self.n
        self.ws.send(json.dumps({"id": mine, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == mine:
                assert "error" not in m, m
                return m["result"]
            if "method" in m:
                self._event(m["method"], m.get("params", {}))

    def _send(self, method: str, **params: object) -> None:
        """A command whose answer nobody waits for (sent from inside an event)."""
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))

    def _event(self, method: str, p: dict) -> None:
        if method == "Network.requestWillBeSent":
            self.requests.append(p["request"]["url"])
        elif method == "Fetch.requestPaused":
            url = p["request"]["url"]
            if url == self.page_url:
                self._send("Fetch.continueRequest", requestId=p["requestId"])
            else:
                self.blocked.append(url)
                self._send("Fetch.failRequest", requestId=p["requestId"], errorReason="BlockedByClient")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            self.errors.append(p["exceptionDetails"].get("text", "exception"))
        elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
            self.errors.append(p["entry"].get("text", ""))

    def load(self, path: Path) -> None:
        self.page_url = path.resolve().as_uri()
        self.open(self.page_url, "document.readyState === 'complete'")

    def outside(self) -> list[str]:
        """Every request but the page's own load."""
        return [u for u in self.requests if u != self.page_url]

    def full_screenshot(self, path: Path, height: int | None = None) -> None:
        """The whole page (or its top ``height`` px) as PNG."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], height or 10**6), "scale": 1}
        data = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True, clip=clip)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))


@pytest.mark.slow
def test_the_report_renders_offline_with_every_figure_and_no_console_error(tmp_path):
    from nas.cli import main

    chromium = _chromium()
    run = finished_tiny_run(tmp_path / "runs", budget=150 * 10**9)
    assert main(["report", str(run)]) == 0
    leaky = tmp_path / "leaky.html"  # the counter's own check: a page that does reach out
    leaky.write_text(
        '<!doctype html><img src="http://127.0.0.1:9/x.png"><link rel="stylesheet" href="https://x.invalid/a.css">'
    )
    browser = PageBrowser(chromium, tmp_path / "profile")
    try:
        browser.load(leaky)
        assert len(browser.outside()) == 2 and len(browser.blocked) == 2, (browser.requests, browser.blocked)
        browser.requests, browser.blocked, browser.errors = [], [], []

        browser.load(run / "report.html")
        figures = browser.eval(DRAWN)
        assert [f["id"] for f in figures] == FIGURES
        for f in figures:
            assert f["width"] > 300 and f["height"] > 150 and f["marks"] > 20, f
            assert len(f["caption"]) > 80, f
        best = json.loads((run / "summary.json").read_text())["best_trial"]
        tip = browser.eval(f"document.querySelector('#front-trial-{best} > title').textContent")
        assert tip.startswith(f"trial {best}:") and "rebuild: nas show" in tip
        assert browser.eval("document.documentElement.scrollWidth") <= Browser.WIDTH
        assert "The winner is trial" in browser.eval("document.querySelector('#summary').innerText")
        browser.full_screenshot(SHOTS / "report.png")
        assert browser.outside() == [] and browser.blocked == [], (browser.outside(), browser.blocked)
        assert browser.errors == []
        assert (SHOTS / "report.png").stat().st_size > 50_000
    finally:
        browser.close()


def main(argv: list[str]) -> None:
    """``RUN OUT.png [HEIGHT]``: the screenshot of RUN's report (written first if it has none)."""
    from nas.cli import main as nas

    run, out = Path(argv[0]), Path(argv[1])
    if not (run / "report.html").is_file():
        nas(["report", str(run)])
    browser = PageBrowser(_chromium(), Path("runs/browser/profile"))
    try:
        browser.load(run / "report.html")
        browser.full_screenshot(out, int(argv[2]) if len(argv) > 2 else None)
        print(f"{out}: requests outside the page {browser.outside()}, console errors {browser.errors}")
    finally:
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1:])
