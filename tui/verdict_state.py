"""Whether the validation verdict on screen still stands.

A verdict is the truth only while the reads behind it keep answering. The moment one fails
(Prometheus answers 500, the cluster is unreachable, a worker crashes) or none has come back
for a while, the verdict is lost: the screens show "unknown since HH:MM:SS" instead of a PASS
that a room would take as current. A new verdict makes it current again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from services.models import Verdict
from widgets.validation_panel import VerdictLost

# A verdict older than this many validation intervals is stale (and at least STALE_FLOOR_S).
STALE_INTERVALS = 3
STALE_FLOOR_S = 15.0


def clock_text(seconds: float) -> str:
    """HH:MM:SS in UTC, the clock the journal and the evidence use."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%H:%M:%S")


class VerdictState:
    """`fresh(verdict)` on every new verdict; `failed(reason)` when a read behind it fails;
    `expire()` on the app's tick. `lost` is None while the verdict stands."""

    def __init__(self, now: Callable[[], float], validate_interval_s: float) -> None:
        self.now = now
        self.stale_after_s = max(STALE_INTERVALS * validate_interval_s, STALE_FLOOR_S)
        self.verdict: Verdict | None = None
        self.seen_at: float | None = None
        self.lost: VerdictLost | None = None

    def fresh(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.seen_at = self.now()
        self.lost = None

    def failed(self, reason: str) -> bool:
        """A read failed: the verdict no longer stands. True when that changes the screen
        (the first failure; later ones keep the first time)."""
        if self.lost is not None:
            return False
        self.lost = VerdictLost(clock_text(self.now()), reason or "the validation read failed")
        return True

    def expire(self) -> bool:
        """True when the verdict has just gone stale: no new one for `stale_after_s`."""
        if self.lost is not None or self.seen_at is None:
            return False
        age = self.now() - self.seen_at
        if age <= self.stale_after_s:
            return False
        return self.failed(f"no validation result for {age:.0f} s: the last read has not answered")
