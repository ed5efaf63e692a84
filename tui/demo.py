"""`skewmit demo`: the built-in simulator in-process, and a session on it.

This is the one place (with the tests) that knows both the simulator and the services: the
demo talks to the simulator exactly as to a real cluster (the official client over HTTPS)
and reads its metrics the way a Prometheus would (scraping /metrics), with a day-old
baseline rendered from the simulator's own history.
"""

from __future__ import annotations

import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from services.evidence import record_snapshot
from services.journal import Journal, state_dir
from services.kube import KubeCluster
from services.metrics.baseline import BaselineSpec
from services.metrics.simsource import SimMetricsSource
from services.metrics.source import Scope
from services.models import Target
from services.runbook import Runbook
from services.simulator.backfill import render_history
from services.simulator.runner import Simulator

DAY_S = 86400.0
SCRAPE_S = 5.0  # simulated seconds between scrapes
RATE_WINDOW_S = 300.0  # the dashboards' [5m]: a 12 rps fleet's p99 is too noisy over less
# The baseline history spans the day-old window as the demo's simulated clock moves on.
BASELINE_S = 600.0
HISTORY_BEFORE_S = BASELINE_S + RATE_WINDOW_S + 60.0
HISTORY_AFTER_S = 60.0


def open_demo(
    scenario: str, speed: float, *, read_only: bool = False, journal_root: Path | None = None
) -> tuple[Runbook, Simulator]:
    """Start the simulator and open a Runbook on it. Raises ScenarioError for an unknown
    scenario, SkewmitError when the simulator cannot be reached."""
    sim = Simulator(scenario, speed=speed).start()
    try:
        folder = Path(tempfile.mkdtemp(prefix="skewmit-demo-"))
        kubeconfig = sim.write_kubeconfig(folder / "kubeconfig")
        cluster = KubeCluster(str(kubeconfig), "skewmit-sim-readonly" if read_only else None)
        world = sim.scenario
        target = Target(
            cluster.context, world.namespace, world.deployment, cluster.server, cluster.whoami()
        )
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        journal = Journal.open_for(
            target, target.user, journal_root or state_dir() / "demo" / stamp
        )
        record_snapshot(journal, cluster, "before")
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
        history = render_history(
            world,
            start=now - DAY_S - HISTORY_BEFORE_S,
            end=now - DAY_S + HISTORY_AFTER_S,
            step_s=SCRAPE_S * 3,
        )
        source.ingest(history.text)
        source.start()
    except BaseException:
        sim.stop()
        raise
    runbook = Runbook(
        cluster,
        target,
        journal,
        read_only=read_only,
        metrics=source,
        config={"demo": True, "started_wall": time.time()},
    )
    return runbook, sim
