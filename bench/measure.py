"""What the benchmark scripts share: medians, the machine's description, a program in a real
terminal (tmux) polled for a string, and a process's CPU and memory read from /proc.

Nothing here asserts: the scripts print figures beside a floor measured in the same run.
"""

from __future__ import annotations

import atexit
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Another checkout to measure (e.g. `git archive HEAD` unpacked, for a before/after): the
# programs run from there, with this tree's virtualenv.
TREE = Path(os.environ.get("SKEWMIT_BENCH_TREE") or ROOT)
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
SKEWMIT = [PYTHON, "-m", "tui.cli"]
# The app's cache (tui.style_cache's parsed stylesheets) for this bench process: its first run
# parses and writes it, the runs after it read it back, as an operator's second start does; the
# operator's own ~/.cache is left alone.
CACHE_HOME = Path(tempfile.mkdtemp(prefix="skewmit-bench-cache-"))
atexit.register(shutil.rmtree, CACHE_HOME, True)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def unwind_on_sigterm() -> None:
    """`kill` or `pkill` stops a bench as Ctrl-C does: its `finally` blocks and context
    managers run, so the simulator, Prometheus, the app and the tmux server it started stop
    with it (killed with the default handler, they kept running and loaded the next runs)."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def ratio(value: float, floor: float) -> str:
    return f"x{value / floor:.2f}" if floor > 0 else "x-"


def row(what: str, value: float, floor_what: str, floor: float, unit: str = "s") -> str:
    """One figure beside its floor, in units and as a ratio (this machine is noisy)."""
    cells = [what, f"{value:.3f} {unit}", floor_what, f"{floor:.3f} {unit}", ratio(value, floor)]
    return "| " + " | ".join(cells) + " |"


def table_header() -> str:
    return "| figure | median | floor (same run) | floor | ratio |\n|---|---|---|---|---|"


def machine() -> str:
    """nproc, CPU model, memory, Python and the load, for the results' heading."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({model}), {mem_kb / 1024**2:.1f} GiB RAM, "
        f"Python {platform.python_version()}, load average {load} at "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


def timed_run(argv: Sequence[str], env: dict[str, str] | None = None) -> float:
    """Wall time of one run of a command to its exit (output discarded)."""
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - start


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.01) -> float | None:
    """Seconds until `predicate()` holds, or None after `timeout`."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if predicate():
            return time.perf_counter() - start
        time.sleep(poll)
    return None


# -- a program in a real terminal ----------------------------------------------------------


@dataclass
class Terminal:
    """One program in its own tmux server (`-L`), at a fixed size, optionally with everything
    it writes to the terminal copied to a file (pipe-pane) to count bytes."""

    socket: str
    size: tuple[int, int] = (120, 40)
    started: float = 0.0

    @staticmethod
    def available() -> bool:
        return shutil.which("tmux") is not None

    def tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=False
        )
        return result.stdout

    def start(self, argv: Sequence[str], env: dict[str, str], pipe_to: Path | None = None) -> None:
        cols, rows = self.size
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        # The pane starts a shell that waits for a go signal, so pipe-pane is attached before
        # the program writes its first byte and the clock starts when it is exec'd.
        go = Path(tempfile.mkdtemp(prefix="skewmit-bench-")) / "go"
        command = (
            f"while [ ! -e {go} ]; do sleep 0.005; done; cd {shlex.quote(str(TREE))} && "
            # As an operator's shell runs it: with its bytecode cache (a session that exports
            # PYTHONDONTWRITEBYTECODE would recompile every stale module on each start).
            f"exec env -u PYTHONDONTWRITEBYTECODE {exports} {shlex.join(argv)}"
        )
        self.tmux(
            "-f", "/dev/null", "new-session", "-d", "-s", "bench", "-x", str(cols), "-y", str(rows)
        )
        self.tmux("set-option", "-g", "status", "off")
        self.tmux("resize-window", "-t", "bench", "-x", str(cols), "-y", str(rows))
        self.tmux("respawn-pane", "-k", "-t", "bench", command)
        if pipe_to is not None:
            self.tmux("pipe-pane", "-t", "bench", f"cat >> {shlex.quote(str(pipe_to))}")
        self.started = time.perf_counter()
        go.touch()

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "bench")

    def wait_for(self, pattern: str, timeout: float = 60.0) -> float | None:
        """Seconds from start until `pattern` (a regex) is on screen, or None."""
        compiled = re.compile(pattern)
        found = wait_until(lambda: bool(compiled.search(self.screen())), timeout)
        return None if found is None else time.perf_counter() - self.started

    def pid(self) -> int:
        return int(self.tmux("display-message", "-p", "-t", "bench", "#{pane_pid}").strip())

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "bench", *keys)

    def close(self) -> None:
        self.tmux("kill-server")


def warm_up(argv: Sequence[str], mark: str, state: Path, keep_s: float = 3.0) -> None:
    """One unmeasured start of the app, left up `keep_s` after `mark` shows: long enough for
    it to write what later starts read back (tui.style_cache's stylesheets, KEEP_AFTER_S), as
    an operator's first start on a host does. Only the runs after it are measured."""
    term = Terminal(f"skewmit-bench-warm-{time.monotonic_ns()}")
    try:
        term.start(argv, bench_env(state))
        term.wait_for(mark)
        time.sleep(keep_s)
    finally:
        term.close()


# -- a process, from /proc ------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (its threads included), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE / 1024**2


@dataclass(frozen=True)
class Steady:
    cpu_percent: float  # of one core
    bytes_per_s: float
    rss_start_mib: float
    rss_end_mib: float


def steady_state(pid: int, output: Path, seconds: float) -> Steady:
    """CPU % of a core, bytes/s written to the terminal and RSS over `seconds` of watching."""
    cpu0, size0, rss0 = cpu_seconds(pid), output.stat().st_size, rss_mib(pid)
    start = time.perf_counter()
    time.sleep(seconds)
    elapsed = time.perf_counter() - start
    cpu1, size1, rss1 = cpu_seconds(pid), output.stat().st_size, rss_mib(pid)
    return Steady(100.0 * (cpu1 - cpu0) / elapsed, (size1 - size0) / elapsed, rss0, rss1)


def bench_env(state: Path) -> dict[str, str]:
    """A terminal environment with the journal and evidence kept out of the user's state."""
    return {
        "TERM": "xterm-256color",
        "COLORTERM": "truecolor",
        "XDG_STATE_HOME": str(state),
        "XDG_CACHE_HOME": str(CACHE_HOME),
        "HOME": os.environ.get("HOME", str(state)),
        "PATH": os.environ.get("PATH", ""),
        "LANG": "C.UTF-8",
    }
