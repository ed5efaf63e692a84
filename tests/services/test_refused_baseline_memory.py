"""Issue 12: watching a cluster whose Prometheus cannot give a baseline (a fresh one, with no
day-old window) must not grow with every poll.

`Runbook.baseline()` remembers a refusal and raises the same exception object on every later
call. Raising a stored exception adds the new call's frames to its old traceback, so each
poll of steps 3 and 6 kept the frames (and every local in them: workers' futures, reports,
parsed JSON) of every poll before it: in real-cluster mode against `skewmit sim` with a fresh
Prometheus, about 1,000 frames and 450 tracebacks more per 100 s of polling at 10x the default
rate, and +21 MiB/h of RSS at the default rate (bench/RESULTS.md).

The fix is one line in services/runbook.py (not this engineer's file):
`raise self._baseline_refused.with_traceback(None)`; until it lands this test is an expected
failure (strict: it fails loudly once the fix makes it pass, so the marker is removed).
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import pytest

from services import baseline_choice
from services.baseline_choice import BaselineRefused
from services.models import Target
from services.runbook import Runbook


def depth(tb: TracebackType | None) -> int:
    n = 0
    while tb is not None:
        n, tb = n + 1, tb.tb_next
    return n


def test_asking_again_for_a_refused_baseline_keeps_nothing_of_the_earlier_asks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[int] = []

    def refuse(*_args: Any, **_kwargs: Any) -> Any:
        asked.append(1)
        raise BaselineRefused("the baseline window is 20% covered; use 10:00-10:10 instead")

    monkeypatch.setattr(baseline_choice, "frozen", refuse)
    runbook = Runbook(cluster=object(), target=Target("ctx", "inference", "llm-serve"))  # type: ignore[arg-type]
    runbook.metrics = object()
    depths = []
    for _ in range(50):  # fifty polls
        with pytest.raises(BaselineRefused, match="20% covered") as caught:
            runbook.baseline()
        depths.append(depth(caught.value.__traceback__))
    assert asked == [1]  # refused once, remembered: the source is not asked again
    assert max(depths) <= depths[0], depths[:3] + depths[-3:]  # no poll adds frames
