"""Drills: the incidents a trainer can draw, the bad rollout that starts one, and the trainee's
score and debrief, computed from the incident's journal alone.

A drill is an ordinary incident: the trainee works through the app and the gate, and every
change lands in the journal as usual. The drill adds `drill` entries (started, hint, fault,
gave-up, ended) so the debrief can be rebuilt from the journal after the fact, by anyone.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from services.clock import JOURNAL_FORMAT
from services.errors import ConfigError, InvalidError
from services.guidance import GUIDANCE
from services.journal import Entry
from services.journal_actions import reverted_by
from services.models import STEP_TITLES, Step

if TYPE_CHECKING:  # the kubernetes client is not needed to score a journal
    from services.kube import Cluster

DRILL_ENTRY = "drill"  # the journal entry type; data["event"] says which
Event = Literal["started", "hint", "fault", "gave-up", "ended"]
Outcome = Literal["mitigated", "gave up", "unfinished"]
BAD_SEVERITIES = frozenset({"warning", "error"})


@dataclass(frozen=True)
class Edit:
    """One change to the serving container, applied as a bad rollout would apply it."""

    op: Literal["set-arg", "drop-arg", "image"]
    name: str  # the flag (--dtype) or, for `image`, the new image reference
    value: str = ""


@dataclass(frozen=True)
class PathStep:
    """One step of the runbook's intended path: which actions count as taking it."""

    actions: tuple[str, ...]  # action ids, or prefixes ending in "." ("pin.")
    what: str

    def matches(self, action: str) -> bool:
        return any(action == a or (a.endswith(".") and action.startswith(a)) for a in self.actions)


@dataclass(frozen=True)
class Variant:
    """An incident a drill can start: a simulator scenario, optionally followed by a bad
    rollout (`edits`) sent through the API server once the simulator runs."""

    name: str
    scenario: str
    summary: str  # told at the debrief, never before
    intended: tuple[PathStep, ...]
    edits: tuple[Edit, ...] = ()


ROLLBACK = PathStep(("rollback.undo",), "roll back to the last-known-good revision (step 1)")
VALIDATE = PathStep(("validate.",), "validate against the baseline before declaring resolved")


def _pin(action: str, what: str) -> PathStep:
    return PathStep((action,), f"pin {what} so the next restart cannot drift again (step 2)")


CATALOGUE: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "skew-incident",
            "skew-incident",
            "an unpinned rollout of :latest: no model revision, dtype or max model len pinned, "
            "half the pods on A10G nodes, and a long-context burst",
            (
                ROLLBACK,
                _pin("pin.", "the image digest, model revision, dtype and max model len"),
                PathStep(("hardware.",), "require the last-known-good GPU class (step 5)"),
                VALIDATE,
            ),
        ),
        Variant(
            "gitops-managed",
            "gitops-managed",
            "the skew incident on a Deployment Argo CD manages with self-heal: a manual fix is "
            "reverted within seconds unless the change goes through Git (or sync is paused)",
            (
                PathStep(("rollback.undo",), "pause Argo CD's self-heal, then roll back (step 1)"),
                _pin("pin.", "the image digest and model settings, in Git as well"),
                VALIDATE,
            ),
        ),
        Variant(
            "tgi-fleet",
            "tgi",
            "the skew incident on a TGI fleet configured by environment variables",
            (ROLLBACK, _pin("pin.", "the image digest, REVISION and DTYPE"), VALIDATE),
        ),
        Variant(
            "hardware",
            "hardware-only",
            "everything pinned but the GPU class: pods without a nodeSelector landed on a "
            "slower GPU",
            (
                PathStep(("hardware.",), "require the last-known-good GPU class (step 5)"),
                VALIDATE,
            ),
        ),
        Variant(
            "dtype",
            "healthy",
            "a rollout that set --dtype float32: half the throughput, twice the latency",
            (ROLLBACK, _pin("pin.dtype", "the dtype last-known-good served with"), VALIDATE),
            (Edit("set-arg", "--dtype", "float32"),),
        ),
        Variant(
            "max-model-len",
            "healthy",
            "a rollout that dropped --max-model-len: long prompts are admitted and p99 climbs",
            (
                ROLLBACK,
                PathStep(("pin.max-model-len", "latency."), "cap the context length (step 2/3)"),
                VALIDATE,
            ),
            (Edit("drop-arg", "--max-model-len"),),
        ),
        Variant(
            "image-tag",
            "healthy",
            "a rollout to the mutable :latest image tag with the dtype left to auto",
            (ROLLBACK, _pin("pin.image-digest", "the image by digest"), VALIDATE),
            (Edit("image", "vllm/vllm-openai:latest"), Edit("set-arg", "--dtype", "float32")),
        ),
        Variant(
            "revision",
            "healthy",
            "a rollout that dropped --revision and forced float32: the model is unpinned",
            (ROLLBACK, _pin("pin.model-revision", "the model revision"), VALIDATE),
            (Edit("drop-arg", "--revision"), Edit("set-arg", "--dtype", "float32")),
        ),
    )
}


def choose(name: str = "random", seed: int | None = None) -> Variant:
    """The variant called `name`, or one drawn with `seed` ("random"). Raises ConfigError for
    an unknown name."""
    if name == "random":
        return random.Random(seed).choice([CATALOGUE[k] for k in sorted(CATALOGUE)])
    if name not in CATALOGUE:
        raise ConfigError(f"unknown drill {name!r}; known: random, {', '.join(sorted(CATALOGUE))}")
    return CATALOGUE[name]


def edited_container(container: dict[str, Any], edits: Sequence[Edit]) -> dict[str, Any]:
    """The container with the edits applied (a copy). Raises InvalidError when an edit does
    not fit the container (a flag to drop that it does not pass)."""
    out = dict(container)
    args = [str(a) for a in container.get("args") or []]
    for edit in edits:
        if edit.op == "image":
            out["image"] = edit.name
            continue
        at = args.index(edit.name) if edit.name in args else -1
        if edit.op == "drop-arg":
            if at < 0:
                raise InvalidError(f"the container does not pass {edit.name}")
            del args[at : at + 2]
        elif at < 0:
            args += [edit.name, edit.value]
        else:
            args[at + 1] = edit.value
    out["args"] = args
    return out


def start_bad_rollout(cluster: Cluster, namespace: str, deployment: str, variant: Variant) -> bool:
    """Apply the variant's edits to the Deployment's first container (a new revision, as a
    careless `kubectl apply` makes one); False when the variant has none. Raises what the
    cluster raises (NotFound, Forbidden, Conflict) and InvalidError for an edit that does not
    fit."""
    if not variant.edits:
        return False
    live = cluster.get("Deployment", namespace, deployment)
    container = live["spec"]["template"]["spec"]["containers"][0]
    patch = [
        {
            "op": "test",
            "path": "/metadata/resourceVersion",
            "value": live["metadata"].get("resourceVersion", ""),
        },
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0",
            "value": edited_container(container, variant.edits),
        },
        {
            "op": "add",
            "path": "/metadata/annotations/kubernetes.io~1change-cause",
            "value": "routine rollout",
        },
    ]
    if not live["metadata"].get("annotations"):
        patch.insert(1, {"op": "add", "path": "/metadata/annotations", "value": {}})
    cluster.patch("Deployment", namespace, deployment, patch, "json")
    return True


def hint(step: Step, used: int) -> str:
    """The runbook's guidance for a step, one layer per request: why, then what to look for,
    then the trade-off of its actions."""
    guidance = GUIDANCE[step]
    layers = (guidance.why, guidance.look_for, guidance.tradeoff)
    return f"{STEP_TITLES[step]}: {layers[min(used, len(layers) - 1)]}"


# -- the score, from the journal ------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    seq: int
    at_s: float  # seconds after the drill started
    action: str
    title: str
    reverted: bool = False
    # The bad findings it left standing, each "<step title>: code subject".
    worse_by: tuple[str, ...] = ()
    correct: bool = False

    @property
    def worse(self) -> bool:
        return bool(self.worse_by)


@dataclass(frozen=True)
class Score:
    variant: str
    outcome: Outcome
    duration_s: float
    first_correct_s: float | None
    mitigated_s: float | None
    actions: tuple[Action, ...]
    reverts: int
    hints: tuple[str, ...]
    faults: tuple[str, ...]
    intended: tuple[str, ...]
    failed_applies: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def worse(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.worse)


def _ts(entry: Entry) -> float:
    try:
        return datetime.strptime(entry.ts, JOURNAL_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0


def _drill(entry: Entry, event: str) -> bool:
    return entry.type == DRILL_ENTRY and entry.data.get("event") == event


def _made_worse(window: Sequence[Entry], before: set[tuple[str, str, str, str]]) -> tuple[str, ...]:
    """The bad findings seen in `window` and still standing at its end that were not already
    standing when the change was made (`before`), as "<step title>: code subject" (empty: it
    made nothing worse). A rollout's passing warnings (pods pending while they are replaced,
    cleared once it finishes) are the change working; the incident's own symptom coming back
    after a clear (tail latency flickering around its limit) was there before the change: not
    fixed yet is not made worse."""
    standing = _standing(window) - before
    return tuple(
        f"{_step_title(step)}: {code} {subject}".rstrip()
        for step, code, subject, _ in sorted(standing)
    )


def _standing(entries: Sequence[Entry]) -> set[tuple[str, str, str, str]]:
    """The bad findings seen in `entries` and not cleared after (validation's verdicts aside)."""
    standing: set[tuple[str, str, str, str]] = set()
    for entry in entries:
        step = str(entry.data.get("step", ""))
        if entry.type != "findings" or step == Step.VALIDATE.value:
            continue
        for found in entry.data.get("cleared") or []:
            if isinstance(found, dict):
                standing.discard(_finding_id(step, found))
        for found in entry.data.get("seen") or []:
            if isinstance(found, dict) and found.get("severity") in BAD_SEVERITIES:
                standing.add(_finding_id(step, found))
    return standing


def _step_title(value: str) -> str:
    try:
        return STEP_TITLES[Step(value)]
    except ValueError:
        return value


def _finding_id(step: str, found: dict[str, Any]) -> tuple[str, str, str, str]:
    return (step, str(found.get("code")), str(found.get("subject")), str(found.get("severity")))


def score(entries: Sequence[Entry], variant: Variant) -> Score:
    """The trainee's score from the journal's entries. Raises InvalidError when the journal
    holds no drill (no `drill` started entry)."""
    start = next((e for e in entries if _drill(e, "started")), None)
    if start is None:
        raise InvalidError("this journal holds no drill: no drill-started entry")
    t0 = _ts(start)
    after = [e for e in entries if e.seq > start.seq]
    reverted = reverted_by(after)  # the action log's and the gate's rule
    applied = [e for e in after if e.type == "applied"]
    actions: list[Action] = []
    for i, entry in enumerate(applied):
        action = str(entry.data.get("action", ""))
        # Worse: new problems the checks saw after it and still saw at the trainee's next
        # change (or at the end).
        until = applied[i + 1].seq if i + 1 < len(applied) else None
        window = [e for e in after if e.seq > entry.seq and (until is None or e.seq < until)]
        before = _standing([e for e in entries if e.seq < entry.seq])
        actions.append(
            Action(
                entry.seq,
                _ts(entry) - t0,
                action,
                str(entry.data.get("title", action)),
                reverted=entry.seq in reverted,
                worse_by=_made_worse(window, before),
                correct=any(step.matches(action) for step in variant.intended),
            )
        )
    first_correct = next((a.at_s for a in actions if a.correct and not a.reverted), None)
    mitigated = None
    if applied:
        mitigated = next(
            (
                _ts(e) - t0
                for e in after
                if e.seq > applied[0].seq
                and e.type == "findings"
                and e.data.get("step") == Step.VALIDATE.value
                and e.data.get("state") == "ok"
            ),
            None,
        )
    end = next((e for e in after if _drill(e, "ended") or _drill(e, "gave-up")), None)
    gave_up = any(_drill(e, "gave-up") for e in after)
    outcome: Outcome = (
        "gave up" if gave_up else ("mitigated" if mitigated is not None else "unfinished")
    )
    last = end or (after[-1] if after else start)
    return Score(
        variant=variant.name,
        outcome=outcome,
        duration_s=max(0.0, _ts(last) - t0),
        first_correct_s=first_correct,
        mitigated_s=mitigated,
        actions=tuple(actions),
        reverts=len(reverted),
        hints=tuple(str(e.data.get("text", "")) for e in after if _drill(e, "hint")),
        faults=tuple(
            f"{_ts(e) - t0:.0f} s: {e.data.get('fault', '')} {e.data.get('detail', '')}".rstrip()
            for e in after
            if _drill(e, "fault")
        ),
        intended=tuple(step.what for step in variant.intended),
        failed_applies=len([e for e in after if e.type == "apply-failed"]),
    )


def _secs(value: float | None) -> str:
    if value is None:
        return "not reached"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def report_markdown(result: Score, variant: Variant) -> str:
    """`drill-report.md`: the debrief as Markdown."""
    lines = [
        f"# Drill debrief: {variant.name}",
        "",
        f"The incident: {variant.summary}.",
        "",
        f"- Outcome: {result.outcome.upper()}, after {_secs(result.duration_s)}",
        f"- Time to first correct action: {_secs(result.first_correct_s)}",
        f"- Time to mitigation (validation passed): {_secs(result.mitigated_s)}",
        f"- Changes made: {len(result.actions)}",
        f"- Changes reverted: {result.reverts}",
        f"- Actions that made it worse: {len(result.worse)}",
        f"- Failed applies: {result.failed_applies}",
        f"- Hints used: {len(result.hints)}",
        "",
        "## The runbook's path beside yours",
        "",
        "| # | Runbook's intended path | Your path |",
        "|---|---|---|",
    ]
    mine = [
        f"{a.title} ({_secs(a.at_s)}"
        + (", reverted" if a.reverted else "")
        + (f", made it worse: {'; '.join(a.worse_by)}" if a.worse else "")
        + ")"
        for a in result.actions
    ]
    for i in range(max(len(result.intended), len(mine))):
        ours = result.intended[i] if i < len(result.intended) else ""
        theirs = mine[i] if i < len(mine) else ""
        lines.append(f"| {i + 1} | {_cell(ours)} | {_cell(theirs)} |")
    if result.hints:
        lines += ["", "## Hints used", ""] + [f"- {_cell(h)}" for h in result.hints]
    if result.faults:
        lines += ["", "## Faults the trainer injected", ""] + [
            f"- {_cell(f)}" for f in result.faults
        ]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
