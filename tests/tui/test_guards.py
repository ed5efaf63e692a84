"""What keeps the app from changing what it must not: read-only mode, a kube user without
permission, a GitOps-managed Deployment; all against the simulator through the real client."""

from __future__ import annotations

from collections.abc import Callable

from services.models import Step
from tests.tui.conftest import checked, wait_until
from tui.app import SkewmitApp
from tui.screens.input_prompt import InputPromptScreen
from tui.screens.main import MainScreen
from tui.screens.preview import ConfirmScreen
from tui.session import Session
from widgets.header_bar import HeaderBar
from widgets.step_detail import ActionEntry


def mutations(app: SkewmitApp) -> list[str]:
    journal = app.session.runbook.journal
    assert journal is not None
    return [e.type for e in journal.entries() if e.type.startswith(("apply", "revert"))]


async def test_read_only_shows_actions_unavailable_and_changes_nothing(
    demo: Callable[..., Session],
) -> None:
    app = SkewmitApp(demo(read_only=True))
    app.animation_level = "none"
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: checked(app), "checks at launch")
        assert app.main.query_one(HeaderBar).has_class("-read-only")
        undo = next(a for a in app.board.reports[Step.ROLLBACK].actions if a.id == "rollback.undo")
        assert not undo.available and "read-only" in undo.reason
        assert app.check_action("step_action", ("rollback.undo",)) is None  # dimmed
        entry = app.main.query_one(ActionEntry)
        assert entry.query_one("Button").disabled
        await pilot.press("u")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert mutations(app) == []


async def test_user_without_permission_sees_why(demo: Callable[..., Session]) -> None:
    app = SkewmitApp(demo(permitted=False))
    app.animation_level = "none"
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: checked(app), "checks at launch")
        assert not app.main.query_one(HeaderBar).has_class("-read-only")
        undo = next(a for a in app.board.reports[Step.ROLLBACK].actions if a.id == "rollback.undo")
        assert not undo.available and undo.reason.startswith("not permitted")
        text = str(app.main.query_one(ActionEntry).query_one(".action-text").render())
        assert "not permitted" in text
        await pilot.press("u")
        await pilot.pause()
        assert isinstance(app.screen, MainScreen)
        assert mutations(app) == []


async def test_gitops_managed_deployment_warns_and_refuses(demo: Callable[..., Session]) -> None:
    app = SkewmitApp(demo("gitops-managed"))
    app.animation_level = "none"
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: checked(app), "checks at launch")
        codes = {f.code for f in app.board.reports[Step.ROLLBACK].findings}
        assert "gitops-managed" in codes
        action = next(a for a in app.board.reports[Step.ROLLBACK].actions if a.available)
        await pilot.press(action.key)
        if action.inputs:
            await wait_until(pilot, lambda: isinstance(app.screen, InputPromptScreen), "input")
            await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "preview")
        preview = app.screen
        assert isinstance(preview, ConfirmScreen)
        assert preview.warning.startswith("⚠ GitOps")
        assert not preview.can_confirm
        assert not preview.query("#confirm-apply")
        await pilot.press("y")  # no effect: there is nothing to confirm
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, MainScreen), "back")
        assert mutations(app) == []
