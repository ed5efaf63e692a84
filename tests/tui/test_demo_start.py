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


def test_the_inspectors_dcgm_models_come_from_the_first_scrape_before_the_recent_past_is_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Step 5's verdict rows wait for the DCGM models, which the present's scrape holds: not
    # for the recent past (fetched from the simulator and parsed, ~0.5 s at start-up).
    import services.simulator.runner as runner

    release = threading.Event()
    sliced = runner.history_slice

    def held(*args: Any) -> str:
        release.wait(120)  # the recent past is still on its way
        return sliced(*args)

    monkeypatch.setattr(runner, "history_slice", held)
    runbook, sim = tui.demo.open_demo(
        "skew-incident", 30.0, journal_root=tmp_path / "state", first_checks=False
    )
    source = runbook.metrics
    try:
        reports: list[Any] = []
        checking = threading.Thread(target=lambda: reports.append(runbook.check(Step.HARDWARE)))
        checking.start()
        checking.join(60)  # held, it would wait BACKFILL_WAIT_S (120 s) for the history
        assert reports, "step 5 did not answer while the recent past was held back"
        hardware = reports[0].hardware
        assert hardware is not None, reports[0].error
        shown = {row.pod: row.dcgm_model for row in hardware.rows}
        assert shown and all(shown.values()), shown  # every pod's DCGM model, already
        assert not source.recent.is_set()
    finally:
        release.set()
        source.stop()
        sim.stop()


def test_the_demo_reads_nvidia_smi_while_it_opens_so_step_5_runs_no_exec_of_its_own(
    tmp_path: Path,
) -> None:
    # The first verdict rows waited for one exec per node after the app had opened; the
    # readings are taken while it opens, into the connection's cache that the app's
    # watch-fed cluster (CachedCluster) shares. Still one exec per node: never two.
    from services.cached_cluster import cache_reads
    from tests.services.harness import wait_for

    runbook, sim = tui.demo.open_demo(
        "skew-incident", 30.0, journal_root=tmp_path / "state", first_checks=False
    )
    source = runbook.metrics
    cluster = runbook.cluster
    informer = None
    try:
        serving = cluster.list("Pod", "inference", label_selector="app=llm-serve")
        nodes = {p["spec"]["nodeName"] for p in serving}

        def execs() -> int:
            return int(cluster.request_counts().get(("exec", "pods"), 0))

        wait_for("the demo's nvidia-smi reads as it opens", lambda: execs() >= len(nodes))
        informer = cache_reads(runbook)  # as the app does: the checks see a CachedCluster
        report = runbook.check(Step.HARDWARE)
        assert report.hardware is not None, report.error
        assert execs() == len(nodes)  # the check found every node's reading remembered
        rows = report.hardware.rows
        assert rows and all(row.smi_name for row in rows), rows  # each read, none pending
        assert any(row.mismatch for row in rows)  # the A10G pods, told from nvidia-smi
    finally:
        if informer is not None:
            informer.stop()
        source.stop()
        sim.stop()
