"""`skewmit demo`: the built-in simulator in-process, and a session on it.

This is the one place (with the tests) that knows both the simulator and the services: the
demo talks to the simulator exactly as to a real cluster (the official client over HTTPS)
and reads its metrics the way a Prometheus would (scraping /metrics). Like a Prometheus that
has been running all along, it starts with the fleet's recent past (the scenario's
`metrics_history_s`) and a day-old last-known-good window rendered from the simulator's own
history, its pods named after the last-known-good ReplicaSet.

The incident opens when there is something to fix: a healthy fleet opens none (no journal
folder, no incident id) until a check finds something or the operator changes something.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from services import rollout
from services.errors import SkewmitError
from services.evidence import record_snapshot
from services.journal import Journal, state_dir
from services.kube import KubeCluster
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
LARGE_FLEET = 64  # replicas beyond which the day-old history is sampled more sparsely


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
    """Seconds between the day-old history's samples: the scrape interval, so coverage reads
    as a live Prometheus' would, except on fleets too big to render that often (`large`:
    a thousand pods, half a gigabyte of text per twenty samples)."""
    replicas = max((d.replicas for d in world.deployments), default=0)
    return SCRAPE_S if replicas <= LARGE_FLEET else 3 * SCRAPE_S


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


def open_demo(
    scenario: str, speed: float, *, read_only: bool = False, journal_root: Path | None = None
) -> tuple[Runbook, Simulator]:
    """Start the simulator and open a Runbook on it; the incident's journal is opened at once
    when the fleet has something to fix, else on first need. Raises ScenarioError for an
    unknown scenario, SkewmitError when the simulator cannot be reached."""
    sim = Simulator(scenario, speed=speed).start()
    source: SimMetricsSource | None = None
    try:
        folder = Path(tempfile.mkdtemp(prefix="skewmit-demo-"))
        kubeconfig = sim.write_kubeconfig(folder / "kubeconfig")
        cluster = KubeCluster(str(kubeconfig), "skewmit-sim-readonly" if read_only else None)
        world = sim.scenario
        target = Target(
            cluster.context, world.namespace, world.deployment, cluster.server, cluster.whoami()
        )
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        root = journal_root or state_dir() / "demo" / stamp

        def open_journal() -> Journal:
            journal = Journal.open_for(target, target.user, root, read_only=read_only)
            if journal.owner and [e.type for e in journal.entries()] == ["opened"]:
                # A new incident: keep the manifests from before any fix for the bundle.
                record_snapshot(journal, cluster, "before")
            return journal

        assert sim.cluster is not None
        clock = sim.cluster.clock.time
        now = clock()
        # A fixed day-old range: an offset baseline would slide off the rendered history
        # as the fast clock runs on.
        baseline = BaselineSpec(mode="range", start=now - DAY_S - BASELINE_S, end=now - DAY_S)
        source = SimMetricsSource(
            sim.metrics_url,
            Scope(world.namespace, world.deployment),
            world.engine,
            clock=clock,
            scrape_interval_s=SCRAPE_S,
            rate_window_s=RATE_WINDOW_S,
            baseline_spec=baseline,
        )
        revision, pod_hash = last_known_good(cluster, world.namespace, world.deployment)
        revisions = max(
            (len(d.history) for d in world.deployments if d.name == target.deployment), default=0
        )
        if not 0 < revision <= revisions:
            revision, pod_hash = 0, ""  # not one of the scenario's: render its default
        families = families_read(source)
        history = render_history(
            world,
            start=now - DAY_S - HISTORY_BEFORE_S,
            end=now - DAY_S + HISTORY_AFTER_S,
            step_s=history_step(world),
            revision=revision or None,
            pod_template_hash=pod_hash or None,
            seed=sim.seed + 1,  # yesterday's requests were not today's
            families=families,
        )
        source.ingest(history.text)
        source.ingest(only_families(sim.cluster.fleet.history_text, families))
        source.start()
        runbook = Runbook(
            cluster,
            target,
            None,
            read_only=read_only,
            metrics=source,
            config={"demo": True, "started_wall": time.time()},
            open_journal=open_journal,
        )
        # The steps' checks open the incident when they find something to fix; the first
        # step with findings settles it (the app checks every step again at launch).
        for step in STEP_ORDER:
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
