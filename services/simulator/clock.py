"""The simulator's clock: wall time scaled by a speed factor.

Object timestamps, controller delays and the serving model all read this clock, so a drill can
run in real time (speed 1) while tests and the demo compress minutes into seconds. The server's
Table cells (AGE) are computed against it too, so `kubectl get` shows consistent ages.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


class SimClock:
    """Simulated time that advances `speed` seconds per wall-clock second.

    `start` anchors the simulated epoch; by default it is the wall clock at construction.
    """

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self._lock = threading.Lock()
        self._speed = speed
        self._wall0 = time.monotonic()
        self._sim0 = (start or datetime.now(UTC)).timestamp()
        self._offset = 0.0

    @property
    def speed(self) -> float:
        return self._speed

    def set_speed(self, speed: float) -> None:
        """Change the speed without a jump in simulated time."""
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        with self._lock:
            now = self._now_unlocked()
            self._wall0 = time.monotonic()
            self._sim0 = now
            self._offset = 0.0
            self._speed = speed

    def advance(self, seconds: float) -> None:
        """Jump simulated time forward (tests use this to skip waits)."""
        with self._lock:
            self._offset += seconds

    def _now_unlocked(self) -> float:
        return self._sim0 + (time.monotonic() - self._wall0) * self._speed + self._offset

    def time(self) -> float:
        """Simulated seconds since the Unix epoch."""
        with self._lock:
            return self._now_unlocked()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def wall_seconds(self, sim_seconds: float) -> float:
        """How long `sim_seconds` of simulated time take on the wall clock."""
        return sim_seconds / self._speed

    def ago(self, seconds: float) -> datetime:
        return self.now() - timedelta(seconds=seconds)


def rfc3339(moment: datetime) -> str:
    """Kubernetes' timestamp format: second precision, UTC, trailing Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
