"""Opening a session against a cluster (`skewmit --deployment NAME`) through the real
kubernetes client and the simulator: a healthy Deployment opens no incident (nothing under the
state directory) until a check finds something or a change is made; an open incident is
reopened at once; `--read-only` writes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.errors import ConfigError, NotFoundError
from services.journal import Journal
from services.models import Step
from services.session import SessionOptions, open_session
from services.simulator.runner import Simulator
from tests.conftest import FAST

CHECKED = (Step.ROLLBACK, Step.PIN, Step.LATENCY, Step.ROUTE, Step.HARDWARE)


def options_for(sim: Simulator, tmp_path: Path, **more: object) -> SessionOptions:
    kubeconfig = sim.write_kubeconfig(tmp_path / "kubeconfig")
    settings: dict[str, object] = {
        "kubeconfig": str(kubeconfig),
        "context": "skewmit-sim",
        "namespace": "inference",
        "deployment": "llm-serve",
        "journal_root": tmp_path / "state",
    }
    return SessionOptions(**{**settings, **more})  # type: ignore[arg-type]


def written(root: Path) -> list[Path]:
    """Everything under the state directory (it may not exist at all)."""
    return sorted(root.rglob("*")) if root.exists() else []


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """The healthy fleet; the tests here only read it, except the one that opens via the gate
    (which changes nothing on the cluster)."""
    with Simulator("healthy", speed=FAST) as sim:
        yield sim


def test_a_healthy_deployment_opens_no_incident(healthy: Simulator, tmp_path: Path) -> None:
    options = options_for(healthy, tmp_path)
    runbook = open_session(options)
    reports = [runbook.check(step) for step in CHECKED]
    assert [r.state for r in reports] == ["ok"] * len(CHECKED), [
        (r.step, r.error, [f.message for f in r.findings]) for r in reports
    ]
    assert runbook.journal is None and not runbook.read_only
    assert written(tmp_path / "state") == []  # no incident folder, not even the directory


def test_a_change_on_a_healthy_deployment_opens_the_incident_first(
    healthy: Simulator, tmp_path: Path
) -> None:
    """The gate journals before it changes anything: asking for it opens the incident, with
    the manifests from before any fix."""
    runbook = open_session(options_for(healthy, tmp_path))
    gate = runbook.gate
    journal = runbook.journal
    assert journal is not None and gate.journal is journal and journal.owner
    assert [e.type for e in journal.entries()] == ["opened", "snapshot"]
    assert journal.entries()[1].data["label"] == "before"
    assert (tmp_path / "state" / "incidents" / journal.incident_id / "incident.json").exists()


def test_an_unwritable_state_directory_is_said_at_open_not_at_the_first_finding(
    healthy: Simulator, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory would go")
    options = options_for(healthy, tmp_path, journal_root=blocker / "skewmit")
    with pytest.raises(ConfigError, match="writable directory, or pass --read-only"):
        open_session(options)
    runbook = open_session(
        options_for(healthy, tmp_path, journal_root=blocker / "skewmit", read_only=True)
    )
    assert runbook.read_only and runbook.check(Step.ROLLBACK).state == "ok"
    assert blocker.read_text().startswith("a file")


def test_the_skew_incident_opens_at_the_first_finding_and_is_reopened_at_once(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    with Simulator("skew-incident", speed=FAST) as sim:
        options = options_for(sim, tmp_path)
        runbook = open_session(options)
        assert runbook.journal is None and written(state) == []
        report = runbook.check(Step.ROLLBACK)
        assert report.state == "findings", report.error
        journal = runbook.journal
        assert journal is not None and journal.owner and journal.incident_id
        types = [e.type for e in journal.entries()]
        assert types[:2] == ["opened", "snapshot"] and "findings" in types
        # Every step's findings go into the same incident, not a second one.
        runbook.check(Step.HARDWARE)
        assert runbook.journal is journal
        assert len(list((state / "incidents").iterdir())) == 1

        # The next session (an SSH drop) reopens the open incident before any check.
        journal.release()
        again = open_session(options)
        assert again.journal is not None and again.journal.folder == journal.folder
        assert again.journal.owner and not again.read_only
        assert [e.type for e in again.journal.entries()][-1] == "reopened"

        # A read-only look at it writes nothing, and sees the same incident.
        again.journal.release()
        size = journal.path.stat().st_size
        look = open_session(options_for(sim, tmp_path, read_only=True))
        assert look.read_only and look.journal is not None
        assert look.journal.incident_id == journal.incident_id
        look.check(Step.PIN)
        assert journal.path.stat().st_size == size


def test_a_new_incident_on_a_read_only_session_creates_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Simulator("skew-incident", speed=FAST) as sim:
        runbook = open_session(options_for(sim, tmp_path, read_only=True))
        assert runbook.check(Step.ROLLBACK).state == "findings"
        assert runbook.read_only and all(not a.available for a in runbook.check(Step.PIN).actions)
    assert written(state) == []
    assert isinstance(runbook.journal, Journal) and runbook.journal.entries() == []


def test_a_role_bound_in_one_namespace_opens_without_reading_namespaces(
    tmp_path: Path,
) -> None:
    """Namespaces are cluster-scoped: an on-call Role in `inference` cannot read them, yet it
    can run the whole runbook there. A refused namespace read must not refuse the session;
    a missing Deployment is still named, without the list the role cannot make."""
    from services.kube import KubeCluster
    from services.session import open_cluster
    from tests.faults.test_gate_faults import set_faults

    with Simulator("healthy", speed=FAST) as sim:
        options = options_for(sim, tmp_path)
        admin = KubeCluster(options.kubeconfig, "skewmit-sim")
        refused = {"error_rate": 1.0, "error_code": 403}
        set_faults(admin, [{**refused, "verb": "get", "resource": "namespaces"}])
        _cluster, target = open_cluster(options)
        assert (target.namespace, target.deployment) == ("inference", "llm-serve")
        set_faults(
            admin,
            [
                {**refused, "verb": "get", "resource": "namespaces"},
                {**refused, "verb": "list", "resource": "deployments"},
            ],
        )
        with pytest.raises(NotFoundError) as missing:
            open_cluster(options_for(sim, tmp_path, deployment="llm-serv"))
        assert 'deployment "llm-serv" not found in namespace "inference"' in str(missing.value)
        assert "check --deployment" in str(missing.value)
