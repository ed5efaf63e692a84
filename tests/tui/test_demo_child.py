"""`skewmit demo` runs its simulator as a child process started before the app (issue 12):
the real demo in a real terminal reaches step 1's findings and the GPU inspector on it; the
child is gone once the app has quit, and once the app has been killed with SIGKILL; the
clock the app keeps mirrors the child's simulated time; a child that dies as it starts is
one line and exit 2, never a hang. Real processes, the real client over HTTPS."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import tui.demo
import tui.demo_child
from services.errors import SkewmitError
from services.kube import KubeCluster
from tests.conftest import require_tool
from tui.cli import main
from tui.demo_child import SimChild

ROOT = Path(__file__).resolve().parents[2]
CHILD = "services.simulator.runner"
FINDINGS = re.compile(r"1 Roll back +findings +\d")
# The GPU inspector's pod rows, or (where the layout puts the inspector on a tab of its own)
# step 5's answer on the checklist: the check whose report fills the inspector.
INSPECTOR = re.compile(
    r"[✓✗] +(llm-serve-[0-9a-z]+-|…)[0-9a-z]{2,5} |5 GPU class +(findings +\d|clear|ok)"
)


def eventually(condition: Callable[[], bool], timeout: float = 60.0) -> bool:
    """Wait for a condition (never for a fixed time); False when it never held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def children_running(parent: int) -> list[int]:
    """Pids of the simulator children whose parent is `parent`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == parent and CHILD.encode() in argv:
            found.append(int(entry.name))
    return found


class Tmux:
    """A tmux server of its own (never the user's) running one command at 120x40."""

    def __init__(self, tmux: str, name: str) -> None:
        self.tmux = tmux
        self.name = name

    def __call__(self, *args: str) -> str:
        result = subprocess.run(
            [self.tmux, "-L", self.name, *args], capture_output=True, text=True, timeout=10
        )
        return result.stdout

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", self.name)


@pytest.fixture
def demo_in_tmux(tmp_path: Path) -> Iterator[tuple[Tmux, int]]:
    """The real `skewmit demo --speed 30` in tmux: (the terminal, the app's pid)."""
    tmux = Tmux(require_tool("tmux"), f"skewmit-child-{os.getpid()}-{time.monotonic_ns()}")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "TERM": "xterm-256color"}
    env.pop(tui.demo_child.ENV_VAR, None)  # the default: the simulator as a child
    app = f"{sys.executable} -m tui.cli demo --speed 30 --evidence-dir {tmp_path / 'evidence'}"
    size = ["-x", "120", "-y", "40"]
    subprocess.run(
        [tmux.tmux, "-L", tmux.name, "new-session", "-d", "-s", tmux.name, *size, f"exec {app}"],
        cwd=ROOT,
        check=True,
        env=env,
        timeout=10,
    )
    try:
        pid = int(tmux("display-message", "-p", "-t", tmux.name, "#{pane_pid}").strip())
        yield tmux, pid
    finally:
        tmux("kill-server")


@pytest.mark.parametrize("ending", ["quit", "kill -9"])
def test_the_demo_reaches_the_inspector_and_its_child_simulator_never_outlives_it(
    ending: str, demo_in_tmux: tuple[Tmux, int]
) -> None:
    term, app = demo_in_tmux
    screen: list[str] = [""]

    def shown() -> bool:
        screen[0] = term.screen()
        return bool(FINDINGS.search(screen[0]) and INSPECTOR.search(screen[0]))

    assert eventually(shown, 120), f"no findings and inspector rows; screen:\n{screen[0]}"
    assert "could not" not in screen[0], screen[0]  # e.g. the history was not backfilled
    children = children_running(app)
    assert len(children) == 1, children  # the simulator runs beside the app, as its child
    child = children[0]
    if ending == "quit":
        term("send-keys", "-t", term.name, "q")
    else:
        os.kill(app, signal.SIGKILL)
    assert eventually(lambda: not alive(app), 30), "the app did not exit"
    assert eventually(lambda: not alive(child), 30), f"the child simulator {child} outlived it"


@pytest.fixture
def child() -> Iterator[SimChild]:
    started = SimChild("skew-incident", 30.0).start()
    try:
        started.wait_ready()
        yield started
    finally:
        started.stop()


def test_the_clock_mirrors_the_child_simulators_time_within_a_second(child: SimChild) -> None:
    control = KubeCluster(str(child.kubeconfig), None)
    child.remove_kubeconfig()
    mirror = tui.demo.mirror_clock(control)
    assert mirror.speed == 30.0
    for _ in range(3):
        before = mirror.time()
        answer = control._request("GET", "/_sim/clock")
        after = mirror.time()
        # The child's time, read between two readings of the mirror (at x30 a second of
        # simulated time is 33 ms of wall time).
        assert before - 1.0 <= float(answer["now"]) <= after + 1.0, (before, answer, after)
    history = tui.demo.sim_reading(control, "history")
    assert "vllm:" in history and history.rstrip().endswith("# EOF")  # the fleet's recent past


def test_the_child_renders_the_same_day_old_window_as_this_process_would(
    child: SimChild,
) -> None:
    """The baseline the demo judges against is the same wherever the window is rendered."""
    from services.simulator.backfill import render_history
    from services.simulator.scenario import load

    control = KubeCluster(str(child.kubeconfig), None)
    child.remove_kubeconfig()
    now = time.time()
    window = {
        "start": now - tui.demo.DAY_S - 120.0,
        "end": now - tui.demo.DAY_S,
        "step_s": tui.demo.SCRAPE_S,
        "seed": 1,
        "families": ["vllm:e2e_request_latency_seconds", "DCGM_FI_DEV_GPU_UTIL"],
        "sample_pods": None,
        "summed": ["vllm:e2e_request_latency_seconds"],
    }
    rendered = tui.demo.sim_reading(control, "backfill", window)
    assert "vllm:e2e_request_latency_seconds_bucket{" in rendered
    assert rendered == render_history(load("skew-incident"), **window).text  # type: ignore[arg-type]
    with pytest.raises(SkewmitError, match="backfill"):
        tui.demo.sim_reading(control, "backfill", {"start": "yesterday"})


def test_the_recent_past_in_two_slices_is_all_of_it(child: SimChild) -> None:
    """The last minutes first, then the rest: together every sample of the families read,
    as one filtered read of the whole history would have them."""
    control = KubeCluster(str(child.kubeconfig), None)
    child.remove_kubeconfig()
    families = ["vllm:e2e_request_latency_seconds", "DCGM_FI_DEV_GPU_UTIL"]
    whole = tui.demo.sim_reading(control, "history", {"families": families})
    samples = [line for line in whole.splitlines() if not line.startswith("#")]
    stamps = sorted({float(line.rsplit(" ", 1)[1]) for line in samples})
    assert len(stamps) > 100 and all(line.startswith(tuple(families)) for line in samples)
    cut = stamps[len(stamps) // 2]
    recent = tui.demo.sim_reading(control, "history", {"families": families, "since": cut})
    older = tui.demo.sim_reading(control, "history", {"families": families, "until": cut})
    recent_lines = [line for line in recent.splitlines() if not line.startswith("#")]
    older_lines = [line for line in older.splitlines() if not line.startswith("#")]
    assert all(float(line.rsplit(" ", 1)[1]) >= cut for line in recent_lines)
    assert sorted(recent_lines + older_lines) == sorted(samples)
    assert recent.endswith("# EOF") and older.endswith("# EOF")


def test_the_childs_kubeconfig_folder_is_gone_once_the_session_is_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kubeconfig holds the simulator's tokens: its private folder lives only until the
    client has read it (as the in-process demo's, tests/tui/test_launchers.py)."""
    import tempfile

    import tui.launchers
    from tui.session import Session, SessionOpener

    where = tmp_path / "tmp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv(tui.demo_child.ENV_VAR, raising=False)
    seen: list[Any] = []

    def start_app(app_class: Any, opener: SessionOpener) -> int:
        folders = [p.name for p in where.iterdir() if p.name.startswith("skewmit-demo-")]
        seen.append(folders)  # the child is starting: its folder is there
        session = opener.open()
        seen.append(session)
        seen.append([p.name for p in where.iterdir() if p.name.startswith("skewmit-demo-")])
        return 0

    monkeypatch.setattr(tui.launchers, "start_app", start_app)
    assert main(["demo", "--speed", "30", "--evidence-dir", str(tmp_path / "evidence")]) == 0
    assert len(seen[0]) == 1, seen
    assert isinstance(seen[1], Session) and isinstance(seen[1].simulator, SimChild)
    assert seen[2] == [], seen
    assert not alive(seen[1].simulator.pid)  # and the launcher stopped the child


def test_a_killed_parent_takes_the_child_with_it(tmp_path: Path) -> None:
    """The child's lifeline is a pipe only the parent holds: SIGKILL closes it too."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        "from tui.demo_child import SimChild\n"
        "child = SimChild('skew-incident', 30.0).start()\n"
        "child.wait_ready()\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    where = tmp_path / "tmp"
    where.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(where)}
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert alive(pid)
        parent.kill()
        parent.wait(30)
        assert eventually(lambda: not alive(pid), 30), f"child {pid} outlived its parent"
        assert list(where.iterdir()) == []  # nor its kubeconfig (the simulator's tokens)
    finally:
        parent.kill()
        parent.wait(30)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield int(held.getsockname()[1])


def test_a_child_that_dies_as_it_starts_is_one_line_and_exit_2(
    taken_port: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tui.app import SkewmitApp

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv(tui.demo_child.ENV_VAR, raising=False)
    monkeypatch.setattr(tui.demo_child, "PORT", taken_port)  # the child cannot listen there
    terminal_run = SkewmitApp.run
    before = {t.name for t in threading.enumerate()}

    def headless(app: SkewmitApp, *args: Any, **kwargs: Any) -> int | None:
        return terminal_run(app, headless=True, size=(80, 24))

    monkeypatch.setattr(SkewmitApp, "run", headless)
    evidence = ["--evidence-dir", str(tmp_path / "evidence")]
    assert main(["demo", "--speed", "30", *evidence]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("skewmit demo: the simulator stopped as it started: "), err
    assert f"cannot listen on 127.0.0.1:{taken_port}" in err, err
    assert children_running(os.getpid()) == []
    left = {t.name for t in threading.enumerate() if t.is_alive()} - before
    assert "skewmit-demo-child" not in left, left


def test_the_demo_scrapes_as_often_as_the_simulator_samples_its_history() -> None:
    from services.simulator.fleet_wiring import HISTORY_STEP_S

    assert tui.demo.SCRAPE_S == HISTORY_STEP_S


def test_with_the_child_turned_off_the_demo_runs_its_simulator_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tui.launchers
    from services.simulator.runner import Simulator
    from tui.session import SessionOpener

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv(tui.demo_child.ENV_VAR, "0")
    seen: list[Any] = []

    def start_app(app_class: Any, opener: SessionOpener) -> int:
        seen.append(opener.open())
        seen.append(children_running(os.getpid()))
        return 0

    def simulator_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "skewmit-simulator" and t.is_alive()}

    monkeypatch.setattr(tui.launchers, "start_app", start_app)
    # Other tests in this process may have simulators of their own: only this demo's counts.
    before = simulator_threads()
    assert main(["demo", "--speed", "30", "--evidence-dir", str(tmp_path / "evidence")]) == 0
    assert isinstance(seen[0].simulator, Simulator) and seen[1] == []
    assert simulator_threads() <= before  # the in-process simulator stopped with the app


def test_quitting_before_the_child_is_ready_leaves_no_kubeconfig_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator quits at once: the launcher stops the child while it is still starting,
    and its kubeconfig (the simulator's tokens) is not left in the temporary folder."""
    import tempfile

    import tui.launchers
    from tui.session import SessionOpener

    where = tmp_path / "tmp"
    where.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv(tui.demo_child.ENV_VAR, raising=False)

    def start_app(app_class: Any, opener: SessionOpener) -> int:
        return 0  # quit before the session was opened

    monkeypatch.setattr(tui.launchers, "start_app", start_app)
    for _ in range(3):  # stopped at different points of its start
        assert main(["demo", "--speed", "30", "--evidence-dir", str(tmp_path / "ev")]) == 0
        assert children_running(os.getpid()) == []
        assert list(where.iterdir()) == []
