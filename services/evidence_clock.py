"""The evidence bundle's one clock: the session's (services.clock).

The journal, the verdict, the baseline window and the metric series are all on the session's
clock, and so are the cluster's own timestamps: the wall clock on a real cluster, the
simulator's fast clock in the demo. The bundle keeps every time as it was recorded, names
itself by that clock, and says once (verdict.json `clock`, the timeline's header, queries.txt)
which clock it is, with the wall time at capture beside a simulated one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.clock import Clock

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
    """The session's clock read at capture, and the wall clock beside it."""

    now: float  # the session's clock: every time in the bundle is on it
    wall_now: float  # the wall clock at the same moment
    speed: float = 1.0  # session seconds per wall second
    simulated: bool = False

    def stamp(self, t: float) -> str:
        """A time for people, in UTC on the session's clock."""
        return utc(t)

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "clock": "simulated clock (UTC)" if self.simulated else "UTC wall time",
            "captured_at": self.now,
            "captured_at_utc": utc(self.now),
            "simulated": self.simulated,
        }
        if self.simulated:
            doc |= {
                "simulated_speed": self.speed,
                "wall_clock_at_capture": self.wall_now,
                "wall_clock_at_capture_utc": utc(self.wall_now),
                "note": "every time here (journal, verdict, baseline, metrics, cluster) is on "
                "the simulator's clock, which ran at the speed above",
            }
        return doc

    def describe(self) -> str:
        if not self.simulated:
            return "All times are UTC wall-clock time."
        return (
            f"All times are UTC on the simulated clock ({self.speed:g}x): the journal, the "
            "verdict, the baseline, the metrics and the cluster all ran on it. It read "
            f"{utc(self.now)} at capture, when the wall clock read {utc(self.wall_now)}."
        )


def read_clocks(
    clock: Clock | Callable[[], float] | None, wall: Callable[[], float] = time.time
) -> Clocks:
    """Read the session's clock and the wall clock together (no clock: the wall's). A clock
    of unknown speed that reads far from the wall clock is measured over a short interval
    and labelled simulated."""
    session = Clock.of(clock) if clock is not None else Clock(wall)
    wall_now, now = wall(), session.now()
    if session.simulated:
        return Clocks(now, wall_now, session.speed, simulated=True)
    if abs(now - wall_now) <= SAME_CLOCK_S:
        return Clocks(now, wall_now)
    start_wall, start_source = wall(), session.now()
    time.sleep(0.2)
    elapsed = wall() - start_wall
    speed = (session.now() - start_source) / elapsed if elapsed > 0 else 1.0
    if not math.isfinite(speed) or speed <= 0:
        speed = 1.0
    return Clocks(now, wall_now, speed, simulated=True)
