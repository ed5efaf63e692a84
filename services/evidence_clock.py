"""One clock for the evidence bundle: UTC wall time.

The journal is stamped with the wall clock. The cluster's timestamps and the metric series are
on the source's clock, which in the demo is the simulator's fast clock: those times are
converted to wall time (from the two clocks' readings at capture and the simulated speed) and
the simulated time is shown beside them, labelled, so nobody mistakes one for the other.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SAME_CLOCK_S = 5.0  # clocks closer than this are one clock (NTP skew, a slow query)


def utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> float | None:
    """Unix seconds of an RFC 3339 / ISO 8601 time ("2026-12-02T05:10:00Z"); None if unreadable."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except (ValueError, AttributeError, TypeError):
        return None


@dataclass(frozen=True)
class Clocks:
    """The wall clock and the source's clock read together at capture."""

    wall_now: float
    source_now: float
    speed: float = 1.0  # source seconds per wall second

    @property
    def simulated(self) -> bool:
        return self.speed != 1.0 or abs(self.source_now - self.wall_now) > SAME_CLOCK_S

    @property
    def anchor(self) -> float | None:
        """When the two clocks last agreed (a simulator's clock starts at the wall time and
        then runs `speed` times faster); None when they never did (a clock that jumped)."""
        if self.speed == 1.0:
            return None
        anchor = (self.speed * self.wall_now - self.source_now) / (self.speed - 1.0)
        return anchor if self.wall_now - 30 * 86400.0 <= anchor <= self.wall_now else None

    def to_wall(self, t: float) -> float:
        """A source-clock time as wall time. Before the simulated clock started (its history,
        a day-old baseline) the two clocks were one; after, it ran `speed` times faster."""
        if not self.simulated:
            return t
        anchor = self.anchor
        if anchor is None:
            return self.wall_now - (self.source_now - t) / self.speed
        return t if t <= anchor else anchor + (t - anchor) / self.speed

    def to_source(self, wall: float) -> float:
        if not self.simulated:
            return wall
        anchor = self.anchor
        if anchor is None:
            return self.source_now - (self.wall_now - wall) * self.speed
        return wall if wall <= anchor else anchor + (wall - anchor) * self.speed

    def stamp(self, t: float) -> str:
        """A source-clock time for people: UTC wall time, the simulated time labelled beside."""
        wall = self.to_wall(t)
        if not self.simulated or abs(wall - t) < 1.0:
            return utc(wall)  # before the simulated clock started, the clocks were one
        return f"{utc(wall)} (simulated clock {utc(t)})"

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "clock": "UTC wall time",
            "captured_at": self.wall_now,
            "captured_at_utc": utc(self.wall_now),
            "simulated": self.simulated,
        }
        if self.simulated:
            doc |= {
                "simulated_clock_at_capture": self.source_now,
                "simulated_clock_at_capture_utc": utc(self.source_now),
                "simulated_speed": self.speed,
                "note": "cluster and metric times are on the simulator's clock; shown as wall "
                "time converted at the speed above, with the simulated time labelled",
            }
        return doc

    def describe(self) -> str:
        if not self.simulated:
            return "All times are UTC wall-clock time."
        return (
            "All times are UTC wall-clock time. The cluster and the metrics run on a simulated "
            f"clock ({self.speed:g}x; it read {utc(self.source_now)} at capture, "
            f"{utc(self.wall_now)} wall time): their times are converted to wall time and the "
            "simulated time is shown beside them, labelled `simulated clock`."
        )


def _speed_of(clock: Callable[[], float]) -> float | None:
    # The demo passes the simulator clock's bound `time` method: its owner knows the speed.
    owner = getattr(clock, "__self__", None)
    speed = getattr(owner, "speed", None)
    return float(speed) if isinstance(speed, (int, float)) and speed > 0 else None


def read_clocks(clock: Callable[[], float] | None, wall: Callable[[], float] = time.time) -> Clocks:
    """Read the wall clock and the source's clock together (no source: one clock)."""
    wall_now = wall()
    if clock is None:
        return Clocks(wall_now, wall_now)
    source_now = clock()
    speed = _speed_of(clock)
    if speed is None:
        if abs(source_now - wall_now) <= SAME_CLOCK_S:
            return Clocks(wall_now, source_now)
        # An unknown fast clock: measure it over a short interval.
        start_wall, start_source = wall(), clock()
        time.sleep(0.2)
        elapsed = wall() - start_wall
        speed = (clock() - start_source) / elapsed if elapsed > 0 else 1.0
        if not math.isfinite(speed) or speed <= 0:
            speed = 1.0
    return Clocks(wall_now, source_now, speed)
