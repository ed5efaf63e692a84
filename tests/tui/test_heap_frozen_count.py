"""tui.heap.HeapKeeper does not walk the frozen heap every round (issue 9): CPython 3.11's
gc.get_freeze_count() walks the whole frozen list, 300,000+ objects on `large`, about 40 ms
of the UI thread, and the keeper asked it twice a round. It now counts what each round
freezes and asks for the exact figure only when a decision needs it, with the same sweeps."""

from __future__ import annotations

import gc
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from services.models import STEP_ORDER
from tests.tui.conftest import PassThroughGc
from tui.heap import HeapKeeper

CHECKED = list(STEP_ORDER)


@dataclass
class CountingGc(PassThroughGc):
    """The real collector, counting the walks of the frozen list."""

    walks: int = 0
    held: list[Any] = field(default_factory=list)

    def get_freeze_count(self) -> int:
        self.walks += 1
        return gc.get_freeze_count()


def test_rounds_of_checks_do_not_walk_the_frozen_heap(real_gc: None) -> None:
    collector = CountingGc()
    keeper = HeapKeeper(collector=collector, settle_rounds=3)
    for step in CHECKED:  # the start-up freeze: counted once
        keeper.answered(step)
    assert keeper.frozen_once and collector.walks == 1
    assert keeper.frozen >= gc.get_freeze_count() > keeper.frozen * 0.99
    for _ in range(10):
        collector.held.append([[i] for i in range(500)])  # what a round leaves alive
        for step in CHECKED:
            keeper.answered(step)
    assert keeper.rounds == 10
    # Once where the size a sweep is judged against is taken (round 3), never per round.
    assert collector.walks == 2 and keeper.sweeps == 0
    # What the keeper knows is an upper bound: a sweep is never missed for want of a count.
    assert keeper.frozen >= gc.get_freeze_count()


def test_a_heap_grown_past_the_threshold_is_still_swept(real_gc: None) -> None:
    collector = CountingGc()
    keeper = HeapKeeper(collector=collector, settle_rounds=1)
    for step in CHECKED * 2:
        keeper.answered(step)
    base = gc.get_freeze_count()
    while keeper.sweeps == 0 and keeper.rounds < 50:
        collector.held.append([[i] for i in range(base // 10 + 1)])
        for step in CHECKED:
            keeper.answered(step)
    assert keeper.sweeps == 1, "the growth past a quarter was seen"
    assert keeper.frozen >= gc.get_freeze_count() > keeper.frozen * 0.99, "a sweep counts"


def test_a_sweep_counts_what_it_froze_while_another_thread_allocates(real_gc: None) -> None:
    """A sweep's count is exact even when a worker thread makes objects during it (CI once
    saw the keeper one object short: it counted the heap, then froze it, and a thread had
    made an object in between)."""
    stop = threading.Event()

    def churn() -> None:
        made: list[Any] = []
        while not stop.is_set():
            made.append([len(made)])  # tracked objects, kept alive: they stay frozen
            if len(made) > 100_000:
                made = []

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the threads take turns as often as they can
    worker = threading.Thread(target=churn, daemon=True)
    worker.start()
    try:
        keeper = HeapKeeper(collector=CountingGc(), settle_rounds=0, sweep_every=1)
        short = 0
        for _ in range(8):
            for step in CHECKED:
                keeper.answered(step)
            if keeper.sweeps:
                short += gc.get_freeze_count() > keeper.frozen
        assert keeper.sweeps >= 6
        assert short == 0, f"{short} sweeps counted fewer objects than they froze"
    finally:
        stop.set()
        worker.join()
        sys.setswitchinterval(switch)
