"""The runbook's guidance for each step, shown beside the step so a drill teaches as it goes.

Wording follows ../shared/RUNBOOK.md: why the step matters, what to look for, and what the
step's actions trade away.
"""

from __future__ import annotations

from services.models import Guidance as Guidance
from services.models import Step

GUIDANCE: dict[Step, Guidance] = {
    Step.ROLLBACK: Guidance(
        why="Restore service first, analyse later: the last-known-good revision served this "
        "traffic well, so returning to it is the fastest safe fix.",
        look_for="The newest earlier revision with no drift findings (marked LKG). A rollout "
        "that stalls, crash-loops or leaves pods Pending is not done, whatever "
        "kubectl says. GitOps-managed Deployments revert manual changes.",
        tradeoff="A rollback restores the pod template only: replicas, HPA, ConfigMaps and "
        "Secrets stay as they are now. Every pod is replaced.",
        runbook=(
            "kubectl rollout undo deploy/<name> -n <ns>",
            "kubectl rollout status deploy/<name> -n <ns>",
        ),
    ),
    Step.PIN: Guidance(
        why="Stop drift: a mutable image tag, an unpinned model revision or a dtype left to "
        "'auto' lets the next restart serve something other than what was tested.",
        look_for=":latest or untagged images, no --revision, dtype unset/auto, max model len "
        "unset. Check the live pods, the template, and the revision undo restores.",
        tradeoff="Each pin triggers a rollout. Pinning freezes a choice: record it so it can "
        "be revisited after the incident.",
        runbook=(
            "kubectl get pod/<pod> -n <ns> -o jsonpath='{.spec.containers[0].args}'",
            "kubectl get pod/<pod> -n <ns> -o jsonpath='{.spec.containers[0].env}'",
        ),
    ),
    Step.LATENCY: Guidance(
        why="Tail latency spikes come from a few heavy requests and too much concurrency; "
        "shrinking the limits trades capacity for stability and avoids a meltdown.",
        look_for="The effective max output tokens, max context length and max running "
        "sequences, including the engine's implicit defaults (which can change with "
        "the GPU class).",
        tradeoff="Lower limits reject or truncate some requests and reduce peak throughput. "
        "Change one knob at a time, small steps, and keep each revertible.",
        runbook=(),
    ),
    Step.ROUTE: Guidance(
        why="A small fraction of long-context requests can destabilise the whole fleet; "
        "sending them to a dedicated deployment keeps chat traffic fast.",
        look_for="A router (Gateway API HTTPRoute, Istio VirtualService) that can match the "
        "x-context-class header; clients must set it for long prompts.",
        tradeoff="The long-context deployment needs its own GPUs; with no router, clients or "
        "the gateway team must send the header-routed traffic themselves.",
        runbook=(),
    ),
    Step.HARDWARE: Guidance(
        why="Pods that landed on a different GPU class run a different numeric and latency "
        "profile: that is training-serving skew by hardware.",
        look_for="Node GPU labels, nvidia-smi inside the pod, and DCGM's modelName should all "
        "name the GPU class last-known-good ran on.",
        tradeoff="Forcing the GPU class can leave pods Pending when that class is full; "
        "cordoning or tainting nodes affects every workload on them.",
        runbook=(
            "kubectl get pod/<pod> -n <ns> -o jsonpath='{.spec.nodeName}{\"\\n\"}'",
            "kubectl exec -n <ns> <pod> -- nvidia-smi --query-gpu=name,memory.total --format=csv",
        ),
    ),
    Step.VALIDATE: Guidance(
        why="Declare resolved only after validation: a premature 'resolved' is the costliest "
        "mistake. The gate fails closed: missing or stale data is not a pass.",
        look_for="Tokens/sec back near baseline, p95/p99 stable over the whole window, GPU "
        "utilisation and memory like last-known-good, and the rollout complete.",
        tradeoff="Waiting out the stability window costs minutes; closing early costs a "
        "second incident.",
        runbook=(),
    ),
}
