"""The real `skewmit demo` in a real terminal (tmux at 80x24), as an on-call engineer over
SSH would start it: the console script, the in-process simulator, the first screen, quit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]


def capture(tmux: str, session: str) -> str:
    result = subprocess.run(
        [tmux, "-L", session, "capture-pane", "-p", "-t", session],
        capture_output=True,
        text=True,
        timeout=10,
    )
    return result.stdout


def wait_for_screen(tmux: str, session: str, *needles: str, limit_s: float = 60) -> str:
    deadline = time.monotonic() + limit_s
    screen = ""
    while time.monotonic() < deadline:
        screen = capture(tmux, session)
        if all(n in screen for n in needles):
            return screen
        time.sleep(0.5)
    raise AssertionError(f"never saw {needles} on screen; last screen:\n{screen}")


def test_demo_starts_in_an_80x24_terminal_and_quits_cleanly(tmp_path: Path) -> None:
    tmux = require_tool("tmux")
    skewmit = shutil.which("skewmit", path=str(Path(sys.executable).parent))
    command = f"{skewmit} demo --speed 30" if skewmit else f"{sys.executable} -m tui.cli demo"
    session = f"skewmit-test-{os.getpid()}"
    socket = ["-L", session]  # a server of its own: never touches the user's tmux
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "TERM": "xterm-256color"}
    subprocess.run(
        [
            tmux,
            *socket,
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "80",
            "-y",
            "24",
            f"cd {ROOT} && {command}; echo EXITED $?; sleep 30",
        ],
        check=True,
        env=env,
        timeout=10,
    )
    try:
        # The status line names the next safe step once step 1's check has answered, and
        # the footer keeps quit, help and the step's key at 80 columns.
        screen = wait_for_screen(
            tmux, session, "a: Roll back to last", "u Roll back", "findings", "x30"
        )
        lines = screen.splitlines()
        assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
        assert "inference/llm-serve" in lines[0]
        assert "a: Roll back to last" in lines[-2]
        assert "q Quit" in lines[-1] and "u Roll back" in lines[-1]
        subprocess.run([tmux, *socket, "send-keys", "-t", session, "q"], check=True, timeout=10)
        screen = wait_for_screen(tmux, session, "EXITED 0", limit_s=30)
        journals = list(
            (tmp_path / "state" / "skewmit" / "demo").glob("*/incidents/*/journal.jsonl")
        )
        assert journals, "the demo journaled its incident under XDG_STATE_HOME"
    finally:
        subprocess.run([tmux, *socket, "kill-server"], capture_output=True, timeout=10)
