"""What the widgets and wiring say, without an app: readings, differences, log rows."""

from __future__ import annotations

from services.journal_actions import journal_actions
from services.models import MetricPoint, MetricSeries
from tests.tui.fakes import FakeJournal
from tui.metrics_feed import first_series
from widgets.metric_sparkline import delta_percent, format_value
from widgets.validation_panel import duration


def test_readings_are_short_and_carry_their_unit() -> None:
    assert format_value(0.412, "s") == "412ms"
    assert format_value(42.26, "s") == "42.3s"
    assert format_value(781.4, "s") == "781s"
    assert format_value(1297.2, "tok/s") == "1297/s"
    assert format_value(86.6, "%") == "87%"
    assert format_value(73833.0, "MiB") == "72.1GiB"
    assert format_value(None, "s") == "-"
    assert delta_percent(1.5, 1.0) == 50.0
    assert delta_percent(1.0, None) is None and delta_percent(1.0, 0.0) is None
    assert duration(234) == "3m54s" and duration(9.6) == "10s"


def test_sparkline_series_prefers_the_gpu_model_with_a_baseline() -> None:
    point = (MetricPoint(0.0, 1.0),)
    a10g = MetricSeries("gpu_util", "%", point, None, 0.0, 30.0, {"modelName": "NVIDIA A10G"})
    h100 = MetricSeries("gpu_util", "%", point, 80.0, 0.0, 30.0, {"modelName": "NVIDIA H100"})
    assert first_series([a10g, h100])["gpu_util"] is h100


def test_action_log_rows_mark_reverted_changes() -> None:
    journal = FakeJournal()
    journal.append("applied", {"title": "Pin the image", "verified": True, "verify": "live"})
    journal.append("applied", {"title": "Set --dtype", "verified": False, "verify": "differs"})
    journal.append(
        "reverted",
        {"reverts": 1, "title": "Revert: Pin the image", "verified": True, "verify": "live"},
    )
    rows = journal_actions(journal.entries())
    assert [(r.seq, r.status, r.revertible) for r in rows] == [
        (3, "applied", False),
        (2, "unverified", True),
        (1, "reverted", False),
    ]
    assert rows[2].note == "reverted by #3"


def test_a_findings_message_and_its_subject_stay_apart_when_wrapped() -> None:
    """Issue 10: the step detail read "last-known-gooddeployment/llm-serve": the two spaces
    before the subject were lost where the text wrapped."""
    from services.models import Finding, Severity, Step
    from widgets.step_detail import finding_line

    finding = Finding(
        Step.ROLLBACK,
        "revision-drifted",
        Severity.WARNING,
        "revision 3 drifted; revision 2 is the last-known-good",
        "deployment/llm-serve",
    )
    text = finding_line(finding)
    assert text.plain.endswith("last-known-good · deployment/llm-serve")
    for width in (30, 46, 60):
        wrapped = " ".join(line.plain for line in text.wrap(width))
        assert "last-known-good · deployment/llm-serve" in wrapped.replace("  ", " ") or (
            "· deployment/llm-serve" in wrapped  # wrapped at the separator: still apart
        )
