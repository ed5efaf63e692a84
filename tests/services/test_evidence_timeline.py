"""The timeline's reading of both journal forms (a full snapshot per check, as older journals
hold; changes of state, as the write-ahead journal records them) and the bundle's one clock."""

from __future__ import annotations

from typing import Any

from services.clock import Clock
from services.evidence_clock import Clocks, read_clocks, utc
from services.evidence_timeline import distinct_findings, findings_table

T0 = 1796180000.0  # 2026-12-02T03:33:20Z


def _record(kind: str, t: float, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "ts": utc(t).replace("Z", ".000000Z"), "data": data}


def _finding(code: str, subject: str, severity: str = "error") -> dict[str, str]:
    return {
        "step": "pin",
        "code": code,
        "severity": severity,
        "message": f"{code}!",
        "subject": subject,
    }


TAG = _finding("image-mutable-tag", "deployment/llm-serve container/vllm")
REV = _finding("model-revision-unpinned", "deployment/llm-serve container/vllm")


def test_snapshot_checks_give_first_and_last_seen_and_cleared() -> None:
    records = [
        _record("check", T0, {"step": "pin", "state": "findings", "findings": [TAG, REV]}),
        _record("check", T0 + 60, {"step": "pin", "state": "findings", "findings": [TAG, REV]}),
        _record("check", T0 + 120, {"step": "pin", "state": "findings", "findings": [TAG]}),
        _record("check", T0 + 180, {"step": "pin", "state": "findings", "findings": [TAG]}),
    ]
    spans = {s.code: s for s in distinct_findings(records)}
    assert set(spans) == {"image-mutable-tag", "model-revision-unpinned"}
    rev, tag = spans["model-revision-unpinned"], spans["image-mutable-tag"]
    assert (rev.first_seen, rev.last_seen, rev.cleared) == (T0, T0 + 60, T0 + 120)
    assert (tag.first_seen, tag.last_seen, tag.cleared) == (T0, T0 + 180, None)
    table = findings_table(records, Clocks(T0 + 200, T0 + 200))
    rows = [r for r in table if r.startswith("| 20")]
    assert len(rows) == 2  # four checks, two findings
    assert any(f"| {utc(T0 + 60)} | {utc(T0 + 120)} |" in r for r in rows)
    assert any("(still present)" in r for r in rows)


def test_state_changes_give_the_same_rows() -> None:
    pod = _finding("image-mutable-tag", "pod/llm-serve-abc-1 container/vllm")
    records = [
        _record("findings", T0, {"step": "pin", "state": "findings", "seen": [TAG, REV, pod]}),
        _record(
            "findings",
            T0 + 120,
            {"step": "pin", "state": "findings", "seen": [], "cleared": [REV]},
        ),
    ]
    spans = {(s.code, s.subject): s for s in distinct_findings(records)}
    assert spans[("model-revision-unpinned", REV["subject"])].cleared == T0 + 120
    assert spans[("image-mutable-tag", pod["subject"])].cleared is None
    rows = [r for r in findings_table(records, Clocks(T0 + 200, T0 + 200)) if r.startswith("| 20")]
    # The Deployment and its pod share one row; the cleared finding has its own.
    assert len(rows) == 2
    assert any(f"until {utc(T0 + 120)}" in r for r in rows)
    assert any("deployment/llm-serve container/vllm, pod/llm-serve-abc-1" in r for r in rows)

    # A severity change: cleared and seen again in one entry, still present.
    records.append(
        _record(
            "findings",
            T0 + 150,
            {"step": "pin", "seen": [{**pod, "severity": "warning"}], "cleared": [pod]},
        )
    )
    now = {(x.code, x.subject): x for x in distinct_findings(records)}[
        ("image-mutable-tag", pod["subject"])
    ]
    assert now.severity == "warning" and now.cleared is None and now.first_seen == T0


class FakeSimClock:
    """What the simulator's SimClock offers: `time()` and `speed`."""

    speed = 30.0

    def time(self) -> float:
        return T0 + 3000.0


def test_one_clock_the_simulated_one_labelled() -> None:
    real = read_clocks(None, wall=lambda: T0)
    assert not real.simulated and real.now == T0 and real.stamp(T0 - 60) == utc(T0 - 60)
    assert real.as_json()["clock"] == "UTC wall time"
    # The demo's clock (a SimClock's bound `time`, or the Clock following it) is the bundle's
    # clock as it is: no time is converted, the clock is said once.
    sim = FakeSimClock()
    for given in (sim.time, Clock.following(sim)):
        fast = read_clocks(given, wall=lambda: T0)
        assert fast.simulated and fast.speed == 30.0 and fast.now == T0 + 3000.0
        assert fast.stamp(T0 + 3000.0) == utc(T0 + 3000.0)
        assert "30x" in fast.describe() and utc(T0) in fast.describe()
        doc = fast.as_json()
        assert doc["clock"] == "simulated clock (UTC)" and doc["wall_clock_at_capture"] == T0
