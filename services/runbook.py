"""The runbook engine: each step's checks, its actions, and plans for the gate.

One flow for every step: checks read the cluster (and metrics) and produce findings; an action
turns findings and operator input into a plan; the gate previews, applies, verifies and
journals it. The TUI and the headless commands are two faces on this one object. Every method
here blocks on the network: call it from a worker thread.

The report types (StepReport, ActionSpec, InputSpec, Guidance) live in services.models, which
the widgets may import; they are re-exported here so older imports keep working.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from services import hardware, latency, pin, rollout, routing, symptoms
from services.errors import InvalidError, SkewmitError
from services.gate import Gate
from services.gitops import gitops_markers
from services.guidance import GUIDANCE
from services.journal import Journal
from services.kube import Cluster, reads_once
from services.models import ActionSpec as ActionSpec
from services.models import (
    Finding,
    HardwareReport,
    Plan,
    RollbackData,
    RolloutProgress,
    Severity,
    Step,
    StepData,
    Target,
    Verdict,
)
from services.models import Guidance as Guidance
from services.models import InputSpec as InputSpec
from services.models import StepReport as StepReport
from services.report_listener import hand_over

# The verb and kind each action needs, for the RBAC pre-check.
ACTION_PERMISSIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "rollback.undo": (("patch", "Deployment"),),
    "pin.image-digest": (("patch", "Deployment"),),
    "pin.model-revision": (("patch", "Deployment"),),
    "pin.dtype": (("patch", "Deployment"),),
    "pin.max-model-len": (("patch", "Deployment"),),
    "latency.max-output-tokens": (("patch", "Deployment"),),
    "latency.max-model-len": (("patch", "Deployment"),),
    "latency.max-num-seqs": (("patch", "Deployment"),),
    # Server-side apply of new objects: a PATCH that creates, so both verbs (guarded_apply).
    "route.long-context": (
        ("create", "Deployment"),
        ("patch", "Deployment"),
        ("create", "Service"),
        ("patch", "Service"),
    ),
    "hardware.node-selector": (("patch", "Deployment"),),
    "hardware.cordon": (("patch", "Node"),),
    "hardware.taint": (("patch", "Node"),),
    "hardware.delete-pods": (("delete", "Pod"),),
}


@dataclass
class Runbook:
    cluster: Cluster
    target: Target
    journal: Journal | None = None
    read_only: bool = False
    metrics: Any = None  # a services.metrics MetricsSource, when there is one
    config: dict[str, Any] = field(default_factory=dict)
    gitops_override: bool = False
    force_conflicts: bool = False  # server-side apply may take others' fields (--force-conflicts)
    # Said once when the session opens: "opened read-only: held by ...", reconciled intents.
    notices: tuple[str, ...] = ()
    # Opens the incident's journal on first need (a finding in steps 1-5, or a change), so a
    # healthy fleet opens no incident. None: `journal` is all there is.
    open_journal: Callable[[], Journal] | None = None
    # Reaches the metrics source on first need: the launcher's Prometheus opening, still
    # under way when the session opened (its detection took 1.5 s on `large`, and a Prometheus
    # that hangs takes its whole timeout), so that the checks and panes that need only the
    # cluster do not wait for it (issue 12). None: `metrics` is all there is.
    metrics_opening: Future[Any] | None = None
    # Why there is no metrics source, when the launcher knows (Prometheus refused the
    # connection...): step 6 and the evidence bundle say it rather than "pass --prometheus".
    metrics_why: str = ""
    # Tries a configured source that could not be reached again (the launcher's, rate-limited
    # there); once it answers it calls `metrics_reached`. None: nothing to try again.
    metrics_reach: Callable[[], object] | None = None
    _gate: Gate | None = None
    _permissions: dict[tuple[str, str], tuple[bool, str]] = field(default_factory=dict)
    _baseline: Any = None  # frozen once per incident: see baseline()
    _baseline_refused: SkewmitError | None = None
    # Guards the three fields above, briefly: never held across a capture, which can take
    # seconds against a slow Prometheus, while the first checks open the journal (issue 12).
    _baseline_lock: threading.Lock = field(default_factory=threading.Lock)
    _capture_lock: threading.Lock = field(default_factory=threading.Lock)  # one capture at once
    _journal_lock: threading.Lock = field(default_factory=threading.Lock)
    _metrics_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def ns(self) -> str:
        return self.target.namespace

    @property
    def name(self) -> str:
        return self.target.deployment

    def ensure_journal(self) -> Journal | None:
        """The incident's journal, opened now when the session deferred it, with the baseline
        frozen before it journaled in it. Raises what `open_journal` raises (ConfigError for
        an unwritable state directory), JournalError."""
        if self.journal is not None or self.open_journal is None:
            return self.journal
        # Checks run in parallel workers: two openings would make the second a read-only
        # holder of the first's lock.
        with self._journal_lock:
            if self.journal is None:
                journal = self.open_journal()
                with self._baseline_lock:
                    self.journal = journal  # a capture ending now adopts it: see baseline()
                    if self._baseline is not None:
                        from services import baseline_choice

                        self._baseline = baseline_choice.adopt(journal, self._baseline)
        return self.journal

    def metrics_source(self, *, wait: bool = True) -> Any:
        """The metrics source (None without one), waiting for `metrics_opening` when the
        session opened before it answered, and trying an unreachable one again
        (`metrics_reach`); with `wait=False`, None while it has not, and no try. Raises what
        the opening raised (ConfigError), on every call."""
        opening = self.metrics_opening
        if opening is not None:
            if not wait and not opening.done():
                return None
            source = opening.result()
            with self._metrics_lock:
                if self.metrics_opening is opening:
                    self.metrics, self.metrics_opening = source, None
        if self.metrics is None and wait and self.metrics_reach is not None:
            self.metrics_reach()  # a Prometheus unreachable at the opening may answer now
        return self.metrics

    def metrics_reached(self, source: Any) -> None:
        """A metrics source reached after the session opened without one (Prometheus was
        unreachable at the opening): the checks and the gate use it from their next run, and
        nothing says it is missing any more."""
        with self._metrics_lock:
            self.metrics, self.metrics_opening = source, None
            self.metrics_why = ""

    @property
    def gate(self) -> Gate:
        if self._gate is None:
            journal = self.ensure_journal()
            if journal is None:
                raise InvalidError("no incident journal: this session cannot change anything")
            self._gate = Gate(
                self.cluster,
                journal,
                read_only=self.read_only,
                gitops_override=self.gitops_override,
                force_conflicts=self.force_conflicts,
            )
        return self._gate

    # -- checks --------------------------------------------------------------

    def check(self, step: Step) -> StepReport:
        """Run one step's checks. Errors become a `failed` report, never an exception. The
        report is handed over (services.report_listener) before the journal's work, which
        the first finding's opening of the incident makes slow: a listener shows it at once,
        and keeps the report returned here, which says when the journal failed."""
        checks: dict[Step, Callable[[], StepReport]] = {
            Step.ROLLBACK: self._check_rollback,
            Step.PIN: self._check_pin,
            Step.LATENCY: self._check_latency,
            Step.ROUTE: self._check_route,
            Step.HARDWARE: self._check_hardware,
            Step.VALIDATE: self._check_validate,
        }
        try:
            with reads_once():  # one state of each object per check, one round trip each
                report = checks[step]()
        except SkewmitError as exc:
            return StepReport(step, "failed", (), (), (), GUIDANCE[step], str(exc))
        hand_over(report)
        if step != Step.VALIDATE and report.state == "findings":
            try:
                self.ensure_journal()  # something to fix: the incident opens
            except SkewmitError as exc:
                error = f"the incident's journal cannot be opened: {exc}"
                return StepReport(step, "failed", (), (), (), GUIDANCE[step], error)
        if self.journal is not None:
            # Changes of state only (first seen, cleared): a snapshot per check grew the
            # journal by megabytes a minute on a large fleet.
            self.journal.record_findings(
                step.value, report.state, [f.as_json() for f in report.findings]
            )
        return report

    def check_all(self) -> list[StepReport]:
        return [self.check(step) for step in Step]

    def findings(self, include_info: bool = False) -> list[Finding]:
        """Every step's warning and error findings, info ones too with `include_info` (what
        `skewmit check` reports). Raises SkewmitError with the first step's error."""
        out: list[Finding] = []
        for step in (Step.ROLLBACK, Step.PIN, Step.LATENCY, Step.ROUTE, Step.HARDWARE):
            report = self.check(step)
            if report.error:
                raise SkewmitError(report.error)
            out += [f for f in report.findings if include_info or f.severity != Severity.INFO]
        return out

    def _report(
        self,
        step: Step,
        findings: list[Finding],
        actions: list[ActionSpec],
        detail: list[str],
        data: StepData = None,
    ) -> StepReport:
        serious = [f for f in findings if f.severity != Severity.INFO]
        return StepReport(
            step,
            "findings" if serious else "ok",
            tuple(findings),
            tuple(self._availability(a) for a in actions),
            tuple(detail),
            GUIDANCE[step],
            data=data,
        )

    def _availability(self, action: ActionSpec) -> ActionSpec:
        if self.read_only:
            return _replace(action, available=False, reason="read-only mode")
        if not action.available:
            return action
        for verb, kind in ACTION_PERMISSIONS.get(action.id, ()):
            key = (verb, kind)
            if key not in self._permissions:
                self._permissions[key] = self.cluster.can_i(verb, kind, self.ns)
            allowed, reason = self._permissions[key]
            if not allowed:
                return _replace(action, available=False, reason=f"not permitted: {reason}")
        return action

    def gitops_finding(self) -> Finding | None:
        deployment = self.cluster.get("Deployment", self.ns, self.name)
        info = self.gate.gitops(deployment) if self.journal else gitops_markers(deployment)
        if info is None:
            return None
        return Finding(
            Step.ROLLBACK,
            "gitops-managed",
            Severity.WARNING,
            f"managed by {info.tool} ({info.app}): {info.guidance}",
            f"deployment/{self.name}",
        )

    def _check_rollback(self) -> StepReport:
        revisions = rollout.history(self.cluster, self.ns, self.name)
        progress = rollout.progress(self.cluster, self.ns, self.name)
        findings = list(progress.problems)
        gitops = self.gitops_finding()
        if gitops:
            findings.insert(0, gitops)
        current = next((r for r in revisions if r.current), None)
        lkg = next((r for r in revisions if r.last_known_good), None)
        if current and current.findings and lkg:
            findings.append(
                Finding(
                    Step.ROLLBACK,
                    "lkg-available",
                    Severity.WARNING,
                    f"revision {current.number} drifted "
                    f"({', '.join(sorted({f.code for f in current.findings}))}); "
                    f"revision {lkg.number} is the last-known-good",
                    f"deployment/{self.name}",
                )
            )
        detail = [
            f"{'*' if r.current else ' '}{'LKG' if r.last_known_good else '   '} "
            f"rev {r.number:<3} {r.change_cause or '-'} | {r.summary}"
            for r in revisions
        ]
        detail.append(progress.message)
        actions = []
        drifted = current is not None and bool(current.findings)
        if lkg and drifted:
            actions.append(
                ActionSpec(
                    "rollback.undo",
                    Step.ROLLBACK,
                    f"Roll back to last-known-good (revision {lkg.number})",
                    "u",
                    GUIDANCE[Step.ROLLBACK].tradeoff,
                    (
                        f"kubectl rollout undo deployment/{self.name} -n {self.ns} "
                        f"--to-revision={lkg.number}",
                    ),
                    (InputSpec("to_revision", "Revision to restore", str(lkg.number)),),
                )
            )
        elif len(revisions) > 1:
            actions.append(
                ActionSpec(
                    "rollback.undo",
                    Step.ROLLBACK,
                    "Roll back to the previous revision",
                    "u",
                    "The current revision shows no drift; roll back only if it is still the "
                    "suspect. " + GUIDANCE[Step.ROLLBACK].tradeoff,
                    (f"kubectl rollout undo deployment/{self.name} -n {self.ns}",),
                    (InputSpec("to_revision", "Revision to restore (0 = previous)", "0"),),
                )
            )
        return self._report(
            Step.ROLLBACK, findings, actions, detail, RollbackData(tuple(revisions), progress)
        )

    def _check_pin(self) -> StepReport:
        findings = pin.pin_findings(self.cluster, self.ns, self.name)
        actions = [_spec(a) for a in pin.pin_actions(self.cluster, self.ns, self.name, findings)]
        detail = [f"{f.subject}: {f.message}" for f in findings] or ["everything is pinned"]
        return self._report(Step.PIN, findings, actions, detail)

    def _check_latency(self) -> StepReport:
        knobs = latency.latency_knobs(self.cluster, self.ns, self.name)
        actions = [_spec(a) for a in latency.latency_actions(knobs)]
        detail = [f"{k.name}: {k.current} ({k.source}) -> propose {k.proposed}" for k in knobs]
        # The live tail latency against the baseline, judged as the validation gate does.
        live = symptoms.tail_latency(
            self.metrics_source(), self.baseline, self._latency_limit(), self.name, knobs
        )
        detail += live.detail
        return self._report(Step.LATENCY, list(live.findings), actions, detail, tuple(knobs))

    def _context(self) -> int | None:
        try:
            knobs = latency.latency_knobs(self.cluster, self.ns, self.name)
        except SkewmitError:
            return None  # no serving engine recognised: the baseline alone is compared
        return next((k.current for k in knobs if k.name == "max_model_len"), None)

    def _latency_limit(self) -> float:
        from services.validation import Thresholds

        return Thresholds.from_mapping(self.config.get("thresholds")).latency_max_ratio

    def _check_route(self) -> StepReport:
        router = routing.detect_router(self.cluster, self.ns, self.name)
        findings = routing.route_findings(self.cluster, self.ns, self.name, router)
        actions = [
            _spec(a) for a in routing.route_actions(self.cluster, self.ns, self.name, router)
        ]
        detail = routing.describe(router)
        metrics = self.metrics_source()
        if metrics is not None:
            # The live prompt lengths against the baseline's: is long-context traffic up?
            live = symptoms.long_context(metrics, self.baseline, self.name, self._context())
            findings, detail = [*live.findings, *findings], [*live.detail, *detail]
        return self._report(Step.ROUTE, list(findings), actions, detail, router)

    def _check_hardware(self) -> StepReport:
        report = self.inspector()
        findings = hardware.hardware_findings(report)
        actions = [_spec(a) for a in hardware.hardware_actions(report)]
        return self._report(Step.HARDWARE, findings, actions, hardware.describe(report), report)

    def _check_validate(self) -> StepReport:
        verdict = self.validate()
        findings = [
            Finding(
                Step.VALIDATE,
                f"validation-{c.status}",
                Severity.WARNING,
                f"{c.name}: {c.message}",
                f"deployment/{self.name}",
            )
            for c in verdict.checks
            if c.status != "pass"
        ]
        detail = [f"verdict: {verdict.verdict}"] + [
            f"{c.status:>17}  {c.name}: {c.message}" for c in verdict.checks
        ]
        actions = [
            ActionSpec(
                "validate.evidence",
                Step.VALIDATE,
                "Capture the evidence bundle",
                "e",
                "Write the post-fix evidence bundle (folder and .tar.gz).",
            )
        ]
        return StepReport(
            Step.VALIDATE,
            "ok" if verdict.verdict == "pass" else "findings",
            tuple(findings),
            tuple(actions),
            tuple(detail),
            GUIDANCE[Step.VALIDATE],
            data=verdict,
        )

    # -- step data -----------------------------------------------------------

    def progress(self) -> RolloutProgress:
        return rollout.progress(self.cluster, self.ns, self.name)

    def inspector(self) -> HardwareReport:
        # DCGM's GPU models are a column of the inspector, not what step 5 is judged on:
        # this check does not wait for a Prometheus still being reached (one that hangs
        # takes its whole timeout); its next check has them.
        metrics = self.metrics_source(wait=False)
        configured = self.config.get("expected_gpu_class")
        if metrics is None or not hasattr(metrics, "dcgm_models"):
            return hardware.gpu_inspection(self.cluster, self.ns, self.name, configured=configured)
        # Prometheus answers on a thread of its own while the cluster is read and nvidia-smi
        # runs in the pods: one after the other, a Prometheus that took 2 s made step 5 and
        # the inspector 2 s later (25 ms of the opening's inspector on the bench; issue 12).
        # A failed cluster read does not wait for Prometheus' answer.
        pool = ThreadPoolExecutor(1, thread_name_prefix="skewmit-dcgm")
        try:
            models = pool.submit(metrics.dcgm_models, self.ns, self.name)
            return hardware.gpu_inspection(
                self.cluster, self.ns, self.name, dcgm=models.result, configured=configured
            )
        finally:
            pool.shutdown(wait=False)

    def baseline(self) -> Any:
        """The incident's frozen baseline (services.baseline_choice): the journal's, else
        captured once, checked and journaled; None without a metrics source. Raises
        BaselineRefused (saying which window to use instead), ConfigError, what the cluster
        and the source raise."""
        metrics = self.metrics_source()
        if metrics is None:
            return None
        from services import baseline_choice
        from services.metrics.baseline import BaselineSpec
        from services.validation import Thresholds

        with self._capture_lock:
            with self._baseline_lock:
                if self._baseline is not None:
                    return self._baseline
                if self._baseline_refused is not None:
                    # A past window does not fill in by itself. Raised without the traceback
                    # of the last raise: each re-raise chained onto it, keeping every earlier
                    # poll's frames alive (+16 MiB/h watching a fresh Prometheus).
                    raise self._baseline_refused.with_traceback(None)
                journal = self.journal
            thresholds = Thresholds.from_mapping(self.config.get("thresholds"))
            window = getattr(metrics, "baseline_window_s", None)
            try:
                found = baseline_choice.frozen(
                    metrics,
                    getattr(metrics, "baseline_spec", None) or BaselineSpec(),
                    window or thresholds.stable_window_s,
                    cluster=self.cluster,
                    journal=journal,
                )
            except baseline_choice.BaselineRefused as exc:
                with self._baseline_lock:
                    self._baseline_refused = exc
                raise
            with self._baseline_lock:
                if journal is None and self.journal is not None:
                    # The incident opened during the capture: journal the baseline in it now
                    # (or take the one a reopened incident already holds).
                    found = baseline_choice.adopt(self.journal, found)
                self._baseline = found
                return found

    def validate(self) -> Verdict:
        from services import validation

        return validation.validate(
            self.cluster,
            self.target,
            self.metrics_source(),
            self.config.get("thresholds"),
            baseline=self.baseline(),
            no_source=self.metrics_why,
        )

    def capture_evidence(self, out_dir: Any) -> Any:
        from services import evidence

        return evidence.capture(self, out_dir)

    # -- actions -------------------------------------------------------------

    def plan(self, action_id: str, inputs: dict[str, str] | None = None) -> Plan:
        """Build the plan for an action. Raises InvalidError for bad operator input and
        whatever the step module raises (NotFound, Conflict...)."""
        inputs = inputs or {}
        if action_id == "rollback.undo":
            raw = inputs.get("to_revision", "0") or "0"
            if not raw.strip().isdigit():
                raise InvalidError(
                    f"revision {raw!r} is not a number; give a revision from "
                    "the history (0 = previous)"
                )
            return rollout.undo_plan(self.cluster, self.ns, self.name, int(raw))
        step = action_id.split(".", 1)[0]
        builders: dict[str, Callable[..., Plan]] = {
            "pin": pin.plan,
            "latency": latency.plan,
            "route": routing.plan,
            "hardware": hardware.plan,
        }
        if step not in builders:
            raise InvalidError(f"unknown action {action_id!r}")
        return builders[step](self.cluster, self.ns, self.name, action_id, inputs)


def _replace(action: ActionSpec, **changes: Any) -> ActionSpec:
    from dataclasses import replace

    return replace(action, **changes)


def _spec(action: Any) -> ActionSpec:
    """Accept the step modules' action descriptions (ActionSpec or a mapping)."""
    if isinstance(action, ActionSpec):
        return action
    data = dict(action)
    data["inputs"] = tuple(
        InputSpec(**i) if isinstance(i, dict) else i for i in data.get("inputs", ())
    )
    data["kubectl"] = tuple(data.get("kubectl", ()))
    return ActionSpec(**data)
