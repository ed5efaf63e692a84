"""The launchers (issue 12: the first frame before any network call): bad input is refused
with one line and exit 2 before the app starts; the header is filled from local facts while
the session (the cluster, the demo's simulator) opens later, in the app's worker; whatever
was opened is closed after the app exits, also when the operator quits while it was still
opening; a failed opening is said once the app has gone, with exit 2. And the demo leaves no
kubeconfig folder behind in /tmp."""

from __future__ import annotations

import argparse
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

import tui.launchers
from services.errors import ConfigError, UnreachableError
from tui.cli import build_parser, main
from tui.session import Session, SessionOpener

SCRAPER = "skewmit-sim-metrics"


def kubeconfig(path: Path, context: str = "prod-east", server: str = "https://127.0.0.1:9") -> Path:
    """A kubeconfig at a server nobody listens on (port 9, discard)."""
    path.write_text(
        yaml.safe_dump(
            {
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "oncall", "user": {"token": "t"}}],
                "contexts": [
                    {
                        "name": context,
                        "context": {"cluster": "c", "user": "oncall", "namespace": "serving"},
                    }
                ],
                "current-context": context,
            }
        )
    )
    return path


@pytest.fixture
def no_app(monkeypatch: pytest.MonkeyPatch) -> list[SessionOpener]:
    """The openers the app would have been started on (it is not: it would take the
    terminal)."""
    started: list[SessionOpener] = []

    def start_app(app_class: Any, opener: SessionOpener) -> int:
        started.append(opener)
        return 0

    monkeypatch.setattr(tui.launchers, "start_app", start_app)
    return started


def bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    good = str(kubeconfig(tmp_path / "kubeconfig"))
    bad_config = tmp_path / "skewmit.yaml"
    bad_config.write_text("prometheus:\n  rate_window: soon\n")
    target = ["--deployment", "llm-serve"]
    return {
        "missing kubeconfig": (
            [*target, "--kubeconfig", str(tmp_path / "none")],
            "skewmit: kubeconfig " + str(tmp_path / "none") + " does not exist",
        ),
        "unknown context": (
            [*target, "--kubeconfig", good, "--context", "nope"],
            "skewmit: context 'nope' is not in the kubeconfig; known contexts: prod-east",
        ),
        "invalid config": (
            [*target, "--kubeconfig", good, "--config", str(bad_config)],
            f"skewmit: {bad_config}: config: prometheus.rate_window: 'soon' is not a duration",
        ),
        "speed": (["demo", "--speed", "0"], "skewmit demo: --speed 0.0 is out of range"),
        "speed too high": (["demo", "--speed", "5000"], "skewmit demo: --speed 5000.0 is out"),
        "scenario": (["demo", "--scenario", "no-such"], "skewmit demo: unknown scenario 'no-such'"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing kubeconfig",
        "unknown context",
        "invalid config",
        "speed",
        "speed too high",
        "scenario",
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_the_app_starts(
    case: str, tmp_path: Path, no_app: list[SessionOpener], capsys: pytest.CaptureFixture[str]
) -> None:
    argv, said = bad_inputs(tmp_path)[case]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(said), err
    assert err.count("\n") == 1, err
    assert no_app == []


def test_an_unwritable_state_directory_is_refused_before_the_app_starts(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    no_app: list[SessionOpener],
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory would go")
    monkeypatch.setenv("XDG_STATE_HOME", str(blocker))
    argv = ["--kubeconfig", str(kubeconfig(tmp_path / "kc")), "--deployment", "llm-serve"]
    assert main(argv) == 2
    assert "writable directory, or pass --read-only" in capsys.readouterr().err
    assert no_app == []
    assert main([*argv, "--read-only"]) == 0  # gets as far as the app: no state needed
    assert len(no_app) == 1


def app_args(argv: list[str]) -> argparse.Namespace:
    return build_parser(argv).parse_args(argv)


def test_the_header_is_drawn_from_the_kubeconfig_before_any_connection(tmp_path: Path) -> None:
    config = tmp_path / "skewmit.yaml"
    config.write_text("production_contexts: [blue]\n")
    path = str(kubeconfig(tmp_path / "kc", context="blue"))
    opener = tui.launchers.app_opener(
        app_args(["--kubeconfig", path, "--deployment", "llm-serve", "--config", str(config)])
    )
    header = opener.header
    assert (header.context, header.server, header.namespace, header.deployment) == (
        "blue",
        "https://127.0.0.1:9",
        "serving",
        "llm-serve",
    )
    assert header.user == "oncall" and header.production and not header.read_only
    assert "127.0.0.1:9" in opener.waiting
    # Only opening reaches for the cluster, and says why it could not.
    with pytest.raises(UnreachableError, match="cannot reach the API server"):
        opener.open()


def fake_app(
    run: Callable[[SessionOpener], int],
) -> Callable[[Any, SessionOpener], int]:
    """Stands in for start_app: `run` does what the app does with the opener."""

    def start_app(app_class: Any, opener: SessionOpener) -> int:
        return run(opener)

    return start_app


def in_worker(opener: SessionOpener, seen: list[Any]) -> threading.Thread:
    """What the app's worker does: open, and keep the answer or the error."""

    def work() -> None:
        try:
            seen.append(opener.open())
        except Exception as exc:
            seen.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def listening(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=2):
            return True
    except OSError:
        return False


def eventually(condition: Callable[[], bool], timeout: float = 120.0) -> bool:
    """Wait for a condition (never for a fixed time); False when it never held."""
    done = threading.Event()
    while not condition():
        if done.wait(0.05) or timeout <= 0:
            return False
        timeout -= 0.05
    return True


def scraping() -> bool:
    return any(t.name == SCRAPER and t.is_alive() for t in threading.enumerate())


@pytest.fixture
def demo_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path


def test_a_failed_opening_is_said_after_the_app_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[Any] = []

    def app(opener: SessionOpener) -> int:
        in_worker(opener, seen).join()
        return 0  # the app exits on its own once opening failed

    monkeypatch.setattr(tui.launchers, "start_app", fake_app(app))
    argv = ["--kubeconfig", str(kubeconfig(tmp_path / "kc")), "--deployment", "llm-serve"]
    assert main(argv) == 2
    assert isinstance(seen[0], UnreachableError)
    err = capsys.readouterr().err
    assert err.startswith("skewmit: cannot reach the API server https://127.0.0.1:9"), err


def test_the_demo_is_stopped_after_the_app_exits(
    demo_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []

    def app(opener: SessionOpener) -> int:
        assert opener.header.namespace == "inference" and opener.header.deployment == "llm-serve"
        assert opener.header.clock_note == "simulated clock x30"
        in_worker(opener, seen).join()
        session = seen[0]
        assert isinstance(session, Session), session
        assert listening(session.simulator.url)
        assert eventually(scraping)  # its scraper starts once the history is in
        return 0

    monkeypatch.setattr(tui.launchers, "start_app", fake_app(app))
    evidence = ["--evidence-dir", str(demo_state / "evidence")]
    assert main(["demo", "--speed", "30", *evidence]) == 0
    assert not listening(seen[0].simulator.url)
    assert not scraping()


def test_quitting_while_the_demo_opens_still_stops_it(
    demo_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    began = threading.Event()

    def app(opener: SessionOpener) -> int:
        original = opener.open

        def slow_open() -> Session:
            began.set()
            return original()

        in_worker(SessionOpener(opener.header, slow_open), seen)
        began.wait(10)
        return 0  # the operator pressed q before the session arrived

    monkeypatch.setattr(tui.launchers, "start_app", fake_app(app))
    evidence = ["--evidence-dir", str(demo_state / "evidence")]
    assert main(["demo", "--speed", "30", *evidence]) == 0
    assert isinstance(seen[0], Session)
    assert not listening(seen[0].simulator.url)
    assert not scraping()


def demo_folders(where: Path) -> list[str]:
    return sorted(p.name for p in where.iterdir() if p.name.startswith("skewmit-demo-"))


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory the demo uses, with someone else's demo folder in it."""
    where = tmp_path / "tmp"
    (where / "skewmit-demo-someone-else").mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(where))
    return where


def test_the_demo_leaves_no_kubeconfig_folder(private_tmp: Path, tmp_path: Path) -> None:
    from tui.demo import open_demo

    runbook, sim = open_demo("skew-incident", 30.0, journal_root=tmp_path / "state")
    try:
        assert runbook.cluster.get("Deployment", "inference", "llm-serve")  # it did connect
        assert demo_folders(private_tmp) == ["skewmit-demo-someone-else"]
    finally:
        runbook.metrics.stop()
        sim.stop()


def test_a_demo_that_fails_to_open_leaves_no_kubeconfig_folder(
    private_tmp: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tui.demo

    def refuse(*args: object, **kwargs: object) -> Any:
        raise ConfigError("refused by the test")

    monkeypatch.setattr(tui.demo, "KubeCluster", refuse)
    with pytest.raises(ConfigError, match="refused by the test"):
        tui.demo.open_demo("skew-incident", 30.0, journal_root=tmp_path / "state")
    assert demo_folders(private_tmp) == ["skewmit-demo-someone-else"]


def real_app(seen: list[Any], *, wait_for_session: bool) -> Callable[[Any, SessionOpener], int]:
    """start_app with the real app, headless: it opens the session in its worker; the pilot
    quits once the session is open, or at once (while it is still opening)."""
    from textual.pilot import Pilot

    def start_app(app_class: Any, opener: SessionOpener) -> int:
        app = app_class(opener)

        async def pilot(driver: Pilot[Any]) -> None:
            while wait_for_session and app.session is None and not app.open_error:
                await driver.pause(0.05)
            seen.append(app.session)
            if app.session is not None:
                # Under the running app the day-old history still arrives (its render runs
                # in a process of its own), so the baseline is not refused as uncovered.
                source = app.session.runbook.metrics
                while not source.backfilled.is_set():
                    await driver.pause(0.1)
                seen.append(app.session.runbook.baseline())
            await driver.press("q")

        return int(app.run(headless=True, size=(120, 40), auto_pilot=pilot) or 0)

    return start_app


@pytest.mark.parametrize("wait_for_session", [True, False], ids=["open", "still-opening"])
def test_the_real_app_leaves_no_demo_running_when_it_quits(
    wait_for_session: bool, demo_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {t.name for t in threading.enumerate()}
    seen: list[Any] = []
    monkeypatch.setattr(
        tui.launchers, "start_app", real_app(seen, wait_for_session=wait_for_session)
    )
    evidence = ["--evidence-dir", str(demo_state / "evidence")]
    assert main(["demo", "--speed", "30", *evidence]) == 0
    if wait_for_session:
        assert isinstance(seen[0], Session)
        assert not listening(seen[0].simulator.url)
        assert seen[1].judged_coverage >= 0.9, seen[1]
    assert not scraping()
    left = {t.name for t in threading.enumerate() if t.is_alive()} - before
    assert "skewmit-simulator" not in left, left


def test_a_demo_that_fails_to_open_says_so_as_the_demo(
    demo_state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real app prints why opening failed once the terminal is back; in the demo it
    speaks as the demo's launcher does for bad input ("skewmit demo: ..."), once."""
    from services.simulator.scenario import ScenarioError

    def refuse(*args: object, **kwargs: object) -> Session:
        raise ScenarioError("the scenario's fleet could not be built (test)")

    from tui.app import SkewmitApp

    terminal_run = SkewmitApp.run

    def headless(app: SkewmitApp, *args: Any, **kwargs: Any) -> int | None:
        return terminal_run(app, headless=True, size=(80, 24))

    monkeypatch.setattr(tui.launchers, "open_demo_session", refuse)
    monkeypatch.setattr(SkewmitApp, "run", headless)
    evidence = ["--evidence-dir", str(demo_state / "evidence")]
    assert main(["demo", "--speed", "30", *evidence]) == 2
    err = capsys.readouterr().err
    assert err == "skewmit demo: the scenario's fleet could not be built (test)\n", err


def test_without_prometheus_the_metrics_pane_says_why_at_once() -> None:
    """No --prometheus and no prometheus.url: the opening reaches for nothing (no thread, no
    Prometheus client loaded on the way to the first findings) and the pane says how to get
    metrics."""
    from services.config import MetricsSettings

    before = {t.name for t in threading.enumerate()}
    opened = tui.launchers.open_metrics(MetricsSettings(), "inference", "llm-serve", None)
    assert opened.done()
    source, why, feed = opened.result()
    assert source is None and feed is None
    assert why == "no metrics source: pass --prometheus URL or set prometheus.url"
    assert "skewmit-metrics-open" not in {t.name for t in threading.enumerate()} - before


class HungPrometheus:
    """A server that takes connections and never answers, as a Prometheus stuck in an outage
    does; leaving the `with` block drops them (the client's read then fails at once)."""

    def __enter__(self) -> HungPrometheus:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._hold, daemon=True)
        self.thread.start()
        return self

    def _hold(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:  # closed on exit
                return
            self.held.append(connection)

    def __exit__(self, *exc: object) -> None:
        # shutdown, not only close: a socket closed while accept() waits on it keeps
        # listening until that accept returns (a retry would be taken, and hang).
        self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        for connection in self.held:
            connection.close()
        self.thread.join(5)


def test_a_prometheus_that_does_not_answer_holds_up_only_what_needs_metrics(
    shared_sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session used to wait for Prometheus' engine detection before any check ran: 1.5 s
    on `large` (bench/RESULTS.md), a hung Prometheus' whole timeout (10 s), during which the
    checklist and the inspector said "checking". Now the cluster's checks answer while
    Prometheus does not, and the metrics pane and the validation gate say why once it fails."""
    from services.models import Step

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = str(shared_sim.write_kubeconfig(tmp_path / "kubeconfig"))
    with HungPrometheus() as prometheus:
        argv = ["--kubeconfig", path, "-n", "inference", "--deployment", "llm-serve"]
        opener = tui.launchers.app_opener(app_args([*argv, "--prometheus", prometheus.url]))
        session = opener.open()
        runbook = session.runbook
        assert runbook.metrics_opening is not None, "opened before Prometheus answered"
        rollback, pin, gpus = (runbook.check(s) for s in (Step.ROLLBACK, Step.PIN, Step.HARDWARE))
        assert rollback.findings and pin.findings, "the skew incident, found from the cluster"
        assert gpus.findings, "the pods on the wrong GPU class, from the nodes"
        assert runbook.metrics_opening is not None, "and still no answer from Prometheus"
        assert eventually(lambda: len(prometheus.held) >= 1), "the opening is waiting on it"
    # The hang ends with the connections dropped: what needed metrics says why.
    with pytest.raises(UnreachableError, match=f"Prometheus.*{prometheus.url}"):
        assert session.metrics_sampler is not None
        session.metrics_sampler()
    assert runbook.metrics_source() is None
    verdict = runbook.check(Step.VALIDATE)
    said = [f.message for f in verdict.findings if "no metrics source" in f.message]
    assert said and prometheus.url in said[0], verdict.findings  # not "pass --prometheus"


def refused_url() -> str:
    """A loopback port nothing listens on: connections are refused at once."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_a_prometheus_that_refuses_is_named_by_step_6_and_the_evidence_bundle(
    shared_sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--prometheus given, the port refuses: the metrics pane said "cannot reach Prometheus
    at URL (Connection refused)" while step 6 and the evidence bundle told the operator to
    "pass --prometheus", which they had. All three now name the URL that failed."""
    from services.models import Step

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = str(shared_sim.write_kubeconfig(tmp_path / "kubeconfig"))
    url = refused_url()
    argv = ["--kubeconfig", path, "-n", "inference", "--deployment", "llm-serve"]
    session = tui.launchers.app_opener(app_args([*argv, "--prometheus", url])).open()
    runbook = session.runbook
    assert runbook.metrics_source() is None
    validate = runbook.check(Step.VALIDATE)
    said = [f.message for f in validate.findings if "no metrics source" in f.message]
    assert said and "cannot reach Prometheus" in said[0] and url in said[0], validate.findings
    assert "pass --prometheus" not in said[0]
    bundle = runbook.capture_evidence(tmp_path / "evidence")
    assert any(what == "the metrics source" and url in why for what, why in bundle.failures)
    metrics = next(c for c in bundle.verdict.checks if c.name == "metrics")
    assert url in metrics.message and "pass --prometheus" not in metrics.message
