"""skewmit's writes carry a field manager, as kubectl's do: on a real cluster managedFields
then say that skewmit changed a field, so `kubectl get -o yaml --show-managed-fields` during
the post-incident review, and a GitOps controller's conflict, name it. Through the real
kubernetes client to the simulator, which records managers as a real server does."""

from __future__ import annotations

from pathlib import Path

from services.kube import FIELD_MANAGER
from services.simulator.runner import Simulator
from tests.services.harness import connect

NS, NAME = "inference", "llm-serve"


def managers(obj: dict[str, object]) -> dict[str, str]:
    fields = obj["metadata"].get("managedFields") or []  # type: ignore[attr-defined]
    return {str(f["manager"]): str(f["operation"]) for f in fields}


def test_a_patch_and_a_create_are_recorded_under_skewmit(sim: Simulator, tmp_path: Path) -> None:
    cluster = connect(sim, tmp_path)
    assert FIELD_MANAGER not in managers(cluster.get("Deployment", NS, NAME))
    patch = {"metadata": {"annotations": {"skewmit.io/note": "pinned during the incident"}}}
    cluster.patch("Deployment", NS, NAME, patch, "merge")
    assert managers(cluster.get("Deployment", NS, NAME))[FIELD_MANAGER] == "Update"
    config = {"metadata": {"name": "skewmit-probe", "namespace": NS}, "data": {"a": "b"}}
    created = cluster.create("ConfigMap", NS, config)
    assert managers(created) == {FIELD_MANAGER: "Update"}
    # A dry run records nothing on the stored object.
    cluster.patch("Deployment", NS, NAME, {"spec": {"replicas": 5}}, "merge", dry_run=True)
    assert cluster.get("Deployment", NS, NAME)["spec"]["replicas"] != 5
