"""The frozen, checked baseline against a real Prometheus, and against the simulator through
the real kubernetes client: a partly covered window and one inside the incident are refused
with the window to use instead, and the frozen baseline survives a reopen with the same
numbers.

The Prometheus is the shared one (tests/services/conftest.py): job `vllm` scrapes the skew
incident (revision 3, rolled out two hours before the simulator started) and holds a backfilled
day-old history of revision 2 (`prom_world.history`). The cluster side is a private simulator
of the same scenario, so no other test's rollback changes which revision is the suspect.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services import baseline_choice
from services.baseline_choice import BaselineRefused, check, incident_window
from services.config import metrics_settings
from services.journal import Journal
from services.kube import KubeCluster
from services.metrics.baseline import BaselineSpec, capture
from services.metrics.presets import TOKENS
from services.metrics.prometheus import PrometheusSource, from_settings
from services.models import Target
from services.runbook import Runbook
from services.simulator.runner import Simulator
from tests.services.conftest import DEPLOYMENT, NAMESPACE, VLLM_FAST, PromWorld
from tests.services.harness import wait_for

# Past the end of the backfilled history (half an hour after the offset windows here end).
LATER_S = 2400
SUGGESTED = re.compile(r"use (\S+) \.\. (\S+) instead \(--baseline-start \1 --baseline-end \2\)")


@pytest.fixture(scope="module")
def incident_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """The skew incident's cluster (revision 3 current and drifted), private to this module."""
    with Simulator(VLLM_FAST, speed=1.0, seed=1) as sim:
        path = sim.write_kubeconfig(tmp_path_factory.mktemp("incident") / "kubeconfig")
        yield KubeCluster(str(path))


def _source(world: PromWorld, **baseline: Any) -> PrometheusSource:
    config = world.config("vllm")
    config["baseline"] = {**config["baseline"], **baseline}
    return from_settings(metrics_settings(config), NAMESPACE, DEPLOYMENT, "vllm")


def _range(source: PrometheusSource, start: float, end: float) -> Any:
    return capture(source, BaselineSpec(mode="range", start=start, end=end), end - start)


def _judged_tokens(runbook: Runbook) -> Any:
    """The gate's tokens/s check once it has live data to judge (None before)."""
    verdict = runbook.validate()
    tokens = next(c for c in verdict.checks if c.name == TOKENS)
    return tokens if tokens.status != "insufficient-data" else None


def _suggested(message: str) -> tuple[float, float]:
    from services.config import parse_time

    found = SUGGESTED.search(message)
    assert found, message
    return parse_time(found.group(1)), parse_time(found.group(2))


def test_a_partly_covered_baseline_is_refused_with_the_newest_covered_window(
    prom_world: PromWorld, incident_cluster: KubeCluster
) -> None:
    history = prom_world.history  # revision 2 served h.start .. h.end, a day ago
    source = prom_world.source("vllm")
    incident = incident_window(incident_cluster, NAMESPACE, DEPLOYMENT)
    assert incident.suspect is not None and incident.suspect.revision == 3

    # Two of ten minutes' worth: the window's last 96 of 120 seconds hold no samples.
    partial = _range(source, history.end - 24, history.end + 96)
    whole = _range(source, history.end - 200, history.end - 80)
    assert partial.judged_coverage is not None and partial.judged_coverage < 0.5
    assert whole.judged_coverage is not None and whole.judged_coverage >= 0.9
    # What the operator got before: a tokens/sec bar a fraction of the truth, without a word.
    assert partial.value(TOKENS) < 0.6 * whole.value(TOKENS)

    with pytest.raises(BaselineRefused) as refused:
        check(partial, source, incident)
    message = str(refused.value)
    assert "\n" not in message
    assert "% covered" in message and "needs 90%" in message
    assert "before revision 3 (" in message and "rolled out" in message
    start, end = _suggested(message)
    assert end - start == pytest.approx(120, abs=1)
    assert history.start <= start and end <= history.end + 6  # where revision 2's data is
    assert end <= incident.suspect.created

    chosen = check(_range(source, start, end), source, incident)
    assert chosen.value(TOKENS) == pytest.approx(whole.value(TOKENS), rel=0.1)
    assert chosen.judged_coverage is not None and chosen.judged_coverage >= 0.9
    assert chosen.served_by["revision"] == 2
    assert chosen.served_by["replicaset"] == next(
        r.name for r in incident.replicasets if r.revision == 2
    )


def test_a_baseline_inside_the_incident_is_refused(
    prom_world: PromWorld, incident_cluster: KubeCluster
) -> None:
    source = prom_world.source("vllm")
    incident = incident_window(incident_cluster, NAMESPACE, DEPLOYMENT)
    assert incident.suspect is not None

    # `--baseline-offset 20m`: revision 3 has served for two hours.
    inside = capture(source, BaselineSpec(offset_s=1200), 120, with_series=False)
    with pytest.raises(BaselineRefused) as refused:
        check(inside, source, incident)
    message = str(refused.value)
    assert "rolled out at" in message and "(inside the incident)" in message
    start, end = _suggested(message)
    assert prom_world.history.start <= start and end <= prom_world.history.end + 6
    assert end <= incident.suspect.created

    # The last half minute is fully covered, but by revision 3's own pods.
    prom_world.wait_for_history(35)
    now = time.time()
    live = _range(source, now - 30, now)
    assert live.judged_coverage is not None and live.judged_coverage >= 0.9
    with pytest.raises(BaselineRefused) as refused:
        check(live, source, incident)
    message = str(refused.value)
    assert f"its series come from revision 3 ({incident.suspect.name})'s pods" in message
    assert f"{DEPLOYMENT}-{incident.suspect.pod_template_hash}-" in message

    # The incident's opening bounds the window too, whatever the revision.
    opened = baseline_choice.IncidentWindow(now - 60, None, incident.replicasets)
    with pytest.raises(BaselineRefused, match="ends after the incident opened"):
        check(live, source, opened)


def test_the_frozen_baseline_survives_a_reopen_with_the_same_numbers(
    prom_world: PromWorld, incident_cluster: KubeCluster, tmp_path: Path
) -> None:
    history = prom_world.history
    cluster = incident_cluster
    target = Target(cluster.context, NAMESPACE, DEPLOYMENT, cluster.server, cluster.whoami())
    # An offset that lands inside the backfilled history now, and slides out of it later.
    offset = round(time.time() - (history.start + 240))
    config = prom_world.config("vllm")
    config["baseline"] = {"offset": f"{offset}s", "window": "120s"}
    journal = Journal.open_for(target, target.user, root=tmp_path)
    source = _source(prom_world, offset=f"{offset}s")
    runbook = Runbook(cluster, target, journal, metrics=source, config=config)

    frozen = runbook.baseline()
    assert frozen.value(TOKENS) and frozen.judged_coverage >= 0.9
    entries = [e for e in journal.entries() if e.type == "baseline"]
    assert len(entries) == 1
    recorded = entries[0].data
    assert (recorded["start"], recorded["end"]) == (frozen.start, frozen.end)
    assert recorded["values"][TOKENS][""] == frozen.value(TOKENS)
    assert recorded["coverage"][TOKENS] >= 0.9
    assert recorded["served_by"]["revision"] == 2
    assert recorded["served_by"]["replicaset"].startswith(f"{DEPLOYMENT}-")

    # The gate judges against the frozen numbers, once the live side has data to judge.
    tokens = wait_for("the gate to judge tokens/s", lambda: _judged_tokens(runbook), 60)
    assert tokens.baseline == pytest.approx(frozen.value(TOKENS)), tokens

    # Forty minutes on, after an SSH drop: the offset window would have slid out of the
    # history (and be refused), but the reopened incident keeps its baseline.
    release = getattr(journal, "release", None)
    if release is not None:
        release()
    later = Journal.open_for(target, target.user, root=tmp_path)
    assert later.folder == journal.folder
    moved = _source(prom_world, offset=f"{offset}s")
    moved.clock = lambda: time.time() + LATER_S
    with pytest.raises(BaselineRefused):
        check(moved.baseline(120.0), moved, incident_window(cluster, NAMESPACE, DEPLOYMENT))
    again = Runbook(cluster, target, later, metrics=moved, config=config).baseline()
    assert (again.start, again.end) == (frozen.start, frozen.end)
    assert again.values == frozen.values
    assert again.coverage == frozen.coverage
    assert again.frozen.endswith(f"#{entries[0].seq}")
    assert len([e for e in later.entries() if e.type == "baseline"]) == 1


def test_a_baseline_frozen_before_the_incident_opened_is_journaled_when_it_opens(
    prom_world: PromWorld, incident_cluster: KubeCluster, tmp_path: Path
) -> None:
    """A session opens its incident at the first finding or change: the baseline the gate
    froze before that was never journaled, so a reopen (and the evidence bundle) judged
    against a window captured again, or none."""
    history = prom_world.history
    cluster = incident_cluster
    target = Target(cluster.context, NAMESPACE, DEPLOYMENT, cluster.server, cluster.whoami())
    offset = round(time.time() - (history.start + 240))
    config = prom_world.config("vllm")
    config["baseline"] = {"offset": f"{offset}s", "window": "120s"}
    runbook = Runbook(
        cluster,
        target,
        None,
        metrics=_source(prom_world, offset=f"{offset}s"),
        config=config,
        open_journal=lambda: Journal.open_for(target, target.user, root=tmp_path),
    )
    before = runbook.baseline()
    assert before.value(TOKENS) and before.frozen == ""
    assert not (tmp_path / "incidents").exists()  # judged, but no incident yet

    journal = runbook.ensure_journal()
    assert journal is not None
    entries = [e for e in journal.entries() if e.type == "baseline"]
    assert len(entries) == 1
    recorded = entries[0].data
    assert (recorded["start"], recorded["end"]) == (before.start, before.end)
    assert recorded["values"] == {q: dict(v) for q, v in before.values.items()}
    assert recorded["served_by"]["revision"] == 2
    frozen = runbook.baseline()
    assert frozen.frozen == f"journal {journal.incident_id} #{entries[0].seq}"
    assert runbook.ensure_journal() is journal
    assert len([e for e in journal.entries() if e.type == "baseline"]) == 1

    # Reopened forty minutes on, when the offset window has slid out of the history: the
    # journaled numbers, not a refusal or a new window.
    journal.release()
    later = Journal.open_for(target, target.user, root=tmp_path)
    moved = _source(prom_world, offset=f"{offset}s")
    moved.clock = lambda: time.time() + LATER_S
    again = Runbook(cluster, target, later, metrics=moved, config=config).baseline()
    assert (again.start, again.end, again.values) == (before.start, before.end, before.values)
    assert again.frozen.endswith(f"#{entries[0].seq}")


def test_the_demo_baseline_does_not_move_while_the_room_watches(tmp_path: Path) -> None:
    from tui.demo import open_demo
    from tui.session import MetricsFeed

    runbook, sim = open_demo("skew-incident", 60.0, journal_root=tmp_path)
    source = runbook.metrics
    try:
        # The sliding kind of window the demo once used: back from "now" (about a day, to
        # where the demo rendered its history; the fast clock has moved on since).
        source.baseline_spec = BaselineSpec(offset_s=round(source.now() - source.baseline_spec.end))
        frozen = runbook.baseline()
        assert frozen.judged_coverage >= 0.9 and frozen.value(TOKENS), frozen
        assert frozen.served_by["revision"] == 2, frozen.served_by
        opened = source.now()
        deadline = time.monotonic() + 120
        while source.now() < opened + 1200 and time.monotonic() < deadline:
            time.sleep(0.2)
        # Twenty simulated minutes on, a day back is past the rendered history...
        assert capture(source, source.baseline_spec, 600, with_series=False).value(TOKENS) is None
        # ...but the gate still judges against the numbers frozen when the incident opened.
        verdict = runbook.validate()
        tokens = next(c for c in verdict.checks if c.name == TOKENS)
        assert tokens.baseline == pytest.approx(frozen.value(TOKENS)), verdict.checks
        assert not [c for c in verdict.checks if "no baseline" in c.message], verdict.checks
        # The live panes compare with the same frozen numbers.
        feed = MetricsFeed(source, baseline=runbook.baseline)
        feed()  # the first values, before the baseline is asked for
        series = feed()
        shown = next(s for s in series if s.name == TOKENS)
        assert shown.baseline == pytest.approx(frozen.value(TOKENS))
    finally:
        source.stop()
        sim.stop()
