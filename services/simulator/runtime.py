"""The container runtime the kubelet asks: how a serving container starts, what it logs, and
which executables it has for `kubectl exec`."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from services.simulator.controllers.kubelet import StartOutcome
from services.simulator.engine_startup import startup_failure
from services.simulator.gpus import GpuClass, gpu_by_product
from services.simulator.nvidia_smi import (
    DRIVER_VERSION_PATH,
    NodeShape,
    driver_version_file,
    run_nvidia_smi,
)
from services.simulator.pod_logs import LogBook
from services.simulator.scenario import Scenario
from services.simulator.serving_config import NotAServingContainer, parse_container
from services.simulator.shell import Container
from services.simulator.startup_logs import shutdown_log, timed_startup_log
from services.simulator.store import Store

if TYPE_CHECKING:
    from services.simulator.fleet_wiring import FleetWiring

Obj = dict[str, Any]
Program = Callable[[list[str]], tuple[int, str, str]]
GPU_RESOURCE = "nvidia.com/gpu"
# The serving images (vllm-openai, TGI, SGLang) build on CUDA's Ubuntu 22.04 images.
OS_RELEASE = """PRETTY_NAME="Ubuntu 22.04.5 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.5 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
HOME_URL="https://www.ubuntu.com/"
SUPPORT_URL="https://help.ubuntu.com/"
BUG_REPORT_URL="https://bugs.launchpad.net/ubuntu/"
PRIVACY_POLICY_URL="https://www.ubuntu.com/legal/terms-and-policies/privacy-policy"
UBUNTU_CODENAME=jammy
"""


def gpu_request(container: Obj) -> int:
    resources = container.get("resources") or {}
    for section in ("limits", "requests"):
        value = (resources.get(section) or {}).get(GPU_RESOURCE)
        if value is not None:
            try:
                return int(str(value))
            except ValueError:
                return 0
    return 0


def node_gpu(node: Obj | None) -> GpuClass | None:
    if node is None:
        return None
    label = node["metadata"].get("labels", {}).get("nvidia.com/gpu.product", "")
    if not label:
        return None
    try:
        return gpu_by_product(label.removesuffix("-SHARED"))
    except KeyError:
        return None


def node_shape(node: Obj | None) -> NodeShape | None:
    """The machine under a node, from its instance-type label, GPU count and CPU capacity."""
    if node is None:
        return None
    labels = node["metadata"].get("labels") or {}
    capacity = (node.get("status") or {}).get("capacity") or {}
    try:
        gpus = int(str(capacity.get(GPU_RESOURCE) or labels.get("nvidia.com/gpu.count", "")))
        vcpus = int(str(capacity.get("cpu", "")))
    except ValueError:
        return None
    return NodeShape(labels.get("node.kubernetes.io/instance-type", ""), gpus, vcpus)


def image_digest(image: str, known: dict[str, str]) -> str:
    """The digest an image reference resolves to: pinned in the reference, the scenario's, or
    derived from the reference (stable across runs)."""
    if "@sha256:" in image:
        return "sha256:" + image.split("@sha256:", 1)[1]
    if image in known:
        return known[image]
    return "sha256:" + hashlib.sha256(image.encode()).hexdigest()


class ServingRuntime:
    """Implements the kubelet's RuntimeModel from the serving model, and keeps container logs."""

    def __init__(self, store: Store, scenario: Scenario) -> None:
        self.store = store
        self.scenario = scenario
        self.stop_delay_s = scenario.timing.get("stop_s", 5.0)
        self._start_s = scenario.timing.get("container_start_s", 15.0)
        self._load_s = scenario.timing.get("model_load_s", 45.0)
        self.logbook = LogBook()
        store.add_listener(self._on_change)

    def _on_change(self, plural: str, type_: str, obj: Obj, old: Obj | None) -> None:
        if plural == "pods" and type_ == "DELETED":
            meta = obj["metadata"]
            self.logbook.forget(meta["namespace"], meta["name"], str(meta.get("uid", "")))

    def start(self, pod: Obj, node: Obj, container: Obj) -> StartOutcome:
        digest = image_digest(str(container.get("image", "")), self.scenario.images)
        name = container["name"]
        try:
            config = parse_container(container)
        except NotAServingContainer:
            self.logbook.started(pod, name, lambda t0: [(0.0, f"{name}: started")])
            return StartOutcome(self._start_s, 2.0, None, digest)
        gpu = node_gpu(node)
        count = gpu_request(container)
        if gpu is None or count == 0:
            no_gpu = "RuntimeError: No CUDA GPUs are available"
            self.logbook.started(pod, name, lambda t0: [(8.0, no_gpu)])
            return StartOutcome(self._start_s, 8.0, no_gpu, digest)
        failure = startup_failure(config, gpu, count)
        # Bigger models and slower GPUs load longer; a failure surfaces after part of the load.
        load = self._load_s / max(0.25, gpu.bandwidth_factor) ** 0.5
        lifetime = load * (0.4 if failure else 1.0)
        # The engine's last start-up line comes when the kubelet sees it ready (or dead).
        self.logbook.started(
            pod,
            name,
            lambda t0: timed_startup_log(
                config, gpu, gpu_count=count, start_time=t0, last_line_s=lifetime
            ),
            on_stop=lambda at: shutdown_log(config, at),
        )
        return StartOutcome(self._start_s, lifetime, failure, digest)

    def node_ip(self, node_name: str) -> str:
        node = self.store.peek("nodes", "", node_name)
        for address in (node or {}).get("status", {}).get("addresses", []):
            if address.get("type") == "InternalIP":
                return str(address["address"])
        return "10.0.0.1"

    def programs(self, pod: Obj, container: Obj, fleet: FleetWiring) -> Container:
        """The executables, environment and files a process in this container sees."""
        env = self._env(pod, container)
        files = {"/etc/hostname": pod["metadata"]["name"] + "\n", "/etc/os-release": OS_RELEASE}

        def printenv(argv: list[str]) -> tuple[int, str, str]:
            if len(argv) > 1:
                values = [env[name] for name in argv[1:] if name in env]
                return (
                    (0 if len(values) == len(argv) - 1 else 1),
                    "".join(f"{v}\n" for v in values),
                    "",
                )
            return 0, "".join(f"{k}={v}\n" for k, v in env.items()), ""

        programs: dict[str, Program] = {
            "env": printenv,
            "printenv": printenv,
            "hostname": lambda argv: (0, pod["metadata"]["name"] + "\n", ""),
            "echo": lambda argv: (0, " ".join(argv[1:]) + "\n", ""),
            "true": lambda argv: (0, "", ""),
            "false": lambda argv: (1, "", ""),
        }
        if (
            gpu_request(container) > 0
            and node_gpu(self.store.peek("nodes", "", pod["spec"].get("nodeName", ""))) is not None
        ):
            shape = node_shape(self.store.peek("nodes", "", pod["spec"].get("nodeName", "")))

            def nvidia_smi(argv: list[str]) -> tuple[int, str, str]:
                readings = fleet.gpu_readings_for(pod, container)
                return run_nvidia_smi(argv[1:], readings, now=self.store.clock.time(), node=shape)

            programs["nvidia-smi"] = nvidia_smi
            # The device plugin names the pod's GPUs and mounts the driver's /proc entry.
            readings = fleet.gpu_readings_for(pod, container)
            env["NVIDIA_VISIBLE_DEVICES"] = ",".join(r.uuid for r in readings)
            files[DRIVER_VERSION_PATH] = driver_version_file(readings)
        return Container(programs, env, files)

    def _env(self, pod: Obj, container: Obj) -> dict[str, str]:
        """The container's environment as the process sees it (secrets resolved, as in a real
        container: masking is the client's job)."""
        out = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOSTNAME": pod["metadata"]["name"],
        }
        namespace = pod["metadata"]["namespace"]
        for item in container.get("env") or []:
            if "value" in item:
                out[item["name"]] = str(item["value"])
                continue
            ref = (item.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                secret = self.store.peek("secrets", namespace, ref.get("name", ""))
                raw = (secret or {}).get("data", {}).get(ref.get("key", ""))
                if raw is not None:
                    out[item["name"]] = base64.b64decode(raw).decode(errors="replace")
        # What the kubelet adds for the API server (enableServiceLinks) and the image's HOME.
        kubernetes = self.store.peek("services", "default", "kubernetes") or {}
        host = (kubernetes.get("spec") or {}).get("clusterIP") or "10.100.0.1"
        out.setdefault("KUBERNETES_SERVICE_HOST", host)
        out.setdefault("KUBERNETES_SERVICE_PORT", "443")
        out.setdefault("HOME", "/root")
        return out
