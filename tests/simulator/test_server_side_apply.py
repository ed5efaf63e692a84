"""Server-side apply and managedFields through the official client, as a GitOps controller
(Argo CD, Flux) and skewmit itself meet them on a real kube-apiserver.

A controller applies with `application/apply-patch+yaml`, a fieldManager and usually
`force`; an object nobody has applied before is first given to "before-first-apply"; a
conflict is a 409 whose causes name each manager and field; every create, update and patch
records its manager (the fieldManager, else the User-Agent's product).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from services.simulator.runner import Simulator
from tests.conftest import FAST, api_client

NS = "inference"
APPLY = "application/apply-patch+yaml"


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Simulator, client.AppsV1Api]]:
    with Simulator("skew-incident", speed=FAST) as sim:
        api = api_client(sim, tmp_path_factory.mktemp("ssa"))
        yield sim, client.AppsV1Api(api)


def manifest(name: str, replicas: int, image: str = "nginx:1.27") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


def owners(apps_api: client.AppsV1Api, name: str) -> dict[tuple[str, str], Any]:
    raw = apps_api.read_namespaced_deployment(name, NS, _preload_content=False)
    obj = json.loads(raw.data)
    return {(e["manager"], e["operation"]): e for e in obj["metadata"].get("managedFields", [])}


def status_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def test_a_controller_applying_to_an_unmanaged_object_meets_before_first_apply(
    apps: tuple[Simulator, client.AppsV1Api],
) -> None:
    sim, api = apps
    # Seeded straight into the store, as an object from before managedFields existed.
    store = sim.cluster.store  # type: ignore[union-attr]
    rt = store.registry.by_plural("deployments")
    sim.call(store.create, rt, manifest("legacy", 2))
    assert owners(api, "legacy") == {}

    with pytest.raises(ApiException) as refused:
        api.patch_namespaced_deployment(
            "legacy", NS, manifest("legacy", 3), field_manager="argocd-controller",
            _content_type=APPLY,
        )  # fmt: skip
    assert refused.value.status == 409
    status = status_of(refused.value)
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: '
        ".spec.replicas"
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "before-first-apply" using apps/v1',
            "field": ".spec.replicas",
        }
    ]

    applied = api.patch_namespaced_deployment(
        "legacy", NS, manifest("legacy", 3), field_manager="argocd-controller", force=True,
        _content_type=APPLY,
    )  # fmt: skip
    assert applied.spec.replicas == 3
    entries = owners(api, "legacy")
    assert set(entries) == {("argocd-controller", "Apply"), ("before-first-apply", "Update")}
    assert "f:replicas" in entries[("argocd-controller", "Apply")]["fieldsV1"]["f:spec"]
    assert "f:replicas" not in entries[("before-first-apply", "Update")]["fieldsV1"]["f:spec"]


def test_conflicts_name_every_manager_and_field(apps: tuple[Simulator, client.AppsV1Api]) -> None:
    _, api = apps
    api.patch_namespaced_deployment(
        "shared", NS, manifest("shared", 1), field_manager="flux", _content_type=APPLY
    )
    with pytest.raises(ApiException) as refused:
        api.patch_namespaced_deployment(
            "shared", NS, manifest("shared", 2, image="nginx:1.28"), field_manager="argocd",
            _content_type=APPLY,
        )  # fmt: skip
    assert status_of(refused.value)["message"] == (
        'Apply failed with 2 conflicts: conflicts with "flux":\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="web"].image'
    )
    # Nothing was written.
    assert api.read_namespaced_deployment("shared", NS).spec.replicas == 1


def test_writes_record_their_field_manager(apps: tuple[Simulator, client.AppsV1Api]) -> None:
    _, api = apps
    api.create_namespaced_deployment(NS, manifest("mine", 1), field_manager="skewmit")
    api.patch_namespaced_deployment("mine", NS, {"spec": {"replicas": 2}})
    entries = owners(api, "mine")
    assert set(entries) == {("skewmit", "Update"), ("OpenAPI-Generator", "Update")}
    # The patch took the field it changed; the creator keeps the rest.
    assert entries[("OpenAPI-Generator", "Update")]["fieldsV1"] == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in entries[("skewmit", "Update")]["fieldsV1"]["f:spec"]
    # A write that changes nothing records nobody and moves no entry's time.
    api.patch_namespaced_deployment("mine", NS, {"spec": {"replicas": 2}}, field_manager="other")
    assert owners(api, "mine") == entries


def test_apply_options_and_bodies_are_checked(apps: tuple[Simulator, client.AppsV1Api]) -> None:
    _, api = apps
    with pytest.raises(ApiException) as no_manager:
        api.patch_namespaced_deployment("x", NS, manifest("x", 1), _content_type=APPLY)
    assert no_manager.value.status == 422
    assert status_of(no_manager.value)["message"] == (
        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required '
        "for apply patch"
    )
    with pytest.raises(ApiException) as forced_merge:
        api.patch_namespaced_deployment(
            "mine-unused", NS, {"spec": {}}, force=True,
            _content_type="application/merge-patch+json",
        )  # fmt: skip
    assert forced_merge.value.status == 422
    assert (
        "force: Forbidden: may not be specified for non-apply patch"
        in (status_of(forced_merge.value)["message"])
    )
    body = manifest("typo", 1)
    body["spec"]["replicaz"] = 4
    with pytest.raises(ApiException) as unknown:
        api.patch_namespaced_deployment("typo", NS, body, field_manager="me", _content_type=APPLY)
    assert unknown.value.status == 500
    assert status_of(unknown.value)["message"] == (
        "failed to create typed patch object (inference/typo; apps/v1, Kind=Deployment): "
        ".spec.replicaz: field not declared in schema"
    )


def test_apply_creates_and_dry_runs(
    apps: tuple[Simulator, client.AppsV1Api], tmp_path: Path
) -> None:
    _, api = apps
    dry = api.patch_namespaced_deployment(
        "fresh", NS, manifest("fresh", 1), field_manager="me", dry_run="All",
        _content_type=APPLY,
    )  # fmt: skip
    assert dry.metadata.name == "fresh"
    with pytest.raises(ApiException) as missing:
        api.read_namespaced_deployment("fresh", NS)
    assert missing.value.status == 404
    created = api.patch_namespaced_deployment(
        "fresh", NS, manifest("fresh", 1), field_manager="me", _content_type=APPLY
    )
    assert created.metadata.uid
    assert [(e.manager, e.operation) for e in created.metadata.managed_fields] == [("me", "Apply")]
