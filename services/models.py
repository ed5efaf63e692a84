"""Plain frozen dataclasses that cross from services to the UI and the headless commands.

Kubernetes model objects and raw Prometheus JSON never leave the edge modules; these do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, TypeAlias


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Step(StrEnum):
    ROLLBACK = "rollback"
    PIN = "pin"
    LATENCY = "latency"
    ROUTE = "route"
    HARDWARE = "hardware"
    VALIDATE = "validate"


STEP_ORDER: tuple[Step, ...] = tuple(Step)
STEP_TITLES: dict[Step, str] = {
    Step.ROLLBACK: "Roll back to last-known-good",
    Step.PIN: "Pin the configuration",
    Step.LATENCY: "Stabilize tail latency",
    Step.ROUTE: "Route long-context traffic",
    Step.HARDWARE: "Fix hardware skew",
    Step.VALIDATE: "Validate and capture evidence",
}


@dataclass(frozen=True)
class Target:
    """What an incident is about: one Deployment in one namespace of one context."""

    context: str
    namespace: str
    deployment: str
    server: str = ""
    user: str = ""


@dataclass(frozen=True)
class Finding:
    step: Step
    code: str  # stable: image-mutable-tag, model-revision-unpinned, dtype-unset, ...
    severity: Severity
    message: str
    subject: str  # e.g. "pod/llm-serve-abc12 container/vllm" or "deployment/llm-serve"
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, str]:
        return {
            "step": self.step.value,
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "subject": self.subject,
        }


@dataclass(frozen=True)
class EngineConfig:
    """The serving engine's effective configuration, read from a container's args and env."""

    engine: str  # vllm | tgi | sglang | unknown
    container: str
    image: str
    model: str | None
    revision: str | None
    dtype: str | None  # as configured; None = unset
    max_model_len: int | None  # as configured; None = unset
    max_num_seqs: int | None
    max_output_tokens: int | None
    served_model_name: str | None = None
    # Effective values including the engine's implicit defaults, with where each came from.
    effective: dict[str, tuple[Any, str]] = field(default_factory=dict)
    # Knobs set explicitly by a flag or env var (also when the value sits in a ConfigMap or
    # Secret and so cannot be read here): revision, dtype, max_model_len, max_num_seqs, ...
    configured: frozenset[str] = frozenset()
    # Caveats for the operator, e.g. "command runs through a shell script".
    notes: tuple[str, ...] = ()


# A GpuReading's note while its node's nvidia-smi waits for a later check (step 5 reads a
# bounded number of nodes per check): never shown as a pass.
SMI_NOT_READ_YET = "nvidia-smi not read yet"


@dataclass(frozen=True)
class GpuReading:
    """One GPU row of the inspector: pod -> node -> labels -> nvidia-smi -> DCGM."""

    pod: str
    node: str
    label_product: str | None  # GFD nvidia.com/gpu.product, normalized
    label_source: str  # which label said so
    smi_name: str | None  # nvidia-smi name
    smi_memory_mib: int | None
    dcgm_model: str | None
    gpu_class: str | None  # normalized class, e.g. "H100-80GB"
    expected_class: str | None
    mismatch: bool
    note: str = ""


@dataclass(frozen=True)
class Revision:
    number: int
    replicaset: str
    created: str
    images: tuple[str, ...]
    summary: str  # model / revision / dtype / max-model-len
    change_cause: str
    current: bool
    last_known_good: bool
    replicas: int
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class RolloutProgress:
    desired: int
    updated: int
    ready: int
    available: int
    old_pods: int
    done: bool
    message: str
    problems: tuple[Finding, ...] = ()  # crashloop, pending, deadline exceeded


@dataclass(frozen=True)
class Change:
    """One object's change inside a plan: before and after as plain dicts (secrets masked
    only for display; the journal stores masked copies)."""

    kind: str
    namespace: str
    name: str
    operation: str  # patch | create | delete | apply (server-side, services.guarded_apply)
    patch_type: str  # json | merge | strategic | "" for create/delete
    patch: Any
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    resource_version: str = ""


@dataclass(frozen=True)
class Plan:
    step: Step
    action: str  # stable action id, e.g. rollback.undo, pin.image-digest
    title: str
    changes: tuple[Change, ...]
    kubectl: tuple[str, ...]  # the equivalent kubectl commands
    tradeoff: str = ""
    notes: tuple[str, ...] = ()  # e.g. what a rollback does not restore
    destructive: bool = False


@dataclass(frozen=True)
class Preview:
    plan: Plan
    allowed: bool
    denied_reason: str
    dry_run_ok: bool
    dry_run_message: str
    diff: str  # unified diff of masked before/after


@dataclass(frozen=True)
class MetricPoint:
    t: float  # unix seconds
    v: float


@dataclass(frozen=True)
class MetricSeries:
    name: str  # p95 | p99 | tokens_per_s | gpu_util | gpu_mem ...
    unit: str
    points: tuple[MetricPoint, ...]
    baseline: float | None
    fetched_at: float
    stale_after_s: float
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def latest(self) -> float | None:
        return self.points[-1].v if self.points else None


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # pass | fail | insufficient-data
    observed: float | None
    baseline: float | None
    threshold: str
    message: str
    # The one PromQL query (live, over the judged window) a human can run to check the figure.
    query: str = ""
    limit: float | None = None  # the bar the observed value was held to, when there is one
    window_s: float | None = None  # the window the observed value was taken over


@dataclass(frozen=True)
class Verdict:
    verdict: str  # pass | fail | insufficient-data
    checks: tuple[CheckResult, ...]
    at: float
    window_s: float
    # insufficient-data: seconds until the gate can judge (the window fills), when known.
    remaining_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "at": self.at,
            "window_s": self.window_s,
            "remaining_s": self.remaining_s,
            "checks": [c.__dict__ for c in self.checks],
        }


@dataclass(frozen=True)
class GitOpsInfo:
    """A GitOps controller's claim on an object, and what a manual change will run into."""

    tool: str  # argocd | flux
    kind: str  # Application | Kustomization | HelmRelease
    app: str  # the Argo CD Application or Flux Kustomization/HelmRelease name
    namespace: str  # where that object lives ("" when the markers do not say)
    confidence: str  # certain | likely | possible
    reverts: bool | None  # will a manual change be reverted? None = cannot tell from here
    guidance: str  # what will happen and the GitOps-side action, for the operator
    evidence: tuple[str, ...] = ()  # the markers found, e.g. "annotation argocd.argoproj.io/..."
    commands: tuple[str, ...] = ()  # GitOps-side commands, e.g. "flux suspend kustomization ..."


@dataclass(frozen=True)
class RouterInfo:
    """What sends a Deployment's Service its traffic (step 4): a Gateway API HTTPRoute, an
    Istio VirtualService, or nothing skewmit can edit."""

    kind: str  # httproute | virtualservice | none
    name: str  # the route object ("" for none)
    namespace: str
    deployment: str
    service: str  # the Service selecting the Deployment's pods ("" when none does)
    port: int | None  # the Service port the rule sends to
    rule_index: int | None = None  # index in spec.rules (HTTPRoute) or spec.http (VirtualService)
    rule: dict[str, Any] = field(default_factory=dict)  # that rule, as the server has it
    long_context_backend: str = ""  # where an `x-context-class: long` rule sends ("" = none)
    resource_version: str = ""
    notes: tuple[str, ...] = ()  # e.g. "2 HTTPRoutes reference service/llm-serve; using ..."


@dataclass(frozen=True)
class HardwareReport:
    """The GPU inspector's result (step 5): one row per pod and the class they should be on."""

    namespace: str
    deployment: str
    rows: tuple[GpuReading, ...]
    expected_class: str | None
    expected_reason: str
    pinned_class: str | None  # the class the live template's nodeSelector/affinity requires
    lkg_revision: int | None  # the revision the expected class was read from, if any

    @property
    def mismatches(self) -> tuple[GpuReading, ...]:
        return tuple(row for row in self.rows if row.mismatch)


@dataclass(frozen=True)
class Knob:
    """One step-3 latency knob of the serving engine: its effective value now, where that value
    comes from, and the next small reduction with what it costs."""

    name: str  # max_output_tokens | max_model_len | max_num_seqs
    label: str  # max output tokens | max context length | max running sequences
    setting: str  # the engine's flag or env var: --max-num-seqs, MAX_CONCURRENT_REQUESTS, ...
    current: int | None  # effective value, implicit defaults included; None = not known here
    source: str  # "explicit (--max-num-seqs)" or which default applies
    proposed: int | None  # the next small step down; None = none to propose (tradeoff says why)
    tradeoff: str  # e.g. "max running sequences 1024 -> 768: about 25% less peak throughput..."
    action: str  # the plan's action id: latency.max-num-seqs, ...
    container: str = ""


# -- what a step's check reports (the TUI's step detail, `skewmit check`) ----------------------


@dataclass(frozen=True)
class Guidance:
    """The runbook's words for a step (services.guidance holds each step's)."""

    why: str
    look_for: str
    tradeoff: str
    runbook: tuple[str, ...]  # the runbook's own commands for the step


@dataclass(frozen=True)
class InputSpec:
    """One value an action asks the operator for before it plans."""

    name: str
    prompt: str
    default: str = ""


@dataclass(frozen=True)
class ActionSpec:
    """An action a step offers: what it does, its kubectl equivalent, what it asks for, and
    whether it can run in this session (and why not)."""

    id: str
    step: Step
    title: str
    key: str  # a letter, unique across every step (tui/keymap.py holds the map)
    description: str
    kubectl: tuple[str, ...] = ()
    inputs: tuple[InputSpec, ...] = ()
    available: bool = True
    reason: str = ""
    destructive: bool = False


@dataclass(frozen=True)
class RollbackData:
    """Step 1's own report: the Deployment's revisions and how its rollout is going."""

    revisions: tuple[Revision, ...]
    progress: RolloutProgress


# Each step's own report: step 1 RollbackData, step 3 its knobs, step 4 the router, step 5
# the GPU inspection, step 6 the verdict; step 2 has none.
StepData: TypeAlias = RollbackData | tuple[Knob, ...] | RouterInfo | HardwareReport | Verdict | None
StepState = Literal["ok", "findings", "failed"]


@dataclass(frozen=True)
class StepReport:
    """One step's check: its findings, the actions it offers, lines for the detail pane, and
    the step's own report (`data`, read through the typed properties below)."""

    step: Step
    state: StepState
    findings: tuple[Finding, ...]
    actions: tuple[ActionSpec, ...]
    detail: tuple[str, ...]
    guidance: Guidance
    error: str = ""
    data: StepData = None

    @property
    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in Severity}
        for finding in self.findings:
            out[finding.severity.value] += 1
        return out

    @property
    def progress(self) -> RolloutProgress | None:
        """Step 1: the rollout's progress when the check ran."""
        return self.data.progress if isinstance(self.data, RollbackData) else None

    @property
    def revisions(self) -> tuple[Revision, ...]:
        """Step 1: the Deployment's revisions, oldest first."""
        return self.data.revisions if isinstance(self.data, RollbackData) else ()

    @property
    def knobs(self) -> tuple[Knob, ...]:
        """Step 3: the serving engine's latency knobs."""
        return self.data if isinstance(self.data, tuple) else ()

    @property
    def router(self) -> RouterInfo | None:
        """Step 4: what sends the Deployment's Service its traffic."""
        return self.data if isinstance(self.data, RouterInfo) else None

    @property
    def hardware(self) -> HardwareReport | None:
        """Step 5: the GPU inspection."""
        return self.data if isinstance(self.data, HardwareReport) else None

    @property
    def verdict(self) -> Verdict | None:
        """Step 6: the validation gate's verdict."""
        return self.data if isinstance(self.data, Verdict) else None


# -- the changes an incident made, from its journal (the action log, the bridge) ---------------

ActionStatus = Literal["applied", "unverified", "reverted", "failed", "unknown"]


@dataclass(frozen=True)
class JournalAction:
    """One change in the incident's journal as the action log lists it."""

    seq: int  # the journal entry a revert names
    when: str  # HH:MM:SS (UTC, the journal's clock)
    title: str
    status: ActionStatus
    note: str = ""
    revertible: bool = False  # applied and not reverted since
