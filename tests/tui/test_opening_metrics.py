"""Real-cluster mode's live metrics do not wait for the cluster (issue 12): the launcher
reaches Prometheus on a thread of its own while the session opens, and the pane shows its
first figures while the app is still connecting to the API server. Through the real wiring:
`app_opener` from the command line's flags, the simulator over HTTP, a real Prometheus
scraping it."""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import services.session
from services.errors import SkewmitError
from services.metrics.presets import TOKENS
from services.simulator.runner import Simulator
from tests.conftest import require_tool
from tests.prometheus import PrometheusServer, SwitchableProxy
from tests.tui.conftest import wait_until
from tui.app import SkewmitApp
from tui.cli import build_parser
from tui.launchers import app_opener

P95 = (
    'histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket{job="vllm"}'
    "[1m]))) > 0"
)


@pytest.fixture
def prometheus(shared_sim: Simulator, tmp_path: Path) -> Iterator[PrometheusServer]:
    """A Prometheus scraping the shared simulator every second (it changes nothing there)."""
    server = PrometheusServer(
        require_tool("prometheus"), tmp_path / "prom", {"vllm": shared_sim.metrics_url}
    ).start()
    try:
        # Until Prometheus itself has a p95 (a rate needs two scrapes with requests between
        # them): the pane's first reading is taken once, before the session opens.
        server.wait_for(P95)
        yield server
    finally:
        server.stop()


def app_args(argv: list[str]) -> argparse.Namespace:
    return build_parser(argv).parse_args(argv)


def held_connecting(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """The API server is slow to answer: the session opens only once the test sets the
    second event (the first is set when the opening reached the cluster)."""
    connecting, release = threading.Event(), threading.Event()
    open_session = services.session.open_session

    def slow_open_session(*args: Any, **kwargs: Any) -> Any:
        connecting.set()
        release.wait(120)
        return open_session(*args, **kwargs)

    monkeypatch.setattr(services.session, "open_session", slow_open_session)
    return connecting, release


def shown(app: SkewmitApp, name: str) -> bool:
    series, _now, _error = app.main.shown_metrics
    return any(s.name == name and s.points for s in series)


def p95_shown(app: SkewmitApp) -> bool:
    return shown(app, "p95")


async def test_live_metrics_show_while_the_cluster_is_still_connecting(
    shared_sim: Simulator,
    prometheus: PrometheusServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    connecting, release = held_connecting(monkeypatch)
    kubeconfig = shared_sim.write_kubeconfig(tmp_path / "kubeconfig")
    flags = ["--kubeconfig", str(kubeconfig), "-n", "inference", "--deployment", "llm-serve"]
    opener = app_opener(app_args([*flags, "--prometheus", prometheus.url, "--read-only"]))
    app = SkewmitApp(opener)
    app.animation_level = "none"

    try:
        async with app.run_test(size=(120, 40)) as pilot:
            # Up to 90 s of polls: in a clean-clone CI run on a loaded 2-core machine the
            # first reading was not on screen after the default 30 s once (slow or failed:
            # not known; 5 other full runs that day passed).
            await wait_until(
                pilot, lambda: p95_shown(app), "a p95 figure in the metrics pane", polls=1800
            )
            assert app.session is None and not release.is_set(), "the cluster is still opening"
            await wait_until(pilot, connecting.is_set, "the cluster's session being opened")
            assert "connecting" in app.main.status_text
            release.set()
            await wait_until(pilot, lambda: app.session is not None, "the session opened")
            await wait_until(
                pilot, lambda: p95_shown(app), "the metrics polled on the open session"
            )
            assert app.session is not None and app.session.metrics_sampler is not None
    finally:
        release.set()


async def test_a_first_reading_without_figures_is_read_again_while_the_cluster_connects(
    shared_sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Prometheus has no figure yet when skewmit starts (its vLLM target is down, or it has
    just started): the pane's first reading is empty. It is read again each scrape interval,
    so the figures show as soon as Prometheus has them, not only once the cluster answers
    (before, a clean-clone CI run caught the pane empty for 30 s of a held opening)."""
    proxy = SwitchableProxy(shared_sim.metrics_url)
    proxy.up = False
    server = PrometheusServer(require_tool("prometheus"), tmp_path / "prom", {"vllm": proxy.url})
    connecting, release = held_connecting(monkeypatch)
    kubeconfig = shared_sim.write_kubeconfig(tmp_path / "kubeconfig")
    try:
        server.start()
        flags = ["--kubeconfig", str(kubeconfig), "-n", "inference", "--deployment", "llm-serve"]
        opener = app_opener(app_args([*flags, "--prometheus", server.url, "--read-only"]))
        app = SkewmitApp(opener)
        app.animation_level = "none"
        async with app.run_test(size=(120, 40)) as pilot:
            # The first reading came, with nothing in it: the target has not been scraped.
            await wait_until(pilot, lambda: bool(app.main.shown_metrics[0]), "a first reading")
            assert not p95_shown(app)
            await wait_until(pilot, connecting.is_set, "the cluster's session being opened")
            proxy.up = True  # the target is back: Prometheus has a p95 two scrapes later
            await wait_until(pilot, lambda: p95_shown(app), "a p95 figure read again", polls=1800)
            assert app.session is None and not release.is_set(), "the cluster is still opening"
            assert "connecting" in app.main.status_text
            release.set()
            await wait_until(pilot, lambda: app.session is not None, "the session opened")
            await wait_until(pilot, lambda: p95_shown(app), "the metrics polled on the session")
    finally:
        release.set()
        server.stop()
        proxy.stop()


async def test_a_first_reading_with_some_figures_is_read_again_for_the_rest(
    shared_sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first reading had tokens/sec but no latency yet (no request had finished between
    two scrapes, or the histogram's exporter came up later): it was not read again, and the
    pane showed no p95 until the cluster answered. A clean-clone CI run (2026-12-04) waited
    90 s for it, the opening held. Read again each scrape interval until every figure has
    come, or the session takes it."""
    proxy = SwitchableProxy(shared_sim.metrics_url)
    proxy.hidden = ("vllm:e2e_request_latency_seconds",)
    server = PrometheusServer(require_tool("prometheus"), tmp_path / "prom", {"vllm": proxy.url})
    connecting, release = held_connecting(monkeypatch)
    kubeconfig = shared_sim.write_kubeconfig(tmp_path / "kubeconfig")
    try:
        server.start()
        server.wait_for('sum(rate(vllm:generation_tokens_total{job="vllm"}[1m])) > 0')
        flags = ["--kubeconfig", str(kubeconfig), "-n", "inference", "--deployment", "llm-serve"]
        opener = app_opener(app_args([*flags, "--prometheus", server.url, "--read-only"]))
        app = SkewmitApp(opener)
        app.animation_level = "none"
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: shown(app, TOKENS), "tokens/sec in a first reading")
            assert not p95_shown(app)
            await wait_until(pilot, connecting.is_set, "the cluster's session being opened")
            proxy.hidden = ()  # the latency histogram is scraped from now on
            await wait_until(pilot, lambda: p95_shown(app), "a p95 figure read again", polls=1800)
            assert app.session is None and not release.is_set(), "the cluster is still opening"
            release.set()
            await wait_until(pilot, lambda: app.session is not None, "the session opened")
    finally:
        release.set()
        server.stop()
        proxy.stop()


def app_before_its_prometheus(
    shared_sim: Simulator, tmp_path: Path
) -> tuple[PrometheusServer, SkewmitApp]:
    """The app against the shared simulator and a Prometheus not started yet (its port
    refuses the connection): start the server to have it answer."""
    server = PrometheusServer(
        require_tool("prometheus"), tmp_path / "prom", {"vllm": shared_sim.metrics_url}
    )
    kubeconfig = shared_sim.write_kubeconfig(tmp_path / "kubeconfig")
    flags = ["--kubeconfig", str(kubeconfig), "-n", "inference", "--deployment", "llm-serve"]
    app = SkewmitApp(app_opener(app_args([*flags, "--prometheus", server.url, "--read-only"])))
    app.animation_level = "none"
    return server, app


async def test_a_prometheus_unreachable_at_the_start_is_reached_once_it_answers(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    """Prometheus refused the connection as skewmit started (restarting, a port-forward not up
    yet): the session opened without metrics, and the pane, steps 3-6 and the gate stayed
    without them until skewmit was restarted. Now the pane says it tries again, and once
    Prometheus answers the figures show and the session's checks have their source."""
    server, app = app_before_its_prometheus(shared_sim, tmp_path)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(pilot, lambda: app.session is not None, "the session opened")
            await wait_until(
                pilot, lambda: "trying again" in app.main.shown_metrics[2], "a retry announced"
            )
            assert app.session is not None
            runbook = app.session.runbook
            assert runbook.metrics is None and "127.0.0.1" in runbook.metrics_why
            await asyncio.to_thread(server.start)
            await asyncio.to_thread(server.wait_for, P95)
            await wait_until(pilot, lambda: p95_shown(app), "the figures, reached", polls=1200)
            assert runbook.metrics is not None and runbook.metrics_why == ""
            assert runbook.metrics_source() is runbook.metrics  # what steps 3-6 and the gate use
    finally:
        server.stop()


async def test_at_80x24_the_checks_reach_a_prometheus_the_pane_does_not_poll(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    """At 80x24 the metrics pane is a tab, and its poll pauses while another tab is shown:
    the checks that need metrics (steps 3, 4, 6 and the gate) try Prometheus again
    themselves, and the metrics tab shows the figures once opened."""
    server, app = app_before_its_prometheus(shared_sim, tmp_path)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: app.session is not None, "the session opened")
            assert app.session is not None and app.main.pane == "step"
            runbook = app.session.runbook
            await asyncio.to_thread(server.start)
            await asyncio.to_thread(server.wait_for, P95)
            await wait_until(pilot, lambda: runbook.metrics is not None, "reached", polls=1200)
            assert runbook.metrics_why == ""
            assert app.main.pane == "step"  # no metrics poll ran: the checks reached it
            await pilot.press("]")
            assert app.main.pane == "metrics"
            await wait_until(pilot, lambda: p95_shown(app), "the figures in the metrics tab")
    finally:
        server.stop()


def test_a_session_that_does_not_open_stops_reading_the_first_reading_again(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    """The first reading without figures is read again only for a session that will take
    it: when the cluster refuses the session (a Deployment not there), it stops, instead
    of querying Prometheus every scrape for ten minutes behind the error."""
    proxy = SwitchableProxy(shared_sim.metrics_url)
    proxy.up = False  # Prometheus has no figure: its first reading is read again
    server = PrometheusServer(require_tool("prometheus"), tmp_path / "prom", {"vllm": proxy.url})
    kubeconfig = shared_sim.write_kubeconfig(tmp_path / "kubeconfig")
    flags = ["--kubeconfig", str(kubeconfig), "-n", "inference", "--deployment", "not-there"]

    def reading_again() -> bool:
        return any(t.name == "skewmit-metrics-first" for t in threading.enumerate())

    try:
        server.start()
        opener = app_opener(app_args([*flags, "--prometheus", server.url, "--read-only"]))
        with pytest.raises(SkewmitError, match="not-there"):
            opener.open()
        deadline = time.monotonic() + 30
        while reading_again() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not reading_again(), "the first reading is still read again"
    finally:
        server.stop()
        proxy.stop()
