"""An action on many objects lists its first kubectl commands and counts the rest (issue 9:
on `large`, "delete the pods on the wrong GPU" carried one command per pod, hundreds of lines
measured and wrapped each time step 5 opened). The preview of the plan lists every one."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Static

from services.models import ActionSpec, Step
from widgets.step_detail import MAX_COMMANDS, ActionEntry


class OneAction(App[None]):
    def __init__(self, action: ActionSpec) -> None:
        super().__init__()
        self.action_spec = action

    def compose(self) -> ComposeResult:
        yield ActionEntry(self.action_spec)


def action_with(commands: int) -> ActionSpec:
    return ActionSpec(
        "hardware.delete-pods",
        Step.HARDWARE,
        f"Delete the {commands} pod(s) on the wrong GPU",
        "d",
        "Their ReplicaSet recreates them; pin or cordon first",
        kubectl=tuple(
            f"kubectl delete pod -n inference llm-serve-{i:04d}" for i in range(commands)
        ),
    )


async def shown_text(action: ActionSpec) -> str:
    app = OneAction(action)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        return str(app.query_one(".action-text", Static).render())


async def test_an_action_on_300_pods_shows_the_first_commands_and_counts_the_rest() -> None:
    text = await shown_text(action_with(300))
    assert text.count("$ kubectl delete pod") == MAX_COMMANDS
    assert "llm-serve-0000" in text and f"llm-serve-{MAX_COMMANDS - 1:04d}" in text
    assert f"llm-serve-{MAX_COMMANDS:04d}" not in text
    assert f"… and {300 - MAX_COMMANDS} more command(s)" in text


async def test_an_action_on_a_few_pods_shows_every_command() -> None:
    text = await shown_text(action_with(3))
    assert text.count("$ kubectl delete pod") == 3 and "more command" not in text
