"""A step's report handed to whoever shows it as soon as the checks produced it, before the
runbook journals it (issue 12).

`Runbook.check` opens the incident's journal at the first finding, which reads and writes the
manifests from before any fix (the "before" snapshot), and journals each change of findings:
60-100 ms on a quiet machine, seconds on a loaded one or a slow disk, all of it after the
answer is known. A caller that shows reports (the app's check workers) listens with
`reports_to(listener)` around its `check` call; `Runbook.check` calls `hand_over(report)`
before the journal's work. The report `check` returns is the one to keep: it differs from
the one handed over when the journal could not be opened. Headless callers do not listen.

A context variable rather than a parameter of `check`: the workers run checks concurrently on
several threads, each listening for its own step, and every runbook stand-in keeps its
`check(step)` signature.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.models import StepReport

Listener = Callable[["StepReport"], None]

_listener: ContextVar[Listener | None] = ContextVar("skewmit_report_listener", default=None)


@contextmanager
def reports_to(listener: Listener) -> Iterator[None]:
    """Within the block, on this thread, `hand_over` passes each report to `listener`."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def hand_over(report: StepReport) -> None:
    """Pass `report` to this thread's listener, if one listens. Raises what it raises."""
    listener = _listener.get()
    if listener is not None:
        listener(report)
