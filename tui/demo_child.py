"""`skewmit demo`'s simulator in a process of its own (issue 12).

Started by the launcher right after its local checks, before the app imports Textual, so the
simulator's imports, world and fleet history are built on the other core while the app draws
its first frame; the app's open worker then waits for the child's "ready" lines (tui.demo's
`open_demo_child`). This module stays light (no Textual, no kubernetes client, no simulator
import): it runs before the first frame.

The child never outlives the app: its stdin is a pipe whose only write end the app holds, and
it exits when that pipe closes (the app stops it, exits, or is killed with SIGKILL). The
kubeconfig it writes (the simulator's tokens) lives in a private (0700) temporary folder
removed once the client has read it, and at the latest when the child is stopped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO

from services.errors import SkewmitError
from services.sanitize import terminal_line

# Set to 0 for the simulator in the app's own process (as drills and tests run it).
ENV_VAR = "SKEWMIT_DEMO_CHILD"
# How long the open waits for the child's ready lines: building `large` on a loaded machine
# takes tens of seconds; a child that never answers must not hang the demo.
START_WAIT_S = 120.0
STOP_WAIT_S = 10.0
PORT = 0  # the child's API server port: any free one
ROOT = Path(__file__).resolve().parents[1]  # where `services` is, for the child's sys.path


def wanted() -> bool:
    """Whether `skewmit demo` runs its simulator as a child process (the default)."""
    return os.environ.get(ENV_VAR, "1").strip() != "0"


class SimChild:
    """The simulator in a child process: `SimChild("skew-incident", 30).start()` returns at
    once; `wait_ready()` waits for it to listen; `stop()` ends it and waits."""

    def __init__(
        self, scenario: str, speed: float, *, seed: int = 0, port: int | None = None
    ) -> None:
        self.scenario = scenario
        self.speed = speed
        self.seed = seed
        self.port = PORT if port is None else port
        self.folder = Path(tempfile.mkdtemp(prefix="skewmit-demo-"))  # 0700
        self.kubeconfig = self.folder / "kubeconfig"
        self.url = ""
        self.metrics_url = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._answered = threading.Event()
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def pid(self) -> int:
        return self._proc.pid if self._proc is not None else 0

    def start(self) -> SimChild:
        """Start the child. Raises SkewmitError when it cannot be started at all."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        argv = [sys.executable, "-m", "services.simulator.runner"]
        argv += ["--scenario", self.scenario, "--speed", f"{self.speed:g}"]
        argv += ["--seed", str(self.seed), "--port", str(self.port)]
        argv += ["--kubeconfig", str(self.kubeconfig)]
        # Its errors go to an unnamed file, never to the app's terminal; read when it fails.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
                # Its own session: the terminal's signals (^C before the app takes the
                # terminal, SIGHUP) go to the app, whose exit then closes the pipe.
                start_new_session=True,
            )
        except OSError as exc:
            self._cleanup()
            raise SkewmitError(f"cannot start the simulator: {exc}") from exc
        threading.Thread(target=self._read_ready, name="skewmit-demo-child", daemon=True).start()
        return self

    def _read_ready(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with self._proc.stdout:  # it prints nothing after these lines
            for raw in self._proc.stdout:
                key, _, value = raw.decode(errors="replace").strip().partition(": ")
                if key == "api":
                    self.url = value
                elif key == "metrics":
                    self.metrics_url = value
                    break
        self._answered.set()  # ready, or its stdout closed: it exited

    def wait_ready(self, timeout: float = START_WAIT_S) -> None:
        """Wait until the child listens. Raises SkewmitError (one line: why) when it exited,
        was stopped or did not answer within `timeout` seconds (it is then stopped)."""
        if not self._answered.wait(timeout):
            self.stop()
            raise SkewmitError(f"the simulator did not start within {timeout:g} s")
        if self.metrics_url and not self._stopped:
            return
        if self._proc is not None and not self._stopped:
            try:
                self._proc.wait(STOP_WAIT_S)  # its stdout closed: it is exiting
            except subprocess.TimeoutExpired:
                pass
        why = self.why()
        self.stop()
        raise SkewmitError(f"the simulator stopped as it started: {why}")

    def why(self) -> str:
        """The child's last line on stderr, else its exit status."""
        text = ""
        if self._stderr is not None and not self._stderr.closed:
            self._stderr.seek(0)
            text = self._stderr.read()[-4096:].decode(errors="replace")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            return terminal_line(lines[-1], 300)  # it reaches the operator's terminal
        code = self._proc.returncode if self._proc is not None else None
        return "it was stopped" if code is None else f"exit status {code}"

    def remove_kubeconfig(self) -> None:
        """Remove the private folder with the kubeconfig (once the client has read it)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def stop(self) -> None:
        """End the child (closing its stdin) and wait for it; kill it if it lingers. Safe to
        call more than once, from any thread."""
        with self._lock:
            proc = self._proc
            first = not self._stopped
            self._stopped = True
        if proc is not None and first:
            if proc.stdin is not None:
                try:
                    proc.stdin.close()
                except OSError:
                    pass
            try:
                proc.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if first:
            self._answered.set()
            self._cleanup()

    def _cleanup(self) -> None:
        self.remove_kubeconfig()
        if self._stderr is not None:
            self._stderr.close()
