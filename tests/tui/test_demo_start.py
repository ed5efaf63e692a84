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
from services.metrics.baseline import BaselineSpec
from services.metrics.source import Scope
from services.models import Step

DAY = tui.demo.DAY_S


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


def test_on_a_fleet_without_recent_history_live_reads_do_not_wait_for_the_day_old_window() -> None:
    # `large` starts with no recent past (metrics_history_s 0): a live read's rate window
    # reaches back before the simulator started, into times neither stage holds. It must
    # answer from the scrapes it has, not wait for the day-old window to render.
    now = 1_800_000_000.0
    source = tui.demo.DemoMetricsSource(
        "http://127.0.0.1:9/metrics",
        Scope("inference", "llm-serve"),
        "vllm",
        clock=lambda: now,
        rate_window_s=300.0,
        baseline_spec=BaselineSpec(mode="range", start=now - DAY - 600, end=now - DAY),
        history_until=now - DAY + tui.demo.HISTORY_AFTER_S,
    )
    source.recent.set()  # the recent past is in (empty); the day-old window is rendering
    answers: list[Any] = []
    live = threading.Thread(target=lambda: answers.append(source.instant("tokens_per_s")))
    live.start()
    live.join(60)  # the day-old window's wait would be BACKFILL_WAIT_S (120 s)
    assert answers and not source.backfilled.is_set(), answers
    frozen: list[Any] = []
    waiting = threading.Thread(target=lambda: frozen.append(source.baseline(600)))
    waiting.start()
    waiting.join(1.0)
    assert frozen == []  # the baseline, a day back, still waits for its window
    source.backfilled.set()
    waiting.join(60)
    assert frozen, "the baseline answered once the day-old window was in"
