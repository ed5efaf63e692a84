"""GPU identity: one class string (``H100-80GB``, ``A10G``...) from every source that names a GPU.

Node labels, nvidia-smi and DCGM each spell the same hardware differently; the hardware step
compares them, so they are all normalized here to one vocabulary.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from services.errors import InvalidError, NotFoundError
from services.models import GpuReading

GFD_PRODUCT = "nvidia.com/gpu.product"
GFD_MEMORY = "nvidia.com/gpu.memory"
GKE_ACCELERATOR = "cloud.google.com/gke-accelerator"
GKE_PARTITION = "cloud.google.com/gke-gpu-partition-size"
KARPENTER_GPU_NAME = "karpenter.k8s.aws/instance-gpu-name"
KARPENTER_GPU_MEMORY = "karpenter.k8s.aws/instance-gpu-memory"
EKS_ACCELERATOR = "k8s.amazonaws.com/accelerator"
INSTANCE_TYPE = "node.kubernetes.io/instance-type"
BETA_INSTANCE_TYPE = "beta.kubernetes.io/instance-type"

# Most specific first: a node selector on the GFD label survives instance-type changes.
GPU_LABELS: tuple[str, ...] = (
    GFD_PRODUCT,
    GKE_ACCELERATOR,
    KARPENTER_GPU_NAME,
    EKS_ACCELERATOR,
    INSTANCE_TYPE,
    BETA_INSTANCE_TYPE,
)

# Total memory as nvidia-smi reports it (MiB). Used for vLLM's hardware-dependent defaults.
CLASS_MEMORY_MIB: dict[str, int] = {
    "B200": 183359,
    "H200-141GB": 143771,
    "GH200": 97871,
    "H100-94GB": 95830,
    "H100-80GB": 81559,
    "A100-80GB": 81920,
    "A100-40GB": 40960,
    "L40S": 46068,
    "L40": 46068,
    "A40": 46068,
    "V100-32GB": 32768,
    "A30": 24576,
    "A10G": 23028,
    "A10": 23028,
    "L4": 23034,
    "V100-16GB": 16384,
    "T4": 15360,
}

# (class family, pattern). Order matters: GH200 before H200, A100 before A10G before A10...
_FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (family, re.compile(rf"(?<![A-Z0-9]){pattern}(?![0-9A-Z])"))
    for family, pattern in (
        ("GH200", "GH200"),
        ("B200", "B200"),
        ("H200", "H200"),
        ("H100", "H100"),
        ("A100", "A100"),
        ("A10G", "A10G"),
        ("A10", "A10"),
        ("A30", "A30"),
        ("A40", "A40"),
        ("L40S", "L40S"),
        ("L40", "L40"),
        ("L4", "L4"),
        ("T4", "T4"),
        ("V100", "V100"),
    )
)
# Families sold in more than one memory size: (GB when known from the name, threshold MiB).
_SIZED: dict[str, tuple[tuple[int, str], ...]] = {
    "A100": ((60000, "A100-80GB"), (0, "A100-40GB")),
    "V100": ((24000, "V100-32GB"), (0, "V100-16GB")),
    "H100": ((90000, "H100-94GB"), (0, "H100-80GB")),
}
_SINGLE_SIZE = {"H200": "H200-141GB"}

# Well-known cloud GPU instance types (lower-case prefix or pattern -> class).
_INSTANCE_TYPES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), gpu_class)
    for pattern, gpu_class in (
        # AWS
        (r"^p6-b200\.", "B200"),
        (r"^p5e(n)?\.", "H200-141GB"),
        (r"^p5\.", "H100-80GB"),
        (r"^p4de\.", "A100-80GB"),
        (r"^p4d\.", "A100-40GB"),
        (r"^p3dn\.", "V100-32GB"),
        (r"^p3\.", "V100-16GB"),
        (r"^g6e\.", "L40S"),
        (r"^gr?6\.", "L4"),
        (r"^g5\.", "A10G"),
        (r"^g4dn\.", "T4"),
        # GCP
        (r"^a4-highgpu-", "B200"),
        (r"^a3-ultragpu-", "H200-141GB"),
        (r"^a3-(high|mega|edge)gpu-", "H100-80GB"),
        (r"^a2-ultragpu-", "A100-80GB"),
        (r"^a2-(high|mega)gpu-", "A100-40GB"),
        (r"^g2-standard-", "L4"),
        # Azure
        (r"^standard_nd\d+isr_h200_v5$", "H200-141GB"),
        (r"^standard_nd\d+isr?_h100_v5$", "H100-80GB"),
        (r"^standard_nc\d+ads_h100_v5$", "H100-94GB"),
        (r"^standard_nd\d+amsr_a100_v4$", "A100-80GB"),
        (r"^standard_nd\d+asr_v4$", "A100-40GB"),
        (r"^standard_nc\d+ads_a100_v4$", "A100-80GB"),
        (r"^standard_nc\d+as_t4_v3$", "T4"),
        (r"^standard_nv\d+ads_a10_v5$", "A10"),
        (r"^standard_nc\d+s_v3$", "V100-16GB"),
    )
)
_MIG = re.compile(r"-MIG-(\d+G\.\d+GB(?:\+ME)?)$")


def _clean(name: str) -> tuple[str, bool]:
    """Upper-case, one separator, vendor prefix and time-slicing suffix removed."""
    text = re.sub(r"[\s_]+", "-", name.strip().upper())
    text = re.sub(r"-+", "-", text).strip("-")
    shared = text.endswith("-SHARED")
    if shared:
        text = text[: -len("-SHARED")]
    for prefix in ("NVIDIA-TESLA-", "NVIDIA-", "TESLA-"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    return text, shared


def is_shared(label_value: str) -> bool:
    """Whether a GFD product label marks a time-sliced GPU (``-SHARED`` suffix)."""
    return _clean(label_value)[1]


def gpu_class_from_name(name: str | None, memory_mib: int | None = None) -> str | None:
    """Normalize any GPU name to a class: an nvidia-smi name (``NVIDIA H100 80GB HBM3``),
    a DCGM ``modelName``, a GFD product label (``NVIDIA-A100-SXM4-40GB-MIG-1g.5gb-SHARED``),
    a GKE accelerator (``nvidia-tesla-t4``) or a Karpenter GPU name (``a10g``).

    ``memory_mib`` settles the size where the name leaves it out (``A100-PCIE``). A MIG slice
    keeps its profile (``A100-40GB-MIG-1g.5gb``) because it is different hardware to a server.
    An unknown GPU comes back as its cleaned name, so sources that agree still compare equal.
    None for an empty name. Raises nothing.
    """
    if not name or not name.strip():
        return None
    text, _shared = _clean(name)
    mig = _MIG.search(text)
    if mig:
        text = text[: mig.start()]
    family = next((fam for fam, pattern in _FAMILIES if pattern.search(text)), None)
    if family is None:
        base = text
    elif family in _SIZED:
        base = _sized_class(family, text, memory_mib)
    else:
        base = _SINGLE_SIZE.get(family, family)
    if mig:
        return f"{base}-MIG-{mig.group(1).lower()}"
    return base


def _sized_class(family: str, text: str, memory_mib: int | None) -> str:
    gigabytes = re.search(r"(?<![0-9])(\d+)GB", text)
    if gigabytes:
        return f"{family}-{gigabytes.group(1)}GB"
    if family == "H100" and "NVL" in text:
        return "H100-94GB"
    if family == "H100" and memory_mib is None:
        return "H100-80GB"  # every H100 but the NVL has 80 GB
    if memory_mib is None:
        return family  # size unknown: matches either size, see same_class
    return next(cls for threshold, cls in _SIZED[family] if memory_mib >= threshold)


def same_class(a: str | None, b: str | None) -> bool:
    """Whether two classes name the same hardware; a bare family (``A100``) matches any size."""
    if a is None or b is None:
        return False
    if a == b:
        return True
    return (a in _SIZED and b.startswith(a + "-") and "-MIG-" not in b) or (
        b in _SIZED and a.startswith(b + "-") and "-MIG-" not in a
    )


def class_memory_mib(gpu_class: str | None) -> int | None:
    """The total memory (MiB) of a known class, None when unknown. Raises nothing."""
    if not gpu_class or "-MIG-" in gpu_class:
        return None
    return CLASS_MEMORY_MIB.get(gpu_class)


def gpu_class_from_instance_type(instance_type: str | None) -> str | None:
    """The GPU class of a well-known AWS/GCP/Azure GPU instance type, else None."""
    if not instance_type:
        return None
    lowered = instance_type.strip().lower()
    return next((cls for pattern, cls in _INSTANCE_TYPES if pattern.search(lowered)), None)


def _int_or_none(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def class_from_label(key: str, value: str, labels: Mapping[str, str] | None = None) -> str | None:
    """The GPU class one label (key=value) names, using the node's other labels for size/MIG."""
    labels = labels or {}
    if key in (INSTANCE_TYPE, BETA_INSTANCE_TYPE):
        return gpu_class_from_instance_type(value)
    if key == GFD_PRODUCT:
        return gpu_class_from_name(value, _int_or_none(labels.get(GFD_MEMORY)))
    if key == KARPENTER_GPU_NAME:
        return gpu_class_from_name(value, _int_or_none(labels.get(KARPENTER_GPU_MEMORY)))
    if key in (GKE_ACCELERATOR, EKS_ACCELERATOR):
        # GKE's and EKS's unsized "nvidia-tesla-a100"/"-v100" are the 40 GB / 16 GB parts.
        gpu_class = gpu_class_from_name(value)
        gpu_class = {"A100": "A100-40GB", "V100": "V100-16GB"}.get(gpu_class or "", gpu_class)
        partition = labels.get(GKE_PARTITION)
        if gpu_class and partition and key == GKE_ACCELERATOR:
            gpu_class = f"{gpu_class}-MIG-{partition.lower()}"
        return gpu_class
    return None


def gpu_class_from_labels(labels: Mapping[str, str] | None) -> tuple[str | None, str]:
    """(class, label key that said so) from a node's labels, most specific label first;
    (None, "") when no label names a GPU. Raises nothing."""
    labels = labels or {}
    for key in GPU_LABELS:
        value = labels.get(key)
        if value:
            gpu_class = class_from_label(key, value, labels)
            if gpu_class:
                return gpu_class, key
    return None, ""


def parse_nvidia_smi_csv(text: str) -> list[tuple[str, int | None]]:
    """Rows of ``nvidia-smi --query-gpu=name,memory.total --format=csv[,noheader][,nounits]``:
    (name, memory MiB or None for ``[N/A]``), one per GPU.

    Raises InvalidError when the text is not that output (an error from nvidia-smi, no rows,
    a row without a readable memory).
    """
    rows: list[tuple[str, int | None]] = []
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for number, line in enumerate(lines, start=1):
        if number == 1 and line.lower().replace(" ", "").startswith("name,memory.total"):
            continue
        name, comma, memory = line.rpartition(",")
        name, memory = name.strip(), memory.strip()
        if not comma or not name or "," in name:
            raise InvalidError(_smi_garbage(line))
        if memory.upper().strip("[]") in ("N/A", "NOT SUPPORTED"):
            rows.append((name, None))
            continue
        match = re.fullmatch(r"(\d+)\s*(MiB|MB)?", memory, flags=re.IGNORECASE)
        if not match:
            raise InvalidError(_smi_garbage(line))
        rows.append((name, int(match.group(1))))
    if not rows:
        raise InvalidError(
            "nvidia-smi printed no GPU rows: the container may not see a GPU (check that the pod "
            "requests nvidia.com/gpu and that the NVIDIA device plugin runs on its node)"
        )
    return rows


def _smi_garbage(line: str) -> str:
    return (
        f"nvidia-smi output is not a name,memory.total CSV row: {line[:120]!r}; run "
        "`nvidia-smi --query-gpu=name,memory.total --format=csv` in the pod to see the error"
    )


def _pod_template(template: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A pod template from a template, Deployment, ReplicaSet or Pod dict."""
    if not template:
        return {}
    spec = template.get("spec") or {}
    if isinstance(spec.get("template"), Mapping):
        return spec["template"]  # type: ignore[no-any-return]
    return template


def _selector_classes(template: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(class, key, value) for each GPU label the template's scheduling constraints require."""
    spec = template.get("spec") or {}
    found: list[tuple[str, str, str]] = []
    for key, value in (spec.get("nodeSelector") or {}).items():
        gpu_class = class_from_label(key, str(value)) if key in GPU_LABELS else None
        if gpu_class:
            found.append((gpu_class, key, str(value)))
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in affinity.get("nodeSelectorTerms") or []:
        for expression in term.get("matchExpressions") or []:
            key = expression.get("key", "")
            if key not in GPU_LABELS or expression.get("operator") != "In":
                continue
            for value in expression.get("values") or []:
                gpu_class = class_from_label(key, str(value))
                if gpu_class:
                    found.append((gpu_class, key, str(value)))
    return found


def expected_gpu_class(
    lkg_template: Mapping[str, Any] | None,
    healthy_pod_classes: Sequence[str | None],
    configured: str | None,
) -> tuple[str | None, str]:
    """The GPU class the workload should run on, and why: the last-known-good template's
    nodeSelector or required node affinity on a GPU label, else the majority class of healthy
    pods, else the configured class. (None, reason) when none of them says. Raises nothing.
    """
    constraints = _selector_classes(_pod_template(lkg_template))
    classes = sorted({cls for cls, _key, _value in constraints})
    if len(classes) == 1:
        _cls, key, value = constraints[0]
        return classes[0], f"last-known-good revision requires {key}={value}"
    counts = Counter(cls for cls in healthy_pod_classes if cls)
    ranked = counts.most_common(2)
    if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
        cls, count = ranked[0]
        return cls, f"{count} of {sum(counts.values())} healthy pods run on {cls}"
    if configured and configured.strip():
        cls = gpu_class_from_name(configured) or configured.strip()
        return cls, f"configured expected GPU class {configured.strip()}"
    why = []
    if len(classes) > 1:
        why.append(f"the last-known-good revision allows several classes ({', '.join(classes)})")
    if ranked:
        why.append("healthy pods are split evenly between GPU classes")
    reason = "; ".join(why) or "no last-known-good GPU selector and no healthy pod with a known GPU"
    return None, f"{reason}: set the expected GPU class in the configuration"


def _classes_from_smi(
    smi: str | Sequence[tuple[str, int | None]] | None,
) -> tuple[list[tuple[str, int | None]], str]:
    if smi is None:
        return [], ""
    if isinstance(smi, str):
        try:
            return parse_nvidia_smi_csv(smi), ""
        except InvalidError as exc:
            return [], str(exc)
    return list(smi), ""


def gpu_rows(
    pods: Sequence[Mapping[str, Any]],
    nodes: Sequence[Mapping[str, Any]],
    smi_by_pod: Mapping[str, str | Sequence[tuple[str, int | None]]],
    dcgm_by_pod: Mapping[str, str],
    expected: str | None,
) -> list[GpuReading]:
    """One GpuReading per pod, following pod -> node -> labels -> nvidia-smi -> DCGM.

    ``smi_by_pod`` holds nvidia-smi CSV text or parsed rows per pod name; ``dcgm_by_pod`` the
    DCGM ``modelName`` per pod. The class is taken from what the container sees (nvidia-smi,
    then DCGM) before what the node claims (labels); disagreements go in the note. A row is a
    mismatch when its class differs from ``expected``. Raises nothing.
    """
    expected_class = gpu_class_from_name(expected) if expected else None
    by_name = {str((n.get("metadata") or {}).get("name", "")): n for n in nodes}
    rows: list[GpuReading] = []
    for pod in pods:
        name = str((pod.get("metadata") or {}).get("name", ""))
        node_name = str((pod.get("spec") or {}).get("nodeName") or "")
        node = by_name.get(node_name)
        labels: Mapping[str, str] = ((node or {}).get("metadata") or {}).get("labels") or {}
        label_class, label_key = gpu_class_from_labels(labels)
        smi_rows, smi_error = _classes_from_smi(smi_by_pod.get(name))
        smi_name = smi_rows[0][0] if smi_rows else None
        smi_memory = smi_rows[0][1] if smi_rows else None
        smi_class = gpu_class_from_name(smi_name, smi_memory)
        dcgm_model = dcgm_by_pod.get(name) or None
        dcgm_class = gpu_class_from_name(dcgm_model)
        observed = smi_class or dcgm_class
        gpu_class = observed or label_class
        # A MIG slice shows its parent's name in nvidia-smi; the label keeps the profile.
        if observed and label_class and label_class.startswith(f"{observed}-MIG-"):
            gpu_class = label_class
        notes: list[str] = []
        if not node_name:
            notes.append("not scheduled yet")
        elif node is None:
            notes.append(f"node {node_name} not found")
        if smi_error:
            notes.append(smi_error)
        if len({gpu_class_from_name(n, m) for n, m in smi_rows}) > 1:
            notes.append("nvidia-smi shows GPUs of different classes")
        for source, cls in (("nvidia-smi", smi_class), ("DCGM", dcgm_class)):
            if cls and label_class and not same_class(cls, label_class.split("-MIG-")[0]):
                notes.append(
                    f"node label {label_key} says {label_class} but {source} reports {cls}"
                )
                break
        if label_key == GFD_PRODUCT and is_shared(labels.get(GFD_PRODUCT, "")):
            notes.append("time-sliced GPU (SHARED): other pods share it")
        mismatch = bool(expected_class and gpu_class and not same_class(gpu_class, expected_class))
        if mismatch:
            notes.insert(0, f"on {gpu_class}, expected {expected_class}")
        elif node_name and gpu_class is None:
            notes.append("GPU class unknown: no GPU label, nvidia-smi or DCGM reading")
        rows.append(
            GpuReading(
                pod=name,
                node=node_name,
                label_product=label_class,
                label_source=label_key,
                smi_name=smi_name,
                smi_memory_mib=smi_memory,
                dcgm_model=dcgm_model,
                gpu_class=gpu_class,
                expected_class=expected_class,
                mismatch=mismatch,
                note="; ".join(notes),
            )
        )
    return rows


def node_selector_for(
    gpu_class_or_label_value: str, nodes: Sequence[Mapping[str, Any]]
) -> dict[str, str]:
    """The nodeSelector that pins a workload to a GPU class, using a label and value the
    cluster's nodes actually carry (GFD ``nvidia.com/gpu.product`` preferred, then the cloud
    labels, then the instance type). Where nodes of the class carry different values the most
    common one wins, a dedicated (not ``-SHARED``) GPU first.

    Raises InvalidError for an empty class, NotFoundError when no node carries the class.
    """
    wanted = gpu_class_from_name(gpu_class_or_label_value)
    if wanted is None:
        raise InvalidError("no GPU class given: name one, e.g. H100-80GB or NVIDIA-H100-80GB-HBM3")
    all_labels = [((node.get("metadata") or {}).get("labels") or {}) for node in nodes]
    for key in GPU_LABELS:
        values: Counter[str] = Counter(
            labels[key]
            for labels in all_labels
            if labels.get(key) and same_class(class_from_label(key, labels[key], labels), wanted)
        )
        if values:
            return {key: min(values, key=lambda v: (-values[v], is_shared(v), v))}
    seen = Counter(cls for cls, _key in map(gpu_class_from_labels, all_labels) if cls)
    carried = ", ".join(f"{cls} x{count}" for cls, count in sorted(seen.items())) or "none"
    raise NotFoundError(
        f"no node carries GPU class {wanted} (GPU classes on nodes: {carried}); add nodes of that "
        "class or choose one the cluster has"
    )
