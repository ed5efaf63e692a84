"""The simulated kube-apiserver, through the official `kubernetes` Python client over HTTPS.

Each test states what a real kube-apiserver (v1.32) answers and checks the simulator answers
the same: discovery, reads with selectors, watches, writes and their errors, the three patch
flavours, dry run, RBAC, exec, logs, custom resources, fault injection, `/_sim/` and `/metrics`.
Read-only tests share one simulator; a test that changes state gets a fresh one.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.stream import stream
from kubernetes.watch.watch import iter_resp_lines

from services.simulator.faults import Fault
from services.simulator.runner import Simulator
from tests.conftest import FAST, api_client

NS = "inference"
DEPLOY = "llm-serve"
VIEWER = "skewmit-sim-readonly"
# What `nvidia-smi --query-gpu=name,memory.total --format=csv` prints, by GFD product label.
NVIDIA_SMI_CSV = {
    "NVIDIA-H100-80GB-HBM3": "name, memory.total [MiB]\nNVIDIA H100 80GB HBM3, 81559 MiB\n",
    "NVIDIA-A10G": "name, memory.total [MiB]\nNVIDIA A10G, 23028 MiB\n",
}
GPU_QUERY = ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv"]


# ---------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def ro_sim() -> Iterator[Simulator]:
    """One simulator for the tests that only read."""
    with Simulator("skew-incident", speed=FAST) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def admin(ro_sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> client.ApiClient:
    return api_client(ro_sim, tmp_path_factory.mktemp("admin"))


@pytest.fixture(scope="module")
def viewer(ro_sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> client.ApiClient:
    return api_client(ro_sim, tmp_path_factory.mktemp("viewer"), VIEWER)


def status_body(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def raw(
    api: client.ApiClient,
    method: str,
    path: str,
    body: Any = None,
    query: list[tuple[str, str]] | None = None,
) -> tuple[int, Any]:
    """A request the typed client has no method for; (HTTP status, decoded JSON body)."""
    params = api.param_serialize(
        method=method,
        resource_path=path,
        query_params=query or [],
        header_params={"Accept": "application/json", "Content-Type": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*params)
    data = response.read()
    if response.status >= 400:
        raise ApiException(http_resp=response)
    return response.status, json.loads(data) if data else None


def wait_for(what: str, check: Any, timeout: float = 20.0) -> Any:
    """Poll `check()` until it returns something truthy (the simulator runs on its own thread)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def configmap(name: str, data: dict[str, str] | None = None) -> client.V1ConfigMap:
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels={"owner": "test"}), data=data or {}
    )


def running_pods(core: client.CoreV1Api) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod(NS, label_selector=f"app={DEPLOY}").items
    return [p for p in pods if p.status.phase == "Running" and not p.metadata.deletion_timestamp]


def gpu_pod(name: str, product: str) -> client.V1Pod:
    """A bare pod pinned to a GPU class by its GFD label, asking for one GPU."""
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"probe": "gpu"}),
        spec=client.V1PodSpec(
            node_selector={"nvidia.com/gpu.product": product},
            containers=[
                client.V1Container(
                    name="cuda",
                    image="nvidia/cuda:12.4.1-base-ubuntu22.04",
                    command=["sleep", "infinity"],
                    resources=client.V1ResourceRequirements(
                        limits={"nvidia.com/gpu": "1"}, requests={"nvidia.com/gpu": "1"}
                    ),
                )
            ],
        ),
    )


def exec_ws(
    core: client.CoreV1Api, pod: str, command: list[str], protocol: str | None = None
) -> Any:
    """Run `command` in `pod` over the websocket exec protocol; returns the finished client."""
    headers = {"sec-websocket-protocol": protocol} if protocol else None
    ws = stream(
        core.connect_get_namespaced_pod_exec,
        pod,
        NS,
        command=command,
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
        _headers=headers,
    )
    ws.run_forever(timeout=10)
    return ws


# ---------------------------------------------------------------- discovery


def test_version_reports_a_v1_32_server(admin: client.ApiClient) -> None:
    info = client.VersionApi(admin).get_code()
    assert (info.major, info.minor) == ("1", "32")
    assert re.fullmatch(r"v1\.32\.\d+", info.git_version)
    assert info.platform == "linux/amd64"


def test_core_and_group_discovery(admin: client.ApiClient) -> None:
    assert client.CoreApi(admin).get_api_versions().versions == ["v1"]
    groups = {g.name: g for g in client.ApisApi(admin).get_api_versions().groups}
    for name in ("apps", "autoscaling", "authorization.k8s.io", "gateway.networking.k8s.io"):
        assert name in groups
    assert groups["apps"].preferred_version.group_version == "apps/v1"
    assert groups["gateway.networking.k8s.io"].preferred_version.version == "v1"


def test_group_versions_list_resources_and_subresources(admin: client.ApiClient) -> None:
    apps = {r.name: r for r in client.AppsV1Api(admin).get_api_resources().resources}
    assert apps["deployments"].kind == "Deployment"
    assert apps["deployments"].namespaced is True
    assert apps["deployments"].short_names == ["deploy"]
    assert {"get", "list", "watch", "patch", "update", "create", "delete"} <= set(
        apps["deployments"].verbs
    )
    assert (apps["deployments/scale"].group, apps["deployments/scale"].kind) == (
        "autoscaling",
        "Scale",
    )
    core = {r.name: r for r in client.CoreV1Api(admin).get_api_resources().resources}
    assert core["pods/exec"].kind == "PodExecOptions"
    assert set(core["pods/exec"].verbs) == {"create", "get"}
    assert core["nodes"].namespaced is False
    routes = client.CustomObjectsApi(admin).get_api_resources("gateway.networking.k8s.io", "v1")
    httproutes = {r.name: r for r in routes.resources}["httproutes"]
    assert (httproutes.kind, httproutes.namespaced) == ("HTTPRoute", True)


def test_unknown_paths_are_404_status(admin: client.ApiClient) -> None:
    with pytest.raises(ApiException) as caught:
        raw(admin, "GET", "/apis/nonexistent.example.com/v1")
    assert caught.value.status == 404
    assert status_body(caught.value)["reason"] == "NotFound"


# ---------------------------------------------------------------- reads


def test_get_deployment_is_valid_and_defaulted(admin: client.ApiClient) -> None:
    dep = client.AppsV1Api(admin).read_namespaced_deployment(DEPLOY, NS)
    assert dep.spec.selector.match_labels == {"app": DEPLOY}
    assert dep.spec.strategy.type == "RollingUpdate"
    assert dep.spec.revision_history_limit == 10
    assert dep.spec.progress_deadline_seconds == 600
    assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    assert dep.status.observed_generation == dep.metadata.generation
    assert dep.status.ready_replicas == dep.spec.replicas == 4
    probe = dep.spec.template.spec.containers[0].readiness_probe
    # The real server defaults every probe field a manifest leaves out.
    assert (probe.timeout_seconds, probe.success_threshold, probe.failure_threshold) == (1, 1, 3)
    assert probe.http_get.scheme == "HTTP"


def test_label_selectors(admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)

    def names(selector: str) -> set[str]:
        return {
            p.metadata.name for p in core.list_namespaced_pod(NS, label_selector=selector).items
        }

    everything = names("")
    serving = names(f"app={DEPLOY}")
    assert len(serving) == 4
    assert names(f"app in ({DEPLOY},other)") == serving
    assert names("app!=llm-serve") == everything - serving
    assert names("pod-template-hash") == serving
    assert names("!pod-template-hash") == everything - serving
    assert names("app=nope") == set()
    replicasets = client.AppsV1Api(admin).list_namespaced_replica_set(
        NS, label_selector=f"app={DEPLOY}"
    )
    assert len(replicasets.items) == 3


def test_bad_label_selector_is_400(admin: client.ApiClient) -> None:
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(admin).list_namespaced_pod(NS, label_selector="app in llm-serve")
    assert caught.value.status == 400
    assert status_body(caught.value)["reason"] == "BadRequest"


def test_field_selectors(admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    pods = core.list_namespaced_pod(NS, label_selector=f"app={DEPLOY}").items
    node = pods[0].spec.node_name
    on_node = core.list_namespaced_pod(NS, field_selector=f"spec.nodeName={node}").items
    assert {p.metadata.name for p in on_node} == {
        p.metadata.name for p in pods if p.spec.node_name == node
    }
    running = core.list_namespaced_pod(NS, field_selector="status.phase=Running").items
    assert len(running) == 4
    one = core.list_namespaced_pod(NS, field_selector=f"metadata.name={pods[1].metadata.name}")
    assert [p.metadata.name for p in one.items] == [pods[1].metadata.name]
    not_running = core.list_namespaced_pod(NS, field_selector="status.phase!=Running").items
    assert not_running == []
    _, cordoned = raw(
        admin, "GET", "/api/v1/nodes", query=[("fieldSelector", "spec.unschedulable=true")]
    )
    assert cordoned["items"] == []
    # An unset boolean field selects as "false", as the real server's selectable fields do.
    _, schedulable = raw(
        admin, "GET", "/api/v1/nodes", query=[("fieldSelector", "spec.unschedulable=false")]
    )
    assert len(schedulable["items"]) == 5


def test_unsupported_field_selectors_are_refused_as_the_real_server_does(
    admin: client.ApiClient,
) -> None:
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(admin).list_namespaced_pod(NS, field_selector="spec.containers=x")
    body = status_body(caught.value)
    assert (caught.value.status, body["reason"]) == (400, "BadRequest")
    assert body["message"] == "field label not supported: spec.containers"
    with pytest.raises(ApiException) as caught:
        client.AppsV1Api(admin).list_namespaced_deployment(NS, field_selector="spec.replicas=4")
    assert status_body(caught.value)["message"] == (
        '"spec.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"'
    )


def test_list_pages_with_limit_and_continue(admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    first = core.list_namespaced_pod(NS, label_selector=f"app={DEPLOY}", limit=3)
    assert len(first.items) == 3
    assert first.metadata._continue
    # With a selector a real server cannot count what is left, so it sends no count.
    assert first.metadata.remaining_item_count is None
    rest = core.list_namespaced_pod(
        NS, label_selector=f"app={DEPLOY}", limit=3, _continue=first.metadata._continue
    )
    assert len(rest.items) == 1
    assert not rest.metadata._continue
    names = [p.metadata.name for p in first.items + rest.items]
    assert names == sorted(names)


def test_a_walk_of_small_pages_lists_each_object_once_in_key_order(
    admin: client.ApiClient,
) -> None:
    """Each page reads on from the previous page's last key (the simulator seeks to it rather
    than scanning the snapshot from its first key): a walk, with or without a selector, gives
    what one list gives, in order, and without a selector each page counts what is left."""
    core = client.CoreV1Api(admin)
    for selector in ("", f"app={DEPLOY}"):
        whole = [
            p.metadata.name for p in core.list_namespaced_pod(NS, label_selector=selector).items
        ]
        walked: list[str] = []
        token = ""
        while True:
            page = core.list_namespaced_pod(NS, label_selector=selector, limit=2, _continue=token)
            walked += [p.metadata.name for p in page.items]
            token = page.metadata._continue or ""
            left = page.metadata.remaining_item_count
            if selector or not token:
                assert left is None
            else:
                assert left == len(whole) - len(walked)
            if not token:
                break
        assert walked == sorted(whole) and len(walked) > 2, (selector, walked, whole)


def test_every_object_has_a_unique_uid(admin: client.ApiClient) -> None:
    core, apps = client.CoreV1Api(admin), client.AppsV1Api(admin)
    objects = (
        core.list_pod_for_all_namespaces().items
        + core.list_namespace().items
        + core.list_service_for_all_namespaces().items
        + apps.list_deployment_for_all_namespaces().items
        + apps.list_replica_set_for_all_namespaces().items
    )
    _, nodes = raw(admin, "GET", "/api/v1/nodes")
    uids = [o.metadata.uid for o in objects] + [n["metadata"]["uid"] for n in nodes["items"]]
    assert len(uids) == len(set(uids)) > 10
    for uid in uids:
        assert str(uuid.UUID(uid)) == uid


def test_nodes_read_through_the_typed_client(admin: client.ApiClient) -> None:
    nodes = client.CoreV1Api(admin).list_node().items
    assert all(n.status.node_info.system_uuid for n in nodes)


# ---------------------------------------------------------------- watches


def test_watch_from_a_resource_version_sees_later_changes(kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    listed = core.list_namespaced_config_map(NS)
    core.create_namespaced_config_map(NS, configmap("watched", {"k": "1"}))
    core.patch_namespaced_config_map("watched", NS, {"data": {"k": "2"}})
    core.delete_namespaced_config_map("watched", NS)
    events = []
    w = watch.Watch()
    for event in w.stream(
        core.list_namespaced_config_map,
        NS,
        resource_version=listed.metadata.resource_version,
        timeout_seconds=5,
    ):
        events.append((event["type"], event["object"].metadata.name, event["object"].data))
        if len(events) == 3:
            w.stop()
    assert events == [
        ("ADDED", "watched", {"k": "1"}),
        ("MODIFIED", "watched", {"k": "2"}),
        ("DELETED", "watched", {"k": "2"}),
    ]
    # A watch already open sees a change made after it started.
    latest = core.list_namespaced_config_map(NS).metadata.resource_version
    response = core.list_namespaced_config_map(
        NS, watch=True, resource_version=latest, timeout_seconds=10, _preload_content=False
    )
    core.create_namespaced_config_map(NS, configmap("later"))
    first = json.loads(next(iter_resp_lines(response)))
    response.release_conn()
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "later")
    assert int(first["object"]["metadata"]["resourceVersion"]) > int(latest)


def test_watch_with_a_too_old_resource_version_is_410_gone(admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    with pytest.raises(ApiException) as caught:
        for _ in watch.Watch().stream(
            core.list_namespaced_pod, NS, resource_version="1", timeout_seconds=2
        ):
            pass
    assert caught.value.status == 410
    assert "Expired: too old resource version: 1" in str(caught.value.reason)
    # On the wire: HTTP 200 and one ERROR event carrying the Status, as the watch cache sends.
    response = core.list_namespaced_pod(
        NS, watch=True, resource_version="1", timeout_seconds=2, _preload_content=False
    )
    assert response.status == 200
    lines = [json.loads(line) for line in response.read().decode().splitlines() if line]
    assert [e["type"] for e in lines] == ["ERROR"]
    assert lines[0]["object"]["code"] == 410
    assert lines[0]["object"]["reason"] == "Expired"


def test_watch_bookmarks_arrive_before_the_timeout(admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    rv = core.list_namespaced_pod(NS).metadata.resource_version
    # The watch cache sends one two seconds before the watch times out (and once a minute).
    w = watch.Watch()
    bookmark = None
    for event in w.stream(
        core.list_namespaced_pod,
        NS,
        resource_version=rv,
        allow_watch_bookmarks=True,
        timeout_seconds=3,
    ):
        if event["type"] == "BOOKMARK":
            bookmark = event["raw_object"]
            w.stop()
    assert bookmark is not None
    assert bookmark["kind"] == "Pod"
    assert int(bookmark["metadata"]["resourceVersion"]) >= int(rv)
    assert w.resource_version == bookmark["metadata"]["resourceVersion"]
    # Without allowWatchBookmarks there are none.
    plain = [
        e["type"]
        for e in watch.Watch().stream(
            core.list_namespaced_pod, NS, resource_version=rv, timeout_seconds=3
        )
    ]
    assert "BOOKMARK" not in plain


def test_send_initial_events_ends_with_an_annotated_bookmark(admin: client.ApiClient) -> None:
    apps = client.AppsV1Api(admin)
    events = []
    w = watch.Watch()
    for event in w.stream(
        apps.list_namespaced_deployment,
        NS,
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        allow_watch_bookmarks=True,
        timeout_seconds=10,
    ):
        events.append((event["type"], event["raw_object"]))
        if event["type"] == "BOOKMARK":
            w.stop()
    assert [kind for kind, _ in events] == ["ADDED", "BOOKMARK"]
    (_, added), (_, end) = events
    assert added["metadata"]["name"] == DEPLOY
    assert end["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert end["kind"] == "Deployment"
    assert int(end["metadata"]["resourceVersion"]) >= int(added["metadata"]["resourceVersion"])


def test_send_initial_events_needs_not_older_than(admin: client.ApiClient) -> None:
    with pytest.raises(ApiException) as caught:
        client.AppsV1Api(admin).list_namespaced_deployment(
            NS, watch=True, send_initial_events=True, timeout_seconds=1, _preload_content=False
        )
    assert caught.value.status == 422
    body = status_body(caught.value)
    assert body["reason"] == "Invalid"
    assert body["message"] == (
        'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
        "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"
    )


# ---------------------------------------------------------------- writes and their errors


def test_create_replace_delete_with_conflicts(kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    created = core.create_namespaced_config_map(NS, configmap("settings", {"a": "1"}))
    assert created.metadata.uid and created.metadata.resource_version
    assert created.metadata.creation_timestamp is not None

    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(NS, configmap("settings"))
    body = status_body(caught.value)
    assert caught.value.status == 409
    assert body["reason"] == "AlreadyExists"
    assert body["message"] == 'configmaps "settings" already exists'
    assert body["details"] == {"name": "settings", "kind": "configmaps"}

    created.data = {"a": "2"}
    replaced = core.replace_namespaced_config_map("settings", NS, created)
    assert replaced.data == {"a": "2"}
    assert replaced.metadata.uid == created.metadata.uid
    assert replaced.metadata.resource_version != created.metadata.resource_version

    created.data = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("settings", NS, created)
    body = status_body(caught.value)
    assert (caught.value.status, body["reason"]) == (409, "Conflict")
    assert body["message"] == (
        'Operation cannot be fulfilled on configmaps "settings": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )

    deleted = core.delete_namespaced_config_map("settings", NS)  # the client leaves it a dict
    assert deleted["kind"] == "Status"
    assert deleted["status"] == "Success"
    assert deleted["details"] == {
        "name": "settings",
        "group": "",
        "kind": "configmaps",
        "uid": created.metadata.uid,
    }
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map("settings", NS)
    assert caught.value.status == 404
    recreated = core.create_namespaced_config_map(NS, configmap("settings"))
    assert recreated.metadata.uid != created.metadata.uid


def test_not_found_status_is_shaped_like_the_real_one(admin: client.ApiClient) -> None:
    with pytest.raises(ApiException) as caught:
        client.AppsV1Api(admin).read_namespaced_deployment("nope", NS)
    assert caught.value.status == 404
    assert status_body(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'deployments.apps "nope" not found',
        "reason": "NotFound",
        "details": {"name": "nope", "group": "apps", "kind": "deployments"},
        "code": 404,
    }
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(admin).read_namespaced_pod("nope", NS)
    assert status_body(caught.value)["message"] == 'pods "nope" not found'
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(admin).read_namespaced_pod("x", "no-such-namespace")
    assert status_body(caught.value)["message"] == 'pods "x" not found'


def test_invalid_objects_are_422_with_causes(kube: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube)
    bad = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="bad"),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels={"app": "bad"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "other"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
            ),
        ),
    )
    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_deployment(NS, bad)
    body = status_body(caught.value)
    assert (caught.value.status, body["reason"]) == (422, "Invalid")
    assert body["message"] == (
        'Deployment.apps "bad" is invalid: spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"other"}: `selector` does not match template `labels`'
    )
    assert body["details"]["name"] == "bad"
    assert body["details"]["group"] == "apps"
    assert body["details"]["kind"] == "Deployment"
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: map[string]string{"app":"other"}: `selector` does not '
            "match template `labels`",
            "field": "spec.template.metadata.labels",
        }
    ]
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment_scale(DEPLOY, NS, {"spec": {"replicas": -1}})
    assert caught.value.status == 422
    assert (
        "spec.replicas: Invalid value: -1: must be greater than or equal to 0"
        in (status_body(caught.value)["message"])
    )
    bad.metadata.name = "Bad_Name"
    bad.spec.template.metadata.labels = {"app": "bad"}
    with pytest.raises(ApiException) as caught:
        apps.create_namespaced_deployment(NS, bad)
    assert status_body(caught.value)["details"]["causes"][0]["field"] == "metadata.name"
    assert "regex used for validation is" in status_body(caught.value)["message"]


def test_selector_is_immutable(kube: client.ApiClient) -> None:
    with pytest.raises(ApiException) as caught:
        client.AppsV1Api(kube).patch_namespaced_deployment(
            DEPLOY,
            NS,
            {"spec": {"selector": {"matchLabels": {"app": "x"}}}},
            _content_type="application/merge-patch+json",
        )
    body = status_body(caught.value)
    assert caught.value.status == 422
    # Spec validation first, then the strategy's immutability check, as the real server.
    assert body["message"] == (
        'Deployment.apps "llm-serve" is invalid: [spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"llm-serve"}: `selector` does not match template `labels`, '
        "spec.selector: Invalid value: "
        'v1.LabelSelector{MatchLabels:map[string]string{"app":"x"}, '
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable]"
    )


# ---------------------------------------------------------------- patches and dry run


def test_json_patch(kube: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube)
    patched = apps.patch_namespaced_deployment(
        DEPLOY,
        NS,
        [
            {"op": "test", "path": "/spec/replicas", "value": 4},
            {"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--seed=1"},
            {"op": "replace", "path": "/spec/replicas", "value": 3},
        ],
    )
    assert patched.spec.replicas == 3
    assert patched.spec.template.spec.containers[0].args[-1] == "--seed=1"
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment(
            DEPLOY, NS, [{"op": "test", "path": "/spec/replicas", "value": 99}]
        )
    assert caught.value.status == 422
    assert apps.read_namespaced_deployment(DEPLOY, NS).spec.replicas == 3


def test_merge_patch_replaces_lists(kube: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube)
    before = apps.read_namespaced_deployment(DEPLOY, NS)
    patched = apps.patch_namespaced_deployment(
        DEPLOY,
        NS,
        {
            "metadata": {"annotations": {"team": "serving"}},
            "spec": {"template": {"spec": {"tolerations": [{"operator": "Exists"}]}}},
        },
        _content_type="application/merge-patch+json",
    )
    assert patched.metadata.annotations["team"] == "serving"
    assert patched.metadata.annotations["deployment.kubernetes.io/revision"]
    assert patched.spec.template.spec.tolerations[0].operator == "Exists"
    assert patched.spec.template.spec.containers == before.spec.template.spec.containers
    removed = apps.patch_namespaced_deployment(
        DEPLOY,
        NS,
        {"metadata": {"annotations": {"team": None}}},
        _content_type="application/merge-patch+json",
    )
    assert "team" not in removed.metadata.annotations


def vllm_patch(**container: Any) -> dict[str, Any]:
    """A strategic merge patch of the vllm container (merged by its name, not replaced)."""
    return {"spec": {"template": {"spec": {"containers": [{"name": "vllm", **container}]}}}}


def test_strategic_merge_patch_is_keyed_by_container_and_env_name(kube: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube)
    env = [
        {"name": "HF_HUB_OFFLINE", "value": "1"},
        {"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"},
    ]
    patched = apps.patch_namespaced_deployment(DEPLOY, NS, vllm_patch(env=env))
    (container,) = patched.spec.template.spec.containers
    assert container.image == "vllm/vllm-openai:latest"
    by_name = {e.name: e for e in container.env}
    assert by_name["HF_HUB_OFFLINE"].value == "1"
    assert by_name["VLLM_LOGGING_LEVEL"].value == "DEBUG"
    assert by_name["HF_TOKEN"].value_from.secret_key_ref.name == "hf-token"
    delete = [{"name": "VLLM_LOGGING_LEVEL", "$patch": "delete"}]
    deleted = apps.patch_namespaced_deployment(DEPLOY, NS, vllm_patch(env=delete))
    names = [e.name for e in deleted.spec.template.spec.containers[0].env]
    assert names == ["HF_TOKEN", "HF_HUB_OFFLINE"]


def test_dry_run_returns_the_would_be_object_and_changes_nothing(kube: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    before = apps.read_namespaced_deployment(DEPLOY, NS)
    would_be = apps.patch_namespaced_deployment(
        DEPLOY, NS, {"spec": {"replicas": 7}}, dry_run="All"
    )
    assert would_be.spec.replicas == 7
    assert would_be.metadata.generation == before.metadata.generation + 1
    after = apps.read_namespaced_deployment(DEPLOY, NS)
    assert after.spec.replicas == 4
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.metadata.generation == before.metadata.generation

    created = core.create_namespaced_config_map(NS, configmap("dry"), dry_run="All")
    assert created.metadata.name == "dry"
    assert created.metadata.uid
    with pytest.raises(ApiException):
        core.read_namespaced_config_map("dry", NS)
    apps.delete_namespaced_deployment(DEPLOY, NS, dry_run="All")
    assert apps.read_namespaced_deployment(DEPLOY, NS).metadata.uid == before.metadata.uid
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment(DEPLOY, NS, {"spec": {"replicas": 7}}, dry_run="Some")
    assert caught.value.status == 400


def test_generation_and_observed_generation(kube: client.ApiClient) -> None:
    apps = client.AppsV1Api(kube)
    before = apps.read_namespaced_deployment(DEPLOY, NS)
    labelled = apps.patch_namespaced_deployment(
        DEPLOY, NS, {"metadata": {"labels": {"tier": "gpu"}}}
    )
    assert labelled.metadata.generation == before.metadata.generation
    scaled = apps.patch_namespaced_deployment(DEPLOY, NS, {"spec": {"replicas": 5}})
    assert scaled.metadata.generation == before.metadata.generation + 1
    wait_for(
        "observedGeneration to catch up",
        lambda: (
            apps.read_namespaced_deployment_status(DEPLOY, NS).status.observed_generation
            == scaled.metadata.generation
        ),
    )


# ---------------------------------------------------------------- RBAC


def review(api: client.ApiClient, verb: str, resource: str, group: str = "", sub: str = "") -> bool:
    body = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                verb=verb, group=group, resource=resource, subresource=sub or None, namespace=NS
            )
        )
    )
    result = client.AuthorizationV1Api(api).create_self_subject_access_review(body)
    return bool(result.status.allowed)


def test_self_subject_access_review_reasons(
    admin: client.ApiClient, viewer: client.ApiClient
) -> None:
    def status(api: client.ApiClient, verb: str) -> client.V1SubjectAccessReviewStatus:
        body = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb, resource="pods", namespace=NS
                )
            )
        )
        return client.AuthorizationV1Api(api).create_self_subject_access_review(body).status

    # system:masters is allowed before RBAC is asked, so no reason; RBAC names its binding.
    assert (status(admin, "delete").allowed, status(admin, "delete").reason) == (True, None)
    assert status(viewer, "list").reason == (
        'RBAC: allowed by ClusterRoleBinding "skewmit-viewer" of ClusterRole "view" to User '
        '"skewmit-viewer"'
    )
    denied = status(viewer, "delete")
    assert (denied.allowed, denied.reason) == (False, None)


def test_self_subject_access_review_for_both_users(
    admin: client.ApiClient, viewer: client.ApiClient
) -> None:
    assert review(admin, "patch", "deployments", "apps")
    assert review(admin, "create", "pods", sub="exec")
    assert review(viewer, "get", "pods")
    assert review(viewer, "list", "deployments", "apps")
    assert review(viewer, "get", "pods", sub="log")
    assert not review(viewer, "patch", "deployments", "apps")
    assert not review(viewer, "create", "pods", sub="exec")
    assert not review(viewer, "get", "secrets")


def test_viewer_writes_are_403_with_the_real_message(viewer: client.ApiClient) -> None:
    apps, core = client.AppsV1Api(viewer), client.CoreV1Api(viewer)
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment(DEPLOY, NS, {"spec": {"replicas": 1}})
    body = status_body(caught.value)
    assert (caught.value.status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (
        'deployments.apps "llm-serve" is forbidden: User "skewmit-viewer" cannot patch resource '
        '"deployments" in API group "apps" in the namespace "inference"'
    )
    assert body["details"] == {"name": "llm-serve", "group": "apps", "kind": "deployments"}
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_config_map(NS, configmap("x"))
    assert status_body(caught.value)["message"] == (
        'configmaps is forbidden: User "skewmit-viewer" cannot create resource "configmaps" in '
        'API group "" in the namespace "inference"'
    )
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_secret("hf-token", NS)
    assert caught.value.status == 403
    with pytest.raises(ApiException) as caught:
        core.delete_node("gpu-a10g-1")
    assert status_body(caught.value)["message"] == (
        'nodes "gpu-a10g-1" is forbidden: User "skewmit-viewer" cannot delete resource "nodes" '
        'in API group "" at the cluster scope'
    )
    pod = core.list_namespaced_pod(NS, label_selector=f"app={DEPLOY}").items[0].metadata.name
    with pytest.raises(ApiException) as caught:
        exec_ws(core, pod, ["true"])
    assert "403" in str(caught.value.reason)


def test_bad_token_is_401(ro_sim: Simulator, tmp_path: Path) -> None:
    path = ro_sim.write_kubeconfig(tmp_path / "kubeconfig")
    path.write_text(path.read_text().replace("skewmit-admin-token", "wrong-token"))
    api = config.new_client_from_config(config_file=str(path))
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(api).list_namespaced_pod(NS)
    assert caught.value.status == 401
    assert status_body(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }


# ---------------------------------------------------------------- exec and logs


def test_exec_nvidia_smi_on_the_node_gpu(admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    for pod in running_pods(core)[:2]:
        _, node = raw(admin, "GET", f"/api/v1/nodes/{pod.spec.node_name}")
        expected = NVIDIA_SMI_CSV[node["metadata"]["labels"]["nvidia.com/gpu.product"]]
        # Asked for v4 alone, the server speaks v4; offered v5 and v4, it picks v5.
        for protocol, spoken in (("v4.channel.k8s.io", "v4.channel.k8s.io"), (None, "v5")):
            ws = exec_ws(core, pod.metadata.name, GPU_QUERY, protocol)
            assert ws.subprotocol.startswith(spoken)
            assert ws.read_stdout() == expected
            assert ws.returncode == 0


def test_exec_nvidia_smi_on_pinned_h100_and_a10g_pods(
    sim: Simulator, kube: client.ApiClient
) -> None:
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    apps.patch_namespaced_deployment_scale(DEPLOY, NS, {"spec": {"replicas": 0}})
    wait_for("the serving pods to go", lambda: not running_pods(core))
    core.create_namespaced_pod(NS, gpu_pod("probe-h100", "NVIDIA-H100-80GB-HBM3"))
    core.create_namespaced_pod(NS, gpu_pod("probe-a10g", "NVIDIA-A10G"))
    for name, product in (("probe-h100", "NVIDIA-H100-80GB-HBM3"), ("probe-a10g", "NVIDIA-A10G")):
        wait_for(
            f"{name} to run",
            lambda n=name: core.read_namespaced_pod(n, NS).status.phase == "Running",
        )
        ws = exec_ws(core, name, GPU_QUERY, "v4.channel.k8s.io")
        assert ws.read_stdout() == NVIDIA_SMI_CSV[product]
        assert ws.returncode == 0


def test_exec_of_a_missing_command(admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    pod = running_pods(core)[0].metadata.name
    # Through a shell: the shell's own message and exit code 127.
    ws = exec_ws(core, pod, ["sh", "-c", "nvidia-smii -L"], "v4.channel.k8s.io")
    assert ws.read_stderr() == "sh: 1: nvidia-smii: not found\n"
    assert ws.returncode == 127
    # Directly: containerd cannot start the process; the error channel carries an InternalError.
    ws = exec_ws(core, pod, ["nvidia-smii", "-L"], "v4.channel.k8s.io")
    status = json.loads(ws.read_channel(3))
    assert status["status"] == "Failure"
    assert status["reason"] == "InternalError"
    assert status["code"] == 500
    assert re.fullmatch(
        r"Internal error occurred: error executing command in container: failed to exec in "
        r'container: failed to start exec "[0-9a-f]{64}": OCI runtime exec failed: exec failed: '
        r'unable to start container process: exec: "nvidia-smii": executable file not found in '
        r"\$PATH: unknown",
        status["message"],
    )
    ws = exec_ws(core, pod, ["sh", "-c", "exit 3"], "v4.channel.k8s.io")
    assert ws.returncode == 3


def test_pod_logs(admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    pod = running_pods(core)[0].metadata.name
    text = core.read_namespaced_pod_log(pod, NS)
    assert "vLLM API server version" in text
    assert text.endswith("\n")
    tail = core.read_namespaced_pod_log(pod, NS, tail_lines=2)
    assert tail.splitlines() == text.splitlines()[-2:]
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod_log(pod, NS, container="nope")
    assert caught.value.status == 400
    assert status_body(caught.value)["message"] == f"container nope is not valid for pod {pod}"
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_pod_log(pod, NS, previous=True)
    assert status_body(caught.value)["message"] == (
        f'previous terminated container "vllm" in pod "{pod}" not found'
    )


# ---------------------------------------------------------------- custom resources


def test_httproute_create_patch_list(kube: client.ApiClient) -> None:
    crs = client.CustomObjectsApi(kube)
    group, version, plural = "gateway.networking.k8s.io", "v1", "httproutes"
    route = {
        "apiVersion": f"{group}/{version}",
        "kind": "HTTPRoute",
        "metadata": {"name": "llm-long-context"},
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
    created = crs.create_namespaced_custom_object(group, version, NS, plural, route)
    assert created["metadata"]["uid"]
    assert created["metadata"]["generation"] == 1
    patched = crs.patch_namespaced_custom_object(
        group, version, NS, plural, "llm-long-context", {"spec": {"hostnames": ["llm.internal"]}}
    )
    assert patched["spec"]["hostnames"] == ["llm.internal"]
    assert patched["metadata"]["generation"] == 2
    listed = crs.list_namespaced_custom_object(group, version, NS, plural)
    assert listed["kind"] == "HTTPRouteList"
    assert listed["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert [r["metadata"]["name"] for r in listed["items"]] == ["llm-long-context", "llm-serve"]
    with pytest.raises(ApiException) as caught:
        crs.get_namespaced_custom_object(group, version, NS, plural, "nope")
    assert status_body(caught.value)["message"] == (
        'httproutes.gateway.networking.k8s.io "nope" not found'
    )
    with pytest.raises(ApiException) as caught:
        crs.patch_namespaced_custom_object(
            group,
            version,
            NS,
            plural,
            "llm-long-context",
            {"spec": {}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert caught.value.status == 415
    assert status_body(caught.value)["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    )


# ---------------------------------------------------------------- fault injection


def test_latency_fault_delays_matching_requests(sim: Simulator, kube: client.ApiClient) -> None:
    sim.call(sim.cluster.faults.set, [Fault(verb="list", resource="pods", latency_s=0.4)])
    core = client.CoreV1Api(kube)
    started = time.monotonic()
    core.list_namespaced_pod(NS)
    assert time.monotonic() - started >= 0.4


def test_error_rate_fault(sim: Simulator, kube: client.ApiClient) -> None:
    sim.call(
        sim.cluster.faults.set,
        [Fault(verb="get", resource="deployments", error_rate=1.0, error_code=503)],
    )
    apps = client.AppsV1Api(kube)
    with pytest.raises(ApiException) as caught:
        apps.read_namespaced_deployment(DEPLOY, NS)
    assert caught.value.status == 503
    assert status_body(caught.value)["reason"] == "ServiceUnavailable"
    assert apps.list_namespaced_deployment(NS).items  # other verbs are untouched
    sim.call(sim.cluster.faults.clear)
    assert apps.read_namespaced_deployment(DEPLOY, NS).metadata.name == DEPLOY


def test_conflict_fault_on_patch(sim: Simulator, kube: client.ApiClient) -> None:
    # The fault is a write racing ours: a patch guarded by the resourceVersion it read meets
    # the moved object with 409, as on a real server (an unguarded one would just apply).
    sim.call(sim.cluster.faults.set, [Fault(verb="patch", resource="deployments", conflicts=1)])
    apps = client.AppsV1Api(kube)
    rv = apps.read_namespaced_deployment(DEPLOY, NS).metadata.resource_version
    guarded = {"metadata": {"resourceVersion": rv, "labels": {"a": "b"}}}
    with pytest.raises(ApiException) as caught:
        apps.patch_namespaced_deployment(DEPLOY, NS, guarded)
    assert caught.value.status == 409
    assert status_body(caught.value)["reason"] == "Conflict"
    patched = apps.patch_namespaced_deployment(DEPLOY, NS, {"metadata": {"labels": {"a": "b"}}})
    assert patched.metadata.labels["a"] == "b"


def test_dropped_watch_fault_ends_the_stream(sim: Simulator, kube: client.ApiClient) -> None:
    sim.call(sim.cluster.faults.set, [Fault(verb="watch", resource="pods", drop_after=2)])
    core = client.CoreV1Api(kube)
    response = core.list_namespaced_pod(
        NS, watch=True, timeout_seconds=30, _preload_content=False, _request_timeout=10
    )
    events = [json.loads(line) for line in response.read().decode().splitlines() if line]
    assert [e["type"] for e in events] == ["ADDED", "ADDED"]


def test_sim_drop_watches_ends_open_watches(sim: Simulator, kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    rv = core.list_namespaced_pod(NS).metadata.resource_version
    response = core.list_namespaced_pod(
        NS,
        watch=True,
        resource_version=rv,
        timeout_seconds=30,
        _preload_content=False,
        _request_timeout=10,
    )
    status, body = raw(kube, "POST", "/_sim/faults", {"drop_watches": True})
    assert status == 200
    assert body == {"faults": []}
    response.read()  # returns once the server ends the stream; times out (fails) otherwise


def test_exec_failure_fault(sim: Simulator, kube: client.ApiClient) -> None:
    core = client.CoreV1Api(kube)
    pod = running_pods(core)[0]
    sim.call(sim.cluster.faults.set, [Fault(verb="exec", exec_fail=True)])
    with pytest.raises(ApiException) as caught:
        exec_ws(core, pod.metadata.name, GPU_QUERY)
    assert "500" in str(caught.value.reason)
    # The API server cannot reach the kubelet: its proxy's Status names no reason.
    with pytest.raises(ApiException) as caught:
        raw(kube, "GET", f"/api/v1/namespaces/{NS}/pods/{pod.metadata.name}/exec")
    node_ip = core.read_namespaced_pod(pod.metadata.name, NS).status.host_ip
    assert status_body(caught.value) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f"error dialing backend: dial tcp {node_ip}:10250: i/o timeout",
        "code": 500,
    }
    sim.call(sim.cluster.faults.clear)
    assert exec_ws(core, pod.metadata.name, ["true"]).returncode == 0


# ---------------------------------------------------------------- /_sim/ and /metrics


def test_sim_controls(sim: Simulator, kube: client.ApiClient, tmp_path: Path) -> None:
    _, clock = raw(kube, "POST", "/_sim/clock", {})
    _, advanced = raw(kube, "POST", "/_sim/clock", {"advance_s": 600})
    assert advanced["now"] >= clock["now"] + 600
    assert advanced["speed"] == FAST
    _, faults = raw(kube, "POST", "/_sim/faults", {"faults": [{"verb": "get", "latency_s": 0.01}]})
    assert faults["faults"][0]["verb"] == "get"
    _, state = raw(kube, "POST", "/_sim/state", {})
    assert f"{NS}/{DEPLOY}" in state["deployments"]
    _, traffic = raw(kube, "POST", "/_sim/traffic", {"deployment": DEPLOY, "rps": 3})
    assert traffic
    with pytest.raises(ApiException) as caught:
        raw(kube, "POST", "/_sim/faults", {"faults": [{"bogus": 1}]})
    assert caught.value.status == 400
    with pytest.raises(ApiException) as caught:
        raw(kube, "POST", "/_sim/nothing", {})
    assert caught.value.status == 404
    viewer = api_client(sim, tmp_path, VIEWER)
    with pytest.raises(ApiException) as caught:
        raw(viewer, "POST", "/_sim/clock", {"advance_s": 60})
    assert caught.value.status == 403


def test_metrics_are_prometheus_text_with_vllm_and_dcgm(ro_sim: Simulator) -> None:
    with urllib.request.urlopen(ro_sim.metrics_url, timeout=10) as response:
        content_type = response.headers["Content-Type"]
        text = response.read().decode()
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    types: dict[str, str] = {}
    samples: list[tuple[str, str, float]] = []
    sample = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)")
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            match = sample.fullmatch(line)
            assert match, f"not an exposition line: {line!r}"
            samples.append((match.group(1), match.group(2) or "", float(match.group(3))))
    assert types["vllm:e2e_request_latency_seconds"] == "histogram"
    assert types["vllm:generation_tokens_total"] == "counter"
    assert types["DCGM_FI_DEV_GPU_UTIL"] == "gauge"
    assert types["DCGM_FI_DEV_FB_USED"] == "gauge"
    names = {name for name, _, _ in samples}
    assert "vllm:e2e_request_latency_seconds_bucket" in names
    buckets = [labels for name, labels, _ in samples if name.endswith("_seconds_bucket")]
    assert any('le="+Inf"' in labels for labels in buckets)
    dcgm = [labels for name, labels, _ in samples if name == "DCGM_FI_DEV_GPU_UTIL"]
    assert dcgm and all('modelName="NVIDIA ' in labels for labels in dcgm)
    assert any('model_name="llama-3.1-8b"' in labels for _, labels, _ in samples)


def test_a_watch_left_open_does_not_block_other_requests(admin: client.ApiClient) -> None:
    core = client.CoreV1Api(admin)
    done = threading.Event()

    def hold_watch() -> None:
        for _ in watch.Watch().stream(core.list_namespaced_pod, NS, timeout_seconds=1):
            pass
        done.set()

    thread = threading.Thread(target=hold_watch)
    thread.start()
    assert core.read_namespace(NS).metadata.name == NS
    thread.join(timeout=10)
    assert done.is_set()


def test_a_running_simulator_leaves_no_key_in_tmp(tmp_path: Path) -> None:
    """Every simulator wrote its serving key and certificate to a /tmp folder it never
    removed (2,556 folders after a day of test runs). Loaded once, they are removed at once;
    the server still answers over TLS with the CA in its kubeconfig."""
    from services.simulator.runner import Simulator

    with Simulator("healthy", speed=30) as sim:
        assert sim.cert is not None
        assert not sim.cert.cert_path.parent.exists()
        api = config.new_client_from_config(str(sim.write_kubeconfig(tmp_path / "kubeconfig")))
        assert client.CoreV1Api(api).read_namespace("inference").metadata.name == "inference"


def test_a_deleted_pods_logs_are_dropped_so_a_long_run_stays_the_same_size(
    tmp_path: Path,
) -> None:
    """The kubelet removes a gone pod's logs; the simulator did not, so every pod a drill or a
    rollout replaced kept its lines for as long as the simulator ran. The replacement pods'
    logs are kept and read as before."""
    with Simulator("skew-incident", speed=FAST) as sim:
        core = client.CoreV1Api(api_client(sim, tmp_path))
        before = {p.metadata.name for p in running_pods(core)}
        for name in sorted(before)[:2]:
            core.delete_namespaced_pod(name, NS, grace_period_seconds=0)
        wait_for(
            "two replacement pods running",
            lambda: len({p.metadata.name for p in running_pods(core)} - before) >= 2,
        )
        logs = sim.cluster.runtime.logbook
        gone = set(sorted(before)[:2])
        wait_for(
            "the deleted pods' logs dropped",
            lambda: not {(NS, n) for n in gone} & logs.held_pods(),
        )
        new = ({p.metadata.name for p in running_pods(core)} - before).pop()
        wait_for(
            "the new pod's start-up lines",
            lambda: "vLLM API server version" in core.read_namespaced_pod_log(new, NS),
        )
        live = {(NS, p.metadata.name) for p in core.list_namespaced_pod(NS).items}
        assert {held for held in logs.held_pods() if held[0] == NS} <= live
