"""Step 1 and the mutation gate, through the real client against the simulator, with the real
kubectl as the cross-check for `rollout undo`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from services import rollout
from services.errors import ConflictError, ForbiddenError, GitOpsError, InvalidError
from services.gate import Gate, RevertRefused
from services.journal import Journal
from services.kube import KubeCluster
from services.models import Step, Target
from services.runbook import Runbook
from services.simulator.runner import Simulator
from tests.conftest import require_tool
from tests.services.harness import wait_for

NS, NAME = "inference", "llm-serve"
SPEED = 60.0


def connect(sim: Simulator, tmp: Path, context: str | None = None) -> tuple[KubeCluster, Gate]:
    cluster = KubeCluster(str(sim.write_kubeconfig(tmp / "kubeconfig")), context)
    target = Target(cluster.context, NS, NAME, cluster.server, cluster.whoami())
    journal = Journal.open_for(target, target.user, tmp / "state")
    return cluster, Gate(cluster, journal)


def template(cluster: KubeCluster) -> dict:
    return cluster.get("Deployment", NS, NAME)["spec"]["template"]


def kubectl(kubeconfig: Path, cache: Path, *args: str) -> str:
    binary = require_tool("kubectl")
    result = subprocess.run(
        [binary, "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache), "-n", NS, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_history_marks_current_and_last_known_good(shared_sim: Simulator, tmp_path: Path) -> None:
    cluster, _ = connect(shared_sim, tmp_path)
    revisions = {r.number: r for r in rollout.history(cluster, NS, NAME)}
    assert revisions[3].current and not revisions[3].last_known_good
    assert {f.code for f in revisions[3].findings} == {
        "image-mutable-tag",
        "model-revision-unpinned",
        "dtype-unset",
        "max-model-len-unset",
    }
    assert revisions[2].last_known_good and not revisions[2].findings
    assert "dtype=bfloat16" in revisions[2].summary and "max-len=8192" in revisions[2].summary
    assert revisions[2].change_cause == "vllm v0.8.5 (last-known-good)"
    assert not revisions[1].last_known_good  # older than the newest good one


def test_undo_plan_names_what_a_rollback_does_not_restore(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    cluster, _ = connect(shared_sim, tmp_path)
    plan = rollout.undo_plan(cluster, NS, NAME)
    assert plan.title == "Roll back deployment/llm-serve to revision 2"
    assert plan.kubectl[0] == "kubectl rollout undo deployment/llm-serve -n inference"
    assert any(n.startswith("replicas stay at 4") for n in plan.notes)
    assert any("Secret hf-token" in n for n in plan.notes)
    with pytest.raises(Exception, match="unable to find specified revision 9"):
        rollout.undo_plan(cluster, NS, NAME, to_revision=9)


def test_skewmit_undo_matches_kubectl_rollout_undo(tmp_path: Path) -> None:
    """From identical starting states, skewmit's undo and kubectl's leave the same template
    and the same `kubectl rollout history`."""
    results = []
    for who in ("kubectl", "skewmit"):
        folder = tmp_path / who
        folder.mkdir()
        with Simulator("skew-incident", speed=SPEED, seed=5) as sim:
            cluster, gate = connect(sim, folder)
            kubeconfig = folder / "kubeconfig"
            if who == "kubectl":
                kubectl(kubeconfig, folder / "cache", "rollout", "undo", f"deployment/{NAME}")
            else:
                plan = rollout.undo_plan(cluster, NS, NAME)
                applied = gate.apply(plan, gate.preview(plan))
                assert applied.verified, applied.message
            wait_for("the rollout", lambda c=cluster: rollout.progress(c, NS, NAME).done)
            history = kubectl(
                kubeconfig, folder / "cache", "rollout", "history", f"deployment/{NAME}"
            )
            deployment = cluster.get("Deployment", NS, NAME)
            results.append(
                (
                    json.dumps(deployment["spec"]["template"], sort_keys=True),
                    deployment["metadata"]["annotations"],
                    history,
                )
            )
    assert results[0] == results[1]
    assert "4         vllm v0.8.5 (last-known-good)" in results[1][2]


def test_apply_verify_revert_restores_the_template_and_journals_everything(tmp_path: Path) -> None:
    with Simulator("skew-incident", speed=SPEED) as sim:
        cluster, gate = connect(sim, tmp_path)
        before = template(cluster)
        plan = rollout.undo_plan(cluster, NS, NAME)
        preview = gate.preview(plan)
        assert preview.allowed and preview.dry_run_ok
        assert "+        image: vllm/vllm-openai:v0.8.5@sha256:" in preview.diff
        assert before == template(cluster), "the server dry run changed nothing"
        applied = gate.apply(plan, preview)
        assert applied.verified
        assert template(cluster)["spec"]["nodeSelector"] == {
            "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"
        }
        wait_for("the rollback", lambda: rollout.progress(cluster, NS, NAME).done)
        reverted = gate.revert(applied.seq)
        assert reverted.verified
        assert template(cluster) == before
        types = [e.type for e in gate.journal.entries()]
        assert types == ["opened", "plan", "apply-intent", "applied", "revert-intent", "reverted"]
        text = gate.journal.path.read_text()
        assert "hf_sImUlAtEdSeCrEtT0kEnD0NotLeak" not in text
        record = json.loads(text.splitlines()[3])
        assert record["who"]["kube_user"] == "skewmit-admin" and record["who"]["os_user"]


def test_revert_refuses_with_a_diff_when_the_object_changed_since(tmp_path: Path) -> None:
    with Simulator("skew-incident", speed=SPEED) as sim:
        cluster, gate = connect(sim, tmp_path)
        plan = rollout.undo_plan(cluster, NS, NAME)
        applied = gate.apply(plan, gate.preview(plan))
        cluster.patch(
            "Deployment",
            NS,
            NAME,
            {"spec": {"template": {"metadata": {"labels": {"team": "other"}}}}},
            "strategic",
        )
        with pytest.raises(RevertRefused) as refused:
            gate.revert(applied.seq)
        assert "+        team: other" in refused.value.diff
        assert template(cluster)["metadata"]["labels"]["team"] == "other"


def test_a_plan_made_before_someone_else_changed_the_spec_is_refused(tmp_path: Path) -> None:
    with Simulator("skew-incident", speed=SPEED) as sim:
        cluster, gate = connect(sim, tmp_path)
        plan = rollout.undo_plan(cluster, NS, NAME)
        preview = gate.preview(plan)
        cluster.patch("Deployment", NS, NAME, {"spec": {"replicas": 5}}, "merge")
        with pytest.raises(ConflictError, match="changed since this plan was made"):
            gate.apply(plan, preview)
        assert template(cluster)["spec"]["containers"][0]["image"] == "vllm/vllm-openai:latest"


def test_read_only_and_forbidden_users_never_mutate(tmp_path: Path) -> None:
    with Simulator("skew-incident", speed=SPEED) as sim:
        cluster, gate = connect(sim, tmp_path)
        before = template(cluster)
        plan = rollout.undo_plan(cluster, NS, NAME)
        read_only = Gate(cluster, gate.journal, read_only=True)
        preview = read_only.preview(plan)
        assert not preview.allowed and "read-only" in preview.denied_reason
        with pytest.raises(ForbiddenError):
            read_only.apply(plan, preview)
        viewer, viewer_gate = connect(sim, tmp_path / "viewer", "skewmit-sim-readonly")
        preview = viewer_gate.preview(rollout.undo_plan(viewer, NS, NAME))
        assert not preview.allowed
        assert 'user "skewmit-viewer" may not patch deployments' in preview.denied_reason
        runbook = Runbook(viewer, Target(viewer.context, NS, NAME), viewer_gate.journal)
        action = runbook.check(Step.ROLLBACK).actions[0]
        assert not action.available and "not permitted" in action.reason
        assert template(cluster) == before


def test_gitops_managed_is_refused_until_overridden_and_argo_self_heals(tmp_path: Path) -> None:
    with Simulator("gitops-managed", speed=SPEED) as sim:
        cluster, gate = connect(sim, tmp_path)
        before = template(cluster)
        plan = rollout.undo_plan(cluster, NS, NAME)
        preview = gate.preview(plan)
        assert not preview.allowed
        assert preview.denied_reason.startswith("GitOps (argocd llm-serve)")
        assert "self-heal" in preview.denied_reason.lower()
        with pytest.raises(GitOpsError):
            gate.apply(plan, preview)
        assert template(cluster) == before
        override = Gate(cluster, gate.journal, gitops_override=True)
        applied = override.apply(plan, override.preview(plan))
        assert applied.verified
        # Argo CD puts git's template back: the warning was right.
        wait_for("Argo CD self-heal", lambda: template(cluster) == before, timeout_s=20)


def test_undo_is_refused_like_kubectl_for_a_paused_deployment(tmp_path: Path) -> None:
    with Simulator("skew-incident", speed=SPEED) as sim:
        cluster, _ = connect(sim, tmp_path)
        cluster.patch("Deployment", NS, NAME, {"spec": {"paused": True}}, "merge")
        with pytest.raises(InvalidError, match="cannot rollback a paused deployment"):
            rollout.undo_plan(cluster, NS, NAME)


def test_reopening_the_same_target_continues_the_open_incident(tmp_path: Path) -> None:
    target = Target("ctx", NS, NAME, "https://x", "alice")
    first = Journal.open_for(target, "alice", tmp_path)
    first.append("note", {"text": "rolled back"})
    second = Journal.open_for(target, "alice", tmp_path)
    assert second.incident_id == first.incident_id
    assert [e.type for e in second.entries()] == ["opened", "note", "reopened"]
    second.close("pass")
    third = Journal.open_for(target, "alice", tmp_path)
    assert third.incident_id != first.incident_id
