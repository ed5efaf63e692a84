"""The cyclic collector during the app's start-up (issue 12): full collections walked the
whole heap (every imported module's objects, then the screen's widgets) two to four times
before step 5 answered, each holding the interpreter lock 30-70 ms on the UI thread or a
worker. The launcher turns the collector off while Textual and the app import, freezes what
they made before the app runs, and turns it on again once the app has frozen its start-up heap
(tui.heap), or after a bounded pause when start-up never ends (a cluster that never answers).

Each case runs the real launcher and the real app (headless) in a process of its own: freezing
or pausing the collector of the test process would change every later test in it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.tui.test_launchers import kubeconfig

# run_opener with the real app, headless, on a fake session (or one that opens only once the
# pilot has looked). The app's pilot reports the collector's state as the app runs, then quits.
SCRIPT = """
import gc, json, sys, threading
import tui.heap as heap
import tui.launchers as launchers
from tests.tui.fakes import FakeRunbook, fake_session
from tui.session import SessionOpener
from widgets.header_bar import HeaderState

never_opens = sys.argv[1] == "never"
# The pause runs from before app.run: 3 s, since the first frame under CI's load once came
# after a 0.5 s pause had already ended.
heap.STARTUP_COLLECTOR_PAUSE_S = 3.0 if never_opens else 600.0
seen = {"before": gc.isenabled()}

def start_app(app_class, opener):
    app = app_class(opener)
    heap.keep_startup_heap()

    async def pilot(driver):
        seen["running"] = gc.isenabled()
        seen["frozen_at_start"] = gc.get_freeze_count()
        if never_opens:
            for _ in range(600):
                if gc.isenabled():
                    break
                await driver.pause(0.05)
            seen["session"] = app.session is not None
            blocked.set()  # let the opener return, so that quitting does not wait for ever
        else:
            while not app.heap.frozen_once:
                await driver.pause(0.05)
                seen["paused_until_frozen"] = not gc.isenabled() or app.heap.frozen_once
            await driver.pause()
        seen["after_start_up"] = gc.isenabled()
        await driver.press("q")

    return int(app.run(headless=True, size=(120, 40), auto_pilot=pilot) or 0)

launchers.start_app = start_app
blocked = threading.Event()
open_ = lambda: (blocked.wait() if never_opens else None, fake_session(FakeRunbook()))[1]
opener = SessionOpener(HeaderState(context="ctx"), open_, "connecting…", close=lambda _: None)
code = launchers.run_opener(opener)
seen["after_exit"] = gc.isenabled()
seen["code"] = code
print(json.dumps(seen))
"""


def run(case: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, case], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    seen: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return seen


def test_no_collection_walks_the_start_up_heap_until_the_app_has_frozen_it() -> None:
    seen = run("opens")
    assert seen["before"] is True
    assert seen["running"] is False  # the app drew its first frame with the collector off
    assert isinstance(seen["frozen_at_start"], int) and seen["frozen_at_start"] > 10_000
    assert seen.get("paused_until_frozen", True) is True
    assert seen["after_start_up"] is True  # on again once tui.heap froze the start-up heap
    assert seen["after_exit"] is True
    assert seen["code"] == 0


def test_a_start_up_that_never_ends_gets_the_collector_back() -> None:
    """The session never opens (no check ever answers, nothing is frozen by the app): the
    collector is on again after the launcher's bounded pause, not off for the session."""
    seen = run("never")
    assert seen["running"] is False
    assert seen["session"] is False
    assert seen["after_start_up"] is True
    assert seen["after_exit"] is True


# `skewmit --deployment NAME` through tui.cli, the app not started (it would take the
# terminal): the collections the interpreter ran once Textual was imported, until the app would
# have run (before Textual the heap is small, and `skewmit --help` pays the same).
COMMAND = """
import gc, json, sys
import tui.cli
import tui.launchers as launchers

seen = {"collections": 0}

def count(phase, info):
    if phase == "start" and "textual" in sys.modules:
        seen["collections"] += 1

gc.callbacks.append(count)

def start_app(app_class, opener):
    gc.callbacks.remove(count)
    seen["textual"] = "textual.app" in sys.modules
    seen["collecting"] = gc.isenabled()
    return 0

launchers.start_app = start_app
code = tui.cli.main(["--kubeconfig", sys.argv[1], "--deployment", "llm-serve", "--read-only"])
seen["code"] = code
seen["after_exit"] = gc.isenabled()
print(json.dumps(seen))
"""


def test_the_command_imports_textual_and_the_app_without_collecting(tmp_path: Path) -> None:
    """The local checks before the app (the kubeconfig, the config file) import Textual and
    most of the app's modules: with the collector on, that was ~80 young collections, ~11 ms
    before the first frame (issue 12). None now, and the collector is back on at exit."""
    config = kubeconfig(tmp_path / "kubeconfig")
    result = subprocess.run(
        [sys.executable, "-c", COMMAND, str(config)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["textual"] is True
    assert seen["collections"] == 0
    assert seen["collecting"] is False
    assert seen["code"] == 0
    assert seen["after_exit"] is True
