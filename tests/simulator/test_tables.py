"""Server-side Table output: the cells `kubectl get` prints, as a real kube-apiserver sends them."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from services.simulator.tables import build_table, human_duration
from tests.conftest import require_tool

NOW = datetime(2025, 3, 10, 12, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cells(resource: str, obj: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """The single row of `obj`, keyed by upper-cased column name as kubectl shows it."""
    table = build_table(resource, [obj], NOW, **kwargs)
    names = [c["name"].upper() for c in table["columnDefinitions"]]
    (row,) = table["rows"]
    assert len(row["cells"]) == len(names)
    return dict(zip(names, row["cells"], strict=True))


def headers(resource: str, *, wide: bool, **kwargs: Any) -> list[str]:
    columns = build_table(resource, [], NOW, **kwargs)["columnDefinitions"]
    return [c["name"].upper() for c in columns if wide or c["priority"] == 0]


def pod(
    name: str = "llm-0",
    *,
    phase: str = "Running",
    statuses: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    spec = {"nodeName": "gpu-1", "containers": [{"name": "vllm", "image": "vllm/vllm:0.6"}]}
    spec.update(extra.pop("spec", {}))
    status: dict[str, Any] = {"phase": phase, "podIPs": [{"ip": "10.0.0.5"}]}
    status["containerStatuses"] = statuses or []
    status.update(extra.pop("status", {}))
    meta = {"name": name, "namespace": "serving", "creationTimestamp": ago(330)}
    meta.update(extra.pop("metadata", {}))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def running(name: str = "vllm", restarts: int = 0, ready: bool = True) -> dict[str, Any]:
    state = {"running": {"startedAt": ago(300)}}
    return {"name": name, "ready": ready, "restartCount": restarts, "state": state}


# --- HumanDuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        # apimachinery's own TestHumanDuration cases
        (timedelta(seconds=1), "1s"),
        (timedelta(seconds=70), "70s"),
        (timedelta(seconds=190), "3m10s"),
        (timedelta(minutes=70), "70m"),
        (timedelta(hours=47), "47h"),
        (timedelta(hours=49), "2d1h"),
        (timedelta(hours=8 * 24 + 2), "8d"),
        (timedelta(hours=367 * 24), "367d"),
        (timedelta(hours=365 * 2 * 24 + 25), "2y1d"),
        (timedelta(hours=365 * 8 * 24 + 2), "8y"),
        # boundaries between precisions
        (timedelta(0), "0s"),
        (timedelta(seconds=45.9), "45s"),
        (timedelta(seconds=119), "119s"),
        (timedelta(seconds=120), "2m"),
        (timedelta(minutes=5, seconds=30), "5m30s"),
        (timedelta(minutes=10, seconds=30), "10m"),
        (timedelta(minutes=179), "179m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=7, minutes=59), "7h59m"),
        (timedelta(hours=8, minutes=30), "8h"),
        (timedelta(days=2), "2d"),
        (timedelta(days=2, hours=3), "2d3h"),
        (timedelta(days=365 * 2), "2y"),
        # clock skew: up to 2 s in the future is "now", beyond is invalid
        (timedelta(seconds=-0.5), "0s"),
        (timedelta(seconds=-1.9), "0s"),
        (timedelta(seconds=-2), "<invalid>"),
        (timedelta(days=-1), "<invalid>"),
    ],
)
def test_human_duration_matches_apimachinery(delta: timedelta, expected: str) -> None:
    assert human_duration(delta) == expected


# --- the Table envelope -------------------------------------------------------------------------


def test_table_envelope_and_partial_object_metadata() -> None:
    obj = pod()
    table = build_table("pods", [obj], NOW, resource_version="1234")
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "1234"}
    for column in table["columnDefinitions"]:
        assert set(column) == {"name", "type", "format", "description", "priority"}
        assert column["description"]
    assert table["columnDefinitions"][0]["format"] == "name"
    (row,) = table["rows"]
    assert row["object"] == {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }
    assert row["object"]["metadata"] is not obj["metadata"]  # a copy, not the stored object
    assert "conditions" not in row


def test_include_object_full_none_and_invalid() -> None:
    obj = pod()
    assert build_table("pods", [obj], NOW, include_object="Object")["rows"][0]["object"] == obj
    assert "object" not in build_table("pods", [obj], NOW, include_object="None")["rows"][0]
    assert build_table("pods", [], NOW)["metadata"] == {}
    with pytest.raises(ValueError, match="includeObject"):
        build_table("pods", [obj], NOW, include_object="Everything")


def test_wide_columns_have_priority_one() -> None:
    assert headers("pods", wide=False) == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert headers("pods", wide=True)[5:] == ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    assert headers("deployments", wide=False) == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert headers("deployments", wide=True)[5:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert headers("replicasets", wide=False) == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert headers("replicasets", wide=True)[5:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
    assert headers("nodes", wide=False) == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert headers("nodes", wide=True)[5:] == [
        "INTERNAL-IP",
        "EXTERNAL-IP",
        "OS-IMAGE",
        "KERNEL-VERSION",
        "CONTAINER-RUNTIME",
    ]
    assert headers("services", wide=False) == [
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "AGE",
    ]
    assert headers("services", wide=True)[6:] == ["SELECTOR"]
    assert headers("namespaces", wide=True) == ["NAME", "STATUS", "AGE"]
    assert headers("events", wide=False) == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert headers("events", wide=True) == [
        "LAST SEEN",
        "TYPE",
        "REASON",
        "OBJECT",
        "SUBOBJECT",
        "SOURCE",
        "MESSAGE",
        "FIRST SEEN",
        "COUNT",
        "NAME",
    ]
    assert headers("configmaps", wide=True) == ["NAME", "DATA", "AGE"]
    assert headers("secrets", wide=True) == ["NAME", "TYPE", "DATA", "AGE"]


def test_column_types_follow_the_real_printers() -> None:
    def types(resource: str) -> list[str]:
        return [c["type"] for c in build_table(resource, [], NOW)["columnDefinitions"]]

    assert types("replicasets")[:4] == ["string", "integer", "integer", "integer"]
    assert set(types("pods")) == {"string"}  # RESTARTS became a string with "(45s ago)"
    assert set(types("deployments")) == {"string"}


# --- pods ---------------------------------------------------------------------------------------


def test_running_pod_row() -> None:
    row = cells("pods", pod(statuses=[running()]))
    assert row == {
        "NAME": "llm-0",
        "READY": "1/1",
        "STATUS": "Running",
        "RESTARTS": "0",
        "AGE": "5m30s",
        "IP": "10.0.0.5",
        "NODE": "gpu-1",
        "NOMINATED NODE": "<none>",
        "READINESS GATES": "<none>",
    }


def test_crashloop_pod_shows_waiting_reason_and_last_restart() -> None:
    crashing = {
        "name": "vllm",
        "ready": False,
        "restartCount": 3,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(45)}},
    }
    row = cells("pods", pod(statuses=[crashing]))
    assert (row["READY"], row["STATUS"], row["RESTARTS"]) == (
        "0/1",
        "CrashLoopBackOff",
        "3 (45s ago)",
    )


def test_pending_and_container_creating() -> None:
    unscheduled = pod(phase="Pending", spec={"nodeName": ""}, status={"podIPs": []})
    row = cells("pods", unscheduled)
    assert (row["READY"], row["STATUS"], row["IP"], row["NODE"]) == (
        "0/1",
        "Pending",
        "<none>",
        "<none>",
    )
    creating = {"name": "vllm", "ready": False, "restartCount": 0}
    creating["state"] = {"waiting": {"reason": "ContainerCreating"}}
    assert cells("pods", pod(phase="Pending", statuses=[creating]))["STATUS"] == "ContainerCreating"


def test_completed_pod_has_completed_row_condition() -> None:
    done = {"name": "vllm", "ready": False, "restartCount": 0}
    done["state"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    table = build_table("pods", [pod(phase="Succeeded", statuses=[done])], NOW)
    (row,) = table["rows"]
    assert row["cells"][1:3] == ["0/1", "Completed"]
    assert row["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]


def test_terminated_without_reason_shows_exit_code_or_signal() -> None:
    exited = {"name": "vllm", "ready": False, "restartCount": 0}
    exited["state"] = {"terminated": {"exitCode": 137}}
    assert cells("pods", pod(phase="Failed", statuses=[exited]))["STATUS"] == "ExitCode:137"
    exited["state"] = {"terminated": {"exitCode": 0, "signal": 9}}
    assert cells("pods", pod(phase="Failed", statuses=[exited]))["STATUS"] == "Signal:9"


def test_deleting_pod_is_terminating_unless_finished() -> None:
    deleting = {"metadata": {"deletionTimestamp": ago(5)}}
    assert cells("pods", pod(statuses=[running()], **deleting))["STATUS"] == "Terminating"
    done = {"name": "vllm", "ready": False, "restartCount": 0}
    done["state"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    finished = pod(phase="Succeeded", statuses=[done], **deleting)
    assert cells("pods", finished)["STATUS"] == "Completed"
    lost = pod(statuses=[running()], status={"reason": "NodeLost"}, **deleting)
    assert cells("pods", lost)["STATUS"] == "Unknown"


def test_scheduling_gated_pod() -> None:
    gated = pod(
        phase="Pending",
        spec={"nodeName": "", "schedulingGates": [{"name": "example.com/quota"}]},
        status={
            "podIPs": [],
            "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}
            ],
        },
    )
    assert cells("pods", gated)["STATUS"] == "SchedulingGated"


def test_init_containers_progress_and_failure() -> None:
    init_spec = {"initContainers": [{"name": "fetch-weights", "image": "busybox"}]}
    waiting = {"name": "fetch-weights", "ready": False, "restartCount": 0}
    waiting["state"] = {"running": {}}
    row = cells(
        "pods", pod(phase="Pending", spec=init_spec, status={"initContainerStatuses": [waiting]})
    )
    assert row["STATUS"] == "Init:0/1"
    waiting["state"] = {"waiting": {"reason": "CrashLoopBackOff"}}
    waiting["restartCount"] = 2
    row = cells(
        "pods", pod(phase="Pending", spec=init_spec, status={"initContainerStatuses": [waiting]})
    )
    assert (row["STATUS"], row["RESTARTS"]) == ("Init:CrashLoopBackOff", "2")


def test_sidecar_counts_towards_ready() -> None:
    sidecar = {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}
    started = {"name": "proxy", "ready": True, "started": True, "restartCount": 1}
    started["state"] = {"running": {}}
    started["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": ago(600)}}
    obj = pod(
        statuses=[running()],
        spec={"initContainers": [sidecar]},
        status={
            "initContainerStatuses": [started],
            "conditions": [{"type": "Initialized", "status": "True"}],
        },
    )
    row = cells("pods", obj)
    assert (row["READY"], row["STATUS"], row["RESTARTS"]) == ("2/2", "Running", "1 (10m ago)")


def test_completed_container_beside_running_one_reads_running_or_not_ready() -> None:
    done = {"name": "warmup", "ready": False, "restartCount": 0}
    done["state"] = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    spec = {"containers": [{"name": "warmup", "image": "a"}, {"name": "vllm", "image": "b"}]}
    ready_cond = {"conditions": [{"type": "Ready", "status": "True"}]}
    obj = pod(statuses=[done, running()], spec=spec, status=ready_cond)
    assert cells("pods", obj)[("STATUS")] == "Running"
    assert cells("pods", pod(statuses=[done, running()], spec=spec))["STATUS"] == "NotReady"


def test_readiness_gates_and_nominated_node() -> None:
    obj = pod(
        statuses=[running()],
        spec={"readinessGates": [{"conditionType": "a/ok"}, {"conditionType": "b/ok"}]},
        status={
            "nominatedNodeName": "gpu-2",
            "conditions": [{"type": "a/ok", "status": "True"}, {"type": "b/ok", "status": "False"}],
        },
    )
    row = cells("pods", obj)
    assert (row["READINESS GATES"], row["NOMINATED NODE"]) == ("1/2", "gpu-2")


def test_legacy_pod_ip_field_and_unknown_age() -> None:
    obj = pod(statuses=[running()], status={"podIPs": None, "podIP": "10.0.0.9"})
    obj["metadata"].pop("creationTimestamp")
    row = cells("pods", obj)
    assert (row["IP"], row["AGE"]) == ("10.0.0.9", "<unknown>")


# --- deployments and replicasets ----------------------------------------------------------------


def deployment(**status: Any) -> dict[str, Any]:
    containers = [
        {"name": "vllm", "image": "vllm/vllm-openai:v0.6.3"},
        {"name": "metrics", "image": "exporter:1"},
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "llm-serve",
            "namespace": "serving",
            "creationTimestamp": ago(2 * 86400 + 3 * 3600),
        },
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "llm-serve"}},
            "template": {
                "metadata": {"labels": {"app": "llm-serve"}},
                "spec": {"containers": containers},
            },
        },
        "status": status,
    }


def test_deployment_partially_ready() -> None:
    row = cells("deployments", deployment(readyReplicas=2, updatedReplicas=3, availableReplicas=2))
    assert row == {
        "NAME": "llm-serve",
        "READY": "2/3",
        "UP-TO-DATE": 3,
        "AVAILABLE": 2,
        "AGE": "2d3h",
        "CONTAINERS": "vllm,metrics",
        "IMAGES": "vllm/vllm-openai:v0.6.3,exporter:1",
        "SELECTOR": "app=llm-serve",
    }


def test_deployment_without_status_and_set_based_selector() -> None:
    obj = deployment()
    obj["spec"]["selector"] = {
        "matchLabels": {"tier": "gpu", "app": "llm"},
        "matchExpressions": [
            {"key": "track", "operator": "In", "values": ["stable", "canary"]},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    row = cells("deployments", obj)
    assert (row["READY"], row["UP-TO-DATE"], row["AVAILABLE"]) == ("0/3", 0, 0)
    assert row["SELECTOR"] == "app=llm,!legacy,tier=gpu,track in (canary,stable)"
    obj["spec"]["selector"] = {"matchExpressions": [{"key": "a", "operator": "Near"}]}
    assert cells("deployments", obj)["SELECTOR"] == "<invalid>"


def test_replicaset_row_uses_integers_and_format_label_selector() -> None:
    rs = deployment(replicas=3, readyReplicas=1)
    rs["kind"] = "ReplicaSet"
    rs["metadata"]["name"] = "llm-serve-7d9f8"
    row = cells("replicasets", rs)
    assert row["NAME"] == "llm-serve-7d9f8"
    assert (row["DESIRED"], row["CURRENT"], row["READY"]) == (3, 3, 1)
    assert row["SELECTOR"] == "app=llm-serve"
    rs["spec"]["selector"] = {}
    rs["spec"]["replicas"] = 0
    row = cells("replicasets", rs)
    assert (row["SELECTOR"], row["DESIRED"]) == ("<none>", 0)


# --- nodes --------------------------------------------------------------------------------------


def node(ready: str | None = "True", unschedulable: bool = False, **labels: str) -> dict[str, Any]:
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "gpu-1", "creationTimestamp": ago(40 * 86400), "labels": labels},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "conditions": conditions,
            "addresses": [
                {"type": "Hostname", "address": "gpu-1"},
                {"type": "InternalIP", "address": "10.1.0.7"},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.31.2",
                "osImage": "Ubuntu 22.04.4 LTS",
                "kernelVersion": "5.15.0-1057-aws",
                "containerRuntimeVersion": "containerd://1.7.12",
            },
        },
    }


def test_ready_node_row() -> None:
    assert cells("nodes", node()) == {
        "NAME": "gpu-1",
        "STATUS": "Ready",
        "ROLES": "<none>",
        "AGE": "40d",
        "VERSION": "v1.31.2",
        "INTERNAL-IP": "10.1.0.7",
        "EXTERNAL-IP": "<none>",
        "OS-IMAGE": "Ubuntu 22.04.4 LTS",
        "KERNEL-VERSION": "5.15.0-1057-aws",
        "CONTAINER-RUNTIME": "containerd://1.7.12",
    }


def test_node_status_variants() -> None:
    assert cells("nodes", node(unschedulable=True))["STATUS"] == "Ready,SchedulingDisabled"
    assert cells("nodes", node(ready="False"))["STATUS"] == "NotReady"
    assert cells("nodes", node(ready="Unknown"))["STATUS"] == "NotReady"
    assert (
        cells("nodes", node(ready=None, unschedulable=True))["STATUS"]
        == "Unknown,SchedulingDisabled"
    )


def test_node_roles_from_labels() -> None:
    labels = {
        "node-role.kubernetes.io/worker": "",
        "node-role.kubernetes.io/control-plane": "",
        "kubernetes.io/role": "gpu",
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
    }
    assert cells("nodes", node(**labels))["ROLES"] == "control-plane,gpu,worker"


def test_node_without_node_info_prints_unknown_in_wide_columns() -> None:
    bare = node()
    bare["status"].pop("nodeInfo")
    row = cells("nodes", bare)
    assert row["VERSION"] == ""
    assert (row["OS-IMAGE"], row["KERNEL-VERSION"], row["CONTAINER-RUNTIME"]) == ("<unknown>",) * 3


# --- services -----------------------------------------------------------------------------------


def service(**spec: Any) -> dict[str, Any]:
    meta = {
        "name": "llm-serve",
        "namespace": "serving",
        "creationTimestamp": ago(3600 * 5 + 60 * 7),
    }
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec, "status": {}}


def test_cluster_ip_service_ports() -> None:
    svc = service(
        type="ClusterIP",
        clusterIP="10.96.12.4",
        clusterIPs=["10.96.12.4"],
        ports=[{"port": 80, "protocol": "TCP"}, {"port": 443}],
        selector={"app": "llm-serve"},
    )
    assert cells("services", svc) == {
        "NAME": "llm-serve",
        "TYPE": "ClusterIP",
        "CLUSTER-IP": "10.96.12.4",
        "EXTERNAL-IP": "<none>",
        "PORT(S)": "80/TCP,443/TCP",
        "AGE": "5h7m",
        "SELECTOR": "app=llm-serve",
    }


def test_service_types_external_ip_column() -> None:
    node_port = service(
        type="NodePort", clusterIP="10.96.0.9", ports=[{"port": 80, "nodePort": 30080}]
    )
    assert cells("services", node_port)["PORT(S)"] == "80:30080/TCP"
    pending = service(type="LoadBalancer", clusterIP="10.96.0.8", ports=[{"port": 8000}])
    assert cells("services", pending)["EXTERNAL-IP"] == "<pending>"
    assigned = dict(pending)
    assigned["status"] = {
        "loadBalancer": {"ingress": [{"hostname": "lb.example.com"}, {"ip": "34.1.2.3"}]}
    }
    assert cells("services", assigned)["EXTERNAL-IP"] == "34.1.2.3,lb.example.com"
    external = service(type="ExternalName", externalName="db.example.com")
    row = cells("services", external)
    assert (row["CLUSTER-IP"], row["EXTERNAL-IP"], row["PORT(S)"]) == (
        "<none>",
        "db.example.com",
        "<none>",
    )
    headless = service(clusterIP="None", clusterIPs=["None"], selector={"b": "2", "a": "1"})
    row = cells("services", headless)
    assert (row["TYPE"], row["CLUSTER-IP"], row["SELECTOR"]) == ("ClusterIP", "None", "a=1,b=2")
    assert cells("services", service(clusterIP="10.96.0.7"))["SELECTOR"] == "<none>"


# --- namespaces, events, configmaps, secrets ----------------------------------------------------


def test_namespace_rows() -> None:
    meta = {"name": "serving", "creationTimestamp": ago(90)}
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": meta, "status": {"phase": "Active"}}
    assert cells("namespaces", ns) == {"NAME": "serving", "STATUS": "Active", "AGE": "90s"}
    ns["status"] = {"phase": "Terminating"}
    assert cells("namespaces", ns)["STATUS"] == "Terminating"


def event(**fields: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "llm-serve-0.17f3a", "namespace": "serving"},
        "involvedObject": {
            "kind": "Pod",
            "name": "llm-serve-0",
            "fieldPath": "spec.containers{vllm}",
        },
        "reason": "BackOff",
        "type": "Warning",
        "message": "Back-off restarting failed container vllm\n",
        "source": {"component": "kubelet", "host": "gpu-1"},
        "firstTimestamp": ago(600),
        "lastTimestamp": ago(45),
        "count": 7,
    }
    obj.update(fields)
    return obj


def test_event_row_uses_the_wide_printer() -> None:
    assert cells("events", event()) == {
        "LAST SEEN": "45s",
        "TYPE": "Warning",
        "REASON": "BackOff",
        "OBJECT": "pod/llm-serve-0",
        "SUBOBJECT": "spec.containers{vllm}",
        "SOURCE": "kubelet, gpu-1",
        "MESSAGE": "Back-off restarting failed container vllm",
        "FIRST SEEN": "10m",
        "COUNT": 7,
        "NAME": "llm-serve-0.17f3a",
    }


def test_event_from_the_new_events_api() -> None:
    obj = event(
        firstTimestamp=None,
        lastTimestamp=None,
        count=None,
        eventTime="2025-03-10T11:58:00.000000Z",
        source={},
        reportingComponent="deployment-controller",
        involvedObject={"kind": "Deployment", "name": "llm-serve"},
    )
    row = cells("events", obj)
    assert (row["LAST SEEN"], row["FIRST SEEN"], row["COUNT"]) == ("2m", "2m", 1)
    assert (row["SOURCE"], row["OBJECT"], row["SUBOBJECT"]) == (
        "deployment-controller",
        "deployment/llm-serve",
        "",
    )
    series = event(series={"count": 12, "lastObservedTime": "2025-03-10T11:59:30.000000Z"})
    row = cells("events", series)
    assert (row["LAST SEEN"], row["COUNT"]) == ("30s", 12)


def test_configmap_and_secret_data_counts() -> None:
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "vllm-args", "creationTimestamp": ago(86400 * 3)},
        "data": {"MAX_MODEL_LEN": "8192", "DTYPE": "bfloat16"},
        "binaryData": {"tokenizer.bin": "AAEC"},
    }
    assert cells("configmaps", cm) == {"NAME": "vllm-args", "DATA": 3, "AGE": "3d"}
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "hf-token", "creationTimestamp": ago(86400 * 30)},
        "type": "Opaque",
        "data": {"HF_TOKEN": "aGZfeHh4"},
    }
    assert cells("secrets", secret) == {
        "NAME": "hf-token",
        "TYPE": "Opaque",
        "DATA": 1,
        "AGE": "30d",
    }
    tls = dict(secret, type="kubernetes.io/tls", data={"tls.crt": "", "tls.key": ""})
    assert (cells("secrets", tls)["TYPE"], cells("secrets", tls)["DATA"]) == (
        "kubernetes.io/tls",
        2,
    )


# --- custom resources ---------------------------------------------------------------------------


def inference_pool() -> dict[str, Any]:
    return {
        "apiVersion": "inference.networking.k8s.io/v1",
        "kind": "InferencePool",
        "metadata": {"name": "long-ctx", "namespace": "serving", "creationTimestamp": ago(400)},
        "spec": {"targetPortNumber": 8000, "selector": {"app": "llm-long"}, "weight": 0.25},
        "status": {"lastSync": ago(65), "ready": True},
    }


def test_custom_resource_without_printer_columns_shows_name_and_age() -> None:
    table = build_table("inferencepools", [inference_pool()], NOW)
    columns = table["columnDefinitions"]
    assert [(c["name"], c["type"], c["priority"]) for c in columns] == [
        ("Name", "string", 0),
        ("Age", "date", 0),
    ]
    assert columns[1]["description"].startswith("CreationTimestamp is a timestamp")
    assert table["rows"][0]["cells"] == ["long-ctx", "6m40s"]


def test_custom_resource_printer_columns() -> None:
    printer_columns = [
        ("Port", "integer", ".spec.targetPortNumber", 0),
        ("App", "string", ".spec.selector.app", 0),
        ("Synced", "date", ".status.lastSync", 0),
        ("Weight", "number", ".spec.weight", 1),
        ("Selector", "string", ".spec.selector", 1),
        ("Ready", "boolean", ".status.ready", 1),
        ("Missing", "string", ".status.conditions[0].reason", 1),
    ]
    table = build_table("inferencepools", [inference_pool()], NOW, printer_columns=printer_columns)
    first = table["columnDefinitions"][1]
    assert first == {
        "name": "Port",
        "type": "integer",
        "format": "",
        "description": "Custom resource definition column (in JSONPath format):"
        " .spec.targetPortNumber",
        "priority": 0,
    }
    assert [c["priority"] for c in table["columnDefinitions"]] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert table["rows"][0]["cells"] == [
        "long-ctx",
        8000,
        "llm-long",
        "65s",
        0.25,
        '{"app":"llm-long"}',
        True,
        None,
    ]


def test_custom_resource_cells_follow_go_formatting() -> None:
    obj = inference_pool()
    obj["spec"].update({"big": 1_000_000.0, "ratio": 2.5, "dotted.key": "yes", "on": False})
    obj["status"]["lastSync"] = "not a time"
    printer_columns = [
        ("Big", "string", ".spec.big", 0),
        ("Ratio", "string", ".spec.ratio", 0),
        ("Dotted", "string", ".spec['dotted.key']", 0),
        ("On", "string", ".spec.on", 0),
        ("Synced", "date", ".status.lastSync", 0),
        ("Port", "string", ".spec.targetPortNumber", 0),
    ]
    row = build_table("inferencepools", [obj], NOW, printer_columns=printer_columns)["rows"][0]
    assert row["cells"][1:] == ["1e+06", "2.5", "yes", "false", "<invalid>", "8000"]


def test_custom_resource_rejects_complex_json_path() -> None:
    with pytest.raises(ValueError, match="unrecognized column definition"):
        build_table(
            "inferencepools", [], NOW, printer_columns=[("X", "string", ".spec[?(@.a)]", 0)]
        )


# --- what kubectl really prints -----------------------------------------------------------------


class _TableServer(BaseHTTPRequestHandler):
    """Just enough of an API server for `kubectl get pods`: discovery and one Table."""

    pods: list[dict[str, Any]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        body: dict[str, Any]
        if path == "/api":
            body = {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        elif path == "/apis":
            body = {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
        elif path == "/api/v1":
            pods = {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod"}
            pods["verbs"] = ["get", "list"]
            body = {"kind": "APIResourceList", "groupVersion": "v1", "resources": [pods]}
        elif path == "/api/v1/namespaces/serving/pods" and "as=Table" in self.headers.get(
            "Accept", ""
        ):
            body = build_table("pods", self.pods, NOW, resource_version="7")
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def table_server(tmp_path: Path) -> Iterator[Path]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TableServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: sim\n"
        f"clusters: [{{name: sim, cluster: {{server: 'http://127.0.0.1:{server.server_address[1]}'}}}}]\n"
        "users: [{name: sim, user: {token: t}}]\n"
        "contexts: [{name: sim, context: {cluster: sim, user: sim, namespace: serving}}]\n"
    )
    try:
        yield kubeconfig
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.kubectl
def test_kubectl_prints_the_table(table_server: Path, tmp_path: Path) -> None:
    kubectl_bin = require_tool("kubectl")
    crashing = {
        "name": "vllm",
        "ready": False,
        "restartCount": 3,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(45)}},
    }
    _TableServer.pods = [pod(statuses=[crashing])]

    def kubectl(*args: str) -> list[list[str]]:
        cache = str(tmp_path / "cache")
        cmd = [kubectl_bin, "--kubeconfig", str(table_server), "--cache-dir", cache, *args]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
        return [line.split("  ") for line in out.stdout.splitlines()]

    def columns(lines: list[list[str]]) -> list[list[str]]:
        return [[part.strip() for part in line if part.strip()] for line in lines]

    assert columns(kubectl("get", "pods")) == [
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        ["llm-0", "0/1", "CrashLoopBackOff", "3 (45s ago)", "5m30s"],
    ]
    wide = columns(kubectl("get", "pods", "-o", "wide"))
    assert wide[0][5:] == ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]
    assert wide[1][5:] == ["10.0.0.5", "gpu-1", "<none>", "<none>"]
