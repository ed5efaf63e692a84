"""The gate cannot be turned against production: a revert restores exactly what was (secrets
included, never a masked value), a multi-object plan is all or nothing, a conflict diff says
which side is which, and a controller's status bump is not a conflict. Through the real
kubernetes client over HTTP to the simulator, faults injected with POST /_sim/faults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services import routing
from services.errors import ConflictError, InvalidError, NotFoundError, ServerError
from services.gate import Gate, RevertRefused
from services.hardware import cordon_plan
from services.journal import Journal
from services.kube import KubeCluster
from services.latency import knob_plan
from services.masking import MASK
from services.models import Change, Plan, Step, Target
from services.simulator.runner import Simulator
from tests.services.harness import connect, wait_for

NS, NAME, LONG = "inference", "llm-serve", "llm-serve-long"
NODE = "gpu-a10g-1"
SPEED = 60.0
Obj = dict[str, Any]

# Every secret shape skewmit masks, planted in the Deployment before any change.
SECRETS = (
    "sk-short1",
    "tok-value-1",
    "pw-plain-1",
    "db-pass-1",
    "short-bearer-1",
    "hunter2-x",
    "hunter3-y",
)
PLANTED_ARGS = ["--api-key=sk-short1", "--token", "tok-value-1"]
PLANTED_ENV = [
    {"name": "API_PASSWORD", "value": "pw-plain-1"},
    {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
    {"name": "DATABASE_URL", "value": "postgres://admin:db-pass-1@db.internal:5432/app"},
    {"name": "UPSTREAM_HEADERS", "value": "Authorization: Bearer short-bearer-1"},
]
CHANGE_CAUSE = "kubernetes.io/change-cause"


def set_faults(cluster: KubeCluster, faults: list[Obj]) -> None:
    """POST /_sim/faults through the official client (what a drill trainer does)."""
    params = cluster.api.param_serialize(
        method="POST",
        resource_path="/_sim/faults",
        header_params={"Accept": "application/json", "Content-Type": "application/json"},
        body={"faults": faults},
        auth_settings=["BearerToken"],
    )
    response = cluster.api.call_api(*params)
    response.read()
    assert response.status == 200, response.data


def new_gate(cluster: KubeCluster, tmp_path: Path) -> Gate:
    """A gate on the incident's journal, as a restarted skewmit opens it (nothing in memory)."""
    target = Target("skewmit-sim", NS, NAME)
    return Gate(cluster, Journal.open_for(target, "admin", root=tmp_path / "state"))


def plant_secrets(cluster: KubeCluster) -> None:
    dep = cluster.get("Deployment", NS, NAME)
    container = dep["spec"]["template"]["spec"]["containers"][0]
    ops = [
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/args",
            "value": [*container["args"], *PLANTED_ARGS],
        },
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/env",
            "value": [*(container.get("env") or []), *PLANTED_ENV],
        },
        {
            "op": "add",
            "path": "/spec/template/metadata/annotations",
            "value": {"example.com/db": "password=hunter3-y"},
        },
        {
            "op": "add",
            "path": "/metadata/annotations/example.com~1note",
            "value": "rotated: password=hunter2-x",
        },
        {
            "op": "add",
            "path": "/metadata/annotations/kubernetes.io~1change-cause",
            "value": "creds from vault, password=hunter2-x",
        },
    ]
    cluster.patch("Deployment", NS, NAME, ops, "json")
    # As in production, the planted state was rolled out (its ReplicaSet exists) before
    # anyone changed it.
    wait_for(
        "the planted revision's ReplicaSet",
        lambda: any(
            "hunter2-x" in str(rs["metadata"].get("annotations"))
            for rs in cluster.list("ReplicaSet", NS)
        ),
    )


def exact(cluster: KubeCluster) -> str:
    """The Deployment's spec, labels and annotations (but the controller's revision notes),
    byte for byte."""
    dep = cluster.get("Deployment", NS, NAME)
    notes = {
        k: v
        for k, v in (dep["metadata"].get("annotations") or {}).items()
        if not k.startswith("deployment.kubernetes.io/")
    }
    state = {"spec": dep["spec"], "labels": dep["metadata"].get("labels"), "annotations": notes}
    return json.dumps(state, sort_keys=True)


def test_revert_restores_every_secret_shape_byte_for_byte(tmp_path: Path) -> None:
    """Issue 9 #1: with `--api-key=sk-short1` in the args, an args change and its revert
    wrote `--api-key=********` into the Deployment and verify called it live."""
    with Simulator("skew-incident", speed=SPEED) as sim:
        cluster = connect(sim, tmp_path)
        plant_secrets(cluster)
        before = exact(cluster)
        assert all(secret in before for secret in SECRETS)

        # A restarted skewmit: the revert is rebuilt from the journal, the live object and
        # the ReplicaSets, with nothing kept in memory.
        gate = new_gate(cluster, tmp_path)
        plan = knob_plan(cluster, NS, NAME, "max_num_seqs", 64)
        applied = gate.apply(plan, gate.preview(plan))
        assert applied.verified, applied.message
        assert "--max-num-seqs" in exact(cluster)
        reverted = new_gate(cluster, tmp_path).revert(applied.seq)
        assert reverted.verified, reverted.message
        assert exact(cluster) == before
        assert MASK not in exact(cluster)

        # The same process: its plain copy of the inverse.
        plan = knob_plan(cluster, NS, NAME, "max_num_seqs", 32)
        applied = gate.apply(plan, gate.preview(plan))
        assert gate.revert(applied.seq).verified
        assert exact(cluster) == before

        journal = gate.journal.path.read_text()
        assert not [secret for secret in SECRETS if secret in journal]
        assert "--api-key=********" in journal and "postgres://admin:********@" in journal


def one_patch(kind: str, name: str, ops: list[Obj], before: Obj) -> Plan:
    change = Change(kind, NS, name, "patch", "json", ops, before, None)
    return Plan(Step.LATENCY, "test.patch", f"Patch {kind.lower()}/{name}", (change,), ())


def test_a_rotated_key_is_restored_from_the_replicaset_that_held_it(tmp_path: Path) -> None:
    """A plan that changed only a secret masks to a no-op: the old key is taken from the
    ReplicaSet of the revision that ran it, never from the live (new) key or the mask."""
    with Simulator("skew-incident", speed=SPEED) as sim:
        cluster = connect(sim, tmp_path)
        plant_secrets(cluster)
        before = exact(cluster)
        dep = cluster.get("Deployment", NS, NAME)
        args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        rotated = [a.replace("sk-short1", "sk-short2") for a in args]
        path = "/spec/template/spec/containers/0/args"
        plan = one_patch(
            "Deployment", NAME, [{"op": "replace", "path": path, "value": rotated}], dep
        )
        gate = new_gate(cluster, tmp_path)
        applied = gate.apply(plan, gate.preview(plan))
        assert "sk-short2" in exact(cluster)
        wait_for(
            "the rotated revision's ReplicaSet",
            lambda: any("sk-short2" in json.dumps(rs) for rs in cluster.list("ReplicaSet", NS)),
        )
        assert new_gate(cluster, tmp_path).revert(applied.seq).verified
        assert exact(cluster) == before


def test_a_secret_no_record_holds_is_not_reverted_from_a_masked_copy(tmp_path: Path) -> None:
    """A Service keeps no history: after a restart, the old password in its annotation is
    nowhere. The revert refuses, saying why, and writes nothing (never the mask); the process
    that made the change still holds it and reverts exactly."""
    with Simulator("skew-incident", speed=SPEED) as sim:
        cluster = connect(sim, tmp_path)
        key = "/metadata/annotations/example.com~1upstream"
        old = "https://proxy.internal/?password=hunter2-x"
        notes = {"metadata": {"annotations": {"example.com/upstream": old}}}
        cluster.patch("Service", NS, NAME, notes, "merge")
        service = cluster.get("Service", NS, NAME)
        new = old.replace("hunter2-x", "hunter9-z")
        plan = one_patch("Service", NAME, [{"op": "replace", "path": key, "value": new}], service)
        gate = new_gate(cluster, tmp_path)
        applied = gate.apply(plan, gate.preview(plan))
        assert applied.verified, applied.message

        def note() -> str:
            annotations = cluster.get("Service", NS, NAME)["metadata"]["annotations"]
            return str(annotations["example.com/upstream"])

        with pytest.raises(RevertRefused, match="cannot restore a masked") as refused:
            new_gate(cluster, tmp_path).revert(applied.seq)
        assert "example.com~1upstream" in str(refused.value)
        assert note() == new
        assert gate.revert(applied.seq).verified
        assert note() == old


def test_a_change_built_from_a_masked_copy_is_refused(tmp_path: Path) -> None:
    with Simulator("skew-incident", speed=SPEED) as sim:
        cluster = connect(sim, tmp_path)
        plant_secrets(cluster)
        before = exact(cluster)
        dep = cluster.get("Deployment", NS, NAME)
        path = "/metadata/annotations/example.com~1note"
        masked = [{"op": "replace", "path": path, "value": f"rotated: password={MASK}"}]
        plan = one_patch("Deployment", NAME, masked, dep)
        gate = new_gate(cluster, tmp_path)
        with pytest.raises(InvalidError, match="would write a masked value"):
            gate.apply(plan, gate.preview(plan))
        assert exact(cluster) == before


def test_step4_failing_part_way_rolls_back_and_the_retry_works(tmp_path: Path) -> None:
    """Issue 9: the Service's apply (a PATCH) fails after the -long Deployment was created;
    today the Deployment keeps its GPUs with no revert, and the retry is refused."""
    with Simulator("skew-incident", speed=SPEED) as sim:
        cluster = connect(sim, tmp_path)
        gate = new_gate(cluster, tmp_path)
        route_before = cluster.get("HTTPRoute", NS, NAME)["spec"]
        plan = routing.long_context_plan(cluster, NS, NAME)
        assert [c.kind for c in plan.changes] == ["Deployment", "Service", "HTTPRoute"]
        preview = gate.preview(plan)
        assert preview.dry_run_ok, preview.dry_run_message
        set_faults(cluster, [{"verb": "patch", "resource": "services", "error_rate": 1.0}])
        with pytest.raises(ServerError) as failed:
            gate.apply(plan, preview)
        message = str(failed.value)
        assert "change 2 of 3 (service/llm-serve-long) failed" in message
        assert "the 1 change(s) applied before it were rolled back" in message

        def gone() -> bool:
            try:
                cluster.get("Deployment", NS, LONG)
            except NotFoundError:
                return True
            return False

        wait_for("the -long Deployment to be gone", gone)
        assert cluster.get("HTTPRoute", NS, NAME)["spec"] == route_before
        record = [e for e in gate.journal.entries() if e.type == "apply-failed"][-1]
        assert record.data["rolled_back"] is True and record.data["applied"] == 1

        set_faults(cluster, [])
        retry = routing.long_context_plan(cluster, NS, NAME)
        applied = gate.apply(retry, gate.preview(retry))
        assert applied.verified, applied.message
        assert cluster.get("Service", NS, LONG)["metadata"]["name"] == LONG


def test_a_failed_roll_back_leaves_a_journaled_partial_apply_with_a_revert(
    tmp_path: Path,
) -> None:
    with Simulator("skew-incident", speed=SPEED) as sim:
        cluster = connect(sim, tmp_path)
        gate = new_gate(cluster, tmp_path)
        plan = routing.long_context_plan(cluster, NS, NAME)
        preview = gate.preview(plan)
        set_faults(
            cluster,
            [
                {"verb": "patch", "resource": "services", "error_rate": 1.0},
                {"verb": "delete", "resource": "deployments", "error_rate": 1.0},
            ],
        )
        with pytest.raises(ServerError, match="the partial apply is journal entry"):
            gate.apply(plan, preview)
        (seq, data), *_ = gate.applied_entries()
        assert data["partial"] is True and "partial: 1 of 3" in data["title"]
        assert cluster.get("Deployment", NS, LONG)
        set_faults(cluster, [])
        assert new_gate(cluster, tmp_path).revert(seq).verified

        def gone() -> bool:
            try:
                cluster.get("Deployment", NS, LONG)
            except NotFoundError:
                return True
            return False

        wait_for("the -long Deployment to be gone", gone)
        retry = routing.long_context_plan(cluster, NS, NAME)
        assert gate.apply(retry, gate.preview(retry)).verified


def test_conflict_diff_names_the_planned_side_and_the_live_side(tmp_path: Path) -> None:
    """Issue 9: the labels were swapped, "(live)" over the planned state."""
    with Simulator("skew-incident", speed=SPEED) as sim:
        cluster = connect(sim, tmp_path)
        gate = new_gate(cluster, tmp_path)
        plan = knob_plan(cluster, NS, NAME, "max_num_seqs", 64)
        preview = gate.preview(plan)
        cluster.patch("Deployment", NS, NAME, {"spec": {"replicas": 7}}, "merge")
        with pytest.raises(ConflictError) as conflict:
            gate.apply(plan, preview)
        text = str(conflict.value)
        assert "--- deployment/llm-serve (as planned)" in text
        assert "+++ deployment/llm-serve (live now)" in text
        assert "+  replicas: 7" in text and "-  replicas: 4" in text


def test_a_409_from_a_status_only_bump_is_rechecked_and_applied(tmp_path: Path) -> None:
    """Issue 9: a spurious 409 when the controller bumps the resourceVersion between the
    gate's read and its write (only status moved)."""
    with Simulator("skew-incident", speed=SPEED) as sim:
        cluster = connect(sim, tmp_path)
        gate = new_gate(cluster, tmp_path)
        plan = knob_plan(cluster, NS, NAME, "max_num_seqs", 64)
        preview = gate.preview(plan)
        set_faults(cluster, [{"verb": "patch", "resource": "deployments", "conflicts": 2}])
        applied = gate.apply(plan, preview)
        assert applied.verified, applied.message
        assert "--max-num-seqs" in exact(cluster)


def test_a_seq_two_applied_entries_share_is_not_reverted(tmp_path: Path) -> None:
    """Issue 9 #3 in a journal written before sequence numbers were unique: two instances on
    one incident both numbered their cordon and max-num-seqs entries 2 and 3. Reverting #3
    uncordoned the node when the operator meant max-num-seqs. The gate refuses, naming both
    entries, and changes nothing; both stay listed."""
    with Simulator("skew-incident", speed=SPEED) as sim:
        cluster = connect(sim, tmp_path)
        gate = new_gate(cluster, tmp_path)
        cordon = cordon_plan(cluster, NODE)
        gate.apply(cordon, gate.preview(cordon))
        knob = knob_plan(cluster, NS, NAME, "max_num_seqs", 64)
        gate.apply(knob, gate.preview(knob))
        records = {
            (r["type"], r["data"].get("title")): r
            for r in (json.loads(line) for line in gate.journal.path.read_text().splitlines())
        }
        # The journal as the two instances left it: each numbered from the lines it had read.
        old = [{**records[("opened", None)], "seq": 1}]
        for title in (cordon.title, knob.title):
            intent = {**records[("apply-intent", title)], "seq": 2}
            applied = records[("applied", title)]
            old += [intent, {**applied, "seq": 3, "data": {**applied["data"], "intent": 2}}]
        gate.journal.path.write_text("".join(json.dumps(r) + "\n" for r in old))

        restarted = new_gate(cluster, tmp_path)
        offered = restarted.applied_entries()
        assert [(seq, data["title"]) for seq, data in offered] == [
            (3, knob.title),
            (3, cordon.title),
        ]
        with pytest.raises(InvalidError) as refused:
            restarted.revert(3)
        message = str(refused.value)
        assert "#3" in message and "ambiguous" in message
        assert knob.title in message and cordon.title in message
        assert "reverts neither" in message
        assert cluster.get("Node", "", NODE)["spec"].get("unschedulable") is True
        assert "--max-num-seqs" in exact(cluster)
        assert restarted.applied_entries() == offered
        journal = restarted.journal.entries()
        assert not [e for e in journal if e.type in ("revert-intent", "reverted")]
