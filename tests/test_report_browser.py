"""The HTML report opened in a real browser (Debian's ``chromium``, headless), as a person would open it.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: commands on fd 3, replies
on fd 4, NUL-separated JSON), which reports every request the page makes, every console message and script
error, the loaded state of each image, and takes screenshots. The test skips when chromium is not installed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from medrobust.cli import main
from medrobust.reporting.html import SECTIONS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
PAGE_STATE = """JSON.stringify({
  headings: [...document.querySelectorAll('h1,h2,h3')].map(e => e.textContent),
  images: [...document.images].map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0})),
  gallery: (() => { const g = document.querySelector('img[alt="example gallery"]');
                    if (!g) return null; g.scrollIntoView(); const r = g.getBoundingClientRect();
                    return {x: r.x + window.scrollX, y: r.y + window.scrollY, width: r.width, height: r.height}; })()
})"""


class Browser:
    """A headless chromium page driven over the DevTools pipe; collects requests and errors while loading."""

    def __init__(self, profile: Path) -> None:
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()

        def fds() -> None:  # in the child: the protocol's fds 3 (commands in) and 4 (replies out)
            a, b = os.dup(cmd_r), os.dup(res_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
                "--no-first-run", f"--user-data-dir={profile}", "--window-size=1280,2000", "about:blank"]  # fmt: skip
        self.proc = subprocess.Popen(args, preexec_fn=fds, close_fds=False, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)  # fmt: skip
        os.close(cmd_r)
        os.close(res_w)
        self.out, self.inp = os.fdopen(cmd_w, "wb"), os.fdopen(res_r, "rb")
        self.buffer, self.next_id, self.events = b"", 0, []  # type: ignore[var-annotated]
        self.session: str | None = None

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: bool = True) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        self.out.write(json.dumps(msg).encode() + b"\0")
        self.out.flush()
        while True:
            reply = self._read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply["result"])

    def _read(self) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            chunk = os.read(self.inp.fileno(), 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self.buffer += chunk
        raw, self.buffer = self.buffer.split(b"\0", 1)
        msg = json.loads(raw)
        if "method" in msg:
            self.events.append(msg)
        return dict(msg)

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)[
            "sessionId"
        ]
        for domain in ("Network", "Log", "Runtime", "Page"):
            self.send(f"{domain}.enable")
        self.events.clear()
        self.send("Page.navigate", {"url": url})
        while not any(e["method"] == "Page.loadEventFired" for e in self.events):
            self._read()

    def problems(self, page_url: str) -> list[str]:
        """Requests that leave the file and every console error, script exception or failed load."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Network.requestWillBeSent":
                url = p["request"]["url"]
                if not (url.startswith("data:") or url == page_url):
                    out.append(f"request leaves the file: {url}")
            elif e["method"] == "Network.loadingFailed":
                out.append(f"load failed: {p.get('errorText')}")
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"console: {p['entry']['text']}")
            elif e["method"] == "Runtime.consoleAPICalled" and p["type"] == "error":
                out.append("console.error called")
            elif e["method"] == "Runtime.exceptionThrown":
                out.append("script exception")
        return out

    def state(self) -> dict[str, Any]:
        value = self.send("Runtime.evaluate", {"expression": PAGE_STATE, "returnByValue": True})["result"]["value"]
        return dict(json.loads(value))

    def screenshot(self, clip: dict[str, float] | None = None) -> bytes:
        import base64

        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.send("Page.captureScreenshot", params)["data"])

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError):  # chromium may close the pipe before replying
            self.send("Browser.close", session=False)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.out.close()
        self.inp.close()


def inspect_page(path: Path, profile: Path) -> tuple[list[str], dict[str, Any], bytes | None]:
    """``(problems, page state, PNG of the gallery or None)`` of the HTML file at ``path``."""
    browser = Browser(profile)
    try:
        url = path.resolve().as_uri()
        browser.open(url)
        state = browser.state()
        problems = browser.problems(url) + [f"broken image: {i['alt']}" for i in state["images"] if not i["ok"]]
        shot = browser.screenshot(state["gallery"]) if state["gallery"] else None
        return problems, state, shot
    finally:
        browser.close()


def grey_stats(png: bytes) -> tuple[float, int]:
    """``(standard deviation, number of grey levels used by ≥ 20 pixels)`` of a PNG."""
    from PIL import Image

    g = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    return float(g.std()), int((np.bincount(g.astype(np.int64).ravel(), minlength=256) >= 20).sum())


@pytest.fixture(scope="module")
def report(evaluated_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "report.html"
    assert main(["report", str(evaluated_runs["ima"]), "--html", str(out)]) == 0
    return out


def test_report_renders_without_errors_or_requests(report: Path, tmp_path: Path) -> None:
    problems, state, gallery = inspect_page(report, tmp_path / "profile")
    assert problems == []
    for section in SECTIONS:
        assert section in state["headings"], section
    assert len(state["images"]) >= 8 and all(i["ok"] for i in state["images"])
    assert gallery is not None
    std, levels = grey_stats(gallery)
    assert std > 20 and levels > 20, (std, levels)  # clean, adversarial and heat-map panels, not a blank box


def test_the_detector_sees_a_broken_image_and_a_request_leaving_the_file(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><h1>x</h1><img alt="broken" src="data:image/png;base64,AAAA">'
                    '<img alt="remote" src="http://127.0.0.1:9/x.png"></body></html>')  # fmt: skip
    problems, state, _ = inspect_page(page, tmp_path / "profile")
    assert any(p.startswith("request leaves the file: http://127.0.0.1:9/x.png") for p in problems)
    assert "broken image: broken" in problems
    assert state["headings"] == ["x"]


def test_a_blank_picture_is_told_from_a_gallery() -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (300, 200), "white").save(buf, format="PNG")
    std, levels = grey_stats(buf.getvalue())
    assert std == 0 and levels == 1
