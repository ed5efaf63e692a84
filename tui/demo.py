"""`skewmit demo`: the built-in simulator (a child process, tui.demo_child, or in-process),
and a session on it.

This is the one place (with the tests) that knows both the simulator and the services: the
demo talks to the simulator exactly as to a real cluster (the official client over HTTPS)
and reads its metrics the way a Prometheus would (scraping /metrics). Like a Prometheus that
has been running all along, it starts with the fleet's recent past (the scenario's
`metrics_history_s`) and a day-old last-known-good window rendered from the simulator's own
history, its pods named after the last-known-good ReplicaSet.

The incident opens when there is something to fix: a healthy fleet opens none (no journal
folder, no incident id) until a check finds something or the operator changes something.

Each scenario keeps one state directory, so a demo started again after a crash or kill -9
finds the incident it left open. The simulator always starts from the scenario and its seed:
when the incident had no change applied, that is the cluster the incident saw and it resumes;
when it had, a fresh simulator cannot hold those changes, so the old incident is closed as
abandoned (the reason in its journal and on screen) and a new one opens.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services import hardware, rollout
from services.clock import WALL_CLOCK, Clock
from services.errors import SkewmitError
from services.journal import Journal, state_dir
from services.journal_actions import reverted_by
from services.kube import TIMEOUT_S, KubeCluster
from services.metrics import presets
from services.metrics.baseline import BaselineSpec
from services.metrics.simsource import SimMetricsSource
from services.metrics.source import Scope
from services.models import STEP_ORDER, Step, Target
from services.runbook import Runbook
from services.simulator.clock import SimClock
from services.simulator.kubeconfig import VIEWER_CONTEXT
from services.simulator.scenario import Scenario
from services.snapshot import record_snapshot

if TYPE_CHECKING:
    # Imported where used: the simulator's server and serving model pull in aiohttp and the
    # controllers (0.5-0.9 s), which a demo whose simulator runs as a child never needs
    # before the first findings.
    from services.simulator.runner import Simulator
    from tui.demo_child import SimChild

DAY_S = 86400.0
# Simulated seconds between scrapes, as the recent history has them: the simulator's
# fleet_wiring.HISTORY_STEP_S (tests/tui/test_demo_child.py keeps them equal).
SCRAPE_S = 5.0
RATE_WINDOW_S = 300.0  # the dashboards' [5m]: a 12 rps fleet's p99 is too noisy over less
# The baseline history spans the day-old window as the demo's simulated clock moves on.
BASELINE_S = 600.0
HISTORY_BEFORE_S = BASELINE_S + RATE_WINDOW_S + 60.0
HISTORY_AFTER_S = 180.0  # slack for a day-back offset window while the demo opens
# Replicas beyond which the day-old history renders a sample of HISTORY_SAMPLE pods, its fleet
# sums scaled to the whole (services.simulator.backfill), every third scrape interval apart:
# `large`'s 1,000 pods in full were 5.24 million samples, 786 MB of text and 77 s to render.
LARGE_FLEET = 64
HISTORY_SAMPLE = 32  # fleet sums within 1% of the whole fleet's (tests/tui/test_demo_backfill.py)
# Live scrapes the demo's metrics store keeps (simulated seconds): the charts' 15 minutes,
# the stability window and an evidence bundle's lead-in with room to spare; older ones are
# forgotten so a demo left running stays the same size (the backfilled baseline is kept).
LIVE_RETENTION_S = 3 * 3600.0
# The recent past's first stage: a five-minute rate read as the demo opens, with a minute to
# spare (a read of earlier times waits for the rest: services.metrics reads by window).
RECENT_FIRST_S = RATE_WINDOW_S + 60.0
BACKFILL_WAIT_S = 120.0  # a read waits this long for the history at most, then goes on


def families_read(source: SimMetricsSource) -> tuple[str, ...]:
    """Metric families the source's preset reads: the history the demo ingests keeps only
    these (parsing every family of fifteen minutes of a fleet's pages takes seconds)."""
    preset = source.preset
    names = {m for spec in preset.queries.values() for m in spec.metrics}
    names.update(preset.freshness, preset.markers, preset.generations)
    return tuple(sorted(names))


def history_step(world: Scenario) -> float:
    """Seconds between the day-old history's samples and the demo's scrapes: the recent
    history's step, except on fleets too big to render and parse that often (`large`)."""
    return SCRAPE_S if history_pods(world) is None else 3 * SCRAPE_S


def history_pods(world: Scenario) -> int | None:
    """How many of the Deployment's pods the day-old history renders: all (None) up to
    LARGE_FLEET replicas, else a sample of HISTORY_SAMPLE whose sums stand for the fleet."""
    replicas = max((d.replicas for d in world.deployments if d.name == world.deployment), default=0)
    return None if replicas <= LARGE_FLEET else HISTORY_SAMPLE


def summed_families(source: SimMetricsSource) -> tuple[str, ...]:
    """Families the preset's queries add up over pods (counters, histograms, gauge sums): a
    sampled history scales these to the fleet; per-GPU and averaged gauges stay as read."""
    kinds = (presets.QUANTILE, presets.RATE, presets.GAUGE_SUM)
    names = {
        m for spec in source.preset.queries.values() if spec.kind in kinds for m in spec.metrics
    }
    return tuple(sorted(names))


class DemoMetricsSource(SimMetricsSource):
    """The demo's metrics, backfilled in a background thread while the app draws its first
    frame, in stages: a scrape of the present (`live`: what the inspector's DCGM models
    read), the fleet's recent past (already rendered by the simulator), its last
    minutes first (`recent`: what a rate over the last minutes and the inspector's DCGM
    models read) and the rest after (`older`: the charts' fifteen minutes), then the day-old
    last-known-good window (rendering it takes seconds). A read waits for the stages that
    cover the times it looks at: a read of now (the inspector, the metrics pane, a rate over
    the last minutes) only for the last minutes, one that reaches back into the day-old
    window (the baseline) for all, so nothing judges or draws an empty store. The scraper
    starts after the last minutes."""

    def __init__(
        self,
        *args: Any,
        history_until: float = math.inf,
        recent_from: float = -math.inf,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # Where the first stage of the recent past starts (simulated seconds): a read of
        # earlier times waits for the rest of it too.
        self.recent_from = recent_from
        # The day-old window ends here (simulated seconds): a read of later times needs only
        # the recent past. Not where the recent past starts: `large` has none (its
        # metrics_history_s is 0), and a five-minute rate read at launch would wait for a
        # day-old window that holds none of its times.
        self.history_until = history_until
        self.live = threading.Event()
        self.live_failed = False  # then the DCGM models wait for the recent past too
        self.recent = threading.Event()
        self.older = threading.Event()
        self.backfilled = threading.Event()
        self._closed = False
        self._closing = threading.Lock()
        self.backfill_error = ""  # kept: a good scrape clears last_error, not this

    def scrape(self) -> float:
        at = super().scrape()
        self.last_error = self.last_error or self.backfill_error
        return at

    def backfill_in_background(
        self,
        recent: Callable[[], None],
        old: Callable[[], None],
        older: Callable[[], None] | None = None,
        live: Callable[[], None] | None = None,
    ) -> None:
        """Run `live` (a scrape of the present, if given), `recent`, `older` (the rest of the
        recent past, if given) then `old` (the day-old window) in a thread; start scraping
        after `recent`. A failure is said (last_error) and the demo goes on."""
        stages = [(live or (lambda: None), self.live), (recent, self.recent)]
        stages += [(older or (lambda: None), self.older), (old, self.backfilled)]

        def run() -> None:
            for fill, done in stages:
                try:
                    fill()
                except Exception as exc:
                    self.backfill_error = (
                        f"the demo's metrics history could not be backfilled: {exc}"
                    )
                    self.last_error = self.backfill_error
                    self.live_failed = self.live_failed or done is self.live
                finally:
                    done.set()
                if done is self.recent:
                    with self._closing:  # a stop() meanwhile must not be followed by a scraper
                        if not self._closed:
                            self.start()

        threading.Thread(target=run, name="skewmit-demo-backfill", daemon=True).start()

    def _ready(self, since: float | None = None) -> None:
        """Wait for the history that covers `since` onwards (None: now)."""
        if since is not None and since < self.history_until:
            self.backfilled.wait(BACKFILL_WAIT_S)
        if since is not None and since < self.recent_from:
            self.older.wait(BACKFILL_WAIT_S)
        self.recent.wait(BACKFILL_WAIT_S)

    def _since(self, at: float | None, window_s: float | None = None) -> float | None:
        if at is None and window_s is None:
            return None
        return (self.clock() if at is None else at) - (window_s or self.rate_window_s)

    def stop(self) -> None:
        with self._closing:
            self._closed = True
        super().stop()

    def instant(
        self, quantity: str, *, window_s: float | None = None, at: float | None = None
    ) -> Any:
        self._ready(self._since(at, window_s or self.rate_window_s))
        return super().instant(quantity, window_s=window_s, at=at)

    def series(
        self,
        quantity: str,
        *,
        start: float,
        end: float,
        step_s: float,
        window_s: float | None = None,
    ) -> Any:
        self._ready(self._since(start, window_s))
        return super().series(quantity, start=start, end=end, step_s=step_s, window_s=window_s)

    def last_scrape(self, at: float | None = None) -> Any:
        self._ready(self._since(at))
        return super().last_scrape(at)

    def pod_freshness(self, at: float | None = None, *, gpu: bool = False) -> Any:
        self._ready(self._since(at))
        return super().pod_freshness(at, gpu=gpu)

    def present_metrics(self) -> frozenset[str]:
        self._ready()
        return super().present_metrics()

    def histogram_bounds(self, quantity: str) -> Any:
        self._ready()
        return super().histogram_bounds(quantity)

    def dcgm_models(self, namespace: str | None = None, deployment: str | None = None) -> Any:
        # The models of now: the present's scrape holds them, and step 5's verdict rows
        # need not wait for the recent past to be fetched and parsed.
        self.live.wait(BACKFILL_WAIT_S)
        if self.live_failed:
            self._ready()
        return super().dcgm_models(namespace, deployment)

    def detect(self) -> Any:
        self._ready()
        return super().detect()

    def baseline(self, window_s: float) -> Any:
        self._ready(-math.inf)
        return super().baseline(window_s)


def last_known_good(cluster: KubeCluster, namespace: str, deployment: str) -> tuple[int, str]:
    """(revision, pod-template-hash) of the revision the runbook calls last-known-good, else
    the current one; (0, "") when the history cannot be read."""
    try:
        revisions = rollout.history(cluster, namespace, deployment)
        chosen = next((r for r in revisions if r.last_known_good), None)
        chosen = chosen or next((r for r in revisions if r.current), None)
        if chosen is None:
            return 0, ""
        rs = cluster.get("ReplicaSet", namespace, chosen.replicaset)
    except SkewmitError:
        return 0, ""
    labels = rs["metadata"].get("labels") or {}
    return chosen.number, str(labels.get("pod-template-hash", ""))


def day_old_window(
    world: Scenario, source: SimMetricsSource, now: float, *, seed: int
) -> dict[str, Any]:
    """render_history's arguments for the day-old last-known-good window around a baseline
    a day before `now`, with the families `source` reads (the revision: the scenario's
    default until the caller names one). `seed`: yesterday's requests were not today's."""
    return {
        "start": now - DAY_S - HISTORY_BEFORE_S,
        "end": now - DAY_S + HISTORY_AFTER_S,
        "step_s": history_step(world),
        "seed": seed,
        "families": source.families or families_read(source),
        "sample_pods": history_pods(world),
        "summed": summed_families(source),
    }


def day_old_history(world: Scenario, window: dict[str, Any]) -> str:
    """The day-old window's OpenMetrics text (services.simulator.backfill), rendered in this
    process: the in-process demo's. A demo whose simulator is a child has the child render it
    (`POST /_sim/backfill`), which frees this process's interpreter lock for the app's first
    checks. (A render process spawned by the open itself delivered later on a loaded two-core
    machine, and multiprocessing's spawn failed under the running app: bench/RESULTS.md,
    2026-12-02 11:00.)"""
    from services.simulator.backfill import render_history

    return render_history(world, **window).text


def demo_root(scenario: str) -> Path:
    """The scenario's state directory: the same on every run, so an incident left open by a
    killed demo is found again."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(scenario).stem).strip("-") or "scenario"
    return state_dir() / "demo" / name


def outstanding_changes(journal: Journal) -> list[str]:
    """Titles of the changes the journal says are applied and not reverted (an apply-intent
    without an outcome counts: the change may have landed)."""
    entries = journal.entries()
    reverted = reverted_by(entries)  # the action log's and the gate's rule
    settled = {e.data.get("intent") for e in entries if e.type in ("applied", "apply-failed")}
    settled |= {e.data.get("intent") for e in entries if e.type == "reconciled"}
    titles = [
        str(e.data.get("title", e.data.get("action", "")))
        for e in entries
        if (e.type == "applied" and e.seq not in reverted)
        or (e.type == "apply-intent" and e.seq not in settled)
    ]
    return titles


def settle_left_open(
    root: Path, target: Target, *, read_only: bool, clock: Clock = WALL_CLOCK
) -> str:
    """What to do with an incident a previous demo run left open in `root`: "" when there is
    none, else the notice for the operator. No changes applied: it resumes (the journal
    reopens it). Changes applied: it is closed as abandoned, since the new simulator does not
    have them. Raises SkewmitError when another running demo holds it."""
    found = Journal.open_for(target, target.user, root, read_only=True, clock=clock)
    if not (found.folder / "incident.json").exists():
        return ""
    incident = found.incident_id
    changes = outstanding_changes(found)
    if not changes:
        return (
            f"resumed demo incident {incident}: no change had been applied, so the simulator "
            "started from the scenario's seed is the cluster it left"
        )
    if read_only:
        return (
            f"demo incident {incident} was left open with {len(changes)} change(s) applied to "
            "a simulator that has since stopped; shown read-only, it cannot be resumed"
        )
    journal = Journal.open_for(target, target.user, root, clock=clock)
    if not journal.owner:
        raise SkewmitError(
            f"demo incident {incident} is held by another running skewmit demo "
            f"({journal.read_only_reason()}); quit that one first"
        )
    why = (
        f"not resumed: {len(changes)} change(s) ({'; '.join(changes)}) were applied to a "
        "simulator that stopped with the previous run, and a new simulator starts without them"
    )
    journal.close(f"abandoned: {why}")
    journal.release()
    return f"demo incident {incident} {why}; it is closed as abandoned and a new one opens"


def demo_cluster(sim: Simulator, *, read_only: bool) -> KubeCluster:
    """The official client on the simulator, through a kubeconfig like any cluster's. The
    kubeconfig (it holds the simulator's tokens) lives in a private temporary folder only
    until the client has read it: the folder this call made is removed, also on failure, and
    no other."""
    folder = Path(tempfile.mkdtemp(prefix="skewmit-demo-"))
    try:
        kubeconfig = sim.write_kubeconfig(folder / "kubeconfig")
        return KubeCluster(str(kubeconfig), VIEWER_CONTEXT if read_only else None)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class DemoSimulator:
    """What opening the demo reads from its simulator, wherever that runs: in this process
    (`open_demo`) or as a child (`open_demo_child`)."""

    name: str  # the scenario as the operator named it: its state directory's name
    world: Scenario
    seed: int
    metrics_url: str
    clock: Any  # the simulator's SimClock, or one that mirrors it: time() and speed
    # The fleet's recent past (OpenMetrics text): the samples of these families in [since,
    # until) (services.simulator.runner's history_slice).
    history: Callable[[tuple[str, ...], float | None, float | None], str]
    # The day-old window's text from day_old_window's arguments (day_old_history's).
    render: Callable[[Scenario, dict[str, Any]], str]


def open_demo(
    scenario: str,
    speed: float,
    *,
    read_only: bool = False,
    journal_root: Path | None = None,
    first_checks: bool = True,
) -> tuple[Runbook, Simulator]:
    """Start the simulator in this process and open a Runbook on it (see `open_on`). Raises
    ScenarioError for an unknown scenario, SkewmitError when the simulator cannot be reached
    or another running demo holds the scenario's incident."""
    from services.simulator.runner import Simulator, history_slice

    sim = Simulator(scenario, speed=speed).start()
    try:
        cluster = demo_cluster(sim, read_only=read_only)
        assert sim.cluster is not None
        fleet = sim.cluster.fleet
        demo = DemoSimulator(
            scenario,
            sim.scenario,
            sim.seed,
            sim.metrics_url,
            sim.cluster.clock,
            lambda families, since, until: history_slice(
                fleet.history_text, families, since, until
            ),
            lambda world, window: day_old_history(world, window),
        )
        runbook = open_on(
            demo, cluster, read_only=read_only, journal_root=journal_root, first_checks=first_checks
        )
    except BaseException:
        sim.stop()
        raise
    return runbook, sim


def open_demo_child(
    child: SimChild,
    world: Scenario,
    *,
    read_only: bool = False,
    journal_root: Path | None = None,
    first_checks: bool = True,
) -> Runbook:
    """Wait for the child simulator (tui.demo_child, started by the launcher with `world`'s
    scenario) and open a Runbook on it exactly as on one in this process: its clock mirrored
    from `GET /_sim/clock`, the fleet's recent past from `GET /_sim/history`. The child is
    stopped when opening fails. Raises SkewmitError (the child did not start, cannot be
    reached, or another running demo holds the incident)."""
    try:
        child.wait_ready()
        try:
            cluster = KubeCluster(str(child.kubeconfig), VIEWER_CONTEXT if read_only else None)
            # /_sim/ is the admin's: the read-only demo reads the clock and history as admin.
            control = KubeCluster(str(child.kubeconfig), None) if read_only else cluster
        finally:
            child.remove_kubeconfig()
        demo = DemoSimulator(
            child.scenario,
            world,
            child.seed,
            child.metrics_url,
            mirror_clock(control),
            # Sliced by the child: this process parses only what it reads, the last
            # minutes first.
            lambda families, since, until: sim_reading(
                control, "history", {"families": list(families), "since": since, "until": until}
            ),
            # Rendered by the child: seconds of work off this process's interpreter lock
            # while the app's first checks run.
            lambda _, window: sim_reading(control, "backfill", window),
        )
        return open_on(
            demo, cluster, read_only=read_only, journal_root=journal_root, first_checks=first_checks
        )
    except BaseException:
        child.stop()
        raise


def mirror_clock(control: KubeCluster) -> SimClock:
    """A clock in this process that follows the simulator's (`GET /_sim/clock`: its time and
    speed), anchored at the middle of the request's round trip. Raises SkewmitError."""
    asked = time.monotonic()
    answer = control._request("GET", "/_sim/clock", what="read the simulator's clock")
    half_trip = (time.monotonic() - asked) / 2
    speed = float(answer["speed"])
    now = float(answer["now"]) + half_trip * speed
    return SimClock(speed, start=datetime.fromtimestamp(now, UTC))


def sim_reading(control: KubeCluster, name: str, payload: dict[str, Any] | None = None) -> str:
    """`/_sim/<name>`'s text (services.simulator.server's readings): GET, or POST with
    `payload`. Raises SkewmitError."""
    response = control._open(
        "GET" if payload is None else "POST",
        f"/_sim/{name}",
        body=payload,
        what=f"read the simulator's {name}",
        timeout=(TIMEOUT_S, BACKFILL_WAIT_S),
    )
    return bytes(response.read()).decode()


def read_smi_ahead(cluster: KubeCluster, namespace: str, deployment: str) -> None:
    """Step 5's nvidia-smi reads, in a thread while the demo opens (services.hardware's
    read_smi_ahead): the simulator answers the execs in its own process while this one
    checks step 1 and starts the app's polls, and the first verdict rows find the readings
    remembered. Not on a big fleet (`large`): its unpaged pod list is what the app's
    watch-fed cache is for. A failure is left for step 5's own check to say."""

    def read() -> None:
        try:
            hardware.read_smi_ahead(cluster, namespace, deployment)
        except SkewmitError:
            pass  # the check reads again and says why on its rows

    threading.Thread(target=read, name="skewmit-demo-smi", daemon=True).start()


def open_on(
    demo: DemoSimulator,
    cluster: KubeCluster,
    *,
    read_only: bool = False,
    journal_root: Path | None = None,
    first_checks: bool = True,
) -> Runbook:
    """Open a Runbook on the demo's simulator through `cluster`, resuming an incident a
    killed run of the same scenario left open when it can (`Runbook.notices` says what
    happened). With `first_checks` the steps are checked until one opens the incident, so the
    journal is open on return when the fleet has something to fix; without, the first check
    that finds something opens it (the app checks every step as it starts). Raises
    SkewmitError when the simulator cannot be reached or another running demo holds the
    scenario's incident; the caller stops the simulator."""
    source: DemoMetricsSource | None = None
    try:
        world = demo.world
        if history_pods(world) is None:
            read_smi_ahead(cluster, world.namespace, world.deployment)
        target = Target(
            cluster.context, world.namespace, world.deployment, cluster.server, cluster.whoami()
        )
        root = journal_root or demo_root(demo.name)
        # One clock: the journal, the metrics, the verdict and the bundle all on the
        # simulator's (services.clock).
        clock = Clock.following(demo.clock)
        notice = settle_left_open(root, target, read_only=read_only, clock=clock)

        def open_journal() -> Journal:
            journal = Journal.open_for(target, target.user, root, read_only=read_only, clock=clock)
            if journal.owner and [e.type for e in journal.entries()] == ["opened"]:
                # A new incident: keep the manifests from before any fix for the bundle.
                record_snapshot(journal, cluster, "before")
            return journal

        now = clock()
        # A fixed day-old range: an offset baseline would slide off the rendered history
        # as the fast clock runs on.
        baseline = BaselineSpec(mode="range", start=now - DAY_S - BASELINE_S, end=now - DAY_S)
        source = DemoMetricsSource(
            demo.metrics_url,
            Scope(world.namespace, world.deployment),
            world.engine,
            clock=clock,
            # A big fleet's page (`large`: 141 lines a pod, 0.4 s to parse) is scraped as
            # often as its day-old history is sampled: every 5 s at x12 it never caught up.
            scrape_interval_s=history_step(world),
            rate_window_s=RATE_WINDOW_S,
            baseline_spec=baseline,
            live_retention_s=LIVE_RETENTION_S,
            history_until=now - DAY_S + HISTORY_AFTER_S,  # day_old_window's end
            recent_from=now - RECENT_FIRST_S,
        )
        families = families_read(source)
        source.families = families  # live pages too: the rest is never read
        revisions = max(
            (len(d.history) for d in world.deployments if d.name == target.deployment), default=0
        )
        # The day-old window's revision, read as the demo opens (before the operator can roll
        # back) but beside the first checks rather than before them.
        lkg: list[tuple[int, str]] = []
        reading_lkg = threading.Thread(
            target=lambda: lkg.append(last_known_good(cluster, world.namespace, world.deployment)),
            name="skewmit-demo-lkg",
            daemon=True,
        )
        reading_lkg.start()

        def live() -> None:
            assert source is not None
            source.scrape()  # now, so the panes need not wait for the scraper's first

        def recent() -> None:
            assert source is not None
            source.ingest(demo.history(families, source.recent_from, None))

        def older() -> None:
            assert source is not None
            source.ingest(demo.history(families, None, source.recent_from))

        def day_old() -> None:
            assert source is not None
            window = day_old_window(world, source, now, seed=demo.seed + 1)
            reading_lkg.join(BACKFILL_WAIT_S)
            revision, pod_hash = lkg[0] if lkg else (0, "")
            if not 0 < revision <= revisions:
                revision, pod_hash = 0, ""  # not one of the scenario's: render its default
            window.update(revision=revision or None, pod_template_hash=pod_hash or None)
            source.ingest(demo.render(world, window))

        source.backfill_in_background(recent, day_old, older, live)
        runbook = Runbook(
            cluster,
            target,
            None,
            read_only=read_only,
            metrics=source,
            config={"demo": True, "started_wall": time.time()},
            open_journal=open_journal,
            notices=(notice,) if notice else (),
        )
        if notice.startswith("resumed"):
            runbook.ensure_journal()  # reopen it now: the header shows its id and age
        # The steps' checks open the incident when they find something to fix; the first
        # step with findings settles it (the app checks every step again at launch).
        for step in STEP_ORDER if first_checks else ():
            if step == Step.VALIDATE:
                continue
            if runbook.check(step).state == "failed":
                runbook.ensure_journal()  # cannot tell: treat it as an incident
            if runbook.journal is not None:
                break
    except BaseException:
        if source is not None:
            source.stop()
        raise
    return runbook
