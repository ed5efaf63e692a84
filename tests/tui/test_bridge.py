"""`skewmit bridge` in a real headless Chromium (Debian's package), driven over the DevTools
protocol: the token is required, the page shows the verdict and follows it when it changes,
keys typed in the browser change nothing, and a screenshot goes to screenshots/."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.journal import Journal
from services.models import Step, Target
from tests.conftest import require_tool
from tests.prometheus import free_port
from tui.bridge import incident_view
from tui.cli import main

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "screenshots"
FAIL = {
    "step": "validate",
    "code": "validation-fail",
    "severity": "warning",
    "subject": "deployment/llm-serve",
    "message": "p95: above the limit: 6.7 s vs baseline 4.97 s",
}


def open_incident(root: Path) -> Journal:
    journal = Journal.open_for(Target("skewmit-sim", "inference", "llm-serve"), "me", root=root)
    journal.record_findings(
        "rollback",
        "findings",
        [{**FAIL, "step": "rollback", "code": "lkg-available", "message": "roll back"}],
    )
    journal.record_findings("validate", "findings", [FAIL])
    # The operator's change, made in the app before anyone opened the bridge.
    title = "Roll back to last-known-good (revision 2)"
    intent = journal.append("apply-intent", {"action": "rollback.undo", "title": title})
    journal.append(
        "applied",
        {"intent": intent.seq, "action": "rollback.undo", "title": title, "verified": True},
    )
    return journal


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[tuple[str, int, Journal]]:
    """A running `skewmit bridge` on a fresh incident: (url with token, port, journal)."""
    journal = open_incident(tmp_path / "state")
    port = free_port()
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "tui.cli", "bridge"),
            *("--incident", str(journal.folder), "--port", str(port)),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/\?token=\S+)", line)
        assert match, line
        yield match.group(1), port, journal
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        journal.release()


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


class Browser:
    """Headless Chromium over the DevTools protocol: the websocket frames the page received
    (what the terminal drew) and keys typed into the page."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = 0
        self.frames = b""
        self.replies: dict[int, Any] = {}

    async def send(self, method: str, **params: Any) -> Any:
        self.ids += 1
        ident = self.ids
        await self.ws.send_json({"id": ident, "method": method, "params": params})
        while ident not in self.replies:
            await self.pump()
        return self.replies.pop(ident)

    async def pump(self) -> None:
        message = json.loads((await self.ws.receive(timeout=30)).data)
        if "id" in message:
            self.replies[message["id"]] = message.get("result")
        elif message.get("method") == "Network.webSocketFrameReceived":
            response = message["params"]["response"]
            data = response["payloadData"]
            self.frames += base64.b64decode(data) if response["opcode"] == 2 else data.encode()

    async def wait_for(self, what: Callable[[], bool], why: str) -> None:
        for _ in range(2000):  # a bound on frames, not a timing assertion
            if what():
                return
            await self.pump()
        raise AssertionError(f"gave up waiting for: {why}")

    async def type(self, text: str) -> None:
        for char in text:
            await self.send("Input.dispatchKeyEvent", type="char", text=char)


async def with_browser(url: str, tmp: Path, body: Callable[[Browser], Any]) -> None:
    chromium = require_tool("chromium")
    port = free_port()
    proc = subprocess.Popen(
        [
            *(chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run"),
            *(f"--remote-debugging-port={port}", f"--user-data-dir={tmp / 'chromium'}"),
            *("--window-size=1200,760", "about:blank"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(tmp)},
    )
    try:
        async with aiohttp.ClientSession() as http:
            pages: list[dict[str, Any]] = []
            for _ in range(200):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/json") as response:
                        pages = [p for p in await response.json() if p["type"] == "page"]
                    if pages:
                        break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
            async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                browser = Browser(ws)
                await browser.send("Network.enable")
                await browser.send("Page.enable")
                await browser.send("Page.navigate", url=url)
                await body(browser)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_the_view_follows_the_journal() -> None:
    class E:
        def __init__(self, type_: str, **data: Any) -> None:
            self.type, self.data = type_, data

    entries = [
        E("findings", step="validate", state="findings", seen=[FAIL], cleared=[]),
        E("applied", action="rollback.undo"),
        E("findings", step="rollback", state="ok", seen=[], cleared=[]),
    ]
    view = incident_view("x", entries)
    assert view.verdict == "FAIL" and view.verdict_notes == (FAIL["message"],)
    assert view.rows[0].state == "done" and view.rows[-1].warnings == 1
    entries.append(
        E("findings", step="validate", state="ok", seen=[], cleared=[FAIL | {"message": ""}])
    )
    assert incident_view("x", entries).verdict == "PASS"
    assert incident_view("x", []).verdict == "NOT YET CHECKED"


def test_the_bridge_refuses_requests_without_the_token(bridge: tuple[str, int, Journal]) -> None:
    url, port, _ = bridge
    assert status_of(url) == 200
    assert status_of(f"http://127.0.0.1:{port}/") == 403
    assert status_of(url.replace("token=", "token=x")) == 403
    token = url.split("token=", 1)[1]
    assert status_of(f"http://127.0.0.1:{port}/ws/not-{token}") == 403


def test_a_browser_sees_the_verdict_change_and_cannot_change_anything(
    bridge: tuple[str, int, Journal], tmp_path: Path
) -> None:
    url, _, journal = bridge
    before = journal.path.read_bytes()

    async def body(browser: Browser) -> None:
        await browser.wait_for(lambda: b"validation: FAIL" in browser.frames, "FAIL shown")
        assert b"READ-ONLY" in browser.frames
        await browser.wait_for(lambda: b"Roll back to last-known-good" in browser.frames, "log")
        # Every key the app binds to a change, typed in the browser: nothing is journaled.
        await browser.type("uyr\r1ey")
        assert journal.path.read_bytes() == before
        browser.frames = b""
        journal.record_findings(Step.VALIDATE.value, "ok", [])
        await browser.wait_for(lambda: b"validation: PASS" in browser.frames, "PASS shown")
        shot = await browser.send("Page.captureScreenshot", format="png")
        # Into screenshots/ when asked (SKEWMIT_SCREENSHOTS=1), so runs leave the tree alone.
        folder = SCREENSHOTS if os.environ.get("SKEWMIT_SCREENSHOTS") else tmp_path
        (folder / "bridge-chromium.png").write_bytes(base64.b64decode(shot["data"]))

    asyncio.run(with_browser(url, tmp_path, body))
    types = [e.type for e in journal.entries()]
    assert types.count("apply-intent") == 1 and types.count("applied") == 1  # the operator's


def test_a_port_in_use_is_refused_with_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = open_incident(tmp_path / "state")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["bridge", "--incident", str(journal.folder), "--port", str(port)]
        assert main(args) == 2
    assert "choose another --port" in capsys.readouterr().err
    journal.release()
