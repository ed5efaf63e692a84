"""The step board: each step's latest report, what the operator did to it, and the rules that
turn both into what the checklist says, and into why a key cannot act now.

It needs no App: the app feeds it what its workers posted (reports, applies, reverts,
verdicts) and reads states and refusals back, so every rule here is unit-tested alone
(tests/tui/test_step_board.py).

States, in the order they win:
- `skipped`: the operator skipped the step (x).
- `running`: one of its changes is being applied or rolled out.
- `failed`: its check or its last action failed (shown until the next answer).
- `checking`: no answer yet, or a re-check after a change has not answered.
- `findings`: its checks found something to fix.
- `attention`: a fix was applied, its checks are clear, every step is settled, and validation
  still fails on a check that points at it (p95/p99 at tail latency and long-context
  routing, GPU figures at hardware, the rollout at roll back): the fix left is here.
- `done`: clear, with a change of this step applied and standing.
- `reverted`: clear, and every change of this step applied here was reverted since.
- `clear`: the checks found nothing and nothing was changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from services.models import STEP_ORDER, ActionSpec, Step, StepReport, Verdict
from tui.keymap import BY_ACTION, step_number, step_of_action

BoardState = Literal[
    "pending",
    "checking",
    "findings",
    "attention",
    "clear",
    "running",
    "done",
    "reverted",
    "skipped",
    "failed",
]
SHORT_TITLES = {
    Step.ROLLBACK: "Roll back",
    Step.PIN: "Pin config",
    Step.LATENCY: "Tail latency",
    Step.ROUTE: "Route traffic",
    Step.HARDWARE: "GPU class",
    Step.VALIDATE: "Validate",
}
FIX_STEPS = STEP_ORDER[:-1]  # the steps that change something; validation judges them
EVIDENCE_ACTION = "validate.evidence"  # the one action that changes nothing in the cluster


def implicated_steps(check_name: str) -> tuple[Step, ...]:
    """The steps a failing validation check points at (none for data problems: stale or
    missing samples are not fixed by any step)."""
    if check_name in ("p95", "p99"):
        # Tail latency: the serving knobs, or long prompts sharing the pool.
        return (Step.LATENCY, Step.ROUTE)
    if check_name.startswith("tokens"):
        return (Step.LATENCY,)
    if check_name == "gpu-class" or check_name.startswith(("gpu_util", "gpu_mem")):
        return (Step.HARDWARE,)
    if check_name == "rollout-complete":
        return (Step.ROLLBACK,)
    return ()


def journal_changes(entries: Iterable[Any]) -> tuple[dict[Step, set[int]], set[Step]]:
    """From an incident's journal entries (services.journal.Entry: seq, type, data): the
    applied changes still standing per step, and the steps whose every change was reverted.
    The journal outlives the app, so a reopened incident shows "done" and "reverted" too."""
    applied: dict[int, Step] = {}
    undone: set[int] = set()
    for entry in entries:
        if entry.type == "applied":
            try:
                applied[entry.seq] = step_of_action(str(entry.data.get("action", "")))
            except ValueError:
                continue  # not a step's action (a revert's own entry)
        elif entry.type == "reverted":
            undone.add(int(entry.data.get("reverts", -1)))
    standing: dict[Step, set[int]] = {}
    for seq, step in applied.items():
        if seq not in undone:
            standing.setdefault(step, set()).add(seq)
    reverted = {step for seq, step in applied.items() if seq in undone} - set(standing)
    return standing, reverted


def label(step: Step) -> str:
    """`step 2 (Pin config)`: how refusals name a step."""
    return f"step {step_number(step)} ({SHORT_TITLES[step]})"


@dataclass
class StepBoard:
    """What the checklist knows about each step (see the module docstring for the states)."""

    reports: dict[Step, StepReport] = field(default_factory=dict)
    rechecking: set[Step] = field(default_factory=lambda: set(STEP_ORDER))
    # Checks answered per step, and the answer a re-check waits for (see begin_recheck).
    answered: dict[Step, int] = field(default_factory=lambda: dict.fromkeys(STEP_ORDER, 0))
    recheck_answer: dict[Step, int] = field(default_factory=dict)
    failed: dict[Step, str] = field(default_factory=dict)
    skipped: set[Step] = field(default_factory=set)
    # Journal sequence numbers of the changes applied here and not reverted, per step.
    standing: dict[Step, set[int]] = field(default_factory=dict)
    reverted: set[Step] = field(default_factory=set)  # had changes; all reverted since
    # Actions applied whose step has not answered a re-check since: the fix key passes them.
    awaiting: set[str] = field(default_factory=set)
    running_step: Step | None = None
    verdict: Verdict | None = None

    # -- what the workers said ----------------------------------------------------------

    def checked(self, report: StepReport) -> None:
        """A step's check answered."""
        self.reports[report.step] = report
        self.failed.pop(report.step, None)
        self.answer(report.step)

    def check_crashed(self, step: Step, error: str) -> None:
        self.answer(step)
        self.failed[step] = error

    def answer(self, step: Step) -> None:
        """A check came back (or will never): it ends the step's re-check when it started
        after the re-check was asked for."""
        self.answered[step] += 1
        if self.answered[step] >= self.recheck_answer.get(step, 0):
            self.rechecking.discard(step)
            self.awaiting = {a for a in self.awaiting if step_of_action(a) != step}

    def begin_recheck(self, step: Step, answer: int) -> None:
        """Every step is checked again (a change settled): only the step's `answer`-th check
        counts, since one already out read the cluster before the change."""
        self.rechecking.add(step)
        self.recheck_answer[step] = answer

    def applied(self, step: Step, seq: int, action_id: str = "") -> None:
        self.standing.setdefault(step, set()).add(seq)
        self.reverted.discard(step)
        if action_id:
            self.awaiting.add(action_id)

    def reverted_change(self, step: Step | None, seq: int) -> None:
        """Journal entry `seq` was reverted; `step` is the step of its action when known."""
        steps = (
            [step] if step is not None else [s for s, seqs in self.standing.items() if seq in seqs]
        )
        for each in steps:
            seqs = self.standing.get(each, set())
            seqs.discard(seq)
            if not seqs:
                self.standing.pop(each, None)
                self.reverted.add(each)

    def journal_read(self, standing: dict[Step, set[int]], reverted: set[Step]) -> None:
        """The journal's account of the changes (see journal_changes): it is the truth,
        including changes made before a restart."""
        self.standing = {step: set(seqs) for step, seqs in standing.items()}
        self.reverted = set(reverted)

    def action_failed(self, step: Step | None, error: str) -> None:
        if step is not None and step == self.running_step:
            self.running_step = None
        if step is not None:
            self.failed[step] = error

    def toggle_skip(self, step: Step) -> None:
        self.skipped ^= {step}

    # -- the rules ------------------------------------------------------------------------

    @property
    def all_checked(self) -> bool:
        return len(self.reports) == len(STEP_ORDER) and not self.rechecking

    def base_state(self, step: Step) -> BoardState:
        """The state from the step's own report and the operator's doing, before the
        verdict is read."""
        report = self.reports.get(step)
        if step in self.skipped:
            return "skipped"
        if step == self.running_step:
            return "running"
        if step in self.failed:
            return "failed"
        if report is None or step in self.rechecking:
            return "checking"
        if report.state == "failed":
            return "failed"
        if report.state == "findings":
            return "findings"
        if self.standing.get(step):
            return "done"
        if step in self.reverted:
            return "reverted"
        return "clear"

    def attention(self) -> dict[Step, list[str]]:
        """The settled steps validation still fails on, with the failing checks' names:
        empty before the first fix (nothing done yet: the verdict is the symptom) and until
        every fixing step is settled (its own findings lead until then)."""
        verdict = self.verdict
        if verdict is None or verdict.verdict != "fail":
            return {}
        if not self.standing and not self.reverted:
            return {}
        settled = ("clear", "done", "reverted", "skipped")
        if any(self.base_state(s) not in settled for s in FIX_STEPS):
            return {}
        out: dict[Step, list[str]] = {}
        for check in verdict.checks:
            if check.status != "fail":
                continue
            for step in implicated_steps(check.name):
                if self.base_state(step) != "skipped":
                    out.setdefault(step, []).append(check.name)
        return out

    def state_of(self, step: Step) -> BoardState:
        state = self.base_state(step)
        if state in ("clear", "done", "reverted") and step in self.attention():
            return "attention"
        return state

    def note_for(self, step: Step) -> str:
        """What the step detail says about the state beyond the report ("" when nothing)."""
        state = self.state_of(step)
        if state == "attention":
            checks = ", ".join(self.attention()[step])
            return (
                f"needs attention: every step is settled but validation still fails on "
                f"{checks}; this step's actions are the levers left"
            )
        if state == "reverted":
            return "reverted: the change made here was reverted; the checks are clear"
        if state == "running":
            return "running: an action of this step is being applied or rolled out"
        if state == "skipped":
            return "skipped by the operator (x to un-skip)"
        return ""

    # -- keys ------------------------------------------------------------------------------

    def find_action(self, action_id: str) -> ActionSpec | None:
        for report in self.reports.values():
            for action in report.actions:
                if action.id == action_id:
                    return action
        return None

    def why_not(
        self,
        action_id: str,
        selected: Step,
        *,
        read_only: bool = False,
        busy: ActionSpec | None = None,
    ) -> str:
        """Why the action's key cannot start it now ("" when it can). Every refusal names
        the step, so a key of another step says where it belongs."""
        step = step_of_action(action_id)
        key = BY_ACTION[action_id].key if action_id in BY_ACTION else "?"
        name = BY_ACTION[action_id].label if action_id in BY_ACTION else action_id
        if step != selected:
            return f"{key} ({name}) acts on {label(step)}: press {step_number(step)} first"
        spec = self.find_action(action_id)
        why = self._step_not_ready(step)
        if why:
            return why
        if spec is None:
            return f"{label(step)}: {name} is not offered now ({self._nothing_here(step)})"
        return self._spec_refusal(spec, read_only, busy)

    def fix_for(
        self, selected: Step, *, read_only: bool = False, busy: ActionSpec | None = None
    ) -> tuple[ActionSpec | None, str]:
        """The selected step's first available action and "", or None and why not."""
        why = self._step_not_ready(selected)
        if why:
            return None, why
        report = self.reports[selected]
        if report.state == "ok" and selected != Step.VALIDATE:
            # Nothing found: a step's remaining actions are not fixes. After a rollback, step
            # 1 still offers "roll back to the previous revision", which would undo the fix;
            # `a` pressed again out of habit must not reach it (its own key still does).
            return None, f"{label(selected)}: no findings, nothing to fix"
        candidates = [a for a in report.actions if a.available]
        if read_only:
            candidates = [a for a in candidates if a.id == EVIDENCE_ACTION]
        fresh = [a for a in candidates if a.id not in self.awaiting]
        if candidates and not fresh:
            return None, (
                f"{label(selected)} is being re-checked after your change; its next fix "
                "shows when it answers (or press the action's own key)"
            )
        candidates = fresh
        if not candidates:
            if not report.actions:
                return None, f"{label(selected)}: {self._nothing_here(selected)}"
            first = report.actions[0]
            reason = "read-only mode (started --read-only)" if read_only else first.reason
            state = "no findings, " if report.state == "ok" else ""
            return None, f"{label(selected)}: {state}{first.title}: {reason or 'not possible now'}"
        spec = candidates[0]
        why = self._spec_refusal(spec, read_only, busy)
        return (None, why) if why else (spec, "")

    def _step_not_ready(self, step: Step) -> str:
        if step in self.skipped:
            return f"{label(step)} is skipped (x un-skips it)"
        if self.reports.get(step) is None:
            return f"{label(step)} is still being checked; its actions come when it answers"
        return ""

    def _nothing_here(self, step: Step) -> str:
        report = self.reports[step]
        if report.error:
            return f"its check failed: {report.error}"
        if report.state == "ok":
            return "no findings, nothing to fix"
        return "no action fits what was found; see the step's guidance"

    @staticmethod
    def _spec_refusal(spec: ActionSpec, read_only: bool, busy: ActionSpec | None) -> str:
        step = label(spec.step)
        name = BY_ACTION[spec.id].label if spec.id in BY_ACTION else spec.title
        if read_only and spec.id != EVIDENCE_ACTION:
            return f"read-only mode: {name} would change the cluster (started --read-only)"
        if not spec.available:
            return f"{step}: {spec.title}: {spec.reason or 'not possible now'}"
        if busy is not None:
            return f"{busy.title} is still in progress; one change at a time"
        return ""

    def rows(self) -> Iterable[tuple[Step, BoardState, int, int]]:
        """Each step's state and error and warning counts, in runbook order."""
        for step in STEP_ORDER:
            report = self.reports.get(step)
            counts = report.counts if report else {}
            yield step, self.state_of(step), counts.get("error", 0), counts.get("warning", 0)
