"""A reading restyles each widget it changes once (issue 12). Textual restyles a widget and
everything in it at each class it gains or loses: the rollout bar, each live figure, the
validation panel and the header took one restyle per class, two to five for one reading,
1-6 ms each on the main screen. The classes each ends with are what decide its colours."""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult

from services.models import RolloutProgress, Verdict
from tests.tui.fakes import T0, metrics
from widgets.header_bar import HeaderBar, HeaderState
from widgets.metric_sparkline import MetricSparkline
from widgets.rollout_bar import RolloutBar
from widgets.validation_panel import ValidationPanel


class Widgets(App[None]):
    def compose(self) -> ComposeResult:
        yield HeaderBar(HeaderState(context="ctx"))
        yield RolloutBar()
        yield MetricSparkline("p95")
        yield ValidationPanel()


def count_restyles(app: App[Any]) -> list[str]:
    """Each restyle from now on, by the widget it started at."""
    restyled: list[str] = []
    update_styles = app.update_styles

    def record(node: Any, animate: bool = True) -> None:
        restyled.append(type(node).__name__)
        update_styles(node, animate=animate)

    app.update_styles = record  # type: ignore[method-assign]
    return restyled


async def test_each_reading_restyles_each_widget_it_changes_once() -> None:
    app = Widgets()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        restyled = count_restyles(app)
        rollout = app.query_one(RolloutBar)
        rollout.show(RolloutProgress(4, 4, 4, 4, 0, True, 'deployment "llm-serve" rolled out'))
        assert restyled == ["RolloutBar"], restyled
        assert rollout.has_class("-done") and not rollout.has_class("-empty")

        restyled.clear()
        figure = app.query_one(MetricSparkline)
        p95 = metrics()[0]  # 2.9 s against a 1.2 s baseline: worse
        figure.show(p95, T0)
        assert restyled == ["MetricSparkline"], restyled
        assert figure.has_class("-worse") and not figure.has_class("-empty")
        restyled.clear()
        figure.show(None)
        assert restyled == ["MetricSparkline"], restyled
        assert figure.has_class("-empty") and not figure.has_class("-worse")

        restyled.clear()
        panel = app.query_one(ValidationPanel)
        assert panel.has_class("-empty"), "empty from the start, with no restyle to say so"
        panel.show(Verdict("fail", (), T0, 600.0))
        assert restyled == ["ValidationPanel"], restyled
        assert panel.has_class("-fail") and not panel.has_class("-empty")

        restyled.clear()
        app.query_one(HeaderBar).show(HeaderState(context="prod", read_only=True, production=True))
        assert restyled == ["HeaderBar"], restyled
