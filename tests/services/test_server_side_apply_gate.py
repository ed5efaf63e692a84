"""Server-side apply through the gate (issue 11): skewmit applies under its own field manager,
a field another manager owns is reported as "another manager owns this field" with the
manager's name and never forced silently, and an apply is journaled, verified and reverted
like every other change. Through the real kubernetes client over HTTP to the simulator, which
runs server-side apply with real conflicts and managedFields; kubectl 1.32 and 1.37 read the
managers back."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from services import routing
from services.errors import ConflictError, NotFoundError
from services.field_owners import FieldOwnedError, conflicts_in, owned_message
from services.gate import Gate
from services.guarded_apply import apply_change
from services.journal import Journal
from services.kube import KubeCluster
from services.models import Plan, Step, Target
from services.simulator.runner import Simulator
from tests.conftest import FAST
from tests.services.harness import connect, wait_for
from tests.simulator.test_kubectl import KUBECTL_VERSIONS, make_kubectl

NS, NAME, LONG = "inference", "llm-serve", "llm-serve-long"
PROBE = "skewmit-probe"
Obj = dict[str, Any]
# Secrets a long-context Deployment could carry from its template: none may reach the journal.
SECRET_VALUE, SECRET_ARG = "hf_plaintextvalue123", "sk-applied-secret-9"


def new_gate(cluster: KubeCluster, tmp_path: Path, **options: bool) -> Gate:
    target = Target("skewmit-sim", NS, NAME)
    return Gate(cluster, Journal.open_for(target, "admin", root=tmp_path / "state"), **options)


def one_apply(kind: str, config: Obj, live: Obj | None) -> Plan:
    change = apply_change(kind, NS, config, live)
    return Plan(Step.LATENCY, "test.apply", f"Apply {kind.lower()}/{change.name}", (change,), ())


def managers(obj: Obj) -> set[tuple[str, str]]:
    return {(f["manager"], f["operation"]) for f in obj["metadata"].get("managedFields") or []}


def types(gate: Gate) -> list[str]:
    return [e.type for e in gate.journal.entries()]


def absent(cluster: KubeCluster, kind: str, name: str) -> bool:
    try:
        cluster.get(kind, NS, name)
    except NotFoundError:
        return True
    return False


@pytest.fixture
def incident(tmp_path: Path) -> Iterator[KubeCluster]:
    with Simulator("skew-incident", speed=FAST) as sim:
        yield connect(sim, tmp_path)


def test_a_field_argo_cd_owns_is_refused_at_preview_naming_it_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    with Simulator("gitops-managed", speed=FAST) as sim:
        cluster = connect(sim, tmp_path)
        live = cluster.get("Deployment", NS, NAME)
        config = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": NAME, "namespace": NS},
            "spec": {"replicas": 6},
        }
        plan = one_apply("Deployment", config, live)
        # Without the override the GitOps markers refuse first, as for any change.
        assert new_gate(cluster, tmp_path).preview(plan).denied_reason.startswith("GitOps")
        # With it (the operator said Argo CD's self-heal is off), the server's field
        # ownership still stops skewmit: Argo CD applied .spec.replicas.
        gate = new_gate(cluster, tmp_path, gitops_override=True)
        preview = gate.preview(plan)
        assert preview.allowed and not preview.dry_run_ok
        message = preview.dry_run_message
        assert (
            "deployment/llm-serve: another manager owns this field: .spec.replicas is owned by "
            "argocd-controller (Apply); skewmit will not force it" in message
        )
        assert "where that manager reads from (Git)" in message
        # The diff shown beside the refusal is the apply merged into the live object: the
        # one field, not every field the configuration leaves out.
        changed = [ln for ln in preview.diff.splitlines() if ln[:1] in "+-"]
        assert [ln for ln in changed if not ln.startswith(("---", "+++"))] == [
            "-  replicas: 4",
            "+  replicas: 6",
        ]
        # Several fields: each is named with its manager.
        labels = {"app.kubernetes.io/instance": "llm-serve-2"}
        both = {**config, "metadata": {**config["metadata"], "labels": labels}}
        several = gate.preview(one_apply("Deployment", both, live)).dry_run_message
        assert "another manager owns these fields: " in several
        assert ".spec.replicas is owned by argocd-controller (Apply)" in several
        assert (
            ".metadata.labels.app.kubernetes.io/instance is owned by argocd-controller" in several
        )
        assert "skewmit will not force them" in several
        with pytest.raises(ConflictError, match="another manager owns this field"):
            gate.apply(plan, preview)
        now = cluster.get("Deployment", NS, NAME)
        assert now["spec"]["replicas"] == 4
        assert now["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]
        assert ("skewmit", "Apply") not in managers(now)
        assert "apply-intent" not in types(gate)


def test_a_manager_sharing_the_field_by_apply_time_is_a_conflict_journaled_as_failed(
    incident: KubeCluster, tmp_path: Path
) -> None:
    """Previewed while skewmit alone owned the field; before the confirmation Argo CD began
    applying the same value (ownership moved, nothing else did): the apply meets it."""
    cluster = incident
    gate = new_gate(cluster, tmp_path)
    first = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": PROBE}}
    first["data"] = {"mode": "a"}
    assert gate.apply(*_previewed(gate, one_apply("ConfigMap", first, None))).verified
    live = cluster.get("ConfigMap", NS, PROBE)
    plan = one_apply("ConfigMap", {**first, "data": {"mode": "b"}}, live)
    preview = gate.preview(plan)
    assert preview.dry_run_ok, preview.dry_run_message
    assert "-  mode: a" in preview.diff and "+  mode: b" in preview.diff
    cluster.apply("ConfigMap", NS, first, field_manager="argocd-controller")
    with pytest.raises(FieldOwnedError) as refused:
        gate.apply(plan, preview)
    assert refused.value.conflicts[0].manager == "argocd-controller"
    assert ".data.mode is owned by argocd-controller (Apply)" in str(refused.value)
    assert cluster.get("ConfigMap", NS, PROBE)["data"] == {"mode": "a"}
    failed = gate.journal.entries()[-1]
    assert failed.type == "apply-failed" and "argocd-controller" in failed.data["error"]


def _previewed(gate: Gate, plan: Plan) -> tuple[Plan, Any]:
    preview = gate.preview(plan)
    assert preview.dry_run_ok, preview.dry_run_message
    return plan, preview


def test_the_step4_apply_creates_verifies_journals_and_its_revert_deletes(
    incident: KubeCluster, tmp_path: Path
) -> None:
    cluster = incident
    gate = new_gate(cluster, tmp_path)
    plan = routing.long_context_plan(cluster, NS, NAME)
    preview = gate.preview(plan)
    assert preview.dry_run_ok, preview.dry_run_message
    # A new object diffs against nothing: every line of it is an addition.
    assert f"--- deployment/{LONG} (live)" in preview.diff and "+  replicas: 1" in preview.diff
    applied = gate.apply(plan, preview)
    assert applied.verified, applied.message
    for kind in ("Deployment", "Service"):
        assert ("skewmit", "Apply") in managers(cluster.get(kind, NS, LONG))
    intent, outcome = (e for e in gate.journal.entries() if e.type in ("apply-intent", "applied"))
    assert [c["operation"] for c in intent.data["changes"]] == ["apply", "apply", "patch"]
    assert outcome.data["intent"] == intent.seq and outcome.data["verified"] is True
    inverse = [(i["kind"], i["operation"]) for i in outcome.data["inverse"]]
    assert inverse[:2] == [("Deployment", "delete"), ("Service", "delete")]

    revert = gate.preview_revert(applied.seq)
    assert revert.allowed and revert.dry_run_ok, revert.dry_run_message
    assert f"+++ deployment/{LONG} (after)" in revert.diff and "-  replicas: 1" in revert.diff
    assert gate.revert(applied.seq).verified
    gone = ("Deployment", "Service")
    wait_for("the -long objects deleted", lambda: all(absent(cluster, k, LONG) for k in gone))
    assert types(gate)[-2:] == ["revert-intent", "reverted"]


def test_secrets_in_an_applied_object_reach_the_cluster_but_never_the_journal(
    incident: KubeCluster, tmp_path: Path
) -> None:
    cluster = incident
    gate = new_gate(cluster, tmp_path)
    planned = routing.long_context_plan(cluster, NS, NAME)
    body = copy.deepcopy(planned.changes[0].after)
    assert body is not None
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [*(container.get("env") or []), {"name": "HF_TOKEN", "value": SECRET_VALUE}]
    container["args"] = [*container["args"], f"--api-key={SECRET_ARG}"]
    plan = one_apply("Deployment", body, None)
    preview = gate.preview(plan)
    assert preview.dry_run_ok, preview.dry_run_message
    assert SECRET_VALUE not in preview.diff and SECRET_ARG not in preview.diff
    applied = gate.apply(plan, preview)
    assert applied.verified, applied.message
    live = cluster.get("Deployment", NS, LONG)["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "HF_TOKEN", "value": SECRET_VALUE} in live["env"]
    assert f"--api-key={SECRET_ARG}" in live["args"]
    text = gate.journal.path.read_text()
    assert "HF_TOKEN" in text and SECRET_VALUE not in text and SECRET_ARG not in text
    assert SECRET_VALUE not in gate.preview_revert(applied.seq).diff
    assert gate.revert(applied.seq).verified
    wait_for("the -long Deployment deleted", lambda: absent(cluster, "Deployment", LONG))


def test_forced_only_when_the_operator_agreed_and_the_revert_gives_the_field_back(
    incident: KubeCluster, tmp_path: Path
) -> None:
    cluster = incident
    live = cluster.get("Deployment", NS, NAME)
    config = {"metadata": {"name": NAME}, "spec": {"replicas": 6}}
    plan = one_apply("Deployment", config, live)
    refused = new_gate(cluster, tmp_path).preview(plan)
    assert not refused.dry_run_ok
    assert ".spec.replicas is owned by kubectl-client-side-apply (Update)" in (
        refused.dry_run_message
    )
    gate = new_gate(cluster, tmp_path, force_conflicts=True)
    preview = gate.preview(plan)
    assert preview.dry_run_ok and "+  replicas: 6" in preview.diff
    assert preview.dry_run_message.endswith(
        "forced, taking from other managers: .spec.replicas from kubectl-client-side-apply (Update)"
    )
    applied = gate.apply(plan, preview)
    assert applied.verified, applied.message
    assert cluster.get("Deployment", NS, NAME)["spec"]["replicas"] == 6
    intent = next(e for e in gate.journal.entries() if e.type == "apply-intent")
    assert intent.data["force_conflicts"] is True  # the journal says it was forced
    revert = gate.preview_revert(applied.seq)
    assert revert.dry_run_ok and "-  replicas: 6" in revert.diff and "+  replicas: 4" in revert.diff
    assert gate.revert(applied.seq).verified
    assert cluster.get("Deployment", NS, NAME)["spec"]["replicas"] == 4


@pytest.mark.kubectl
@pytest.mark.parametrize("version", KUBECTL_VERSIONS)
def test_kubectl_shows_skewmit_applied_the_step4_objects(version: str, tmp_path: Path) -> None:
    with Simulator("skew-incident", speed=FAST) as sim:
        kubectl = make_kubectl(sim, tmp_path, version)
        cluster = connect(sim, tmp_path)
        gate = new_gate(cluster, tmp_path)
        plan = routing.long_context_plan(cluster, NS, NAME)
        assert gate.apply(plan, gate.preview(plan)).verified
        for kind in ("deployment", "service"):
            text = kubectl.ok("get", kind, LONG, "-n", NS, "-o", "yaml", "--show-managed-fields")
            fields = yaml.safe_load(text)["metadata"]["managedFields"]
            mine = [f for f in fields if f["manager"] == "skewmit"]
            assert [f["operation"] for f in mine] == ["Apply"], fields
            assert "f:spec" in mine[0]["fieldsV1"]


def test_an_object_created_by_someone_else_since_the_preview_is_not_taken_over(
    incident: KubeCluster, tmp_path: Path
) -> None:
    """A colleague created the -long Service between the preview and the confirmation: an
    apply would merge into it silently; skewmit stops, and the Deployment it had already
    applied is rolled back (all or nothing)."""
    cluster = incident
    gate = new_gate(cluster, tmp_path)
    plan = routing.long_context_plan(cluster, NS, NAME)
    preview = gate.preview(plan)
    assert preview.dry_run_ok, preview.dry_run_message
    theirs = copy.deepcopy(plan.changes[1].after)
    assert theirs is not None
    theirs["metadata"]["labels"] = {"owner": "colleague"}
    cluster.apply("Service", NS, theirs, field_manager="kubectl")
    with pytest.raises(ConflictError, match="created by someone else since this plan"):
        gate.apply(plan, preview)
    wait_for("the -long Deployment rolled back", lambda: absent(cluster, "Deployment", LONG))
    service = cluster.get("Service", NS, LONG)
    assert service["metadata"]["labels"] == {"owner": "colleague"}
    assert ("skewmit", "Apply") not in managers(service)
    assert gate.journal.entries()[-1].data["rolled_back"] is True


def test_owners_are_named_from_the_message_when_the_status_has_no_causes() -> None:
    """A proxy or an older server may send the Status without details.causes: the message's
    own lines still name every field and manager."""
    status = {
        "kind": "Status",
        "code": 409,
        "message": 'Apply failed with 2 conflicts: conflicts with "argocd-controller":\n'
        '- .spec.replicas\nconflicts with "kubectl-client-side-apply" using apps/v1:\n'
        "- .spec.template.spec.nodeSelector",
    }
    conflicts = conflicts_in(status)
    assert [(c.manager, c.operation, c.field) for c in conflicts] == [
        ("argocd-controller", "Apply", ".spec.replicas"),
        ("kubectl-client-side-apply", "Update", ".spec.template.spec.nodeSelector"),
    ]
    text = owned_message("deployment/llm-serve", conflicts)
    assert "where those managers read from (its source" in text
    assert "after agreeing with their owners" in text
    assert conflicts_in({"code": 409, "message": "Operation cannot be fulfilled"}) == ()
