"""Leaving the app: a read's callback that lands while the app exits does not turn a clean
quit into a crash (seen in a drill test: the metrics poll asked which screen was on top after
the last screen had gone, and the app died with "No screens on stack")."""

from __future__ import annotations

from collections.abc import Callable

from tests.tui.conftest import checked, wait_until
from tui.app import SkewmitApp
from tui.polls import GROUP_METRICS
from tui.session import Session


async def test_a_metrics_read_requested_after_the_last_screen_went_waits_instead_of_crashing(
    demo: Callable[..., Session],
) -> None:
    app = SkewmitApp(demo())
    app.animation_level = "none"
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: checked(app), "checks at launch")
        poll = app.polls[GROUP_METRICS]
    assert not app.screen_stack
    # A request queued before the polls were stopped runs now, with no screen on the stack.
    poll.stopped = False
    runs = poll.runs
    poll.request()  # raised ScreenStackError before
    assert poll.runs == runs  # no read started for a screen that is gone
