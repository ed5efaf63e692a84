"""One clock for a session: in a demo-like session on the simulator's fast clock (x30), the
journal entry of a change, the verdict's time and the evidence bundle's name and timeline are
all simulated time. Before, the journal and the bundle's name were wall time while the verdict
was simulated: hours apart once the simulated clock had run on."""

from __future__ import annotations

import json
from pathlib import Path

from services import rollout, validation
from services.clock import Clock
from services.evidence_clock import parse_utc, utc
from services.metrics.simsource import SimMetricsSource
from services.metrics.source import Scope
from services.session import SessionOptions, open_session
from services.simulator.runner import Simulator

HOURS = 3 * 3600.0


def test_the_journal_the_verdict_and_the_bundle_share_the_simulated_clock(
    sim: Simulator, tmp_path: Path
) -> None:
    assert sim.cluster is not None
    # The simulated clock has run three hours ahead of the wall clock, as a demo's does.
    sim.call(sim.cluster.clock.advance, HOURS)
    clock = Clock.following(sim.cluster.clock)
    source = SimMetricsSource(
        sim.metrics_url, Scope("inference", "llm-serve"), "vllm", clock=clock,
        scrape_interval_s=2.0, rate_window_s=20.0,
    )  # fmt: skip
    options = SessionOptions(
        kubeconfig=str(sim.write_kubeconfig(tmp_path / "kubeconfig")),
        namespace="inference",
        deployment="llm-serve",
        journal_root=tmp_path / "state",
    )
    source.start()
    try:
        runbook = open_session(options, metrics=source)  # the session's clock: the source's
        gate = runbook.gate
        plan = rollout.undo_plan(runbook.cluster, "inference", "llm-serve", 0)
        preview = gate.preview(plan)
        before = clock.now()
        applied = gate.apply(plan, preview)
        after = clock.now()
        entry = next(e for e in runbook.journal.entries() if e.seq == applied.seq)
        stamped = parse_utc(entry.ts)
        assert stamped is not None and before - 0.001 <= stamped <= after + 0.001, (
            f"the change was journaled at {entry.ts}, the simulated clock read "
            f"{utc(before)} .. {utc(after)}"
        )

        before = clock.now()
        verdict = validation.validate(runbook.cluster, runbook.target, source)
        assert before <= verdict.at <= clock.now()

        before = clock.now()
        bundle = runbook.capture_evidence(tmp_path / "evidence")
        captured_by = clock.now()
    finally:
        source.stop()
    named = utc(before).replace("-", "").replace(":", "")
    named_by = utc(captured_by).replace("-", "").replace(":", "")
    stamp = bundle.folder.name.rsplit("-", 1)[1]
    assert named <= stamp <= named_by  # the bundle is named by the simulated clock
    doc = json.loads((bundle.folder / "verdict.json").read_text())
    assert doc["clock"]["simulated"] and doc["clock"]["simulated_speed"] == 30.0
    assert before <= doc["at"] <= captured_by
    # The change and the verdict sit minutes apart in the bundle, not three hours.
    assert 0 <= doc["at"] - stamped < HOURS / 6
    timeline = (bundle.folder / "timeline.md").read_text()
    assert f"| {entry.ts} |" in timeline and "applied" in timeline
    assert f"Judged at {utc(doc['at'])}" in timeline
    judged = [e for e in runbook.journal.entries() if e.type == "validation"][-1]
    assert abs((parse_utc(judged.ts) or 0.0) - judged.data["at"]) < 60  # simulated seconds
    runbook.journal.release()
