"""Writes answered as a real kube-apiserver answers them (issue 11, items 1-3).

Server-side dry run carried in a DELETE body, the 422 of a failed JSON-patch `test`, the
injected faults' real shapes (no 409 for a JSON patch; 429 with Retry-After), and validation:
unknown fields per `fieldValidation`, extended resources, label keys and values. Each check goes
through the real kubectl (1.32 and 1.37) and/or the official client over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from services.simulator.faults import Fault
from services.simulator.runner import Simulator
from tests.conftest import FAST, api_client
from tests.simulator.test_kubectl import KUBECTL_VERSIONS, Kubectl, make_kubectl

NS = "inference"
DEPLOY = "llm-serve"


@pytest.fixture(scope="module")
def fid_sim() -> Iterator[Simulator]:
    """One simulator: every write here is refused or dry run, so nothing should change."""
    with Simulator("skew-incident", speed=FAST) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def api(fid_sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> client.ApiClient:
    return api_client(fid_sim, tmp_path_factory.mktemp("fid-admin"))


@pytest.fixture(scope="module", params=KUBECTL_VERSIONS)
def k(
    request: pytest.FixtureRequest, fid_sim: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Kubectl:
    version = str(request.param)
    return make_kubectl(fid_sim, tmp_path_factory.mktemp(f"fid-kubectl-{version}"), version)


@pytest.fixture
def faults(fid_sim: Simulator) -> Iterator[Simulator]:
    """The shared simulator, its faults cleared afterwards."""
    yield fid_sim
    fid_sim.call(fid_sim.cluster.faults.clear)


def status_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def a_pod(api: client.ApiClient) -> client.V1Pod:
    pods = client.CoreV1Api(api).list_namespaced_pod(NS, label_selector=f"app={DEPLOY}").items
    return next(p for p in pods if not p.metadata.deletion_timestamp)


# ---------------------------------------------------------------- item 3: dry run in DELETE


def test_kubectl_delete_dry_run_server_deletes_nothing(k: Kubectl, api: client.ApiClient) -> None:
    pod = a_pod(api).metadata.name
    service = client.CoreV1Api(api).list_namespaced_service(NS).items[0].metadata.name
    where = "" if k.version == "1.32" else f" from {NS} namespace"  # 1.37 names it
    for kind, name in (("pod", pod), ("deployment.apps", DEPLOY), ("service", service)):
        out = k.ok("delete", "-n", NS, kind, name, "--dry-run=server")
        assert out == f'{kind} "{name}" deleted{where} (server dry run)\n'
    assert k.ok("get", "-n", NS, "pod", pod, "-o", "name") == f"pod/{pod}\n"
    still = client.CoreV1Api(api).read_namespaced_pod(pod, NS)
    assert still.metadata.deletion_timestamp is None
    assert k.ok("get", "-n", NS, "deploy", DEPLOY, "-o", "name") == f"deployment.apps/{DEPLOY}\n"
    assert k.ok("get", "-n", NS, "svc", service, "-o", "name") == f"service/{service}\n"


def test_client_delete_options_dry_run_deletes_nothing(api: client.ApiClient) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    pod = a_pod(api)
    answer = core.delete_namespaced_pod(
        pod.metadata.name, NS, body=client.V1DeleteOptions(dry_run=["All"])
    )
    # A graceful delete answers the pod as it would be: marked, not gone.
    assert answer.metadata.name == pod.metadata.name
    assert answer.metadata.deletion_timestamp is not None
    assert core.read_namespaced_pod(pod.metadata.name, NS).metadata.deletion_timestamp is None
    apps.delete_namespaced_deployment(DEPLOY, NS, body=client.V1DeleteOptions(dry_run=["All"]))
    assert apps.read_namespaced_deployment(DEPLOY, NS).metadata.deletion_timestamp is None
    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_pod(
            pod.metadata.name, NS, body=client.V1DeleteOptions(dry_run=["Some"])
        )
    assert caught.value.status == 400
    assert status_of(caught.value)["message"] == (
        'Invalid dry run value: unsupported dry run value "Some"'
    )
    assert core.read_namespaced_pod(pod.metadata.name, NS).metadata.deletion_timestamp is None


# ---------------------------------------------------------------- item 1: races and faults

# What apiserver's patch handler answers for any JSON patch that does not apply
# (errors.NewGenericServerResponse(422, ...)): the cause is not sent back.
GENERIC_422 = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "the server rejected our request due to an error in our request",
    "reason": "Invalid",
    "details": {},
    "code": 422,
}


def rv_test(rv: str) -> list[dict[str, Any]]:
    return [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/labels/raced", "value": "yes"},
    ]


def test_a_failed_json_patch_test_is_the_generic_422(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment(DEPLOY, NS, rv_test("1"))
    assert caught.value.status == 422
    assert status_of(caught.value) == GENERIC_422
    assert "raced" not in (apps.read_namespaced_deployment(DEPLOY, NS).metadata.labels or {})


def test_kubectl_shows_the_generic_422_of_a_failed_test(k: Kubectl) -> None:
    patch = json.dumps(rv_test("1"))
    done = k("patch", "-n", NS, "deploy", DEPLOY, "--type=json", "-p", patch)
    assert done.returncode == 1
    assert done.stderr == (
        "The request is invalid: the server rejected our request due to an error in our request\n"
    )


def test_a_json_patch_that_is_not_a_list_is_a_400(k: Kubectl) -> None:
    done = k("patch", "-n", NS, "deploy", DEPLOY, "--type=json", "-p", '{"op": "test"}')
    assert done.returncode == 1
    assert done.stderr == (
        "Error from server (BadRequest): json: cannot unmarshal object into Go value of type "
        "jsonpatch.Patch\n"
    )


def test_an_injected_race_answers_as_the_patch_type_does(
    faults: Simulator, api: client.ApiClient
) -> None:
    """The conflict fault is a controller's write landing between read and write: a JSON
    patch's resourceVersion test fails with the generic 422, a merge patch carrying the
    resourceVersion gets 409, and a patch without a precondition simply applies (the real
    server re-applies it on the new object)."""
    apps = client.AppsV1Api(api)
    rv = apps.read_namespaced_deployment(DEPLOY, NS).metadata.resource_version
    faults.call(
        faults.cluster.faults.set, [Fault(verb="patch", resource="deployments", conflicts=3)]
    )
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment(DEPLOY, NS, rv_test(rv))
    assert (caught.value.status, status_of(caught.value)) == (422, GENERIC_422)
    moved = apps.read_namespaced_deployment(DEPLOY, NS).metadata.resource_version
    assert moved != rv  # the race really moved the object
    merge = {"metadata": {"resourceVersion": moved, "labels": {"raced": "yes"}}}
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment(DEPLOY, NS, merge)
    assert caught.value.status == 409
    assert status_of(caught.value)["reason"] == "Conflict"
    unguarded = [{"op": "add", "path": "/metadata/labels/raced", "value": "yes"}]
    assert apps.patch_namespaced_deployment(DEPLOY, NS, unguarded).metadata.labels["raced"] == "yes"
    apps.patch_namespaced_deployment(
        DEPLOY, NS, [{"op": "remove", "path": "/metadata/labels/raced"}]
    )


def test_an_injected_429_says_when_to_retry(faults: Simulator, api: client.ApiClient) -> None:
    faults.call(
        faults.cluster.faults.set,
        [Fault(verb="get", resource="deployments", error_rate=1.0, error_code=429)],
    )
    with pytest.raises(ApiException) as caught:
        client.AppsV1Api(api).read_namespaced_deployment(DEPLOY, NS)
    assert caught.value.status == 429
    assert caught.value.headers["Retry-After"] == "1"
    body = status_of(caught.value)
    assert (body["reason"], body["details"]) == ("TooManyRequests", {"retryAfterSeconds": 1})
    # A fault may leave both out (a proxy's 429), for clients' fallback path.
    faults.call(
        faults.cluster.faults.set,
        [
            Fault(
                verb="get", resource="deployments", error_rate=1.0, error_code=429, retry_after_s=0
            )
        ],
    )
    with pytest.raises(ApiException) as caught:
        client.AppsV1Api(api).read_namespaced_deployment(DEPLOY, NS)
    assert caught.value.status == 429
    assert "Retry-After" not in caught.value.headers
    assert "details" not in status_of(caught.value)


# ---------------------------------------------------------------- item 2: validation

QUALIFIED_NAME_RULE = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
    "used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE_RULE = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def test_kubectl_patch_with_an_unknown_field_warns_and_drops_it(
    k: Kubectl, api: client.ApiClient
) -> None:
    """`kubectl patch` (1.32 and 1.37) sends no fieldValidation at all (only create, apply
    and replace do, after reading /openapi/v3), so its unknown field meets the server's
    default, Warn: a warning, and the field dropped."""
    done = k("patch", "-n", NS, "deploy", DEPLOY, "--type=merge", "-p", '{"spec":{"replicaz":4}}')
    assert done.returncode == 0, done.stderr
    assert done.stderr == 'Warning: unknown field "spec.replicaz"\n'
    assert done.stdout == f"deployment.apps/{DEPLOY} patched (no change)\n"
    warned = k(
        "patch", "-n", NS, "deploy", DEPLOY, "--type=json", "--dry-run=server",
        "-p", '[{"op":"add","path":"/spec/template/spec/containers/0/imagePullPolicyy",'
        '"value":"Always"}]',
    )  # fmt: skip
    assert warned.returncode == 0, warned.stderr
    assert warned.stderr == (
        'Warning: unknown field "spec.template.spec.containers[0].imagePullPolicyy"\n'
    )
    stored = api.sanitize_for_serialization(
        client.AppsV1Api(api).read_namespaced_deployment(DEPLOY, NS)
    )
    assert "replicaz" not in stored["spec"]  # dropped, never stored
    assert "imagePullPolicyy" not in stored["spec"]["template"]["spec"]["containers"][0]


def test_kubectl_create_apply_replace_validate_strictly(k: Kubectl, tmp_path: Path) -> None:
    """With /openapi/v3 saying PATCH takes fieldValidation, kubectl sends Strict (its default)
    and leaves validation to the server."""
    name = f"applied-{k.version.replace('.', '-')}"
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NS},
    }
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps({**manifest, "data": {"a": "b"}}))
    bad.write_text(json.dumps({**manifest, "data": {"a": "b"}, "dataa": {"c": "d"}}))
    refused = k("create", "-f", str(bad))
    assert refused.returncode == 1
    assert refused.stderr == (
        f'Error from server (BadRequest): error when creating "{bad}": ConfigMap in version '
        '"v1" cannot be handled as a ConfigMap: strict decoding error: unknown field "dataa"\n'
    )
    assert k.ok("apply", "-f", str(good)) == f"configmap/{name} created\n"
    assert k.ok("apply", "-f", str(good)) == f"configmap/{name} unchanged\n"
    assert k.ok("replace", "-f", str(good)) == f"configmap/{name} replaced\n"
    assert k.ok("delete", "-f", str(good)).startswith(f'configmap "{name}" deleted')


def test_strict_field_validation_refuses_unknown_fields(api: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment(
            DEPLOY, NS, {"spec": {"replicaz": 4, "pausd": True}}, field_validation="Strict"
        )
    assert caught.value.status == 400
    assert status_of(caught.value)["message"] == (
        'strict decoding error: unknown field "spec.pausd", unknown field "spec.replicaz"'
    )
    manifest = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "strict"},
        "data": {"a": "b"},
        "dataa": {"c": "d"},
    }
    # The typed client refuses an unknown field itself: send the manifest as it stands.
    status, body, _ = post_config_map(api, manifest, "Strict")
    assert (status, body["message"]) == (
        400,
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
        'unknown field "dataa"',
    )
    status, body, warning = post_config_map(api, manifest, "Ignore")
    assert (status, body["data"], warning) == (201, {"a": "b"}, None)
    assert "dataa" not in body
    assert core.list_namespaced_config_map(NS, field_selector="metadata.name=strict").items == []


def post_config_map(
    api: client.ApiClient, manifest: dict[str, Any], validation: str
) -> tuple[int, dict[str, Any], str | None]:
    """(status, body, Warning header) of a dry-run create sent as raw JSON."""
    response = api.call_api(
        *api.param_serialize(
            method="POST",
            resource_path=f"/api/v1/namespaces/{NS}/configmaps",
            query_params=[("dryRun", "All"), ("fieldValidation", validation)],
            header_params={"Content-Type": "application/json", "Accept": "application/json"},
            body=manifest,
            auth_settings=["BearerToken"],
        )
    )
    return response.status, json.loads(response.read()), response.getheader("Warning")


def test_client_default_is_warn_and_drops_the_field(api: client.ApiClient) -> None:
    """The official client sends no fieldValidation: the server's default, Warn."""
    response = api.call_api(
        *api.param_serialize(
            method="PATCH",
            resource_path=f"/apis/apps/v1/namespaces/{NS}/deployments/{DEPLOY}",
            query_params=[("dryRun", "All")],
            header_params={
                "Content-Type": "application/merge-patch+json",
                "Accept": "application/json",
            },
            body={"spec": {"replicaz": 4}},
            auth_settings=["BearerToken"],
        )
    )
    body = json.loads(response.read())
    assert response.status == 200
    assert response.getheader("Warning") == '299 - "unknown field \\"spec.replicaz\\""'
    assert "replicaz" not in body["spec"]


def gpu_patch(requests: str, limits: str) -> list[dict[str, Any]]:
    return [
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/resources",
            "value": {
                "requests": {"nvidia.com/gpu": requests},
                "limits": {"nvidia.com/gpu": limits},
            },
        }
    ]


def test_fractional_and_unequal_gpu_requests_are_refused(api: client.ApiClient) -> None:
    apps = client.AppsV1Api(api)
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment(DEPLOY, NS, gpu_patch("1.5", "1.5"), dry_run="All")
    assert caught.value.status == 422
    where = "spec.template.spec.containers[0].resources"
    quantity = (
        "resource.Quantity{i:resource.int64Amount{value:15, scale:-1}, "
        'd:resource.infDecAmount{Dec:(*inf.Dec)(nil)}, s:"", Format:"DecimalSI"}'
    )
    assert status_of(caught.value)["message"] == (
        f'Deployment.apps "{DEPLOY}" is invalid: ['
        f"{where}.limits[nvidia.com/gpu]: Invalid value: {quantity}: must be an integer, "
        f"{where}.requests[nvidia.com/gpu]: Invalid value: {quantity}: must be an integer]"
    )
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment(DEPLOY, NS, gpu_patch("2", "1"), dry_run="All")
    assert status_of(caught.value)["message"] == (
        f'Deployment.apps "{DEPLOY}" is invalid: {where}.requests: Invalid value: "2": must '
        "be equal to nvidia.com/gpu limit of 1"
    )
    assert apps.patch_namespaced_deployment(DEPLOY, NS, gpu_patch("2", "2"), dry_run="All")


def test_invalid_label_keys_and_values_are_refused(k: Kubectl) -> None:
    # `kubectl label` checks the syntax itself; a patch reaches the server's own rule.
    patch = json.dumps({"metadata": {"labels": {"bad key": "ok", "tier": "gpu!"}}})
    done = k("patch", "-n", NS, "deploy", DEPLOY, "--type=merge", "-p", patch)
    assert done.returncode == 1
    assert done.stderr == (
        f'The Deployment "{DEPLOY}" is invalid: \n'
        f'* metadata.labels: Invalid value: "bad key": {QUALIFIED_NAME_RULE}\n'
        f'* metadata.labels: Invalid value: "gpu!": {LABEL_VALUE_RULE}\n'
    )


def test_kubectl_apply_of_an_httproute_as_the_routing_preview_prints_it(
    k: Kubectl, tmp_path: Path, api: client.ApiClient
) -> None:
    name = f"long-context-{k.version.replace('.', '-')}"
    route = {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "parentRefs": [{"name": "inference-gateway"}],
            "rules": [
                {
                    "matches": [
                        {"headers": [{"type": "Exact", "name": "x-context-class", "value": "long"}]}
                    ],
                    "backendRefs": [{"name": "llm-serve-long", "port": 8000}],
                }
            ],
        },
    }
    manifest = tmp_path / "route.json"
    manifest.write_text(json.dumps(route))
    kind = "httproute.gateway.networking.k8s.io"
    assert k.ok("apply", "-f", str(manifest), "--dry-run=server") == (
        f"{kind}/{name} created (server dry run)\n"
    )
    assert k.ok("apply", "-f", str(manifest)) == f"{kind}/{name} created\n"
    route["spec"]["rules"][0]["backendRefs"][0]["port"] = 8001
    manifest.write_text(json.dumps(route))
    assert k.ok("apply", "-f", str(manifest)) == f"{kind}/{name} configured\n"
    stored = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", NS, "httproutes", name
    )
    assert stored["spec"]["rules"][0]["backendRefs"][0]["port"] == 8001
    assert "kubectl.kubernetes.io/last-applied-configuration" in stored["metadata"]["annotations"]
    k.ok("delete", "-f", str(manifest))
