"""The drill's catalogue, bad rollouts and debrief, computed from journals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services.drill import (
    CATALOGUE,
    DRILL_ENTRY,
    Edit,
    choose,
    edited_container,
    hint,
    report_markdown,
    score,
)
from services.drill_faults import FAULTS
from services.errors import ConfigError, InvalidError
from services.gate import Gate
from services.journal import Entry, Journal
from services.journal_actions import journal_actions
from services.models import Step, Target

T0 = "2026-12-02T10:00:00.000000Z"


def at(seconds: int) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"2026-12-02T10:{minutes:02d}:{secs:02d}.000000Z"


class Log:
    """A journal's entries, written as the app and the gate write them."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    def add(self, t: int, type_: str, **data: Any) -> int:
        seq = len(self.entries) + 1
        self.entries.append(Entry(seq, at(t), type_, data))
        return seq

    def applied(self, t: int, action: str, title: str) -> int:
        self.add(t, "apply-intent", action=action, title=title)
        return self.add(t, "applied", action=action, title=title, verified=True)

    def findings(self, t: int, step: str, state: str, seen: list[dict[str, str]] = []) -> None:  # noqa: B006
        self.add(t, "findings", step=step, state=state, seen=seen, cleared=[], active=len(seen))


def drill_started(variant: str = "dtype") -> Log:
    log = Log()
    log.add(0, "opened")
    log.add(0, DRILL_ENTRY, event="started", variant=variant, seed=3)
    log.findings(1, "validate", "findings")
    return log


def test_the_debrief_times_the_first_correct_action_and_the_mitigation() -> None:
    log = drill_started()
    log.add(30, DRILL_ENTRY, event="hint", step="rollback", text="Roll back: why")
    log.applied(65, "latency.max-num-seqs", "Lower max-num-seqs to 128")
    log.applied(125, "rollback.undo", "Roll back to last-known-good (revision 1)")
    log.findings(200, "validate", "ok")
    log.add(201, DRILL_ENTRY, event="ended")
    result = score(log.entries, CATALOGUE["dtype"])
    assert result.outcome == "mitigated"
    assert result.first_correct_s == 125
    assert result.mitigated_s == 200
    assert [a.action for a in result.actions] == ["latency.max-num-seqs", "rollback.undo"]
    assert len(result.hints) == 1
    markdown = report_markdown(result, CATALOGUE["dtype"])
    assert "Time to first correct action: 2 min 05 s" in markdown
    assert "Time to mitigation (validation passed): 3 min 20 s" in markdown
    assert "Changes made: 2" in markdown
    assert "Hints used: 1" in markdown
    # The intended path beside the trainee's, row by row.
    assert (
        "| 1 | roll back to the last-known-good revision (step 1) | Lower max-num-seqs" in markdown
    )
    assert "| 2 | pin the dtype" in markdown
    assert "Roll back to last-known-good (revision 1) (2 min 05 s)" in markdown


def test_a_pass_before_any_change_is_not_a_mitigation() -> None:
    log = drill_started()
    log.findings(10, "validate", "ok")  # the fleet warming up
    log.add(40, DRILL_ENTRY, event="gave-up")
    result = score(log.entries, CATALOGUE["dtype"])
    assert result.outcome == "gave up"
    assert result.mitigated_s is None
    assert result.duration_s == 40
    assert "Time to mitigation (validation passed): not reached" in report_markdown(
        result, CATALOGUE["dtype"]
    )


def test_a_change_that_brings_new_findings_made_it_worse_and_a_revert_is_counted() -> None:
    log = drill_started("hardware")
    bad = log.applied(20, "hardware.cordon", "Cordon gpu-h100-0")
    log.findings(
        25, "rollback", "findings", [{"code": "pods-pending", "severity": "error", "subject": "x"}]
    )
    log.add(40, "revert-intent", reverts=bad)
    log.add(41, "reverted", reverts=bad, title="Revert: Cordon gpu-h100-0", verified=True)
    log.applied(60, "hardware.node-selector", "Require NVIDIA-H100-80GB-HBM3")
    log.findings(90, "validate", "ok")
    result = score(log.entries, CATALOGUE["hardware"])
    assert [a.worse for a in result.actions] == [True, False]
    assert result.actions[0].reverted and result.reverts == 1
    # A reverted action does not count as the first correct one, though it is on the path.
    assert result.first_correct_s == 60
    markdown = report_markdown(result, CATALOGUE["hardware"])
    assert "Actions that made it worse: 1" in markdown
    assert "Changes reverted: 1" in markdown
    # The debrief names what the change left standing, so the trainee can see why.
    assert "reverted, made it worse: Roll back to last-known-good: pods-pending x" in markdown


def test_a_rollouts_passing_warnings_do_not_count_as_making_it_worse() -> None:
    """Seen in a drill under load: a correct rollback scored "made it worse: 1" because the
    checks saw pods pending while the rollout replaced them. Only what still stands at the
    next change (or the end) counts; the cordon above, never cleared, still does."""
    log = drill_started("revision")
    log.applied(20, "rollback.undo", "Roll back to revision 2")
    pending = {"code": "pods-pending", "severity": "warning", "subject": "pod/llm-serve-x"}
    log.findings(25, "rollback", "findings", [pending])
    log.add(40, "findings", step="rollback", state="ok", seen=[], cleared=[pending], active=0)
    log.findings(90, "validate", "ok")
    result = score(log.entries, CATALOGUE["revision"])
    assert [a.worse for a in result.actions] == [False]
    assert "Actions that made it worse: 0" in report_markdown(result, CATALOGUE["revision"])


def test_the_incidents_own_symptom_flickering_back_after_a_fix_is_not_made_worse() -> None:
    """Seen in a drill under load: after the rollback, step 3's tail-latency finding (there
    since the incident began) cleared, came back on one noisy read around its limit and stood
    at the end; the rollback scored "made it worse". A finding standing before the change was
    not made by it. A new one the change brings still counts."""
    log = drill_started("dtype")
    slow = {"code": "tail-latency-high", "severity": "error", "subject": "deployment/llm-serve"}
    log.findings(5, "latency", "findings", [slow])
    log.applied(20, "rollback.undo", "Roll back to revision 2")
    log.add(40, "findings", step="latency", state="ok", seen=[], cleared=[slow], active=0)
    log.findings(50, "latency", "findings", [slow])
    log.findings(90, "validate", "ok")
    result = score(log.entries, CATALOGUE["dtype"])
    assert [a.worse for a in result.actions] == [False]
    assert "Actions that made it worse: 0" in report_markdown(result, CATALOGUE["dtype"])

    crash = {"code": "crashloop", "severity": "error", "subject": "pod/llm-serve-y"}
    log.findings(95, "rollback", "findings", [crash])
    result = score(log.entries, CATALOGUE["dtype"])
    assert [a.worse_by for a in result.actions] == [
        ("Roll back to last-known-good: crashloop pod/llm-serve-y",)
    ]


def test_injected_faults_are_in_the_debrief() -> None:
    log = drill_started()
    log.add(15, DRILL_ENTRY, event="fault", fault="api-latency", detail="every API request late")
    result = score(log.entries, CATALOGUE["dtype"])
    assert result.outcome == "unfinished"
    assert result.faults == ("15 s: api-latency every API request late",)
    assert "## Faults the trainer injected" in report_markdown(result, CATALOGUE["dtype"])


def test_a_journal_without_a_drill_is_refused() -> None:
    log = Log()
    log.add(0, "opened")
    with pytest.raises(InvalidError, match="no drill"):
        score(log.entries, CATALOGUE["dtype"])


def test_score_reads_a_real_journal(tmp_path: Path) -> None:
    journal = Journal.open_for(Target("ctx", "inference", "llm-serve"), "me", root=tmp_path)
    journal.append(DRILL_ENTRY, {"event": "started", "variant": "revision"})
    journal.append("apply-intent", {"action": "rollback.undo", "title": "Roll back"})
    journal.append("applied", {"action": "rollback.undo", "title": "Roll back", "verified": True})
    journal.record_findings("validate", "ok", [])
    result = score(journal.entries(), CATALOGUE["revision"])
    assert result.outcome == "mitigated"
    assert result.first_correct_s is not None and result.first_correct_s >= 0
    journal.release()


def test_the_debrief_the_action_log_and_the_gate_agree_on_what_was_reverted(
    tmp_path: Path,
) -> None:
    journal = Journal.open_for(Target("ctx", "inference", "llm-serve"), "me", root=tmp_path)
    journal.append(DRILL_ENTRY, {"event": "started", "variant": "hardware"})
    cordon = journal.append("applied", {"action": "hardware.cordon", "title": "Cordon gpu-0"})
    journal.append("reverted", {"reverts": cordon.seq, "title": "Revert: Cordon gpu-0"})
    pinned = journal.append("applied", {"action": "hardware.node-selector", "title": "Pin H100"})
    journal.append("revert-refused", {"reverts": pinned.seq, "error": "changed since"})
    taint = journal.append("applied", {"action": "hardware.taint", "title": "Taint gpu-1"})
    # A revert entry naming no apply (written by hand, or by an older build) undoes nothing.
    journal.append("reverted", {"reverts": str(taint.seq), "title": "Revert: Taint gpu-1"})
    entries = journal.entries()

    debrief = {a.seq: a.reverted for a in score(entries, CATALOGUE["hardware"]).actions}
    log = {r.seq: r.status == "reverted" for r in journal_actions(entries) if r.seq in debrief}
    offered = {seq for seq, _ in Gate(None, journal).applied_entries()}  # type: ignore[arg-type]
    assert debrief == log == {cordon.seq: True, pinned.seq: False, taint.seq: False}
    assert offered == {seq for seq, undone in debrief.items() if not undone}
    # "Changes reverted" counts the changes the action log shows reverted, not revert entries.
    assert score(entries, CATALOGUE["hardware"]).reverts == 1
    journal.release()


def test_the_draw_is_reproducible_and_covers_the_catalogue() -> None:
    assert choose("random", 7) == choose("random", 7)
    assert {choose("random", seed).name for seed in range(200)} == set(CATALOGUE)
    assert choose("tgi-fleet").scenario == "tgi"
    with pytest.raises(ConfigError, match="known: random"):
        choose("nope")


def test_bad_rollout_edits_change_only_what_they_name() -> None:
    container = {"name": "vllm", "image": "img@sha256:x", "args": ["--dtype", "bfloat16", "--a"]}
    out = edited_container(
        container,
        [
            Edit("set-arg", "--dtype", "float32"),
            Edit("set-arg", "--max-num-seqs", "512"),
            Edit("image", "vllm/vllm-openai:latest"),
        ],
    )
    assert out["args"] == ["--dtype", "float32", "--a", "--max-num-seqs", "512"]
    assert out["image"] == "vllm/vllm-openai:latest"
    assert container["args"] == ["--dtype", "bfloat16", "--a"]  # a copy
    with pytest.raises(InvalidError, match="--revision"):
        edited_container(container, [Edit("drop-arg", "--revision")])


def test_hints_come_from_the_runbook_one_layer_at_a_time() -> None:
    first, second, third, fourth = (hint(Step.ROLLBACK, n) for n in range(4))
    assert "Restore service first" in first
    assert "last-known-good" in second
    assert third != second and fourth == third


def test_every_fault_says_what_it_does() -> None:
    assert {"api-latency", "api-errors", "conflict", "colleague", "crash-loop"} <= set(FAULTS)
    assert {"node-notready", "clear"} <= set(FAULTS)
    assert all(f.what for f in FAULTS.values())


def test_the_drill_service_does_not_import_textual() -> None:
    code = "import sys, services.drill; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_metrics_down_fails_every_scrape_until_cleared(tmp_path: Path) -> None:
    """The trainer's "Prometheus/metrics down": the pods' exporter answers 503, the API server
    keeps answering, and `clear` brings the scrapes back."""
    import urllib.error
    import urllib.request

    from services.drill_faults import fault_named, inject
    from services.kube import KubeCluster
    from services.simulator.runner import Simulator

    def scrape(url: str) -> int:
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as failed:
            return int(failed.code)

    with Simulator("healthy", speed=30.0) as sim:
        cluster = KubeCluster(str(sim.write_kubeconfig(tmp_path / "kubeconfig")), "skewmit-sim")
        assert scrape(sim.metrics_url) == 200
        said = inject(cluster, "inference", "llm-serve", fault_named("metrics-down"))
        assert "metrics-down" in said
        assert scrape(sim.metrics_url) == 503
        assert cluster.get("Deployment", "inference", "llm-serve")  # the API still answers
        inject(cluster, "inference", "llm-serve", fault_named("clear"))
        assert scrape(sim.metrics_url) == 200
