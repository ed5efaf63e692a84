"""The engine's one clock: what every time skewmit records is read from.

On a real cluster it is the wall clock. In the demo (and a drill) it is the simulator's clock,
which runs `speed` times faster than the wall: the journal's entries, the verdict's time and
its sample ages, the baseline's window and the evidence bundle's name and timeline are then all
simulated time, labelled as such once, so nothing in one record is hours away from another.
The session that opens the incident makes the clock and hands it to the journal and the
metrics source; everything else reads it from them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

JOURNAL_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # the journal's `ts`
FOLDER_FORMAT = "%Y%m%d-%H%M%S"  # incident folders and evidence bundles


@dataclass(frozen=True)
class Clock:
    """`Clock()` is the wall clock; `Clock.following(sim_clock)` the simulator's. Calling it
    returns `now()`, so it can stand wherever a `Callable[[], float]` clock is taken (the
    metrics sources' `clock=`)."""

    read: Callable[[], float] = time.time
    # None: wall time. Otherwise the simulated seconds per wall second, read when asked
    # (a drill fast-forwards the simulator, then slows it down again).
    speed_of: Callable[[], float] | None = None

    def now(self) -> float:
        """Unix seconds on this clock."""
        return self.read()

    def __call__(self) -> float:
        return self.read()

    @property
    def simulated(self) -> bool:
        return self.speed_of is not None

    @property
    def speed(self) -> float:
        return float(self.speed_of()) if self.speed_of is not None else 1.0

    def journal_stamp(self) -> str:
        """Now as the journal writes `ts`: ISO 8601 UTC with microseconds."""
        return datetime.fromtimestamp(self.now(), UTC).strftime(JOURNAL_FORMAT)

    def folder_stamp(self) -> str:
        """Now as incident and bundle folder names start: YYYYmmdd-HHMMSS (UTC)."""
        return datetime.fromtimestamp(self.now(), UTC).strftime(FOLDER_FORMAT)

    def label(self) -> str:
        """For people: "UTC wall clock" or "simulated clock x30"."""
        return f"simulated clock x{self.speed:g}" if self.simulated else "UTC wall clock"

    @classmethod
    def following(cls, sim_clock: Any) -> Clock:
        """The clock of anything with `time()` and a `speed` (the simulator's SimClock)."""
        read: Callable[[], float] = sim_clock.time
        return cls(read, lambda: float(sim_clock.speed))

    @classmethod
    def of(cls, clock: Callable[[], float] | None) -> Clock:
        """The Clock behind a metrics source's `clock` callable: itself when it is one; a
        simulator clock's bound `time` method followed with its speed; the wall clock for
        None; any other callable as a clock of unknown speed that is not labelled simulated
        (see evidence_clock for how a bundle still notices one running fast)."""
        if clock is None:
            return WALL_CLOCK
        if isinstance(clock, Clock):
            return clock
        owner = getattr(clock, "__self__", None)
        speed = getattr(owner, "speed", None)
        if isinstance(speed, int | float) and not isinstance(speed, bool) and speed > 0:
            return cls.following(owner)
        if clock is time.time:
            return WALL_CLOCK
        return cls(clock)


WALL_CLOCK = Clock()


def source_clock(source: Any) -> Clock:
    """The clock a metrics source stamps its samples with (its `clock` attribute), else the
    wall clock."""
    return Clock.of(getattr(source, "clock", None)) if source is not None else WALL_CLOCK
