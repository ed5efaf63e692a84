"""Starting the app: `run_app` (a real cluster) and `run_demo` (the simulator as a child
process started before the app imports Textual, tui.demo_child; in-process with
SKEWMIT_DEMO_CHILD=0, as drills and tests open it), and the demo session the drill, the
screenshots and the tests open and close. Their flags live in tui.cli, so `skewmit --help`
imports none of this.

Both launchers check everything local first (flags, the kubeconfig and its context, the
config file, the scenario), so bad input prints one line and exits 2 before any screen is
drawn. They then hand the app a SessionOpener: the header from those local facts, and the
blocking part (the cluster and Prometheus; the demo's simulator) that the app runs in a
worker after its first frame (issue 12). After the app exits they close what was opened and,
when opening failed, print why and exit 2.
"""

from __future__ import annotations

import argparse
import gc
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.config import MetricsSettings
    from services.models import MetricSeries
    from tui.metrics_feed import MetricsFeed
    from tui.session import Session, SessionOpener

EXIT_ERROR = 2
# After the app exits, how long to wait for an opening still under way before leaving it to
# close itself when it finishes (the process exits meanwhile: the demo's threads die with it).
OPEN_WAIT_S = 10.0
NO_METRICS_SOURCE = "no metrics source: pass --prometheus URL or set prometheus.url"
# A configured Prometheus that could not be reached is tried again this often (Reacher), from
# the metrics pane's poll or a check, both workers: a refused connection answers at once, one
# that hangs takes the configured timeout.
REACH_AGAIN_S = 15.0


def _metrics_source(
    settings: MetricsSettings, namespace: str, deployment: str, preset: str | None
) -> tuple[Any, str]:
    """The configured Prometheus source (settings.url is set): (source or None, why not)."""
    from services.errors import UnreachableError
    from services.metrics.prometheus import from_settings

    try:
        return from_settings(settings, namespace, deployment, preset), ""
    except UnreachableError as exc:
        return None, str(exc)


MetricsOpened = tuple[Any, str, "MetricsFeed | None"]  # source or None, why not, its feed


def source_of(opened: Future[MetricsOpened]) -> Future[Any]:
    """The source (or None) of `opened`, as a future of its own: what Runbook.metrics_opening
    takes. It raises what `opened` raised."""
    source: Future[Any] = Future()

    def settle(done: Future[MetricsOpened]) -> None:
        error = done.exception()
        if error is not None:
            source.set_exception(error)
        else:
            source.set_result(done.result()[0])

    opened.add_done_callback(settle)
    return source


def say_why_not(opened: Future[MetricsOpened], runbook: Any) -> None:
    """Once `opened` has settled without a source, `runbook.metrics_why` says why (Prometheus
    refused the connection...). Called before `source_of(opened)`: a future calls back in
    order, so a check woken by the source's future finds the reason already set."""

    def settle(done: Future[MetricsOpened]) -> None:
        if done.exception() is None:
            source, why, _feed = done.result()
            if source is None and why:
                runbook.metrics_why = why

    opened.add_done_callback(settle)


def close_feed(opened: Future[MetricsOpened]) -> None:
    """Stop the feed `opened` started, if it started one."""
    if opened.exception() is None:
        _source, _why, feed = opened.result()
        if feed is not None:
            feed.close()


class Reacher:
    """Tries a configured Prometheus that could not be reached at the opening again, at most
    every REACH_AGAIN_S, for whichever asks first: the metrics pane's poll (PendingFeed) or a
    check that needs metrics (Runbook.metrics_source). One caller tries at a time; the others
    do not wait for it. Once Prometheus answers, the runbook has the source. A Prometheus
    restarting as skewmit started left the session without metrics until it was restarted."""

    def __init__(self, reach: Callable[[], tuple[Any, str]], runbook: Any) -> None:
        self._reach = reach
        self._runbook = runbook
        self._tried_at = time.monotonic()  # the opening has just tried
        self._lock = threading.Lock()
        self.why = ""  # the last try's reason ("" before one)

    def __call__(self) -> Any:
        """The source once reached, else None."""
        if self._runbook.metrics is not None or not self._lock.acquire(blocking=False):
            return self._runbook.metrics
        try:
            if time.monotonic() - self._tried_at < REACH_AGAIN_S:
                return None
            source, why = self._reach()
            self._tried_at = time.monotonic()  # after a try that hung its whole timeout too
            if source is None:
                self.why = why
                return None
            self._runbook.metrics_reached(source)
            return source
        finally:
            self._lock.release()


class PendingFeed:
    """The metrics pane's feed while open_metrics is still reaching Prometheus, or after it
    could not: a call waits for the opening (the app calls it in a worker), then is the
    opened feed's, its panes compared with `baseline`. Without a source it raises
    UnreachableError with why, as the pane says it; with a `reacher` it says it tries again,
    and is a new feed's once Prometheus answers. Raises what the opening raised
    (ConfigError)."""

    def __init__(
        self,
        opened: Future[MetricsOpened],
        baseline: Callable[[], Any],
        reacher: Reacher | None = None,
    ) -> None:
        self.opened = opened
        self.baseline = baseline
        self.reacher = reacher
        self._feed: MetricsFeed | None = None

    @property
    def scrape_interval_s(self) -> float | None:
        """The opened feed's (None until it opened: the charts keep their default pace)."""
        return self._feed.scrape_interval_s if self._feed is not None else None

    def __call__(self) -> list[MetricSeries]:
        from services.errors import UnreachableError
        from tui.metrics_feed import MetricsFeed

        if self._feed is None:
            _source, why, feed = self.opened.result()
            if feed is None:
                if self.reacher is None:
                    raise UnreachableError(why or NO_METRICS_SOURCE)
                source = self.reacher()
                if source is None:
                    why = self.reacher.why or why
                    raise UnreachableError(f"{why}; trying again every {REACH_AGAIN_S:.0f} s")
                feed = MetricsFeed(source)
            feed.baseline = self.baseline
            self._feed = feed
        return self._feed()


def open_metrics(
    settings: MetricsSettings,
    namespace: str,
    deployment: str,
    preset: str | None,
    shown: Callable[[list[MetricSeries]], object] | None = None,
) -> Future[MetricsOpened]:
    """Reach Prometheus on a thread of its own and start the feed's first reading, handed to
    `shown` when it comes, while the cluster session opens on the caller's thread: the pane
    needs nothing from the cluster, and no longer waits for the Kubernetes client's import
    and the cluster's first answers (issue 12). The future raises what opening the source
    raised (ConfigError)."""
    opened: Future[MetricsOpened] = Future()
    if not settings.url:
        # No source: nothing to reach, and no Prometheus client to import (40-60 ms of the
        # opening's CPU, on the way to the first findings).
        opened.set_result((None, NO_METRICS_SOURCE, None))
        return opened
    # Everything the thread needs is imported here, on the caller's thread, before it imports
    # the Kubernetes client: both load requests and urllib3, and two threads importing the
    # same modules at once gain nothing under the GIL and contend for their import locks.
    # The thread then only waits on Prometheus while the caller imports and connects.
    import netrc  # noqa: F401  (requests reads ~/.netrc at each request)

    import prometheus_api_client.prometheus_connect  # noqa: F401  (PrometheusSource's client)

    import services.metrics.prometheus
    import services.metrics.series  # noqa: F401
    from tui.metrics_feed import MetricsFeed

    def run() -> None:
        try:
            source, why = _metrics_source(settings, namespace, deployment, preset)
            feed = MetricsFeed(source).read_first_now(shown) if source is not None else None
        except BaseException as exc:  # raised again where the session is opened
            opened.set_exception(exc)
            return
        opened.set_result((source, why, feed))

    threading.Thread(target=run, name="skewmit-metrics-open", daemon=True).start()
    return opened


def app_opener(args: argparse.Namespace) -> SessionOpener:
    """The real-cluster session to open, after the local checks: the flags' names, the
    kubeconfig and its context, the config file (its metrics settings and production
    contexts), the state directory unless --read-only. Nothing here touches the network.
    Raises ConfigError naming what to fix."""
    from services.config import metrics_settings
    from services.session import (
        check_writable,
        is_production,
        load_config,
        local_target,
        open_session,
    )
    from tui.cli import session_options

    options = session_options(args)
    local = local_target(options)
    config = load_config(options.config)
    settings = metrics_settings(config, url=args.prometheus, preset=args.preset)
    if not options.read_only:
        check_writable(options.journal_root)
    production = is_production(local.context, config)

    from tui.messages import MetricsSampled
    from tui.opening import opening_poster
    from tui.session import Session, SessionOpener, opened_at_of
    from widgets.header_bar import HeaderState

    def open_() -> Session:
        # The first readings go to the app before the session is open (tui.opening).
        post = opening_poster()
        shown = (lambda series: post(MetricsSampled(series))) if post is not None else None
        metrics = open_metrics(settings, local.namespace, local.deployment, args.preset, shown)
        try:
            runbook = open_session(options, local=local, config=config)
        except BaseException:
            metrics.add_done_callback(close_feed)  # nothing will take its first reading
            raise
        if settings.url:  # step 6 and the bundle say why a configured Prometheus is missing
            say_why_not(metrics, runbook)
        sampler: Callable[[], list[MetricSeries]] | None
        # A configured Prometheus not reached at the opening is tried again while watching.
        reacher = None
        if settings.url:
            target = (settings, local.namespace, local.deployment, args.preset)
            reacher = Reacher(partial(_metrics_source, *target), runbook)
            runbook.metrics_reach = reacher
        if metrics.done() and (metrics.result()[2] is not None or reacher is None):
            source, why, feed = metrics.result()
            runbook.metrics = source
            if feed is not None:
                # The panes compare with the incident's frozen baseline, as the gate does; it
                # is asked for on the feed's second call, once the session is open.
                feed.baseline = runbook.baseline
            sampler, now = feed, (source.now if source is not None else None)
        elif metrics.done():
            _source, why, _feed = metrics.result()
            sampler, now = PendingFeed(metrics, runbook.baseline, reacher), None
        else:
            # Prometheus has not answered yet (its detection took 1.5 s on `large`; one that
            # hangs takes its whole timeout): the session opens without waiting, and what
            # needs metrics (the metrics pane, steps 3-6) waits for it in its own worker while
            # the cluster's panes fill (issue 12). Prometheus' clock is the wall clock.
            runbook.metrics_opening = source_of(metrics)
            sampler, now = PendingFeed(metrics, runbook.baseline, reacher), None
            why = f"waiting for Prometheus at {settings.url}…"
        journal = runbook.journal
        return Session(
            runbook,
            production=production,
            evidence_dir=Path(args.evidence_dir),
            opened_at=opened_at_of(journal.meta()) if journal is not None else None,
            metrics_sampler=sampler,
            metrics_now=now,
            metrics_note=why,
            low_bandwidth=bool(getattr(args, "low_bandwidth", False)),
        )

    header = HeaderState(
        context=local.context,
        server=local.server,
        namespace=local.namespace,
        deployment=local.deployment,
        user=local.user,
        read_only=options.read_only,
        production=production,
    )
    return SessionOpener(header, open_, waiting=f"connecting to {local.server}…")


def run_app(args: argparse.Namespace) -> int:
    """`skewmit --deployment NAME ...`: the app against a real cluster. Exit 2 when the
    session cannot be opened (the message says what to fix)."""
    from services.errors import SkewmitError

    with start_up_pause():  # app_opener imports Textual and most of the app
        try:
            opener = app_opener(args)
        except SkewmitError as exc:
            print(f"skewmit: {exc}", file=sys.stderr)
            return EXIT_ERROR
        return run_opener(opener)


def open_demo_session(
    scenario: str,
    speed: float,
    *,
    read_only: bool = False,
    evidence_dir: Path = Path("evidence"),
    low_bandwidth: bool = False,
    first_checks: bool = True,
    child: Any = None,
    world: Any = None,
) -> Session:
    """The simulator in-process and a session on it (`first_checks`: see tui.demo's
    open_demo); with `child` (a started tui.demo_child.SimChild on `world`, the scenario
    loaded) the session on that child instead. Raises ScenarioError, SkewmitError."""
    from tui.demo import open_demo, open_demo_child
    from tui.metrics_feed import MetricsFeed
    from tui.session import Intervals, Session, opened_at_of

    simulator: Any
    if child is not None:
        runbook = open_demo_child(child, world, read_only=read_only, first_checks=first_checks)
        simulator = child
    else:
        runbook, simulator = open_demo(
            scenario, speed, read_only=read_only, first_checks=first_checks
        )
    source = runbook.metrics
    journal = runbook.journal
    return Session(
        runbook,
        clock_note=demo_clock_note(speed),
        evidence_dir=evidence_dir,
        intervals=Intervals(checks=5.0, validate=2.0, rollout=5.0, rollout_active=0.5, metrics=1.0),
        opened_at=opened_at_of(journal.meta()) if journal is not None else None,
        simulator=simulator,
        metrics_sampler=(
            MetricsFeed(source, baseline=runbook.baseline) if source is not None else None
        ),
        metrics_now=source.now if source is not None else None,
        low_bandwidth=low_bandwidth,
    )


def demo_clock_note(speed: float) -> str:
    """What the header says of the demo's clock, before and after it opens."""
    return f"simulated clock x{speed:g}"


def close_session(session: Session) -> None:
    """Stop what the session started (the demo's simulator and metrics scraper)."""
    source = session.runbook.metrics
    if source is not None and hasattr(source, "stop"):
        source.stop()
    if session.simulator is not None:
        session.simulator.stop()


def demo_opener(args: argparse.Namespace, children: list[Any] | None = None) -> SessionOpener:
    """The demo session to open, after the local checks (--speed, the scenario, which is
    read here for the header's namespace and Deployment). With `children` (the launcher
    stops what it finds there once the app has exited) the simulator starts here, as a child
    process (tui.demo_child; SKEWMIT_DEMO_CHILD=0: not), else in-process in `open`.
    Raises ConfigError, ScenarioError, SkewmitError."""
    from services.errors import ConfigError
    from services.simulator.auth import ADMIN, VIEWER
    from services.simulator.kubeconfig import ADMIN_CONTEXT, VIEWER_CONTEXT
    from services.simulator.scenario import load

    if not 0 < args.speed <= 1000:
        raise ConfigError(f"--speed {args.speed} is out of range; use (0, 1000]")
    world = load(args.scenario)
    read_only = bool(args.read_only)
    child = None
    if children is not None:
        from tui import demo_child

        if demo_child.wanted():
            # Before the app imports Textual: the simulator's imports, world and history
            # are built on the other core while the app draws its first frame (issue 12).
            child = demo_child.SimChild(args.scenario, args.speed).start()
            children.append(child)

    from tui.session import SessionOpener
    from widgets.header_bar import HeaderState

    def open_() -> Session:
        return open_demo_session(
            args.scenario,
            args.speed,
            read_only=read_only,
            evidence_dir=Path(args.evidence_dir),
            low_bandwidth=bool(getattr(args, "low_bandwidth", False)),
            # The first step with findings opens the incident here, before the app's polls
            # start the baseline's capture: opening the journal waits for that capture
            # (services.runbook), and so would the first findings (bench/RESULTS.md).
            first_checks=True,
            child=child,
            world=world,
        )

    header = HeaderState(
        context=VIEWER_CONTEXT if read_only else ADMIN_CONTEXT,
        namespace=world.namespace,
        deployment=world.deployment,
        user=(VIEWER if read_only else ADMIN).name,
        read_only=read_only,
        clock_note=demo_clock_note(args.speed),
    )
    return SessionOpener(
        header, open_, waiting="starting the simulator…", close=close_session, prog="skewmit demo"
    )


def run_demo(args: argparse.Namespace) -> int:
    """`skewmit demo [--scenario NAME]`: the simulator as a child process (in-process with
    SKEWMIT_DEMO_CHILD=0) and the app on it; the child is stopped once the app has exited."""
    from services.errors import SkewmitError
    from services.simulator.scenario import ScenarioError

    children: list[Any] = []
    with start_up_pause():  # demo_opener imports Textual and most of the app
        try:
            opener = demo_opener(args, children)
        except (ScenarioError, SkewmitError) as exc:
            print(f"skewmit demo: {exc}", file=sys.stderr)
            return EXIT_ERROR
        try:
            return run_opener(opener)
        finally:
            for child in children:  # also when the app never opened the session
                child.stop()


class Opening:
    """The opener's `open` as the app's worker runs it, remembered for the launcher: the
    session it opened (closed after the app exits, or at once when it arrives after the app
    has gone) and the error that stopped it (printed after the app exits)."""

    def __init__(self, open_: Callable[[], Session], close: Callable[[Session], None]) -> None:
        self._open = open_
        self._close = close
        self._lock = threading.Lock()
        self.started = threading.Event()
        self.done = threading.Event()
        self.session: Session | None = None
        self.error: BaseException | None = None
        self._closed = False
        self._abandoned = False
        self.said = False  # the app told the operator why opening failed

    def __call__(self) -> Session:
        self.started.set()
        try:
            session = self._open()
        except BaseException as exc:
            self.error = exc
            self.done.set()
            raise
        with self._lock:
            self.session = session
            abandoned = self._abandoned
        self.done.set()
        if abandoned:
            self.close()
        return session

    def close(self) -> None:
        """Close the session once, if one was opened; one still opening closes itself when
        it arrives. Raises nothing the session's own close does not."""
        with self._lock:
            self._abandoned = True
            session, self.session = self.session, None
            if session is None or self._closed:
                return
            self._closed = True
        self._close(session)

    def message(self) -> str:
        """Why opening failed, as the operator reads it ("" when it did not fail)."""
        from services.errors import SkewmitError
        from services.simulator.scenario import ScenarioError

        exc = self.error
        if exc is None:
            return ""
        if isinstance(exc, SkewmitError | ScenarioError):
            return str(exc)
        return f"could not open the session: {type(exc).__name__}: {exc}"


_paused = 0  # start_up_pause's depth


@contextmanager
def start_up_pause() -> Iterator[None]:
    """No cyclic collection while Textual and the app import and the app starts: start_app
    freezes what they made (tui.heap.keep_startup_heap), and the app turns the collector on
    again once start-up is over. At the outermost exit the collector is as it was before,
    whatever the app did. The callers pause from their first import of Textual (the openers
    import it with the app's modules): with the collector on, those imports cost 80 young
    collections, ~11 ms before the first frame (issue 12)."""
    global _paused
    collecting = gc.isenabled()
    _paused += 1
    gc.disable()
    try:
        yield
    finally:
        _paused -= 1
        if not _paused:
            from tui.heap import start_up_over

            start_up_over()
            (gc.enable if collecting else gc.disable)()


def run_opener(opener: SessionOpener) -> int:
    """Run the app on `opener`; afterwards close what was opened, and say why opening failed
    (exit 2, "<opener.prog>: why") when it did."""
    from dataclasses import replace

    opening = Opening(opener.open, opener.close or close_session)
    try:
        with start_up_pause():
            from tui.app import SkewmitApp

            code = start_app(SkewmitApp, replace(opener, open=opening, close=None))
    finally:
        if opening.started.is_set():
            opening.done.wait(OPEN_WAIT_S)
        opening.close()
    if opening.error is not None:
        if not opening.said:
            print(f"{opener.prog}: {opening.message()}", file=sys.stderr)
        return EXIT_ERROR
    return code


def start_app(app_class: Any, opener: SessionOpener) -> int:
    """The app on the opener, which it opens in a worker after its first frame."""
    from tui.heap import keep_startup_heap

    app = app_class(opener)
    keep_startup_heap()
    code = int(app.run() or 0)
    if getattr(app, "open_error", "") and isinstance(opener.open, Opening):
        opener.open.said = True  # the app printed why itself as it exited
    return code
