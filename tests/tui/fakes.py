"""A deterministic stand-in for the Runbook: fixed reports, readings, series and a journal
with fixed timestamps, so snapshots of the screen are the same on every run.

It answers instantly, or, with `gate_event` set, blocks every call until the event is set
(the "slow API" tests).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.gate import Applied
from services.guidance import GUIDANCE
from services.journal import Entry
from services.models import (
    ActionSpec,
    Change,
    CheckResult,
    Finding,
    GpuReading,
    HardwareReport,
    InputSpec,
    MetricPoint,
    MetricSeries,
    Plan,
    Preview,
    RollbackData,
    RolloutProgress,
    Severity,
    Step,
    StepReport,
    Target,
    Verdict,
)
from tui.session import Intervals, Session, SessionOpener
from widgets.header_bar import HeaderState

T0 = 1_764_000_000.0  # a fixed "now" for every snapshot
TARGET = Target("skewmit-sim", "inference", "llm-serve", "https://127.0.0.1:6443", "admin")


def _finding(step: Step, code: str, severity: Severity, message: str, subject: str) -> Finding:
    return Finding(step, code, severity, message, subject)


def _actions(step: Step, read_only: bool) -> tuple[ActionSpec, ...]:
    why = "read-only mode" if read_only else ""
    specs = {
        Step.ROLLBACK: (
            ActionSpec(
                "rollback.undo",
                step,
                "Roll back to last-known-good (revision 2)",
                "u",
                "Restores the pod template of revision 2; every pod is replaced.",
                ("kubectl rollout undo deployment/llm-serve -n inference --to-revision=2",),
                (InputSpec("to_revision", "Revision to restore", "2"),),
            ),
        ),
        Step.PIN: (
            ActionSpec(
                "pin.image-digest",
                step,
                "Pin the image by digest",
                "i",
                "Replace :latest with the digest the pods run.",
                (
                    "kubectl set image deployment/llm-serve vllm=vllm/vllm-openai@sha256:e7a4"
                    " -n inference",
                ),
            ),
            ActionSpec(
                "pin.dtype",
                step,
                "Set --dtype bfloat16",
                "p",
                "Set the dtype last-known-good ran with.",
                ("kubectl patch deployment/llm-serve -n inference --type=strategic -p '{...}'",),
            ),
        ),
        Step.LATENCY: (
            ActionSpec(
                "latency.max-num-seqs",
                step,
                "Lower --max-num-seqs to 128",
                "n",
                "Fewer concurrent sequences: steadier tail latency, less throughput.",
                ("kubectl patch deployment/llm-serve -n inference -p '{...}'",),
                (InputSpec("value", "New --max-num-seqs", "128"),),
            ),
        ),
        Step.ROUTE: (),
        Step.HARDWARE: (
            ActionSpec(
                "hardware.node-selector",
                step,
                "Require GPU class H100-80GB",
                "s",
                "Add a nodeSelector so every pod lands on an H100.",
                ("kubectl patch deployment/llm-serve -n inference -p '{...}'",),
            ),
            ActionSpec(
                "hardware.cordon",
                step,
                "Cordon gpu-a10g-0",
                "c",
                "Mark the A10G node unschedulable.",
                ("kubectl cordon gpu-a10g-0",),
                destructive=True,
            ),
        ),
        Step.VALIDATE: (
            ActionSpec(
                "validate.evidence",
                step,
                "Capture the evidence bundle",
                "e",
                "Write the post-fix evidence bundle (folder and .tar.gz).",
            ),
        ),
    }[step]
    from dataclasses import replace

    if read_only:
        return tuple(
            a if a.id == "validate.evidence" else replace(a, available=False, reason=why)
            for a in specs
        )
    return specs


def hardware_report() -> HardwareReport:
    rows = tuple(
        GpuReading(
            f"llm-serve-7d9f8-{suffix}",
            node,
            label,
            "label nvidia.com/gpu.product",
            smi,
            mem,
            smi,
            cls,
            "H100-80GB",
            cls != "H100-80GB",
        )
        for suffix, node, label, smi, mem, cls in (
            ("4k2mx", "gpu-h100-0", "H100-80GB", "NVIDIA H100 80GB HBM3", 81559, "H100-80GB"),
            ("8hq2z", "gpu-h100-1", "H100-80GB", "NVIDIA H100 80GB HBM3", 81559, "H100-80GB"),
            ("b7xlp", "gpu-a10g-0", "A10G", "NVIDIA A10G", 23028, "A10G"),
            ("qq9rt", "gpu-a10g-1", "A10G", "NVIDIA A10G", 23028, "A10G"),
        )
    )
    return HardwareReport(
        "inference",
        "llm-serve",
        rows,
        "H100-80GB",
        "the class last-known-good revision 2 required",
        None,
        2,
    )


def verdict() -> Verdict:
    return Verdict(
        "fail",
        (
            CheckResult(
                "tokens/sec near baseline",
                "fail",
                1410.0,
                2300.0,
                ">= 90% of baseline",
                "1410 tok/s is 61% of baseline",
            ),
            CheckResult("p95 stable", "fail", 2.9, 1.2, "<= 110% of baseline", "p95 2.9s vs 1.2s"),
            CheckResult("p99 stable", "fail", 6.1, 2.0, "<= 115% of baseline", "p99 6.1s vs 2.0s"),
            CheckResult(
                "GPU util/mem like last-known-good",
                "insufficient-data",
                None,
                0.8,
                "within 15%",
                "DCGM reports 2 of 4 pods",
            ),
            CheckResult(
                "rollout complete", "pass", 4.0, 4.0, "all replicas available", "4/4 available"
            ),
        ),
        T0,
        300.0,
    )


def series(name: str, unit: str, base: float, level: float) -> MetricSeries:
    points = tuple(
        MetricPoint(T0 - 600 + 15 * i, level * (1 + 0.08 * ((i * 7) % 5 - 2) / 2))
        for i in range(41)
    )
    return MetricSeries(name, unit, points, base, T0, 60.0)


def metrics() -> list[MetricSeries]:
    return [
        series("p95", "s", 1.2, 2.9),
        series("p99", "s", 2.0, 6.1),
        series("tokens_per_s", "tok/s", 2300.0, 1410.0),
        series("gpu_util", "%", 80.0, 64.0),
        series("gpu_mem", "MiB", 62000.0, 41000.0),
    ]


def reports(read_only: bool = False) -> dict[Step, StepReport]:
    progress = RolloutProgress(
        4, 4, 4, 4, 0, True, 'deployment "llm-serve" successfully rolled out'
    )
    return {
        Step.ROLLBACK: StepReport(
            Step.ROLLBACK,
            "findings",
            (
                _finding(
                    Step.ROLLBACK,
                    "lkg-available",
                    Severity.WARNING,
                    "revision 3 drifted (image-mutable-tag, model-revision-unpinned); "
                    "revision 2 is the last-known-good",
                    "deployment/llm-serve",
                ),
            ),
            _actions(Step.ROLLBACK, read_only),
            (
                "*    rev 3   bump to latest vllm | latest, no revision, dtype auto",
                " LKG rev 2   vllm v0.8.5 (last-known-good) | v0.8.5@sha256, rev 0e9e39f, bf16",
                "     rev 1   vllm v0.8.4, llama-3.1-8b pinned | v0.8.4@sha256, rev 0e9e39f",
            ),
            GUIDANCE[Step.ROLLBACK],
            data=RollbackData((), progress),
        ),
        Step.PIN: StepReport(
            Step.PIN,
            "findings",
            (
                _finding(
                    Step.PIN,
                    "image-mutable-tag",
                    Severity.ERROR,
                    "image vllm/vllm-openai:latest uses a mutable tag",
                    "container/vllm",
                ),
                _finding(
                    Step.PIN,
                    "dtype-unset",
                    Severity.WARNING,
                    "--dtype is not set (auto follows the checkpoint)",
                    "container/vllm",
                ),
            ),
            _actions(Step.PIN, read_only),
            ("template: vllm/vllm-openai:latest",),
            GUIDANCE[Step.PIN],
        ),
        Step.LATENCY: StepReport(
            Step.LATENCY,
            "ok",
            (),
            _actions(Step.LATENCY, read_only),
            ("max_num_seqs: 1024 (engine default on H100) -> propose 128",),
            GUIDANCE[Step.LATENCY],
        ),
        Step.ROUTE: StepReport(
            Step.ROUTE,
            "ok",
            (
                _finding(
                    Step.ROUTE,
                    "router-httproute",
                    Severity.INFO,
                    "HTTPRoute llm-serve sends traffic to service/llm-serve",
                    "httproute",
                ),
            ),
            (),
            ("router: HTTPRoute inference/llm-serve",),
            GUIDANCE[Step.ROUTE],
        ),
        Step.HARDWARE: StepReport(
            Step.HARDWARE,
            "findings",
            (
                _finding(
                    Step.HARDWARE,
                    "gpu-class-mismatch",
                    Severity.ERROR,
                    "2 of 4 pods run on A10G, expected H100-80GB",
                    "deployment/llm-serve",
                ),
            ),
            _actions(Step.HARDWARE, read_only),
            (),
            GUIDANCE[Step.HARDWARE],
            data=hardware_report(),
        ),
        Step.VALIDATE: StepReport(
            Step.VALIDATE,
            "findings",
            (),
            _actions(Step.VALIDATE, read_only),
            ("verdict: fail",),
            GUIDANCE[Step.VALIDATE],
            data=verdict(),
        ),
    }


class FakeJournal:
    incident_id = "20251124-160000-inference-llm-serve"

    def __init__(self) -> None:
        self._entries: list[Entry] = []

    def entries(self) -> list[Entry]:
        return list(self._entries)

    def append(self, type_: str, data: dict[str, Any]) -> Entry:
        seq = len(self._entries) + 1
        entry = Entry(seq, f"2025-11-24T16:{seq:02d}:00.000000Z", type_, data)
        self._entries.append(entry)
        return entry

    def meta(self) -> dict[str, Any]:
        return {"opened_at": "2025-11-24T16:00:00.000000Z"}


def _plan(action_id: str, step: Step, title: str) -> Plan:
    before = {"metadata": {"name": "llm-serve"}, "spec": {"template": {"image": "v:latest"}}}
    after = {"metadata": {"name": "llm-serve"}, "spec": {"template": {"image": "v:0.8.5"}}}
    change = Change("Deployment", "inference", "llm-serve", "patch", "json", [], before, after)
    return Plan(
        step,
        action_id,
        title,
        (change,),
        ("kubectl rollout undo deployment/llm-serve -n inference --to-revision=2",),
        tradeoff="Every pod is replaced.",
    )


@dataclass
class FakeGate:
    journal: FakeJournal
    refuse: str = ""  # a denied_reason, e.g. the GitOps warning
    wait: threading.Event | None = None

    def preview(self, plan: Plan) -> Preview:
        if self.wait is not None:
            self.wait.wait(30)
        diff = (
            "--- deployment/llm-serve (live)\n+++ deployment/llm-serve (after)\n@@ -1,3 +1,3 @@\n"
            " spec:\n   template:\n-    image: v:latest\n+    image: v:0.8.5"
        )
        if self.refuse:
            return Preview(plan, False, self.refuse, False, "", diff)
        return Preview(plan, True, "", True, "server dry run accepted every change", diff)

    def apply(self, plan: Plan, preview: Preview) -> Applied:
        self.journal.append("apply-intent", {"action": plan.action})
        entry = self.journal.append(
            "applied",
            {
                "action": plan.action,
                "title": plan.title,
                "verified": True,
                "verify": "re-read: every change is live",
            },
        )
        return Applied(plan, entry.seq, True, "re-read: every change is live")

    def preview_revert(self, seq: int) -> Preview:
        plan = _plan("revert", Step.PIN, f"Revert journal entry {seq}")
        diff = (
            "--- deployment/llm-serve (live)\n+++ deployment/llm-serve (after)\n@@ -1,3 +1,3 @@\n"
            " spec:\n   template:\n-    image: v:0.8.5\n+    image: v:latest"
        )
        return Preview(plan, True, "", True, "server dry run accepted every change", diff)

    def revert(self, seq: int) -> Applied:
        entry = self.journal.append(
            "reverted",
            {"reverts": seq, "title": f"Revert #{seq}", "verified": True, "verify": "re-read"},
        )
        return Applied(_plan("revert", Step.ROLLBACK, "Revert"), entry.seq, True, "re-read")


@dataclass
class FakeRunbook:
    read_only: bool = False
    target: Target = TARGET
    journal: FakeJournal = field(default_factory=FakeJournal)
    wait: threading.Event | None = None  # block every read until set (a slow API)
    refuse: str = ""
    calls: list[str] = field(default_factory=list)
    _gate: FakeGate | None = None
    evidence_root: Path | None = None
    # What a real Runbook's connection is to the app: only ever handed to services by identity.
    cluster: object = field(default_factory=object)

    @property
    def gate(self) -> FakeGate:
        if self._gate is None:
            self._gate = FakeGate(self.journal, self.refuse)
        return self._gate

    def _slow(self) -> None:
        if self.wait is not None:
            self.wait.wait(30)

    def check(self, step: Step) -> StepReport:
        self.calls.append(f"check {step.value}")
        self._slow()
        return reports(self.read_only)[step]

    def progress(self) -> RolloutProgress:
        self._slow()
        progress = reports()[Step.ROLLBACK].progress
        assert progress is not None
        return progress

    def plan(self, action_id: str, inputs: dict[str, str] | None = None) -> Plan:
        self.calls.append(f"plan {action_id} {sorted((inputs or {}).items())}")
        step = Step(action_id.split(".")[0])
        title = next(a.title for a in reports()[step].actions if a.id == action_id)
        return _plan(action_id, step, title)

    def capture_evidence(self, out_dir: Path) -> Path:
        path = Path(out_dir) / f"{self.journal.incident_id}.tar.gz"
        self.journal.append("evidence", {"path": str(path)})
        return path


def fake_session(runbook: FakeRunbook | None = None, **changes: Any) -> Session:
    runbook = runbook or FakeRunbook()
    defaults: dict[str, Any] = dict(
        production=False,
        clock_note="",
        evidence_dir=Path("/tmp/skewmit-evidence"),
        intervals=Intervals(
            checks=3600, validate=3600, rollout=3600, rollout_active=0.05, metrics=3600
        ),
        now=lambda: T0,
        opened_at=T0 - 754,
        metrics_sampler=metrics,
        metrics_now=lambda: T0,
    )
    defaults.update(changes)
    return Session(runbook, **defaults)  # type: ignore[arg-type]


def held_opener(session: Session | None = None) -> tuple[SessionOpener, threading.Event]:
    """An opener of `session` (the fake runbook's by default) whose open() waits, on the
    opening's thread, until the event is set (the first frame comes before any session)."""
    release = threading.Event()
    opened = session or fake_session(FakeRunbook())

    def open_() -> Session:
        release.wait(30)
        return opened

    header = HeaderState(context=TARGET.context, server=TARGET.server, deployment="llm-serve")
    return SessionOpener(header, open_, "connecting to skewmit-sim…"), release
