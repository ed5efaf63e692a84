"""What the operator's keys do, on the deterministic fake runbook (issue 10's interaction
findings): one letter per action on every step, every key acts or says why on the status
line (NO_COLOR too), Enter applies a preview and modals show their own keys, focus is
visible, the action log starts on the newest change and reads at 120x40, the inspector keeps
its scroll, `q` asks during a rollout, steps open at their top."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest
from textual.binding import Binding
from textual.widgets import Footer

from services.journal import Entry
from services.models import STEP_ORDER, RolloutProgress, Step
from tests.tui.conftest import wait_until
from tests.tui.fakes import FakeJournal, FakeRunbook, fake_session
from tui.app import SkewmitApp
from tui.keymap import FIX_KEY, STEP_KEYS
from tui.screens.input_prompt import InputPromptScreen
from tui.screens.main import MainScreen
from tui.screens.preview import ConfirmScreen
from widgets.action_log import ActionLog
from widgets.checklist import Checklist
from widgets.inspector_table import InspectorTable
from widgets.step_detail import StepDetail


def app_for(runbook: FakeRunbook | None = None, **session: Any) -> SkewmitApp:
    app = SkewmitApp(fake_session(runbook or FakeRunbook(), **session))
    app.animation_level = "none"
    return app


def footer_keys(screen: Any) -> dict[str, str]:
    """What the screen's footer shows: key display -> description, enabled keys only."""
    shown = {}
    for key in screen.query_one(Footer).query("FooterKey"):
        if not key.has_class("-disabled"):  # a dimmed key (its action cannot run now)
            shown[key.key_display] = key.description
    return shown


def toasts(app: SkewmitApp) -> list[str]:
    return [str(toast.render()) for toast in app.screen.query("Toast")]


def status(app: SkewmitApp) -> str:
    """The main screen's status line: a refusal, or what the fix key does."""
    return app.main.status_text


def applied(runbook: FakeRunbook) -> int:
    return [e.type for e in runbook.journal.entries()].count("applied")


async def test_enter_applies_the_preview_and_the_modal_footer_shows_its_keys() -> None:
    runbook = FakeRunbook()
    app = app_for(runbook)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        await pilot.press("2", "i")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "preview")
        await wait_until(pilot, lambda: app.screen.armed, "preview on screen")  # type: ignore[attr-defined]
        keys = footer_keys(app.screen)
        assert keys.get("enter/y") == "Confirm" and keys.get("esc") == "Cancel", keys
        assert "Quit" not in keys.values()  # not the main screen's footer
        await pilot.press("enter")
        await wait_until(pilot, lambda: applied(runbook) == 1, "applied by Enter")
        assert isinstance(app.screen, MainScreen)
        # Tab to Cancel, then Enter, cancels.
        await pilot.press("2", "p")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "preview")
        await pilot.press("tab", "tab", "enter")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "cancelled")
        assert applied(runbook) == 1


async def test_a_dimmed_key_says_why_it_cannot_run() -> None:
    runbook = FakeRunbook(read_only=True)
    app = app_for(runbook)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        await pilot.press("u")
        await wait_until(pilot, lambda: status(app).startswith("read-only"), "an explanation")
        assert status(app).startswith("read-only mode: Roll back would change"), status(app)
        assert isinstance(app.screen, MainScreen) and "plan" not in " ".join(runbook.calls)
        assert not toasts(app)  # said on the status line, not over the screen
        await pilot.press("r")  # nothing applied, and read-only besides
        await wait_until(pilot, lambda: "nothing to revert" in status(app), "revert explained")


async def test_a_key_pressed_while_a_change_is_in_progress_says_so() -> None:
    import threading

    runbook = FakeRunbook()
    app = app_for(runbook)
    hold = threading.Event()
    try:
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
            runbook.gate.wait = hold  # the preview of `i` hangs on a slow API server
            await pilot.press("2", "i")
            await wait_until(pilot, lambda: app.actions.busy is not None, "previewing")
            await pilot.press("p")
            await wait_until(pilot, lambda: "one change at a time" in status(app), "an explanation")
    finally:
        hold.set()


async def test_focus_is_visible_and_the_log_starts_on_the_newest_change() -> None:
    runbook = FakeRunbook()
    app = app_for(runbook)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        await pilot.press("2", "i")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "preview 1")
        await pilot.press("y")
        log = app.main.query_one(ActionLog)
        await wait_until(pilot, lambda: len(log.entries) == 1, "first change logged")
        await pilot.press("p")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "preview 2")
        await pilot.press("y")
        await wait_until(pilot, lambda: len(log.entries) == 2, "second change logged")
        checklist, pane_log = app.main.query_one("#checklist"), app.main.query_one("#pane-log")
        assert checklist.styles.border_top[0] == "heavy"  # focus starts on the checklist
        assert pane_log.styles.border_top[0] == "round"
        log.focus()
        await pilot.pause()
        assert pane_log.styles.border_top[0] == "heavy"
        assert checklist.styles.border_top[0] == "round"
        assert log.selected is not None and log.selected.title == "Set --dtype bfloat16"
        assert log.render_line(1).text.split()[0] == "2"  # the newest is change #2


async def test_action_log_reads_at_120x40() -> None:
    app = app_for()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        await pilot.press("2", "i")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "preview")
        await pilot.press("y")
        log = app.main.query_one(ActionLog)
        await wait_until(pilot, lambda: len(log.entries) == 1, "logged")
        await pilot.pause()
        row = log.render_line(1).text
        assert row.split()[:4] == ["1", "16:02", "✓", "Pin"], row
        assert "Pin the image" in row  # the full title is in the detail under the table
        assert app.main.query_one("#pane-log").border_title == "Action log"
        detail = str(app.main.query_one("#log-detail").render())
        assert detail.startswith("#1 Pin the image by digest\njournal entry 2 · 16:02:00")


async def test_inspector_keeps_cursor_across_polls_and_shows_the_pods_detail() -> None:
    """Issue 10: at 120x40 the inspector showed Pod, Node and "Cla"; nvidia-smi, DCGM and the
    note were off to the right and the scroll reset every poll. Now the list fits the pane and
    the highlighted pod's GPU facts are under it, following the cursor across polls."""
    app = app_for()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        table = app.main.query_one(InspectorTable)
        await wait_until(pilot, lambda: table.row_count == 4, "pods listed")
        table.focus()
        await pilot.press("down", "down")
        await pilot.pause()
        assert table.max_scroll_x == 0, "the list fits: nothing hides off to the right"
        detail = str(app.main.query_one("#inspector-detail").render())
        row = table.readings[2]
        assert f"pod        {row.pod}" in detail and f"node       {row.node}" in detail
        assert "nvidia-smi " in detail and "DCGM " in detail and "label " in detail
        answered = app.board.answered[Step.HARDWARE]
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: app.board.answered[Step.HARDWARE] > answered, "re-read")
        await pilot.pause()
        assert table.cursor_row == 2
        assert str(app.main.query_one("#inspector-detail").render()) == detail


async def test_the_inspector_list_fits_at_80x24() -> None:
    app = app_for()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        await pilot.press("]", "]")  # one pane at a time: the inspector's tab
        table = app.main.query_one(InspectorTable)
        await wait_until(pilot, lambda: table.row_count == 4, "pods listed")
        await pilot.pause()
        assert table.max_scroll_x == 0
        assert "nvidia-smi " in str(app.main.query_one("#inspector-detail").render())


@dataclass
class RollingRunbook(FakeRunbook):
    """A rollout that never finishes."""

    def progress(self) -> RolloutProgress:
        return RolloutProgress(4, 2, 3, 3, 2, False, "2 of 4 updated replicas are available")


def rolling(app: SkewmitApp) -> bool:
    """The rollout poll's answer is on screen: step 1's report (a finished rollout in the
    fakes) may answer first, and reads answer in any order."""
    progress = app.dashboard.progress
    return progress is not None and not progress.done


async def test_quit_during_a_rollout_asks_first() -> None:
    app = app_for(RollingRunbook())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: rolling(app), "the rollout in flight read")
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "asked")
        assert "rollout is in flight" in str(app.screen.query_one("#confirm-body").render())
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen) and app.is_running
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "asked again")
        await pilot.press("y")
        await wait_until(pilot, lambda: app.return_code is not None, "quit")


async def test_quit_without_a_rollout_does_not_ask() -> None:
    app = app_for()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: app.dashboard.progress is not None, "rollout read")
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_code is not None, "quit")


async def test_another_step_opens_at_its_top_and_on_its_tab() -> None:
    app = app_for()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        await pilot.press("2")
        detail = app.main.query_one(StepDetail)
        detail.scroll_end(animate=False, immediate=True)
        await pilot.pause()
        assert detail.scroll_y > 0
        await pilot.press("5")
        await pilot.pause()
        assert detail.scroll_y == 0
        await pilot.press("]", "]", "]")
        assert app.main.pane == "log"
        await pilot.press("2")
        assert app.main.pane == "step" and app.selected_step == Step.PIN


async def test_revert_shows_a_preview_and_r_on_a_revert_says_why_not() -> None:
    runbook = FakeRunbook()
    app = app_for(runbook)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        await pilot.press("2", "i")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "preview")
        await pilot.press("y")
        log = app.main.query_one(ActionLog)
        await wait_until(pilot, lambda: len(log.entries) == 1, "logged")
        log.focus()
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "revert preview")
        screen = app.screen
        assert "Revert: Pin the image by digest" in str(screen.query_one("#confirm-title").render())
        assert "server dry run" in str(screen.query_one("#confirm-body").render())
        assert "+    image: v:latest" in str(screen.query_one("#confirm-diff").render())
        await pilot.press("y")
        await wait_until(pilot, lambda: len(log.entries) == 2, "revert logged")
        await wait_until(pilot, lambda: app.actions.busy is None, "revert done")
        assert log.selected is not None and log.selected.title == "Revert #2"  # the newest
        await pilot.press("r")  # the revert itself has nothing to revert
        await wait_until(pilot, lambda: "has nothing to revert" in status(app), "explanation")
        assert isinstance(app.screen, MainScreen)


async def test_one_letter_means_one_action_on_every_step() -> None:
    """`s`, `c` and `d` were latency knobs in step 3 and nodeSelector, cordon and delete pods
    in step 5; `r` was pin-revision and revert. Now each letter is one declared binding, the
    same on every step: the footer shows the selected step's keys and no other step's."""
    app = app_for()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        seen: dict[str, set[str]] = {}
        for number in "123456":
            await pilot.press(number)
            await pilot.pause()
            for key, active in app.main.active_bindings.items():
                seen.setdefault(key, set()).add(active.binding.id or "")
            step = app.selected_step
            shown = footer_keys(app.main)
            for spec in STEP_KEYS:
                assert (spec.key in shown) == (spec.step == step and spec.key in offered(app)), (
                    number,
                    spec.key,
                    shown,
                )
        assert all(len(ids) == 1 for ids in seen.values()), seen
        assert seen["s"] == {"step-action.hardware.node-selector"}
        assert seen.get("r", {"main.revert"}) == {"main.revert"}  # hidden: nothing to revert
        declared = [b.key for b in MainScreen.BINDINGS if isinstance(b, Binding)]
        assert len(declared) == len(set(declared))  # no letter bound twice on the screen


def offered(app: SkewmitApp) -> set[str]:
    """The letters of the selected step's actions that can run now."""
    report = app.board.reports[app.selected_step]
    return {a.key for a in report.actions if a.available}


async def test_every_key_acts_or_says_why_under_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    """On step 1 (under NO_COLOR, where a dimmed footer key looks like any other), every
    letter of the keymap either starts its action or says on the status line why not."""
    monkeypatch.setenv("NO_COLOR", "1")
    runbook = FakeRunbook()
    app = app_for(runbook)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        assert app.no_color
        for spec in STEP_KEYS:
            await pilot.press(spec.key)
            if spec.step == Step.ROLLBACK:
                await wait_until(pilot, lambda: isinstance(app.screen, InputPromptScreen), "u")
                await pilot.press("escape")
                continue
            number = STEP_ORDER.index(spec.step) + 1
            said = f"press {number} first"
            await wait_until(pilot, lambda s=said: s in status(app), spec.key)  # type: ignore[misc]
            assert status(app).startswith(f"{spec.key} ({spec.label}) acts on step {number}")
            assert isinstance(app.screen, MainScreen)
        await pilot.press("4", FIX_KEY)  # step 4 offers nothing
        await wait_until(pilot, lambda: "nothing to fix" in status(app), "a on step 4")
        assert status(app) == "step 4 (Route traffic): no findings, nothing to fix"
        await pilot.press("l")  # step 4's own letter, not offered by its checks
        await wait_until(pilot, lambda: "not offered now" in status(app), "l on step 4")
        assert not [c for c in runbook.calls if c.startswith("plan")]


async def test_the_fix_key_previews_the_steps_first_available_action() -> None:
    runbook = FakeRunbook()
    app = app_for(runbook)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        assert status(app) == "a: Roll back to last-known-good (revision 2)"  # the hint
        await pilot.press("2")
        await wait_until(pilot, lambda: status(app) == "a: Pin the image by digest", "hint 2")
        await pilot.press(FIX_KEY)
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "preview")
        await wait_until(pilot, lambda: app.screen.armed, "preview on screen")  # type: ignore[attr-defined]
        await pilot.press("enter")
        await wait_until(pilot, lambda: applied(runbook) == 1, "applied")
        assert "plan pin.image-digest []" in runbook.calls


async def test_r_on_the_checklist_reverts_the_newest_change_after_a_preview() -> None:
    runbook = FakeRunbook()
    app = app_for(runbook)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        await pilot.press("2", "i", "y")
        await wait_until(pilot, lambda: applied(runbook) == 1, "applied")
        await wait_until(pilot, lambda: app.actions.busy is None, "settled")
        assert app.main.query_one("#checklist").has_focus
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "revert preview")
        title = str(app.screen.query_one("#confirm-title").render())
        assert title == "Revert: Pin the image by digest"
        await pilot.press("y")
        await wait_until(
            pilot, lambda: app.main.query_one(Checklist).row(Step.PIN).state != "done", "revert"
        )
        await wait_until(
            pilot,
            lambda: "reverted" in [e.type for e in runbook.journal.entries()],
            "reverted",
        )


async def test_a_longer_pod_suffix_after_a_rollout_is_shown_whole() -> None:
    """Mid-rollout the two ReplicaSets' pods share only "llm-serve-": the list must show the
    longer suffixes whole. (The rollout screenshot once showed them cut to the old width: a
    frame taken before the table's lazy column resize, not what the terminal keeps.)"""
    from textual.app import App, ComposeResult

    from services.models import GpuReading

    def reading(pod: str) -> GpuReading:
        return GpuReading(pod, "gpu-h100-1", "H100-80GB", "label nvidia.com/gpu.product",
                          None, None, None, "H100-80GB", "H100-80GB", False)  # fmt: skip

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield InspectorTable(id="inspector")

    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(InspectorTable)
        table.show([reading(f"llm-serve-7456b8d59d-{s}") for s in ("2d96g", "bggln")])
        await pilot.pause()
        table.show([reading("llm-serve-689c6bff9d-trcmn"), reading("llm-serve-7456b8d59d-2d96g")])
        await pilot.pause()
        shown = "\n".join(table.render_line(y).text for y in range(3))
        assert "…689c6bff9d-trcmn" in shown and "…7456b8d59d-2d96g" in shown, shown


async def test_the_rollout_counts_keep_their_spaces() -> None:
    app = app_for(RollingRunbook())
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: rolling(app), "the rollout in flight read")
        await pilot.pause()
        label = app.main.query_one(".rb-counts")
        shown = "".join(label.render_line(y).text for y in range(label.size.height))
        # rsvg-convert drops a leading no-break space in the screenshots ("avail 3/4old 2");
        # the terminal gets the space.
        assert "avail 3/4 old 2" in shown, shown


async def test_a_step_key_and_the_fix_key_typed_together_act_on_the_new_step() -> None:
    """Typed fast (or pasted), `2a` reaches the app as two keys in one read: the fix must be
    step 2's, not the step the cursor was on before the `2` was handled."""
    from textual import events

    runbook = FakeRunbook()
    app = app_for(runbook)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        for key in ("2", FIX_KEY):  # as the driver delivers them: no pause between
            event = events.Key(key, key)
            event.set_sender(app)
            app._driver.send_message(event)  # type: ignore[union-attr]
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "preview")
        assert "plan pin.image-digest []" in runbook.calls
        assert not [c for c in runbook.calls if c.startswith("plan rollback")]


@pytest.mark.parametrize(
    "open_screen",
    [
        pytest.param(lambda app: app.push_screen(ConfirmScreen("Apply?", "a diff")), id="preview"),
        pytest.param(
            lambda app: app.push_screen(ConfirmScreen("Apply?", "a diff", typed_name="llm-serve")),
            id="production-preview",
        ),
        pytest.param(lambda app: app.action_help(), id="help"),
        pytest.param(lambda app: app.action_validation_view(), id="validation-view"),
    ],
)
async def test_quitting_as_a_screen_opens_exits_cleanly(open_screen: Any) -> None:
    """`q` handled in the same moment a preview (or help, or the validation view) opens: the
    app closes that screen before it has mounted. That is a clean exit, not a traceback over
    the operator's terminal (CI caught the preview's `query_one` failing this way)."""
    app = app_for(FakeRunbook())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        open_screen(app)
        app.exit()
    assert app.return_code == 0


async def test_an_older_read_of_the_rollout_never_replaces_a_newer_one() -> None:
    """Reads answer out of order on the worker threads: the bar shows the newest read, not
    the last to arrive (a slow step 1 check must not put back a rollout that has moved on)."""
    from tui.messages import RolloutProgressed, StepChecked

    runbook = FakeRunbook()
    app = app_for(runbook)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        later = time.monotonic() + 1000  # newer than any read the app's own polls make
        report = runbook.check(Step.ROLLBACK)
        assert report.progress is not None and report.progress.done
        app.post_message(RolloutProgressed(RollingRunbook().progress(), read_at=later))
        app.post_message(StepChecked(Step.ROLLBACK, report, read_at=later - 1))
        await pilot.pause()
        await pilot.pause()
        assert rolling(app)
        app.post_message(StepChecked(Step.ROLLBACK, report, read_at=later + 1))
        await wait_until(pilot, lambda: not rolling(app), "the newer read shown")


class SlowJournal(FakeJournal):
    """A journal read slower than the checks, once a change is in it (a journal on a slow
    disk, or a loaded machine): the steps answer before the action log shows the change."""

    def entries(self) -> list[Entry]:
        found = super().entries()
        if any(e.type == "applied" for e in found):
            time.sleep(0.4)
        return found


async def test_the_footer_offers_revert_once_the_log_shows_the_change() -> None:
    """The footer's `r Revert` waited for whatever refreshed the keys next: where the log's
    read came after the steps' answers, no key showed the revert until the next poll (CI,
    2026-12-04: the action-log snapshot lacked it twice)."""
    runbook = FakeRunbook(journal=SlowJournal())
    app = app_for(runbook)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        assert "r" not in footer_keys(app.main)  # nothing to revert yet
        await pilot.press("2", "i", "y")
        await wait_until(pilot, lambda: applied(runbook) == 1, "applied")
        log = app.main.query_one(ActionLog)
        await wait_until(pilot, lambda: log.entries, "the change in the log")
        await pilot.pause()
        assert footer_keys(app.main).get("r") == "Revert"


async def test_a_log_highlight_that_lands_after_the_screens_are_gone_is_dropped() -> None:
    """The log's highlight is posted as the journal's entries are read; one that reached the
    app after its screens were removed asked for the keys of a screen that no longer exists,
    and the app ended on ScreenStackError instead of exiting (make test, 2026-12-05, the
    second run of test_reopening_shows_the_open_incident)."""
    runbook = FakeRunbook(journal=SlowJournal())
    app = app_for(runbook)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        await pilot.press("2", "i", "y")
        log = app.main.query_one(ActionLog)
        await wait_until(pilot, lambda: log.entries, "the change in the log")
    assert not app.screen_stack
    app.on_action_log_entry_highlighted(ActionLog.EntryHighlighted(log, log.entries[0], ""))
    assert app.actions is not None and app.actions.log_entry == log.entries[0]
