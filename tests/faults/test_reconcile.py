"""What a crash between an intent and its outcome leaves, settled on restart against the live
cluster (issue 9 #4): a real skewmit process applying through the gate is killed with
SIGKILL while the simulator answers every request 3 s late (its fault API over HTTP)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config

from services.models import Step
from services.reconcile import pending_intents
from services.session import SessionOptions, open_session
from services.simulator.runner import Simulator
from tests.conftest import FAST
from tests.services.harness import wait_for

REPO = Path(__file__).resolve().parents[2]
NODE = "gpu-a10g-1"
LATENCY_S = 3.0


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Simulator, SessionOptions]]:
    with Simulator("skew-incident", speed=FAST) as sim:
        kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
        yield (
            sim,
            SessionOptions(
                kubeconfig=str(kubeconfig),
                context="skewmit-sim",
                namespace="inference",
                deployment="llm-serve",
                journal_root=tmp_path / "state",
            ),
        )


def set_faults(options: SessionOptions, faults: list[dict[str, Any]]) -> None:
    """POST /_sim/faults, the simulator's fault API, as a drill trainer would."""
    api = config.new_client_from_config(config_file=options.kubeconfig, context=options.context)
    params = api.param_serialize(
        method="POST",
        resource_path="/_sim/faults",
        header_params={"Accept": "application/json", "Content-Type": "application/json"},
        body={"faults": faults},
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*params)
    response.read()
    assert response.status == 200, response.data
    api.close()


def unschedulable(sim: Simulator) -> bool:
    """The node as the simulator's store has it (no API latency, no client)."""
    assert sim.cluster is not None
    node = sim.call(sim.cluster.store.peek, "nodes", "", NODE)
    assert node is not None
    return bool(node.get("spec", {}).get("unschedulable"))


CORDON = f"""
plan = runbook.plan("hardware.cordon", {{"node": "{NODE}"}})
preview = runbook.gate.preview(plan)
assert preview.dry_run_ok, preview.dry_run_message
"""
APPLY = "runbook.gate.apply(plan, preview)"
REVERT_SETUP = "seq = runbook.gate.applied_entries()[0][0]"
REVERT = "runbook.gate.revert(seq)"


def start_child(options: SessionOptions, setup: str = CORDON, act: str = APPLY) -> Any:
    """skewmit in its own process: open the session and run `setup` (plan and preview), then
    `act` on a line from stdin (the operator's confirmation)."""
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from services.session import SessionOptions, open_session
        options = SessionOptions(
            kubeconfig=sys.argv[1],
            context="skewmit-sim",
            namespace="inference",
            deployment="llm-serve",
            journal_root=Path(sys.argv[2]),
        )
        runbook = open_session(options)
        """
    )
    script += f"{setup}\nprint('ready', flush=True)\nsys.stdin.readline()\n{act}\n"
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(options.kubeconfig), str(options.journal_root)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", line
    return proc


def journal_types(options: SessionOptions) -> list[str]:
    assert options.journal_root is not None
    incidents = options.journal_root / "incidents"
    folders = list(incidents.iterdir()) if incidents.is_dir() else []
    if not folders:
        return []
    path = folders[0] / "journal.jsonl"
    # The child may be mid-write: a line is whole once its newline is there (CI once read the
    # first 5.5 KB of a cordon's apply-intent while it was being written).
    *whole, _partial = path.read_bytes().split(b"\n")
    return [json.loads(line)["type"] for line in whole if line.strip()]


def kill_when(
    options: SessionOptions, proc: subprocess.Popen[str], what: str, ready: Callable[[], bool]
) -> None:
    """Let the child apply with 3 s of API latency, kill -9 it once `ready()` holds, and
    clear the fault."""
    try:
        set_faults(options, [{"latency_s": LATENCY_S}])
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        wait_for(what, ready, timeout_s=60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        set_faults(options, [])


def crash(
    sim: Simulator, options: SessionOptions, *, when_live: bool, revert: bool = False
) -> None:
    """Apply the cordon (or revert it) with 3 s of API latency and kill -9 the process: once
    the change is live (during verify) or as soon as the intent is journaled (before the
    patch)."""
    intent = "revert-intent" if revert else "apply-intent"
    proc = start_child(options, REVERT_SETUP, REVERT) if revert else start_child(options)
    kill_when(
        options,
        proc,
        f"the {intent} journaled" + (" and the change live" if when_live else ""),
        lambda: (
            intent in journal_types(options)[-1:]
            and (unschedulable(sim) != revert or not when_live)
        ),
    )
    assert journal_types(options)[-1] == intent  # killed before any outcome


def test_a_change_live_at_the_crash_is_reconciled_as_applied_and_can_be_reverted(
    world: tuple[Simulator, SessionOptions],
) -> None:
    sim, options = world
    crash(sim, options, when_live=True)
    assert unschedulable(sim)
    runbook = open_session(options)  # the operator starts skewmit again
    assert any("applied (found live after a restart; revert offered)" in n for n in runbook.notices)
    assert any(f"node/{NODE}: the change is live" in n for n in runbook.notices)
    offered = runbook.gate.applied_entries()
    assert len(offered) == 1
    seq, data = offered[0]
    assert data["reconciled"] == "applied" and "Cordon" in str(data["title"])
    assert runbook.journal is not None and pending_intents(runbook.journal.entries()) == []
    reverted = runbook.gate.revert(seq)
    assert reverted.verified, reverted.message
    assert not unschedulable(sim)
    assert runbook.gate.applied_entries() == []


def test_a_change_not_sent_at_the_crash_is_reconciled_as_not_applied(
    world: tuple[Simulator, SessionOptions],
) -> None:
    sim, options = world
    crash(sim, options, when_live=False)
    assert not unschedulable(sim)
    runbook = open_session(options)
    assert any("not applied (the objects are as they were before it)" in n for n in runbook.notices)
    assert runbook.gate.applied_entries() == []  # nothing to revert
    assert runbook.journal is not None
    failed = [e for e in runbook.journal.entries() if e.type == "apply-failed"]
    assert len(failed) == 1 and failed[0].data["reconciled"] == "not-applied"


def test_an_intent_that_cannot_be_read_is_unknown_and_tried_again_next_start(
    world: tuple[Simulator, SessionOptions],
) -> None:
    sim, options = world
    crash(sim, options, when_live=True)
    set_faults(options, [{"verb": "get", "resource": "nodes", "error_rate": 1.0}])
    try:
        runbook = open_session(options)
    finally:
        set_faults(options, [])
    assert any(
        "unknown: the objects changed since, or could not be read" in n for n in runbook.notices
    )
    assert runbook.gate.applied_entries() == []  # no revert offered for what is unknown
    assert runbook.journal is not None
    runbook.journal.release()
    again = open_session(options)  # the API server is back: settled for real this time
    assert any("applied (found live after a restart" in n for n in again.notices)
    assert len(again.gate.applied_entries()) == 1


def test_a_second_instance_is_read_only_and_cannot_apply(
    world: tuple[Simulator, SessionOptions],
) -> None:
    """Issue 9 #3: two instances on one incident (an SSH drop and a second login) both
    applied and numbered independently. The second now opens read-only and says why."""
    sim, options = world
    proc = start_child(options)  # holds the incident, waiting for its confirmation
    try:
        second = open_session(options)
        assert second.read_only
        assert any(f"held by pid {proc.pid}" in n for n in second.notices)
        actions = second.check(Step.HARDWARE).actions
        assert all(not a.available for a in actions)
    finally:
        proc.kill()
        proc.wait(timeout=30)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
    assert not unschedulable(sim)


async def test_the_restarted_app_shows_the_reconciled_change_and_reverts_it_from_the_log(
    world: tuple[Simulator, SessionOptions],
) -> None:
    """The repro of issue 9 #4 through the screen: after the crash the action log lists the
    cordon as found live with `[r] revert`, a notice says so, and `r` `y` uncordons."""
    from tui.app import SkewmitApp
    from tui.screens.preview import ConfirmScreen
    from tui.session import Intervals, Session
    from widgets.action_log import ActionLog

    sim, options = world
    crash(sim, options, when_live=True)
    session = Session(
        open_session(options),
        intervals=Intervals(checks=3600, validate=3600, rollout=3600, metrics=3600),
    )
    app = SkewmitApp(session)
    app.animation_level = "none"
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.main.query_one(ActionLog)
        for _ in range(600):
            if log.entries:
                break
            await pilot.pause(0.05)
        (row,) = log.entries
        assert row.revertible and row.status == "applied"
        assert "found live after a restart" in row.note
        notices = [n.message for n in app._notifications]
        assert any("found live after a restart; revert offered" in n for n in notices)
        log.focus()
        await pilot.press("r")
        for _ in range(600):
            if isinstance(app.screen, ConfirmScreen):
                break
            await pilot.pause(0.05)
        await pilot.press("y")
        for _ in range(600):
            if not unschedulable(sim):
                break
            await pilot.pause(0.05)
        assert not unschedulable(sim)


def test_a_revert_live_at_the_crash_is_reconciled_as_reverted(
    world: tuple[Simulator, SessionOptions],
) -> None:
    sim, options = world
    crash(sim, options, when_live=True)
    first = open_session(options)  # reconciled: applied, revert offered
    assert first.journal is not None
    first.journal.release()
    crash(sim, options, when_live=True, revert=True)
    assert not unschedulable(sim)
    runbook = open_session(options)
    assert any("reverted (found after a restart)" in n for n in runbook.notices)
    assert runbook.gate.applied_entries() == []  # nothing left to revert


ROUTE = """
plan = runbook.plan("route.long-context", {})
preview = runbook.gate.preview(plan)
assert preview.dry_run_ok, preview.dry_run_message
"""
LONG = "llm-serve-long"


def long_deployment(sim: Simulator) -> bool:
    assert sim.cluster is not None
    return sim.call(sim.cluster.store.peek, "deployments", "inference", LONG) is not None


def test_a_step4_apply_cut_by_a_crash_is_reconciled_and_its_live_part_reverted(
    world: tuple[Simulator, SessionOptions],
) -> None:
    """Step 4 server-side applies the -long Deployment and Service, then patches the route:
    killed once the Deployment was applied, the restart finds it live and the rest not sent,
    and the revert it offers deletes the Deployment (its GPUs are not left behind)."""
    sim, options = world
    kill_when(
        options,
        start_child(options, ROUTE, APPLY),
        "the -long Deployment applied",
        lambda: journal_types(options)[-1:] == ["apply-intent"] and long_deployment(sim),
    )
    assert journal_types(options)[-1] == "apply-intent"
    runbook = open_session(options)
    notices = "\n".join(runbook.notices)
    assert "partially applied (found after a restart; revert of the live part offered)" in notices
    assert f"deployment/{LONG}: exists" in notices
    assert f"service/{LONG}: does not exist" in notices
    (seq, data), *_ = runbook.gate.applied_entries()
    assert data["reconciled"] == "partial"
    assert runbook.journal is not None and pending_intents(runbook.journal.entries()) == []
    assert runbook.gate.revert(seq).verified
    wait_for("the -long Deployment deleted", lambda: not long_deployment(sim))
