"""`skewmit demo`: the built-in simulator in-process, and a session on it.

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
from pathlib import Path
from typing import Any

from services import rollout
from services.clock import WALL_CLOCK, Clock
from services.errors import SkewmitError
from services.evidence import record_snapshot
from services.journal import Journal, state_dir
from services.journal_actions import reverted_by
from services.kube import KubeCluster
from services.metrics import presets
from services.metrics.baseline import BaselineSpec
from services.metrics.simsource import SimMetricsSource
from services.metrics.source import Scope
from services.models import STEP_ORDER, Step, Target
from services.runbook import Runbook
from services.simulator.backfill import render_history
from services.simulator.fleet_wiring import HISTORY_STEP_S
from services.simulator.runner import Simulator
from services.simulator.scenario import Scenario

DAY_S = 86400.0
SCRAPE_S = HISTORY_STEP_S  # simulated seconds between scrapes, as the recent history has them
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
BACKFILL_WAIT_S = 120.0  # a read waits this long for the history at most, then goes on


def families_read(source: SimMetricsSource) -> tuple[str, ...]:
    """Metric families the source's preset reads: the history the demo ingests keeps only
    these (parsing every family of fifteen minutes of a fleet's pages takes seconds)."""
    preset = source.preset
    names = {m for spec in preset.queries.values() for m in spec.metrics}
    names.update(preset.freshness, preset.markers, preset.generations)
    return tuple(sorted(names))


def only_families(text: str, families: tuple[str, ...]) -> str:
    """OpenMetrics history text with only the samples of `families` (by name prefix)."""
    return "\n".join(
        line for line in text.splitlines() if line.startswith(families) or line == "# EOF"
    )


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
    frame, in two stages: the fleet's recent past (already rendered by the simulator: a
    quarter of a second to ingest), then the day-old last-known-good window (rendering it
    takes seconds). A read waits for the stage that covers the times it looks at: a read of
    now (the inspector's DCGM models, the metrics pane, a rate over the last minutes) only
    for the recent past, one that reaches back into the day-old window (the baseline) for
    both, so nothing judges or draws an empty store. The scraper starts after the recent
    past."""

    def __init__(self, *args: Any, history_until: float = math.inf, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The day-old window ends here (simulated seconds): a read of later times needs only
        # the recent past. Not where the recent past starts: `large` has none (its
        # metrics_history_s is 0), and a five-minute rate read at launch would wait for a
        # day-old window that holds none of its times.
        self.history_until = history_until
        self.recent = threading.Event()
        self.backfilled = threading.Event()
        self._closed = False
        self._closing = threading.Lock()
        self.backfill_error = ""  # kept: a good scrape clears last_error, not this

    def scrape(self) -> float:
        at = super().scrape()
        self.last_error = self.last_error or self.backfill_error
        return at

    def backfill_in_background(self, recent: Callable[[], None], old: Callable[[], None]) -> None:
        """Run `recent` then `old` in a thread; start scraping between them. A failure is
        said (last_error) and the demo goes on."""

        def run() -> None:
            for fill, done in ((recent, self.recent), (old, self.backfilled)):
                try:
                    fill()
                except Exception as exc:
                    self.backfill_error = (
                        f"the demo's metrics history could not be backfilled: {exc}"
                    )
                    self.last_error = self.backfill_error
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
    """The day-old window's OpenMetrics text (services.simulator.backfill). Rendered in this
    process: a process of its own frees the interpreter's lock but, on a loaded two-core
    machine, delivers later (bench/RESULTS.md, 2026-12-02 start-up), and the first findings
    wait for it (the incident cannot open while the baseline is being captured)."""
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
        return KubeCluster(str(kubeconfig), "skewmit-sim-readonly" if read_only else None)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def open_demo(
    scenario: str,
    speed: float,
    *,
    read_only: bool = False,
    journal_root: Path | None = None,
    first_checks: bool = True,
) -> tuple[Runbook, Simulator]:
    """Start the simulator and open a Runbook on it, resuming an incident a killed run of the
    same scenario left open when it can (`Runbook.notices` says what happened). With
    `first_checks` the steps are checked until one opens the incident, so the journal is open
    on return when the fleet has something to fix; without, the first check that finds
    something opens it (the app checks every step as it starts). Raises ScenarioError for an
    unknown scenario, SkewmitError when the simulator cannot be reached or another running
    demo holds the scenario's incident."""
    sim = Simulator(scenario, speed=speed).start()
    source: DemoMetricsSource | None = None
    try:
        cluster = demo_cluster(sim, read_only=read_only)
        world = sim.scenario
        target = Target(
            cluster.context, world.namespace, world.deployment, cluster.server, cluster.whoami()
        )
        root = journal_root or demo_root(scenario)
        assert sim.cluster is not None
        # One clock: the journal, the metrics, the verdict and the bundle all on the
        # simulator's (services.clock).
        clock = Clock.following(sim.cluster.clock)
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
            sim.metrics_url,
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
        )
        families = families_read(source)
        source.families = families  # live pages too: the rest is never read
        revision, pod_hash = last_known_good(cluster, world.namespace, world.deployment)
        revisions = max(
            (len(d.history) for d in world.deployments if d.name == target.deployment), default=0
        )
        if not 0 < revision <= revisions:
            revision, pod_hash = 0, ""  # not one of the scenario's: render its default

        def recent() -> None:
            assert source is not None and sim.cluster is not None
            source.ingest(only_families(sim.cluster.fleet.history_text, families))
            source.scrape()  # and now, so the panes need not wait for the scraper's first

        def day_old() -> None:
            assert source is not None
            window = day_old_window(world, source, now, seed=sim.seed + 1)
            window.update(revision=revision or None, pod_template_hash=pod_hash or None)
            source.ingest(day_old_history(world, window))

        source.backfill_in_background(recent, day_old)
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
        sim.stop()
        raise
    return runbook, sim
