"""A figure reads "stale" when its source's newest scrape was old when it was read, not
because the screen took a while to show it. In `skewmit demo` (a x12 clock) the opening's
busy second, between the first reading and its paint, was 10-15 simulated seconds: every
first figure read "stale" for a second, then flipped to its difference from the baseline.
Readings kept on screen after a failed read still go stale as time passes."""

from __future__ import annotations

from textual.widgets import Label

from tests.tui.conftest import wait_until
from tests.tui.fakes import T0, FakeRunbook, fake_session, metrics
from tui.app import SkewmitApp
from tui.messages import MetricsSampled
from widgets.metric_sparkline import MetricSparkline


def figure(spark: MetricSparkline) -> str:
    return str(spark.query_one(".ms-value", Label).content)


async def test_a_fresh_reading_shown_late_is_not_stale_and_a_kept_one_goes_stale() -> None:
    clock = [T0]
    app = SkewmitApp(fake_session(FakeRunbook(), metrics_now=lambda: clock[0]))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.main.composed, "the first frame")
        spark = app.main.query_one("#spark-p95", MetricSparkline)
        # Read at T0 from a scrape at T0 (stale after 60 s); shown 90 s of the clock later.
        await wait_until(pilot, lambda: spark.series is not None, "the first reading")
        clock[0] = T0 + 90
        reading = metrics()
        app.post_message(MetricsSampled(reading))
        await wait_until(pilot, lambda: spark.series is reading[0], "the reading shown")
        assert not spark.has_class("-stale") and "stale" not in figure(spark), figure(spark)
        assert spark.has_class("-worse"), "its difference from the baseline instead"
        # The next read fails: the last readings stay, judged against the clock now.
        app.post_message(MetricsSampled([], error="cannot reach Prometheus"))
        await wait_until(pilot, lambda: spark.has_class("-stale"), "the kept figure stale")
        assert "stale" in figure(spark)
