"""The step board's rules without an App: what each step says (clear, done, reverted, needs
attention...), and why a key cannot act, named by step."""

from __future__ import annotations

from dataclasses import replace

from services.journal import Entry
from services.models import STEP_ORDER, CheckResult, Step, StepReport, Verdict
from tests.tui.fakes import T0, reports
from tui.keymap import BY_ACTION, BY_KEY, FIX_KEY, REVERT_KEY, STEP_KEYS
from tui.step_board import StepBoard, implicated_steps, journal_changes


def clear(step: Step) -> StepReport:
    """The fake's report of `step` with nothing found (its actions kept)."""
    return replace(reports()[step], state="ok", findings=())


def settled_board() -> StepBoard:
    """Every step checked and clear, one change of step 1 applied (journal entry 7)."""
    board = StepBoard()
    for step in STEP_ORDER:
        board.checked(clear(step))
    board.applied(Step.ROLLBACK, 7, "rollback.undo")
    return board


def failing(*names: str) -> Verdict:
    checks = tuple(CheckResult(n, "fail", 2.0, 1.0, "<= 110%", f"{n} high") for n in names)
    passing = (CheckResult("data-fresh", "pass", 5.0, None, "<= 60 s", "fresh"),)
    return Verdict("fail", checks + passing, T0, 600.0)


def test_a_step_is_checking_until_it_answers_then_clear_or_findings() -> None:
    board = StepBoard()
    assert {board.state_of(s) for s in STEP_ORDER} == {"checking"}
    board.checked(reports()[Step.PIN])
    board.checked(clear(Step.LATENCY))
    assert board.state_of(Step.PIN) == "findings"
    assert board.state_of(Step.LATENCY) == "clear"
    assert board.state_of(Step.ROUTE) == "checking"


def test_a_recheck_is_answered_only_by_a_check_started_after_it() -> None:
    board = StepBoard()
    board.checked(reports()[Step.HARDWARE])  # answer 1
    board.begin_recheck(Step.HARDWARE, 3)  # answer 2 was already out: it read the old pods
    board.checked(reports()[Step.HARDWARE])
    assert board.state_of(Step.HARDWARE) == "checking"
    board.checked(clear(Step.HARDWARE))
    assert board.state_of(Step.HARDWARE) == "clear"


def test_done_after_a_change_and_reverted_after_its_revert() -> None:
    board = settled_board()
    assert board.state_of(Step.ROLLBACK) == "done"
    board.reverted_change(None, 7)  # the journal did not say the step: found by seq
    assert board.state_of(Step.ROLLBACK) == "reverted"
    assert "reverted" in board.note_for(Step.ROLLBACK)
    board.applied(Step.ROLLBACK, 9)
    assert board.state_of(Step.ROLLBACK) == "done"
    # Two changes: reverting one leaves the step done.
    board.applied(Step.ROLLBACK, 10)
    board.reverted_change(Step.ROLLBACK, 9)
    assert board.state_of(Step.ROLLBACK) == "done"


def test_findings_running_failed_and_skipped_win_over_done() -> None:
    board = settled_board()
    board.checked(reports()[Step.ROLLBACK])
    assert board.state_of(Step.ROLLBACK) == "findings"
    board.running_step = Step.ROLLBACK
    assert board.state_of(Step.ROLLBACK) == "running"
    board.action_failed(Step.ROLLBACK, "conflict")
    assert board.running_step is None and board.state_of(Step.ROLLBACK) == "failed"
    board.checked(clear(Step.ROLLBACK))  # the next answer clears the failure
    assert board.state_of(Step.ROLLBACK) == "done"
    board.toggle_skip(Step.ROLLBACK)
    assert board.state_of(Step.ROLLBACK) == "skipped"


def test_after_the_last_fix_the_steps_validation_still_fails_on_need_attention() -> None:
    """Every step settled, validation failing on p95 +13%: tail latency and routing are
    pointed at (they said "clear" beside the failure), hardware and pinning are not."""
    board = settled_board()
    board.verdict = failing("p95")
    states = {s: board.state_of(s) for s in STEP_ORDER}
    assert states[Step.LATENCY] == "attention" and states[Step.ROUTE] == "attention"
    assert states[Step.PIN] == "clear" and states[Step.HARDWARE] == "clear"
    assert states[Step.ROLLBACK] == "done"
    assert "validation still fails on p95" in board.note_for(Step.LATENCY)
    board.verdict = failing("gpu_util", "rollout-complete")
    assert board.state_of(Step.HARDWARE) == "attention"
    assert board.state_of(Step.ROLLBACK) == "attention"
    assert board.state_of(Step.LATENCY) == "clear"


def test_no_attention_before_a_fix_while_a_step_has_findings_or_without_a_fail() -> None:
    board = StepBoard()
    for step in STEP_ORDER:
        board.checked(clear(step))
    board.verdict = failing("p95")  # a healthy fleet's first verdict on thin data
    assert board.state_of(Step.LATENCY) == "clear"
    board = settled_board()
    board.verdict = failing("p95")
    board.checked(reports()[Step.HARDWARE])  # a fix is still on screen: it leads
    assert board.state_of(Step.LATENCY) == "clear"
    board.checked(clear(Step.HARDWARE))
    board.verdict = replace(failing("p95"), verdict="insufficient-data")
    assert board.state_of(Step.LATENCY) == "clear"
    assert implicated_steps("data-fresh") == ()  # stale data is fixed by no step


def test_one_letter_per_action_across_every_step() -> None:
    keys = [k.key for k in STEP_KEYS]
    assert len(set(keys)) == len(keys)
    assert FIX_KEY not in BY_KEY and REVERT_KEY not in BY_KEY
    assert not set(keys) & set("qgxv123456")  # the screen's and the app's own keys
    # The fake runbook's actions name the same letters as the keymap.
    for report in reports().values():
        for action in report.actions:
            assert BY_ACTION[action.id].key == action.key, action.id


def test_a_key_of_another_step_says_where_it_belongs() -> None:
    board = settled_board()
    why = board.why_not("hardware.node-selector", Step.ROLLBACK)
    assert why.startswith("s (nodeSelector) acts on step 5 (GPU class): press 5 first")


def test_why_a_key_cannot_act() -> None:
    board = StepBoard()
    assert "still being checked" in board.why_not("pin.image-digest", Step.PIN)
    for step in STEP_ORDER:
        board.checked(reports()[step])
    assert board.why_not("pin.image-digest", Step.PIN) == ""
    assert board.why_not("pin.image-digest", Step.PIN, read_only=True).startswith(
        "read-only mode: Pin image would change the cluster"
    )
    busy = reports()[Step.PIN].actions[1]
    assert "one change at a time" in board.why_not("pin.image-digest", Step.PIN, busy=busy)
    # A letter of the step the checks do not offer now: its step says why.
    assert board.why_not("pin.model-revision", Step.PIN).startswith(
        "step 2 (Pin config): Pin model rev is not offered now"
    )
    denied = replace(
        reports()[Step.PIN].actions[0],
        available=False,
        reason='not permitted: user "viewer" may not patch deployments',
    )
    board.checked(replace(reports()[Step.PIN], actions=(denied,)))
    assert board.why_not("pin.image-digest", Step.PIN) == (
        "step 2 (Pin config): Pin the image by digest: "
        'not permitted: user "viewer" may not patch deployments'
    )


def test_the_fix_key_takes_the_first_available_action_or_says_why() -> None:
    board = StepBoard()
    for step in STEP_ORDER:
        board.checked(reports()[step])
    spec, why = board.fix_for(Step.PIN)
    assert spec is not None and spec.id == "pin.image-digest" and why == ""
    # Applied: until step 2 answers again, `a` offers the next fix, not the same one twice.
    board.applied(Step.PIN, 3, "pin.image-digest")
    spec, _ = board.fix_for(Step.PIN)
    assert spec is not None and spec.id == "pin.dtype"
    board.applied(Step.PIN, 4, "pin.dtype")
    spec, why = board.fix_for(Step.PIN)
    assert spec is None and "re-checked after your change" in why
    board.checked(reports()[Step.PIN])
    assert board.fix_for(Step.PIN)[0] is not None
    assert board.fix_for(Step.ROUTE) == (
        None,
        "step 4 (Route traffic): no findings, nothing to fix",
    )
    spec, why = board.fix_for(Step.ROLLBACK, read_only=True)
    assert spec is None and "read-only mode" in why
    spec, _ = board.fix_for(Step.VALIDATE, read_only=True)  # evidence changes no cluster
    assert spec is not None and spec.id == "validate.evidence"


def test_the_fix_key_never_offers_an_action_on_a_step_with_nothing_found() -> None:
    """Seen in the demo: after the rollback, step 1 is clear yet still offers "roll back to
    the previous revision"; `a` offered it, so a habitual a-enter-enter would undo the fix."""
    board = settled_board()
    report = board.reports[Step.ROLLBACK]
    assert report.state == "ok" and any(a.available for a in report.actions)
    spec, why = board.fix_for(Step.ROLLBACK)
    assert spec is None and why == "step 1 (Roll back): no findings, nothing to fix"


def test_the_journal_says_what_is_done_and_reverted_after_a_restart() -> None:
    """A reopened incident: the changes come from the journal, not from this run's memory."""

    def entry(seq: int, type_: str, **data: object) -> Entry:
        return Entry(seq, f"2025-11-24T16:{seq:02d}:00Z", type_, dict(data))

    entries = [
        entry(1, "finding", code="lkg-available"),
        entry(2, "applied", action="rollback.undo", title="Roll back"),
        entry(3, "applied", action="latency.max-num-seqs", title="Lower"),
        entry(4, "reverted", reverts=3, title="Revert #3"),
        entry(5, "applied", action="revert", title="not a step's action"),
    ]
    standing, reverted = journal_changes(entries)
    assert standing == {Step.ROLLBACK: {2}} and reverted == {Step.LATENCY}
    board = StepBoard()
    for step in STEP_ORDER:
        board.checked(clear(step))
    board.journal_read(standing, reverted)
    assert board.state_of(Step.ROLLBACK) == "done"
    assert board.state_of(Step.LATENCY) == "reverted"
    assert board.state_of(Step.PIN) == "clear"
