"""A controller's work queue: keys marked dirty now, plus one simulated-time timer per key.

Like client-go's workqueue with `AddAfter`, but on the simulated clock and single-threaded:
store listeners mark keys dirty, reconciles set the next moment a key needs another look
(a start delay ending, a back-off expiring, a progress deadline), and a tick takes whatever
is dirty or due. A timer is replaced, not accumulated, so an idle queue is truly empty.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    """Dirty keys and per-key deadlines; `take(now)` hands out each ready key once."""

    def __init__(self) -> None:
        self._dirty: set[K] = set()
        self._timers: list[tuple[float, int, K]] = []
        self._deadline: dict[K, float] = {}
        self._seq = 0

    def add(self, key: K) -> None:
        self._dirty.add(key)

    def schedule(self, key: K, when: float) -> None:
        """Look at `key` again at simulated time `when`, replacing any earlier timer for it."""
        if self._deadline.get(key) == when:
            return
        self._deadline[key] = when
        self._seq += 1
        heapq.heappush(self._timers, (when, self._seq, key))

    def cancel(self, key: K) -> None:
        self._deadline.pop(key, None)

    def forget(self, key: K) -> None:
        """Drop every trace of a key (its object is gone)."""
        self._dirty.discard(key)
        self._deadline.pop(key, None)

    def take(self, now: float) -> list[K]:
        """Keys dirty or due by `now`, each once; their timers are consumed."""
        while self._timers and self._timers[0][0] <= now:
            when, _, key = heapq.heappop(self._timers)
            if self._deadline.get(key) == when:
                del self._deadline[key]
                self._dirty.add(key)
        if len(self._timers) > 64 and len(self._timers) > 4 * len(self._deadline):
            # Replaced timers linger in the heap; rebuild it now and then so it stays small.
            self._timers = [t for t in self._timers if self._deadline.get(t[2]) == t[0]]
            heapq.heapify(self._timers)
        ready = list(self._dirty)
        self._dirty.clear()
        return ready

    def pending(self) -> bool:
        """Whether anything is dirty or has a timer set."""
        return bool(self._dirty or self._deadline)

    def has_dirty(self) -> bool:
        return bool(self._dirty)

    def next_deadline(self) -> float | None:
        return min(self._deadline.values()) if self._deadline else None
