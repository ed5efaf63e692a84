"""Reads and identities answered as a real kube-apiserver answers them (issue 11, items 5, 7).

The 404 of an unserved path carries `details` (kubectl debug dereferences it), `--as` and
`--as-group` impersonation is honoured or refused with the impersonation filter's 403, and
`limit`/`continue` pages come from one snapshot with an opaque token that expires with 410.
Through the real kubectl (1.32 and 1.37) and the official client over HTTP.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from services.simulator.runner import Simulator
from tests.conftest import FAST, api_client
from tests.simulator.test_kubectl import KUBECTL_VERSIONS, Kubectl, make_kubectl

NS = "inference"
DEPLOY = "llm-serve"
VIEWER = "skewmit-sim-readonly"


@pytest.fixture(scope="module")
def read_sim() -> Iterator[Simulator]:
    with Simulator("skew-incident", speed=FAST) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def api(read_sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> client.ApiClient:
    return api_client(read_sim, tmp_path_factory.mktemp("reads-admin"))


@pytest.fixture(scope="module", params=KUBECTL_VERSIONS)
def k(
    request: pytest.FixtureRequest, read_sim: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Kubectl:
    version = str(request.param)
    return make_kubectl(read_sim, tmp_path_factory.mktemp(f"reads-kubectl-{version}"), version)


def status_of(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def a_pod(api: client.ApiClient) -> str:
    pods = client.CoreV1Api(api).list_namespaced_pod(NS, label_selector=f"app={DEPLOY}").items
    return str(pods[0].metadata.name)


# ---------------------------------------------------------------- item 7: 404s and identities


def test_kubectl_debug_fails_like_a_server_without_ephemeral_containers(
    k: Kubectl, api: client.ApiClient
) -> None:
    pod = a_pod(api)
    done = k("debug", "-n", NS, pod, "--image=busybox", "--", "true", timeout=60)
    assert done.returncode == 1
    assert "panic" not in done.stderr
    assert done.stderr.endswith(
        "ephemeral containers are disabled for this cluster (error from server: "
        '"the server could not find the requested resource")\n'
    )


def test_a_404_for_an_unserved_path_carries_empty_details(api: client.ApiClient) -> None:
    response = api.call_api(
        *api.param_serialize(
            method="GET",
            resource_path="/apis/apps/v1/nosuchresources",
            header_params={"Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
    )
    assert response.status == 404
    assert json.loads(response.read()) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "the server could not find the requested resource",
        "reason": "NotFound",
        "details": {},
        "code": 404,
    }


def test_admin_impersonates_the_viewer_and_a_master(k: Kubectl) -> None:
    as_viewer = k("auth", "whoami", "-o", "json", "--as=skewmit-viewer")
    assert as_viewer.returncode == 0, as_viewer.stderr
    info = json.loads(as_viewer.stdout)["status"]["userInfo"]
    assert info == {"username": "skewmit-viewer", "groups": ["system:authenticated"]}
    denied = k("auth", "can-i", "patch", "deploy", "-n", NS, "--as=skewmit-viewer")
    assert (denied.returncode, denied.stdout) == (1, "no\n")
    refused = k(
        "patch", "-n", NS, "deploy", DEPLOY, "--type=merge", "-p", '{"spec":{"paused":false}}',
        "--as=skewmit-viewer",
    )  # fmt: skip
    assert refused.returncode == 1
    assert refused.stderr == (
        'Error from server (Forbidden): deployments.apps "llm-serve" is forbidden: User '
        '"skewmit-viewer" cannot patch resource "deployments" in API group "apps" in the '
        'namespace "inference"\n'
    )
    master = k("auth", "can-i", "delete", "nodes", "--as=oncall", "--as-group=system:masters")
    assert master.stdout == "yes\n"
    nobody = k("get", "pods", "-n", NS, "--as=oncall")
    assert nobody.returncode == 1
    assert nobody.stderr == (
        'Error from server (Forbidden): pods is forbidden: User "oncall" cannot list resource '
        '"pods" in API group "" in the namespace "inference"\n'
    )


def test_the_viewer_may_not_impersonate(k: Kubectl) -> None:
    done = k("get", "pods", "-n", NS, "--as=skewmit-admin", context=VIEWER)
    assert done.returncode == 1
    assert done.stderr == (
        'Error from server (Forbidden): users "skewmit-admin" is forbidden: User '
        '"skewmit-viewer" cannot impersonate resource "users" in API group "" at the cluster '
        "scope\n"
    )
    group = k(
        "get", "pods", "-n", NS, "--as=skewmit-viewer", "--as-group=system:masters",
        context=VIEWER,
    )  # fmt: skip
    assert group.returncode == 1
    assert 'cannot impersonate resource "users"' in group.stderr


# ---------------------------------------------------------------- item 5: pagination


def labelled_config_maps(core: client.CoreV1Api, label: str, names: list[str]) -> None:
    for name in names:
        core.create_namespaced_config_map(
            NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name, labels={"walk": label}))
        )


def test_a_paginated_walk_reads_one_snapshot(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    labelled_config_maps(core, "snapshot", [f"walk-{i}" for i in range(5)])
    first = core.list_namespaced_config_map(NS, label_selector="walk=snapshot", limit=2)
    # Changes during the walk are not seen by it: one created, one deleted, one changed.
    labelled_config_maps(core, "snapshot", ["walk-0a"])
    core.delete_namespaced_config_map("walk-4", NS)
    core.patch_namespaced_config_map("walk-3", NS, {"data": {"late": "yes"}})
    pages = [first]
    while pages[-1].metadata._continue:
        pages.append(
            core.list_namespaced_config_map(
                NS, label_selector="walk=snapshot", limit=2, _continue=pages[-1].metadata._continue
            )
        )
    names = [cm.metadata.name for page in pages for cm in page.items]
    assert names == [f"walk-{i}" for i in range(5)]
    assert {page.metadata.resource_version for page in pages} == {first.metadata.resource_version}
    assert [cm.data for page in pages for cm in page.items if cm.metadata.name == "walk-3"] == [
        None
    ]
    # With a selector the server cannot count what is left (no remainingItemCount).
    assert first.metadata.remaining_item_count is None
    fresh = core.list_namespaced_config_map(NS, label_selector="walk=snapshot")
    assert [cm.metadata.name for cm in fresh.items] == [f"walk-{i}" for i in (0, "0a", 1, 2, 3)]


def test_the_continue_token_is_the_real_servers(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    first = core.list_namespaced_pod(NS, limit=1)
    token = first.metadata._continue
    data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    assert data == {
        "v": "meta.k8s.io/v1",
        "rv": int(first.metadata.resource_version),
        "start": f"{NS}/{first.items[0].metadata.name}\x00",
    }
    assert first.metadata.remaining_item_count == len(core.list_namespaced_pod(NS).items) - 1


def test_a_garbage_continue_token_is_a_400(api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(api).list_namespaced_pod(NS, limit=1, _continue="not a token!")
    assert caught.value.status == 400
    assert status_of(caught.value)["message"] == (
        "invalid continue token: continue key is not valid: illegal base64 data at input byte 3"
    )
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(api).list_namespaced_pod(
            NS, limit=1, _continue=base64.urlsafe_b64encode(b'{"v":"x"}').decode()
        )
    assert caught.value.status == 400


def test_an_expired_continue_token_is_a_410(read_sim: Simulator, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    first = core.list_namespaced_pod(NS, limit=1)
    read_sim.call(read_sim.cluster.clock.advance, 301.0)  # past etcd's compaction interval
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_pod(NS, limit=1, _continue=first.metadata._continue)
    assert caught.value.status == 410
    body = status_of(caught.value)
    assert body["reason"] == "Expired"
    assert body["message"].startswith(
        "The provided continue parameter is too old to display a consistent list result."
    )


def test_table_output_honours_the_page_limit(k: Kubectl, api: client.ApiClient) -> None:
    response = api.call_api(
        *api.param_serialize(
            method="GET",
            resource_path=f"/api/v1/namespaces/{NS}/pods",
            query_params=[("limit", "2")],
            header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
            auth_settings=["BearerToken"],
        )
    )
    table = json.loads(response.read())
    assert len(table["rows"]) == 2
    assert table["metadata"]["continue"]
    chunked = k.ok("get", "pods", "-A", "--chunk-size=2", "-o", "wide")
    whole = k.ok("get", "pods", "-A", "--chunk-size=0", "-o", "wide")
    names = [line.split()[:2] for line in chunked.splitlines()]
    assert names == [line.split()[:2] for line in whole.splitlines()]
    assert len(names) > 3


def test_auth_can_i_list_shows_each_users_rules(k: Kubectl) -> None:
    admin = k.ok("auth", "can-i", "--list", "-n", NS)
    assert admin.splitlines()[:3] == [
        "Resources   Non-Resource URLs   Resource Names   Verbs",
        "*.*         []                  []               [*]",
        "            [*]                 []               [*]",
    ]
    viewer = k.ok("auth", "can-i", "--list", "-n", NS, context=VIEWER).splitlines()
    assert viewer[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    rows = [line.split() for line in viewer[1:] if line.strip()]
    assert ["*.*", "[]", "[]", "[get", "list", "watch]"] in rows
    assert ["*.authorization.k8s.io", "[]", "[]", "[create]"] in rows
    assert ["[/version]", "[]", "[get]"] in rows
    assert not any("[*]" in row for row in rows)


# ---------------------------------------------------------------- nvidia-smi in the pods

DATE_LINE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ 123]\d \d\d:\d\d:\d\d \d{4}")


def pods_by_gpu(api: client.ApiClient) -> dict[str, str]:
    """A running serving pod per GPU product of its node."""
    core = client.CoreV1Api(api)
    out: dict[str, str] = {}
    for pod in core.list_namespaced_pod(NS, label_selector=f"app={DEPLOY}").items:
        if pod.status.phase != "Running" or not pod.spec.node_name:
            continue
        labels = core.read_node(pod.spec.node_name).metadata.labels
        out.setdefault(labels["nvidia.com/gpu.product"], pod.metadata.name)
    return out


def test_nvidia_smi_prints_what_the_real_tool_prints(k: Kubectl, api: client.ApiClient) -> None:
    pods = pods_by_gpu(api)
    assert {"NVIDIA-H100-80GB-HBM3", "NVIDIA-A10G"} <= set(pods)
    fans = {"NVIDIA-H100-80GB-HBM3": "[N/A]", "NVIDIA-A10G": "0 %"}
    for product, pod in pods.items():
        table = k.ok("exec", "-n", NS, pod, "--", "nvidia-smi")
        assert DATE_LINE.fullmatch(table.splitlines()[0])  # ctime: the day space-padded
        fan_cell = "  0%" if product == "NVIDIA-A10G" else " N/A"
        assert any(line.startswith(f"|{fan_cell}   ") for line in table.splitlines())
        csv = k.ok(
            "exec", "-n", NS, pod, "--",
            "nvidia-smi", "--query-gpu=fan.speed", "--format=csv,noheader",
        )  # fmt: skip
        assert csv == f"{fans[product]}\n"
    memory = k.ok("exec", "-n", NS, pods["NVIDIA-A10G"], "--", "nvidia-smi", "-q", "-d", "MEMORY")
    lines = memory.splitlines()
    gpu_line = next(i for i, line in enumerate(lines) if line.startswith("GPU "))
    assert lines[gpu_line + 1] == "    FB Memory Usage"
    assert lines[gpu_line + 2].split(":") == [
        "        Total                             ",
        " 23028 MiB",
    ]
    assert "Product Name" not in memory and "Utilization" not in memory


# ---------------------------------------------------------------- item 6: get -w


def test_get_watch_rows_keep_every_column(k: Kubectl, api: client.ApiClient) -> None:
    argv = [k.binary, "--kubeconfig", str(k.kubeconfig), "--cache-dir", str(k.cache)]
    watch = subprocess.Popen(
        [*argv, "get", "deploy", "-n", NS, "-w", "--request-timeout=30s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        lines = [watch.stdout.readline(), watch.stdout.readline()]  # header and first row
        client.AppsV1Api(api).patch_namespaced_deployment(
            DEPLOY, NS, {"metadata": {"labels": {"watched": k.version.replace(".", "-")}}}
        )
        lines.append(watch.stdout.readline())  # the change, streamed as a Table row
    finally:
        watch.kill()
        watch.communicate()
    header, first, changed = (line.split() for line in lines)
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert first[0] == changed[0] == DEPLOY
    assert len(changed) == len(header)  # not just NAME and AGE
