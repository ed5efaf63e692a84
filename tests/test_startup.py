"""What `skewmit` loads before it does anything: `--help` stays free of the heavy clients, and
the headless commands a CI job runs never load the full-screen UI.

Each command runs in a process of its own (a fresh `sys.modules`), the way a user starts it;
the process reports, at exit, which top-level packages it had imported. Speed itself is
measured in bench/startup_bench.py, never here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.simulator.runner import Simulator

# Each costs 0.05-0.3 s to import; `--help` needs none of them.
HEAVY = {"kubernetes", "textual", "prometheus_api_client", "aiohttp", "rich"}
UI = {"textual", "rich"}

# Runs the real entry point, then prints the imported top-level packages as the last line
# of stderr, whatever the exit (argparse exits through SystemExit for --help and errors).
RUNNER = """
import atexit, json, sys
atexit.register(lambda: print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})),
                              file=sys.stderr))
from tui.cli import main
sys.exit(main(sys.argv[1:]))
"""


def skewmit(*args: str, state: Path | None = None) -> tuple[int, str, str, set[str]]:
    """Exit code, stdout, stderr (without the report) and the imported packages."""
    env = {**os.environ, "NO_COLOR": "1"}
    if state is not None:
        env["XDG_STATE_HOME"] = str(state)
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    err, _, report = result.stderr.rstrip("\n").rpartition("\n")
    if not report.startswith("["):
        err, report = result.stderr, "[]"
    return result.returncode, result.stdout, err, set(json.loads(report))


HELP_COMMANDS = [
    [],
    ["demo"],
    ["sim"],
    ["check"],
    ["validate"],
    ["evidence"],
    ["baseline"],
    ["baseline", "capture"],
    ["drill"],
    ["drill", "inject"],
    ["bridge"],
]


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_help_loads_no_cluster_metrics_or_ui_client(command: list[str]) -> None:
    code, out, err, loaded = skewmit(*command, "--help")
    assert code == 0, err
    assert out.startswith("usage: skewmit"), out
    assert not loaded & HEAVY, f"`skewmit {' '.join(command)} --help` imported {loaded & HEAVY}"


def test_top_level_help_lists_every_command_with_its_full_help() -> None:
    from tui.cli import build_parser

    # The fast path stubs commands the command line does not name; the listing must not change.
    assert build_parser(["--help"]).format_help() == build_parser(None).format_help()
    _, out, _, _ = skewmit("--help")
    for command in ("demo", "sim", "check", "validate", "evidence", "baseline", "drill", "bridge"):
        assert f"\n    {command} " in out, out


def test_a_bad_drill_scenario_is_still_refused_by_the_parser() -> None:
    code, _, err, _ = skewmit("drill", "--scenario", "no-such-incident")
    assert code == 2
    assert "invalid choice: 'no-such-incident'" in err, err


def test_the_app_and_demo_flags_are_defined_once() -> None:
    """tui.cli holds the app's flags so `--help` skips the runbook's imports; the launchers
    that read them define no flags of their own, so a flag added there reaches the command
    line."""
    import tui.cli
    import tui.launchers
    import tui.session

    for name in ("add_app_arguments", "add_demo_arguments", "DEMO_SPEED"):
        assert hasattr(tui.cli, name), name
        for module in (tui.launchers, tui.session):
            assert getattr(module, name, None) in (None, getattr(tui.cli, name)), module


def test_check_runs_to_its_findings_without_loading_the_ui(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    kubeconfig = shared_sim.write_kubeconfig(tmp_path / "kubeconfig")
    code, out, err, loaded = skewmit(
        "check", "--kubeconfig", str(kubeconfig), "-n", "inference", "--deployment", "llm-serve"
    )
    assert code == 1, err  # the skew incident has findings
    assert "gpu-class-mismatch" in out
    assert "kubernetes" in loaded  # it did reach the cluster
    assert not loaded & UI, f"`skewmit check` imported {loaded & UI}"


@pytest.mark.parametrize("command", [["validate"], ["evidence"], ["baseline", "capture"]])
def test_headless_commands_never_load_the_ui(
    command: list[str], shared_sim: Simulator, tmp_path: Path
) -> None:
    # Prometheus on a closed port: each command gets as far as its first metrics query and
    # fails with its one-line message, having imported everything on its path.
    kubeconfig = shared_sim.write_kubeconfig(tmp_path / "kubeconfig")
    target = ["--kubeconfig", str(kubeconfig)] if command[0] != "baseline" else []
    out_dir = ["--out", str(tmp_path / "out")] if command[0] != "validate" else []
    code, _, err, loaded = skewmit(
        *command,
        *target,
        "-n",
        "inference",
        "--deployment",
        "llm-serve",
        "--prometheus",
        "http://127.0.0.1:9",
        *out_dir,
        state=tmp_path / "state",
    )
    assert code == 2, err
    assert "cannot reach Prometheus at http://127.0.0.1:9" in err, err
    assert "kubernetes" in loaded and "prometheus_api_client" in loaded  # it got that far
    assert not loaded & UI, f"`skewmit {' '.join(command)}` imported {loaded & UI}"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["demo", "--scenario", "no-such"], "skewmit demo: unknown scenario 'no-such'"),
        (["demo", "--speed", "0"], "skewmit demo: --speed 0.0 is out of range"),
        (
            ["--kubeconfig", "/nonexistent/kubeconfig", "--deployment", "llm-serve"],
            "skewmit: kubeconfig /nonexistent/kubeconfig does not exist",
        ),
    ],
    ids=["scenario", "speed", "kubeconfig"],
)
def test_bad_input_to_the_app_is_refused_before_any_screen_or_client_loads(
    argv: list[str], said: str, tmp_path: Path
) -> None:
    """Issue 12: the app's local checks run before the app starts, so bad input prints one
    line and exits 2 with no screen drawn: the UI and the cluster client were never loaded."""
    code, out, err, loaded = skewmit(*argv, state=tmp_path / "state")
    assert code == 2, err
    assert err.startswith(said) and err.count("\n") <= 1, err
    assert out == ""  # nothing drawn
    assert not loaded & HEAVY, f"`skewmit {' '.join(argv)}` imported {loaded & HEAVY}"


def test_the_app_draws_its_first_frame_without_the_cluster_or_metrics_clients() -> None:
    """Everything the first frame needs (the app, its screens, the launchers) loads neither
    the Kubernetes client (0.3-0.8 s) nor prometheus-api-client: those load in the worker
    that opens the session, after the frame is out (issue 12)."""
    code = (
        "import json, sys, tui.app, tui.launchers, tui.opening; "
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    assert "textual" in loaded  # it did import the app
    assert not loaded & {"kubernetes", "prometheus_api_client"}, loaded


# The app drawn headless until its first frame is out, the session still opening (its open()
# blocks until the process ends); then the packages it had loaded, and the chart's title.
FIRST_FRAME = """
import asyncio, json, sys, threading
from tui.app import SkewmitApp
from tui.session import SessionOpener
from widgets.header_bar import HeaderState

async def main():
    never = threading.Event()
    opener = SessionOpener(HeaderState(context="ctx"), lambda: never.wait(), "connecting…")
    app = SkewmitApp(opener)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        title = str(app.main.query_one("#chart-latency").border_title)
        loaded = sorted({m.split(".")[0] for m in sys.modules})
        never.set()
    print(json.dumps([title, loaded]))

asyncio.run(main())
"""


def test_the_first_frame_draws_the_chart_without_loading_plotext() -> None:
    """plotext (with textual-plotext, 30 ms of the first frame) loads when a chart first
    has data to plot; until then the metrics pane shows the chart's frame saying so."""
    result = subprocess.run(
        [sys.executable, "-c", FIRST_FRAME], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    title, loaded = json.loads(result.stdout.splitlines()[-1])
    assert title == "latency (s): no data"
    assert "textual" in loaded  # the app did run
    assert not {"plotext", "textual_plotext"} & set(loaded), loaded


# A session opened through the real client, and its incident (the gate asks for the journal,
# as the app does once a check finds something); then what the journal holds and whether the
# evidence bundle's modules were loaded.
OPEN_INCIDENT = """
import json, sys
from pathlib import Path
from services.session import SessionOptions, open_session

runbook = open_session(SessionOptions(
    kubeconfig=sys.argv[1], context="skewmit-sim", namespace="inference",
    deployment="llm-serve", journal_root=Path(sys.argv[2])))
journal = runbook.gate.journal
print(json.dumps([[e.type for e in journal.entries()],
                  sorted(m for m in sys.modules if m.startswith("services.evidence")),
                  "tarfile" in sys.modules]))
"""


def test_opening_an_incident_loads_none_of_the_evidence_bundle(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    """The app opens the incident on a worker while the first checks are drawn; the bundle's
    modules (tarfile, the timeline, validation: 40 ms) load only when a bundle is written.
    The incident still journals the manifests from before any fix."""
    kubeconfig = shared_sim.write_kubeconfig(tmp_path / "kubeconfig")
    result = subprocess.run(
        [sys.executable, "-c", OPEN_INCIDENT, str(kubeconfig), str(tmp_path / "state")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    entries, evidence_modules, tarfile_loaded = json.loads(result.stdout.splitlines()[-1])
    assert entries == ["opened", "snapshot"]
    assert evidence_modules == [] and not tarfile_loaded, (evidence_modules, tarfile_loaded)
