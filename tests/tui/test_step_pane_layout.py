"""Opening a step changes the step pane and the footer in place (issue 9: on `large` each step
opened laid the whole screen out three times, remounted every footer key and the step's action
buttons, and restyled each new widget; the screen stalled past 100 ms).

What the operator sees is the selected step's actions and keys; what must not happen is a
rebuild of widgets that only change their text: the footer keeps its key widgets, the step
pane its action entries, once each has held as many as a step needs; the footer holds its keys
from the first frame on (issue 12: step 1's first answer rebuilt it, at start)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.widgets import Button, Static
from textual.widgets._footer import FooterKey

from services.models import Finding, Guidance, Severity, Step, StepReport
from tests.tui.fakes import FakeRunbook, fake_session
from tests.tui.test_snapshots import settle
from tui.app import SkewmitApp
from widgets.quiet_footer import HELD_KEYS, QuietFooter
from widgets.step_detail import ActionEntry, StepDetail

# What each step of the fake runbook offers: its actions' buttons and the footer's labels.
BUTTONS = {
    "1": ["[u] Roll back to last-known-good (revision 2)"],
    "2": ["[i] Pin the image by digest", "[p] Set --dtype bfloat16"],
    "5": ["[s] Require GPU class H100-80GB", "[c] Cordon gpu-a10g-0"],
}
FOOTER = {"1": "Roll back", "2": "Pin image", "5": "nodeSelector"}


def shown_buttons(app: SkewmitApp) -> list[str]:
    detail = app.main.query_one(StepDetail)
    return [
        str(button.label)
        for entry in detail.query(ActionEntry)
        if entry.display
        for button in entry.query(Button)
    ]


def footer_labels(app: SkewmitApp) -> list[str]:
    return [k.description for k in app.main.query(FooterKey) if k.display]


def footer_keys(app: SkewmitApp) -> list[FooterKey]:
    return list(app.main.query_one(QuietFooter).query(FooterKey))


@pytest.mark.parametrize("size", [(120, 40), (80, 24)], ids=["120x40", "80x24"])
async def test_opening_steps_relabels_the_footer_and_actions_in_place(
    size: tuple[int, int],
) -> None:
    app = SkewmitApp(fake_session(FakeRunbook()))
    app.animation_level = "none"
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        for key in "123456":  # the first round: the pools grow to what a step needs
            await pilot.press(key)
            await settle(pilot)
        keys = footer_keys(app)
        entries = list(app.main.query(ActionEntry))
        recomposes = app.main.query_one(QuietFooter).recomposes
        for key in "1256":
            await pilot.press(key)
            await settle(pilot)
            if key in BUTTONS:
                assert shown_buttons(app) == BUTTONS[key]
                labels = footer_labels(app)
                assert FOOTER[key] in labels
                others = {label for k, label in FOOTER.items() if k != key}
                assert not others & set(labels), labels  # another step's keys are gone
            # The same widgets, relabelled: nothing removed, nothing mounted.
            assert footer_keys(app) == keys
            assert list(app.main.query(ActionEntry)) == entries
        footer = app.main.query_one(QuietFooter)
        assert footer.relabels > 0 and footer.recomposes == recomposes


async def test_the_footer_holds_its_key_widgets_from_the_first_frame() -> None:
    """Before, step 1's first answer (its undo key) and the first opening of a step with more
    keys rebuilt the footer: every key mounted and styled again, and the screen laid out once
    more (issue 12: the start's longest stall). Now its keys are those it held from its first
    frame, relabelled."""
    app = SkewmitApp(fake_session(FakeRunbook()))
    app.animation_level = "none"
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        footer = app.main.query_one(QuietFooter)
        keys = footer_keys(app)
        assert len([k for k in keys if not k.has_class("-command-palette")]) == HELD_KEYS
        for key in "123456":
            await pilot.press(key)
            await settle(pilot)
            if key in FOOTER:
                assert FOOTER[key] in footer_labels(app)
            assert footer_keys(app) == keys, key
        assert footer.recomposes == 1  # its first keys, composed once


async def test_a_step_opened_lays_the_screen_out_at_most_twice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Textual lays out the whole screen for any widget whose size may change; a step opened
    changes the pane's text, its buttons and the footer's keys in one turn of the event loop,
    so one layout (and the one Textual adds for the sizes it found) is all it costs. Before,
    the footer's rebuild and the buttons' mount came after it, a layout each."""
    layouts: list[Screen[Any]] = []
    original = Screen._refresh_layout

    def counted(screen: Screen[Any], *args: Any, **kwargs: Any) -> None:
        if not kwargs.get("scroll"):
            layouts.append(screen)
        original(screen, *args, **kwargs)

    monkeypatch.setattr(Screen, "_refresh_layout", counted)
    app = SkewmitApp(fake_session(FakeRunbook()))
    app.animation_level = "none"
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        for key in "123456":
            await pilot.press(key)
            await settle(pilot)
        for key in "251":
            layouts.clear()
            await pilot.press(key)
            await settle(pilot)
            assert app.main.query_one(StepDetail).title.startswith(f"{key} · ")
            assert 1 <= len(layouts) <= 2, f"step {key}: {len(layouts)} layouts of the screen"


class OnePane(App[None]):
    def compose(self) -> ComposeResult:
        yield StepDetail(id="pane-step")


def hardware_report(readings: str) -> StepReport:
    """Step 5 on a large fleet: 1,000 lines read; `readings` stands for what changes between
    two polls without changing what the pane shows (the report's data)."""
    return StepReport(
        Step.HARDWARE,
        "findings",
        (Finding(Step.HARDWARE, "gpu-class-mismatch", Severity.ERROR, "300 pods", "node/a"),),
        (),
        tuple(f"pod llm-serve-{i:04d} on node gpu-{i % 480:03d}: A10G" for i in range(1000)),
        Guidance("why", "look for", "trade-off", ()),
        data=readings,  # type: ignore[arg-type]
    )


async def test_a_poll_that_changes_only_the_note_or_the_data_redraws_only_the_status() -> None:
    """Each poll of the selected step sets its note ("checking…") and clears it; on `large`
    each time re-wrapped step 5's 200 lines read, twice a poll."""
    app = OnePane()
    async with app.run_test(size=(120, 40)) as pilot:
        pane = app.query_one(StepDetail)
        pane.show(hardware_report("first"), "5 · Hardware")
        await pilot.pause()
        detail = app.query_one("#sd-detail", Static)
        findings = app.query_one("#sd-findings", Static)
        drawn = (detail.content, findings.content)
        assert "llm-serve-0199" in str(detail.render())
        pane.show(hardware_report("first"), "5 · Hardware", "checking…")
        await pilot.pause()
        assert "checking…" in str(app.query_one("#sd-status", Static).render())
        pane.show(hardware_report("second"), "5 · Hardware", "")
        await pilot.pause()
        assert not app.query_one("#sd-status", Static).display
        assert (detail.content, findings.content) == drawn
        assert all(a is b for a, b in zip((detail.content, findings.content), drawn, strict=True))
        shorter = hardware_report("second")
        pane.show(replace(shorter, detail=shorter.detail[:3]), "5 · Hardware", "")
        await pilot.pause()
        assert "llm-serve-0002" in str(detail.render())
        assert "llm-serve-0003" not in str(detail.render())
