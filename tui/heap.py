"""The app's garbage-collector policy: keep the heap the collector walks small, so that no
collection stalls the screen.

CPython's cyclic collector runs in whichever thread allocates when a threshold is crossed,
and holds the interpreter lock while it walks every tracked object of the generations it
collects. A full (generation 2) collection walks everything that survived two younger ones:
on `large` that was the watched pods and nodes, the app's widgets, their render caches and
the last reports, 300,000+ objects, and each such collection froze the screen for 0.3-2.3 s
(bench/ui_stall_bench.py). Freezing the heap once after start-up (gc.freeze: frozen objects
are never walked again) took the start-up part away; what built up after it (render caches,
reports, cache updates: 80,000-140,000 objects after a few rounds of checks) still made each
full collection a 70-340 ms pause.

`HeapKeeper` does what the app did once, then again after every full round of checks: a
collection of what is not frozen (only what the last round left, so it is short), then
gc.freeze() of what survived it. The full collections the interpreter starts by itself then
walk one round's survivors, not the session's. Garbage is collected before each round's
freeze, so it keeps only live objects (the start-up freeze collects nothing first: it keeps
start-up's garbage, about 1.3 MB, until the first sweep); a frozen object that later becomes
part of a garbage cycle is not collected while frozen. The one large source of that was a
screen over the main one (the validation view, a modal) frozen while shown: all its widgets
died frozen when it closed. So no round is frozen while such a screen is up (`overlay`), and
when the frozen heap has grown by `sweep_growth` since the last sweep, or since the first
`settle_rounds` rounds (the heap still grows for real then), or every `sweep_every` rounds,
everything is unfrozen and collected once (a full pause, rare and counted) to give that
memory back.

All of that is for a heap the interpreter cannot walk quickly. A round's freeze also keeps,
until the next sweep, whatever was alive at that moment and later dies inside a reference
cycle: the strips in the widgets' render caches (a Strip caches itself in its own caches)
and the workers of the polls in flight (Worker, Task and Context refer to one another).
Measured with the small scenario in real-cluster mode (polls 10x faster), each round
froze ~330 objects that later became garbage: 610 workers and 1,590 strips (46,000 objects)
after 160 rounds. At x1 that is ~24 MiB/h of RSS until the first sweep, 45 minutes in.
The same app without round freezes kept 13,000-20,000 objects walkable, and the interpreter's
own full collections of them took 4-14 ms. So a round, or a full collection of the
interpreter's, freezes only when the walkable heap is past `freeze_at` objects (on `large`
it often is). Below that the interpreter's generations collect the churn as they would
without the keeper.

Between two rounds the interpreter still starts full collections of its own, each walking
everything that survived since the last freeze: with every API call 3 s slow (issue 12) a
round takes several times as long and those pauses reached 60-100 ms. Given `covered` (is a
screen over the main one up now?), the keeper also freezes what survives each full collection
that is not its own, from the start-up freeze on: the survivors were just found live, so no
garbage is frozen, and the next full collection walks only what was kept after this one. A
round during which that happened ends without a collection of the keeper's own (on `large` it
was a 50-60 ms pause of the UI thread for what the interpreter had just walked).
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.models import STEP_ORDER, Step

# Rounds between full sweeps (unfreeze, collect all, freeze): at the demo's 5 s polls about
# once an hour, and each one costs a full pause of the heap at that time.
SWEEP_EVERY = 600
SWEEP_GROWTH = 0.25  # or sooner, once the frozen heap is this much bigger than after a sweep
# The heap still grows for real in the first rounds (modules imported on first use, caches
# filling): the size a sweep is judged against is taken after this many rounds.
SETTLE_ROUNDS = 12
# Objects the collector walks (not frozen) past which a round's survivors are frozen. The
# small scenario keeps 13,000-20,000 walkable once the start-up heap is frozen, and a full
# collection of them took 4-14 ms; `large` keeps 25,000-32,000 after its rounds, and a full
# collection of what built up there took up to 37 ms on a loaded machine (the 80,000-140,000
# that built up before the keeper: 70-340 ms). Below this, freezing saves no pause worth its
# frozen garbage (module docstring).
FREEZE_AT = 25_000
# Longest start-up without the cyclic collector (see keep_startup_heap).
STARTUP_COLLECTOR_PAUSE_S = 15.0
_collector_paused = False  # keep_startup_heap turned it off; start_up_over turns it on
_collector_lock = threading.Lock()


class Collector(Protocol):
    """The slice of the `gc` module the keeper uses (tests pass a recorder)."""

    def collect(self, generation: int = 2) -> int: ...

    def freeze(self) -> None: ...

    def unfreeze(self) -> None: ...

    def get_freeze_count(self) -> int: ...


@dataclass
class HeapKeeper:
    """Call `answered(step, synced=...)` on every check answer. `start_after` distinct steps
    answered with `synced` true (the pod and node watches listed) is the end of start-up:
    the start-up heap is frozen; after that, each full round (every step that had answered
    by the last freeze has answered again, or twice as many answers as such steps) collects
    and freezes that round's survivors."""

    start_after: int = len(STEP_ORDER) - 2
    sweep_every: int = SWEEP_EVERY
    sweep_growth: float = SWEEP_GROWTH
    settle_rounds: int = SETTLE_ROUNDS
    freeze_at: int = FREEZE_AT
    collector: Collector = field(default_factory=lambda: gc)
    clock: Callable[[], float] = time.perf_counter
    frozen_once: bool = False  # the start-up heap is frozen
    rounds: int = 0  # freezes after start-up's
    sweeps: int = 0
    longest_pause_s: float = 0.0  # of the keeper's own collections (a sweep's included)
    last_pause_s: float = 0.0
    _seen: set[Step] = field(default_factory=set)  # steps that answered before the last freeze
    _since: set[Step] = field(default_factory=set)  # steps that answered after it
    _answers: int = 0  # answers since the last freeze
    _swept_at: int = 0  # objects frozen after the start-up freeze or the last sweep
    # Objects frozen, as far as the keeper knows: CPython 3.11's gc.get_freeze_count() walks
    # the whole frozen list (300,000+ objects on `large`: about 40 ms of cache misses on the UI
    # thread, and it was asked twice a round). Each round adds what it froze, which makes this
    # an upper bound (frozen objects can still be freed by their reference count); the exact
    # count is asked only where a decision needs it: the bound crosses the sweep threshold,
    # or the size a sweep is judged against is taken.
    _frozen: int = 0
    # Freeze the survivors of the interpreter's own full collections too (tui.app passes
    # "a screen is over the main one", during which nothing is frozen); None: rounds only.
    covered: Callable[[], bool] | None = None
    followed: int = 0  # full collections whose survivors were frozen
    _following: Callable[[str, dict[str, Any]], None] | None = None
    _freezing: bool = False  # the keeper's own collection is running
    _followed_at_round: int = 0  # `followed` when the last round ended

    def answered(self, step: Step, *, synced: bool = True, overlay: bool = False) -> None:
        """One check answered (on the UI thread, after its report is shown). `synced`: the
        pod and node watches are listed; `overlay`: a screen other than the main one is up."""
        self._since.add(step)
        self._answers += 1
        if overlay:
            return  # its widgets die when it closes: freezing them would keep them
        if not self.frozen_once:
            if synced and len(self._since) >= self.start_after:
                self.frozen_once = True
                self._freeze(sweep=False)
                self._swept_at = self.frozen
                self._follow()
            return
        # A step whose checks stopped (paused, crashed) does not hold the rounds up for ever.
        if self._seen <= self._since or self._answers >= 2 * len(self._seen):
            self.rounds += 1
            settled = self.rounds > self.settle_rounds
            limit = self._swept_at * (1 + self.sweep_growth)
            grown = settled and self._frozen > limit and self._count_frozen() > limit
            sweep = settled and (grown or self.rounds % max(self.sweep_every, 1) == 0)
            if not sweep and (self.followed > self._followed_at_round or self._walk_is_short()):
                # The interpreter collected during the round and its survivors were frozen:
                # the round's own collection would be one more pause for what came after.
                # Or what it walks is small: its own collections take it, garbage and all.
                self._end_round()
            else:
                self._freeze(sweep=sweep)
            self._followed_at_round = self.followed
            if self.rounds == self.settle_rounds:
                self._swept_at = self._count_frozen()

    def _walk_is_short(self) -> bool:
        """Whether the collector walks fewer than `freeze_at` objects now (False for a
        collector that cannot list them: then every round freezes)."""
        listing = getattr(self.collector, "get_objects", None)
        return listing is not None and len(listing()) < self.freeze_at

    def _follow(self) -> None:
        if self.covered is None or self._following is not None:
            return
        # A weak reference: the interpreter's callback list must not keep an app alive.
        keeper = weakref.ref(self)

        def collected(phase: str, info: dict[str, Any]) -> None:
            alive = keeper()
            if alive is not None:
                alive._collected(phase, info)

        self._following = collected
        gc.callbacks.append(collected)

    def stop_following(self) -> None:
        """No more freezes after the interpreter's collections (the app is closing)."""
        if self._following is not None:
            if self._following in gc.callbacks:
                gc.callbacks.remove(self._following)
            self._following = None

    def _collected(self, phase: str, info: dict[str, Any]) -> None:
        """A gc callback (any thread, the interpreter lock held): after a full collection
        that is not the keeper's own, freeze its survivors unless a screen is over the main
        one (its widgets would die frozen when it closes) or they are fewer than `freeze_at`."""
        if phase != "stop" or info.get("generation") != 2 or self._freezing:
            return
        try:
            covered = self.covered is None or self.covered()
        except Exception:  # the app closing: no screen to ask about
            covered = True
        if covered:
            return
        listing = getattr(self.collector, "get_objects", None)
        adding = len(listing()) if listing is not None else 0
        if listing is not None and adding < self.freeze_at:
            return  # a short walk: the next one takes this one's survivors if they died
        self.collector.freeze()
        self._frozen += adding
        self.followed += 1

    def _freeze(self, *, sweep: bool) -> None:
        self._freezing = True
        try:
            self._freeze_now(sweep=sweep)
        finally:
            self._freezing = False

    def _freeze_now(self, *, sweep: bool) -> None:
        began = self.clock()
        first = not self._seen
        if sweep:
            self.collector.unfreeze()
            self.sweeps += 1
        # The start-up freeze collects nothing first (issue 12): the collector was off since
        # the first frame (keep_startup_heap), so a collection walks everything the session
        # built, 60-85 ms of the UI thread right after the inspector filled (114 ms on
        # `large`), to free about 14,000 objects (1.3 MB, layout and render scraps). Those
        # stay frozen until the first sweep gives them back.
        if not first:
            self.collector.collect()  # the garbage first, so only live objects are frozen
        # What a round's freeze adds: the objects the collection just walked (cheap to count,
        # they are in cache); a collector that cannot list them is asked for its count instead.
        # The start-up freeze and a sweep are counted after the freeze: exact, also when
        # another thread made an object between the listing and the freeze (CI saw one), and
        # a sweep walks the whole heap anyway.
        listing = getattr(self.collector, "get_objects", None)
        exact = first or sweep or listing is None
        adding = 0 if exact or listing is None else len(listing())
        self.collector.freeze()
        if exact:
            self._count_frozen()
        else:
            self._frozen += adding
        if sweep:
            self._swept_at = self.frozen
        self.last_pause_s = self.clock() - began
        self.longest_pause_s = max(self.longest_pause_s, self.last_pause_s)
        self._end_round()

    def _end_round(self) -> None:
        self._seen |= self._since
        self._since = set()
        self._answers = 0

    def _count_frozen(self) -> int:
        self._frozen = self.collector.get_freeze_count()
        return self._frozen

    @property
    def frozen(self) -> int:
        """Objects the collector does not walk, at most (exact after a count or a sweep)."""
        return self._frozen


def keep_startup_heap() -> None:
    """Freeze what the imports made (classes, functions, Textual's tables: they live as long as
    the process) and keep the cyclic collector off until start-up is over, when the launcher
    (tui.launchers.run_opener) paused it for the imports. Full collections walked all of it
    during start-up (issue 12): 30 ms before the first frame, then 50-70 ms twice or three
    times between the first metrics and step 5's answer, each holding the interpreter lock,
    on the UI thread or a worker. Start-up makes little garbage; the app calls
    `start_up_over` once its HeapKeeper has collected and frozen the start-up heap (or
    STARTUP_COLLECTOR_PAUSE_S passes first: a cluster that never answers), and the
    collections after that walk only what came since."""
    global _collector_paused
    if gc.isenabled():
        return  # not paused by the launcher: the collector stays as the caller has it
    gc.freeze()
    _collector_paused = True
    timer = threading.Timer(STARTUP_COLLECTOR_PAUSE_S, start_up_over)
    timer.daemon = True
    timer.start()


def start_up_over() -> None:
    """The cyclic collector on again, if keep_startup_heap paused it (any thread; once)."""
    global _collector_paused
    with _collector_lock:
        if _collector_paused:
            _collector_paused = False
            gc.enable()
