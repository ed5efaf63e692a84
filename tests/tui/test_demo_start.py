"""The demo's metrics history arrives in two stages (issue 12: panes fill independently):
the fleet's recent past first, then the day-old last-known-good window, which takes seconds
to render. What reads the present (the GPU inspector's DCGM models, the live panes) answers
once the recent past is in; only what reaches back a day (the frozen baseline) waits for
the rest, and then judges a fully covered window, never an empty store."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import tui.demo
from services.models import Step


def test_the_inspector_reads_dcgm_before_the_day_old_history_is_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    rendered = tui.demo.day_old_history

    def held(*args: Any) -> str:
        release.wait(120)  # the day-old window is still rendering
        return rendered(*args)

    monkeypatch.setattr(tui.demo, "day_old_history", held)
    runbook, sim = tui.demo.open_demo(
        "skew-incident", 30.0, journal_root=tmp_path / "state", first_checks=False
    )
    source = runbook.metrics
    try:
        report = runbook.check(Step.HARDWARE)
        assert report.hardware is not None, report.error
        shown = {row.pod: row.dcgm_model for row in report.hardware.rows}
        assert shown and all(shown.values()), shown  # every pod's DCGM model, already
        assert not source.backfilled.is_set()
        frozen: list[Any] = []
        waiting = threading.Thread(target=lambda: frozen.append(runbook.baseline()))
        waiting.start()
        waiting.join(1.0)
        assert frozen == []  # the baseline does not judge a window that is not there yet
        release.set()
        waiting.join(120)
        assert frozen and frozen[0].judged_coverage >= 0.9, frozen
    finally:
        release.set()
        source.stop()
        sim.stop()
