"""tui.heap.HeapKeeper also freezes what survives the interpreter's own full collections
(issue 12: with every API call 3 s slow a round of checks takes several times as long, and
the full collections the interpreter started between two rounds walked all that had built up
since the last freeze: 60-100 ms pauses of the screen). The survivors were just found live, so
garbage is still collected, never frozen; nothing is frozen while a screen is over the main
one; and the app stops following when it closes."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from services.models import STEP_ORDER
from tests.tui.conftest import PassThroughGc
from tests.tui.fakes import FakeRunbook, fake_session
from tests.tui.test_snapshots import settle
from tui.app import SkewmitApp
from tui.heap import FREEZE_AT, HeapKeeper


class Cycle:
    def __init__(self) -> None:
        self.me = self


def walked(objects: list[Any]) -> bool:
    """Whether the collector still walks any of `objects` (not frozen)."""
    ids = {id(obj) for obj in gc.get_objects()}
    return any(id(obj) in ids for obj in objects)


def test_survivors_of_a_full_collection_are_frozen_and_its_garbage_is_not(
    real_gc: None,
) -> None:
    state = {"covered": False}
    keeper = HeapKeeper(covered=lambda: state["covered"], freeze_at=0)  # every walk is long
    try:
        for step in STEP_ORDER:
            keeper.answered(step)  # start-up's freeze: from now on the keeper follows
        assert keeper.frozen_once
        kept = [Cycle() for _ in range(1000)]
        dropped = [weakref.ref(Cycle()) for _ in range(1000)]
        gc.collect()  # a full collection the keeper did not start
        assert not any(ref() is not None for ref in dropped), "garbage is collected"
        assert not walked(kept), "the survivors are out of the next collections' walk"
        assert keeper.followed == 1
        state["covered"] = True  # the validation view is up: its widgets must not be frozen
        under_view = [Cycle() for _ in range(1000)]
        gc.collect()
        assert walked(under_view) and keeper.followed == 1
    finally:
        keeper.stop_following()
    state["covered"] = False
    after = [Cycle() for _ in range(1000)]
    gc.collect()
    assert walked(after) and keeper.followed == 1, "stopped: nothing frozen any more"


def test_a_full_collection_of_a_short_walk_freezes_nothing(real_gc: None) -> None:
    """Freezing survivors the interpreter walks quickly saves no pause, and keeps what later
    dies in a cycle (render-cached strips, finished workers) until a sweep: the app's RSS
    grew 24 MiB/h. Past `freeze_at` objects (`large`) the survivors are still frozen."""
    keeper = HeapKeeper(covered=lambda: False)
    try:
        for step in STEP_ORDER:
            keeper.answered(step)  # start-up's freeze: all there was is out of the walk
        few = [Cycle() for _ in range(1000)]
        gc.collect()
        assert walked(few) and keeper.followed == 0
        many = [Cycle() for _ in range(FREEZE_AT)]
        gc.collect()
        assert not walked(many) and keeper.followed == 1
    finally:
        keeper.stop_following()


def test_a_keeper_without_a_screen_to_ask_follows_nothing(real_gc: None) -> None:
    callbacks = list(gc.callbacks)
    keeper = HeapKeeper()
    for step in STEP_ORDER:
        keeper.answered(step)
    assert keeper.frozen_once and gc.callbacks == callbacks
    kept = [Cycle() for _ in range(1000)]
    gc.collect()
    assert walked(kept) and keeper.followed == 0


async def test_the_app_follows_while_it_runs_and_stops_when_it_closes(real_gc: None) -> None:
    callbacks = list(gc.callbacks)
    app = SkewmitApp(fake_session(FakeRunbook()))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.heap.frozen_once
        assert len(gc.callbacks) == len(callbacks) + 1
        kept = [Cycle() for _ in range(FREEZE_AT)]  # a heap as long to walk as `large`'s
        gc.collect()
        assert not walked(kept) and app.heap.followed >= 1
    assert gc.callbacks == callbacks, "the closed app left its callback behind"


class CountingGc(PassThroughGc):
    """The real collector, counting the keeper's own collections."""

    def __init__(self) -> None:
        self.collects = 0

    def collect(self, generation: int = 2) -> int:
        self.collects += 1
        return gc.collect(generation)


def test_a_round_the_interpreter_already_collected_adds_no_pause_of_its_own(
    real_gc: None,
) -> None:
    """On `large` the keeper's own collection at the end of a round was a 50-60 ms stretch of
    the UI thread, right after full collections whose survivors were already frozen."""
    collector = CountingGc()
    keeper = HeapKeeper(collector=collector, covered=lambda: False, freeze_at=0)
    gc.disable()  # only the collections this test starts
    try:
        for step in STEP_ORDER:
            keeper.answered(step)  # start-up
        rounds, collects = keeper.rounds, collector.collects
        for step in STEP_ORDER:
            keeper.answered(step)
        assert (keeper.rounds, collector.collects) == (rounds + 1, collects + 1)
        kept = [Cycle() for _ in range(1000)]
        gc.collect()  # the interpreter's, during the next round
        for step in STEP_ORDER:
            keeper.answered(step)
        assert keeper.rounds == rounds + 2 and collector.collects == collects + 1
        assert not walked(kept)
        for step in STEP_ORDER:  # a round with no collection of the interpreter's
            keeper.answered(step)
        assert keeper.rounds == rounds + 3 and collector.collects == collects + 2
    finally:
        gc.enable()
        keeper.stop_following()
