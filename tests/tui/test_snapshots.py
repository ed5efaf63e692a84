"""Snapshots of the key screens at 80x24 and 120x40, deterministic: a fake runbook with fixed
reports, series and journal times, a frozen clock, no cursor blink, no toasts.

Update after an intended change: `pytest tests/tui/test_snapshots.py --snapshot-update`, then
look at the SVGs in tests/tui/__snapshots__/ before committing them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.tui.fakes import FakeRunbook, fake_session
from tui.app import SkewmitApp

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


async def settle(pilot: Pilot[Any]) -> None:
    app = pilot.app
    for _ in range(2):
        await app.workers.wait_for_complete()
        await pilot.pause()
    await pilot.wait_for_scheduled_animations()
    app.clear_notifications()
    await pilot.pause()


def keys(*presses: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    """Press each key and settle; `focus:#id` focuses that widget of the main screen."""

    async def run(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        for key in presses:
            if key.startswith("focus:"):
                pilot.app.main.query_one(key.removeprefix("focus:")).focus()  # type: ignore[attr-defined]
            else:
                await pilot.press(key)
            await settle(pilot)

    return run


def shot(
    snap_compare: Any, size: tuple[int, int], presses: Iterable[str] = (), **session: Any
) -> bool:
    runbook = session.pop("runbook", None) or FakeRunbook()
    app = SkewmitApp(fake_session(runbook, **session))
    app.animation_level = "none"  # deterministic, and no frames spent on tab underlines
    return bool(snap_compare(app, terminal_size=size, run_before=keys(*presses)))


@pytest.mark.parametrize("size", SIZES)
def test_main_screen(snap_compare: Any, size: tuple[int, int]) -> None:
    assert shot(snap_compare, size)


@pytest.mark.parametrize("size", SIZES)
def test_pin_step_selected(snap_compare: Any, size: tuple[int, int]) -> None:
    assert shot(snap_compare, size, ["2"])


def test_metrics_tab(snap_compare: Any) -> None:
    assert shot(snap_compare, (80, 24), ["]"])


@pytest.mark.parametrize("size", SIZES)
def test_inspector_tab(snap_compare: Any, size: tuple[int, int]) -> None:
    """The pod list and the highlighted pod's detail pane (node, class, label, nvidia-smi, DCGM)."""
    assert shot(snap_compare, size, ["]", "]"])


@pytest.mark.parametrize("size", SIZES)
def test_action_log_after_an_apply(snap_compare: Any, size: tuple[int, int]) -> None:
    assert shot(snap_compare, size, ["2", "i", "y", "]", "]", "]"])


@pytest.mark.parametrize("size", SIZES)
def test_preview(snap_compare: Any, size: tuple[int, int]) -> None:
    assert shot(snap_compare, size, ["u", "enter"])


@pytest.mark.parametrize("size", SIZES)
def test_revert_preview(snap_compare: Any, size: tuple[int, int]) -> None:
    assert shot(snap_compare, size, ["2", "i", "y", "]", "]", "]", "focus:#action-log", "r"])


def test_input_prompt(snap_compare: Any) -> None:
    assert shot(snap_compare, (80, 24), ["u"])


def test_production_confirmation(snap_compare: Any) -> None:
    assert shot(snap_compare, (80, 24), ["2", "i"], production=True)


def test_gitops_refusal(snap_compare: Any) -> None:
    refusal = (
        "GitOps (argocd llm-serve): Argo CD self-heal reverts manual changes within "
        "seconds; change the Git source or disable auto-sync first"
    )
    assert shot(snap_compare, (80, 24), ["2", "i"], runbook=FakeRunbook(refuse=refusal))


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare: Any, size: tuple[int, int]) -> None:
    """The one keymap first: each step's letters, `a` to fix, `r` to revert."""
    assert shot(snap_compare, size, ["question_mark"])


@pytest.mark.parametrize("size", SIZES)
def test_unavailable_key(snap_compare: Any, size: tuple[int, int]) -> None:
    """`u` in --read-only mode: the status line says why (it did nothing, silently)."""
    assert shot(snap_compare, size, ["u"], runbook=FakeRunbook(read_only=True))


def test_another_steps_key(snap_compare: Any) -> None:
    """`s` on step 1: the status line says it is step 5's key and how to get there."""
    assert shot(snap_compare, (80, 24), ["s"])


@pytest.mark.parametrize("size", SIZES)
def test_validation_view(snap_compare: Any, size: tuple[int, int]) -> None:
    assert shot(snap_compare, size, ["v"])


@pytest.mark.parametrize("size", SIZES)
def test_read_only(snap_compare: Any, size: tuple[int, int]) -> None:
    assert shot(snap_compare, size, runbook=FakeRunbook(read_only=True))
