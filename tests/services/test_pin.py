"""Step 2, pin the configuration: findings and plans through the real client against the
simulator, every plan previewed, applied, verified and reverted through the Gate."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest

from services.errors import InvalidError, SkewmitError
from services.gate import Applied, Gate
from services.journal import Journal
from services.kube import KubeCluster
from services.models import Plan, Severity, Step, Target
from services.pin import (
    applied_config,
    container_patch,
    container_plan,
    dtype_plan,
    image_digest_plan,
    max_model_len_plan,
    model_revision_plan,
    pin_actions,
    pin_findings,
    running_digest,
)
from services.pin import (
    plan as pin_plan,
)
from services.rollout import progress
from services.simulator.runner import Simulator

NS, DEPLOY = "inference", "llm-serve"
SPEED = 150.0
SHA = "0e9e39f249a16976918f6564b8830bc894c89659"
LATEST_DIGEST = "sha256:e7a4d9c2b1f0e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3"
TGI_LATEST_DIGEST = "sha256:3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b"
DRIFT_CODES = {"image-mutable-tag", "model-revision-unpinned", "dtype-unset", "max-model-len-unset"}
Obj = dict[str, Any]


class Harness:
    """A cluster client, journal and gate on one simulator, and the waits a test needs."""

    def __init__(self, sim: Simulator, tmp_path: Path) -> None:
        path = sim.write_kubeconfig(tmp_path / "kubeconfig")
        self.cluster = KubeCluster(str(path), "skewmit-sim")
        target = Target("skewmit-sim", NS, DEPLOY)
        self.journal = Journal.open_for(target, "admin", root=tmp_path / "state")
        self.gate = Gate(self.cluster, self.journal)

    def deployment(self, name: str = DEPLOY) -> Obj:
        return self.cluster.get("Deployment", NS, name)

    def template(self) -> Obj:
        return copy.deepcopy(self.deployment()["spec"]["template"])

    def container(self) -> Obj:
        containers: list[Obj] = self.template()["spec"]["containers"]
        return containers[0]

    def revision(self) -> int:
        return int(
            self.deployment()["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        )

    def settle(self, name: str = DEPLOY) -> None:
        """Wait until the rollout is done, as `kubectl rollout status` would."""
        wait_for(lambda: progress(self.cluster, NS, name).done, f"rollout of {name}")

    def apply(self, plan: Plan, expect_in_diff: str) -> Applied:
        """Preview (RBAC, server dry run, diff), apply and check a new rollout started."""
        revision = self.revision()
        preview = self.gate.preview(plan)
        assert preview.allowed, preview.denied_reason
        assert preview.dry_run_ok, preview.dry_run_message
        assert expect_in_diff in preview.diff
        applied = self.gate.apply(plan, preview)
        assert applied.verified, applied.message
        # The template changed: the controller starts a new revision.
        wait_for(lambda: self.revision() == revision + 1, "a new revision")
        return applied

    def revert(self, applied: Applied, before: Obj) -> None:
        self.settle()
        reverted = self.gate.revert(applied.seq)
        assert reverted.verified, reverted.message
        assert self.template() == before
        self.settle()


def wait_for(condition: Any, what: str, limit_s: float = 120) -> None:
    """Poll a condition the simulated controllers will make true (bounded; not a timing test)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.2)


def flag_value(args: list[str] | tuple[str, ...], flag: str) -> str | None:
    items = list(args)
    return items[items.index(flag) + 1] if flag in items else None


def image_ids(h: Harness) -> set[str]:
    pods = h.cluster.list("Pod", NS, label_selector="app=llm-serve")
    return {s["imageID"] for p in pods for s in p["status"].get("containerStatuses", [])}


# --- findings ------------------------------------------------------------------------------


def test_vllm_findings_on_pods_template_and_no_undo_target_drift(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    h = Harness(shared_sim, tmp_path)
    findings = pin_findings(h.cluster, NS, DEPLOY)
    assert {f.step for f in findings} == {Step.PIN}
    by_subject: dict[str, set[str]] = {}
    for f in findings:
        by_subject.setdefault(f.subject, set()).add(f.code)
    pods = h.cluster.list("Pod", NS, label_selector="app=llm-serve")
    assert pods
    # Pods that drift the same way are one finding naming the count (5,000 pods stay readable).
    on_pods = [f for f in findings if f.detail.get("source") == "pod"]
    assert {f.code for f in on_pods} == DRIFT_CODES
    names = sorted(p["metadata"]["name"] for p in pods)
    assert all(sorted(f.detail["pods"]) == names for f in on_pods)
    assert by_subject[f"deployment/{DEPLOY} container/vllm"] == DRIFT_CODES
    # Revision 2, what undo restores, is pinned: nothing about it.
    assert not [f for f in findings if f.subject.startswith("revision/")]
    template_image = next(
        f for f in findings if f.subject.startswith("deployment/") and f.code == "image-mutable-tag"
    )
    # The template has no imageID; the digest comes from the pods, which agree.
    assert image_ids(h) == {f"docker.io/vllm/vllm-openai@{LATEST_DIGEST}"}
    assert template_image.detail["pinned"] == f"vllm/vllm-openai:latest@{LATEST_DIGEST}"
    assert template_image.detail["source"] == "template"


def test_tgi_findings_name_the_env_vars(tmp_path: Path) -> None:
    with Simulator("tgi", speed=SPEED) as sim:
        h = Harness(sim, tmp_path)
        findings = pin_findings(h.cluster, NS, DEPLOY)
    template = {f.code: f for f in findings if f.subject == f"deployment/{DEPLOY} container/tgi"}
    assert set(template) == DRIFT_CODES
    assert "REVISION=" in template["model-revision-unpinned"].message
    assert "DTYPE=" in template["dtype-unset"].message
    assert "MAX_TOTAL_TOKENS=" in template["max-model-len-unset"].message
    assert any(f.detail.get("source") == "pod" and f.detail.get("pods") for f in findings)


def test_healthy_fleet_has_no_findings(tmp_path: Path) -> None:
    with Simulator("healthy", speed=SPEED) as sim:
        assert pin_findings(Harness(sim, tmp_path).cluster, NS, DEPLOY) == []


# --- vLLM plans ----------------------------------------------------------------------------


def test_vllm_pin_plans_apply_verify_show_and_revert(tmp_path: Path) -> None:
    with Simulator("skew-incident", speed=SPEED) as sim:
        h = Harness(sim, tmp_path)
        original = h.template()
        cases = [
            (lambda: image_digest_plan(h.cluster, NS, DEPLOY), "pin.image-digest"),
            (lambda: model_revision_plan(h.cluster, NS, DEPLOY, SHA.upper()), "pin.model-revision"),
            (lambda: dtype_plan(h.cluster, NS, DEPLOY), "pin.dtype"),
            (lambda: max_model_len_plan(h.cluster, NS, DEPLOY), "pin.max-model-len"),
        ]
        expected = {
            "pin.image-digest": ("image", f"vllm/vllm-openai:latest@{LATEST_DIGEST}"),
            "pin.model-revision": ("--revision", SHA),
            "pin.dtype": ("--dtype", "bfloat16"),  # what revision 2, last-known-good, ran
            "pin.max-model-len": ("--max-model-len", "8192"),
        }
        for build, action in cases:
            h.settle()
            before = h.template()
            plan = build()
            assert (plan.step, plan.action) == (Step.PIN, action)
            change = plan.changes[0]
            assert (change.kind, change.operation, change.patch_type) == (
                "Deployment",
                "patch",
                "strategic",
            )
            assert change.resource_version == h.deployment()["metadata"]["resourceVersion"]
            assert change.before is not None and change.after is not None
            field, value = expected[action]
            patched = change.patch["spec"]["template"]["spec"]["containers"][0]
            assert patched["name"] == "vllm"
            if field == "image":
                assert plan.kubectl[0] == (
                    f"kubectl set image deployment/{DEPLOY} vllm={value} -n {NS}"
                )
                applied = h.apply(plan, f"+        image: {value}")
                assert h.container()["image"] == value
                assert h.container()["args"] == before["spec"]["containers"][0]["args"]
            else:
                # args is an atomic list: the whole list goes in the patch.
                assert patched["args"][:4] == before["spec"]["containers"][0]["args"][:4]
                assert flag_value(patched["args"], field) == value
                assert plan.kubectl[0].startswith(
                    f"kubectl patch deployment/{DEPLOY} -n {NS} --type=strategic -p '"
                )
                applied = h.apply(plan, f"+        - {field}")
                live = h.container()
                assert live["args"] == before["spec"]["containers"][0]["args"] + [field, value]
                assert live["image"] == before["spec"]["containers"][0]["image"]
            # Exactly the intended change: the template equals the plan's expected result.
            assert h.template() == change.after["spec"]["template"]
            h.settle()
            shown = applied_config(h.cluster, NS, DEPLOY)
            assert len(shown) == 4
            for subject, args, env in shown:
                assert subject.startswith("pod/") and subject.endswith(" container/vllm")
                if field != "image":
                    assert flag_value(args, field) == value
                assert ("HF_TOKEN", "<secret hf-token/token>") in env
                assert "hf_sImUlAtEdSeCrEtT0kEnD0NotLeak" not in repr(env)
            if action == "pin.image-digest":
                # Undo would now restore revision 3, the drifted one: the pin step says so.
                undo = [
                    f
                    for f in pin_findings(h.cluster, NS, DEPLOY)
                    if f.detail["source"] == "undo-target"
                ]
                assert {f.code for f in undo} == DRIFT_CODES
                assert all(f.subject == "revision/3 container/vllm" for f in undo)
                assert "rollout undo" in undo[0].message
                assert {f.severity for f in undo} == {Severity.INFO}  # not what runs
            h.revert(applied, before)
        assert h.template() == original


def test_digest_refused_when_pods_run_different_builds(tmp_path: Path) -> None:
    with Simulator("skew-incident", speed=SPEED) as sim:
        h = Harness(sim, tmp_path)
        before = h.deployment()
        moved = "sha256:" + "ab" * 32
        assert sim.cluster is not None
        runtime = sim.cluster.runtime
        # The registry's :latest moves; one pod restarts and pulls the new build.
        sim.call(runtime.scenario.images.__setitem__, "vllm/vllm-openai:latest", moved)
        pod = h.cluster.list("Pod", NS, label_selector="app=llm-serve")[0]
        h.cluster.delete("Pod", NS, pod["metadata"]["name"])
        wait_for(lambda: len({i for i in image_ids(h) if i}) == 2, "a pod on the moved tag")
        with pytest.raises(InvalidError, match="report different digests") as caught:
            image_digest_plan(h.cluster, NS, DEPLOY)
        assert "give that digest explicitly" in str(caught.value)
        # The operator chooses the build; the plan pins exactly that one.
        h.settle()
        plan = image_digest_plan(h.cluster, NS, DEPLOY, digest=LATEST_DIGEST)
        assert plan.changes[0].patch["spec"]["template"]["spec"]["containers"][0]["image"] == (
            f"vllm/vllm-openai:latest@{LATEST_DIGEST}"
        )
        assert h.deployment()["spec"] == before["spec"]


def test_running_digest_explains_a_local_image_id() -> None:
    pod = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:latest"}]},
        "status": {"containerStatuses": [{"name": "vllm", "imageID": "sha256:" + "0" * 64}]},
    }
    digest, why = running_digest([pod], "vllm", "vllm/vllm-openai:latest")
    assert digest is None
    assert "cannot be derived" in why and "crane digest vllm/vllm-openai:latest" in why


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda c: model_revision_plan(c, NS, DEPLOY, "main"), "is a branch"),
        (lambda c: model_revision_plan(c, NS, DEPLOY, "0e9e39f"), "short commit sha"),
        # Issue 10: "abc123" was accepted "(as given)"; a bare name may be a branch or a tag.
        (lambda c: model_revision_plan(c, NS, DEPLOY, "abc123"), "'abc123' looks like a short"),
        (lambda c: model_revision_plan(c, NS, DEPLOY, "v1.0.2"), "confirm it as tag:v1.0.2"),
        (lambda c: model_revision_plan(c, NS, DEPLOY, "tag:main"), "is a branch"),
        # Issue 10: 999999 was applied and crash-looped every pod (Llama 3.1 takes 131072).
        (
            lambda c: max_model_len_plan(c, NS, DEPLOY, 999999),
            r"max-model-len 999999 is above meta-llama/Llama-3.1-8B-Instruct's "
            r"max_position_embeddings \(131072 tokens\).*crash-loops.*from 16 to 131072",
        ),
        (
            lambda c: pin_plan(c, NS, DEPLOY, "pin.max-model-len", {"max_model_len": "999999"}),
            "from 16 to 131072",
        ),
        (lambda c: dtype_plan(c, NS, DEPLOY, "auto"), "pin an explicit dtype"),
        (lambda c: dtype_plan(c, NS, DEPLOY, "fp16"), "use that"),
        (lambda c: dtype_plan(c, NS, DEPLOY, "int3"), "choose one of"),
        (lambda c: max_model_len_plan(c, NS, DEPLOY, 5), "between 16 and 2097152, got 5"),
        (lambda c: max_model_len_plan(c, NS, DEPLOY, "lots"), "must be a whole number"),
        (lambda c: image_digest_plan(c, NS, DEPLOY, digest="sha256:beef"), "64 hex digits"),
        (lambda c: image_digest_plan(c, NS, DEPLOY, container="sidecar"), "no container"),
    ],
)
def test_invalid_operator_input_is_refused_and_changes_nothing(
    shared_sim: Simulator, tmp_path: Path, build: Any, message: str
) -> None:
    h = Harness(shared_sim, tmp_path)
    before = h.deployment()
    with pytest.raises(SkewmitError, match=message):
        build(h.cluster)
    after = h.deployment()
    assert after["spec"] == before["spec"]
    assert after["metadata"]["annotations"] == before["metadata"]["annotations"]
    assert not [e for e in h.journal.entries() if e.type.startswith("apply")]


def test_defaults_refused_without_last_known_good(tmp_path: Path) -> None:
    with Simulator("skew-incident", speed=SPEED) as sim:
        h = Harness(sim, tmp_path)
        fresh = copy.deepcopy(h.deployment())
        fresh["metadata"] = {"name": "solo", "namespace": NS, "labels": {"app": "solo"}}
        fresh["spec"]["replicas"] = 1
        fresh["spec"]["selector"] = {"matchLabels": {"app": "solo"}}
        fresh["spec"]["template"]["metadata"]["labels"] = {"app": "solo"}
        fresh.pop("status", None)
        h.cluster.create("Deployment", NS, fresh)
        for build in (dtype_plan, max_model_len_plan):
            with pytest.raises(InvalidError, match="no last-known-good revision") as caught:
                build(h.cluster, NS, "solo")
            assert "Give the value explicitly" in str(caught.value)
        # With an explicit value it plans.
        plan = dtype_plan(h.cluster, NS, "solo", "BFloat16")
        assert "--dtype bfloat16" in plan.title


def test_already_pinned_is_refused(tmp_path: Path) -> None:
    with Simulator("healthy", speed=SPEED) as sim:
        h = Harness(sim, tmp_path)
        with pytest.raises(InvalidError, match="already pinned by digest"):
            image_digest_plan(h.cluster, NS, DEPLOY)
        with pytest.raises(InvalidError, match="already has that setting"):
            dtype_plan(h.cluster, NS, DEPLOY)


# --- TGI plans -----------------------------------------------------------------------------


def test_tgi_pins_through_env_and_reverts(tmp_path: Path) -> None:
    with Simulator("tgi", speed=SPEED) as sim:
        h = Harness(sim, tmp_path)
        original = h.template()
        for build, name, value in [
            (lambda: model_revision_plan(h.cluster, NS, DEPLOY, SHA), "REVISION", SHA),
            (lambda: dtype_plan(h.cluster, NS, DEPLOY), "DTYPE", "bfloat16"),
            (lambda: max_model_len_plan(h.cluster, NS, DEPLOY), "MAX_TOTAL_TOKENS", "8192"),
        ]:
            h.settle()
            before = h.template()
            plan = build()
            patched = plan.changes[0].patch["spec"]["template"]["spec"]["containers"][0]
            # env merges by name: only the new entry is sent, in kubectl's order directive.
            assert patched["env"] == [{"name": name, "value": value}]
            assert "args" not in patched
            assert plan.kubectl[0] == (
                f"kubectl set env deployment/{DEPLOY} -c tgi {name}={value} -n {NS}"
            )
            applied = h.apply(plan, f"+        - name: {name}")
            env = h.container()["env"]
            assert env == before["spec"]["containers"][0]["env"] + [{"name": name, "value": value}]
            h.settle()
            for _subject, args, shown in applied_config(h.cluster, NS, DEPLOY):
                assert args == ()
                assert (name, value) in shown
                assert ("HF_TOKEN", "<secret hf-token/token>") in shown
            h.revert(applied, before)
        assert h.template() == original


def test_tgi_image_pin_uses_the_running_digest(tmp_path: Path) -> None:
    with Simulator("tgi", speed=SPEED) as sim:
        h = Harness(sim, tmp_path)
        before = h.template()
        plan = image_digest_plan(h.cluster, NS, DEPLOY)
        image = f"ghcr.io/huggingface/text-generation-inference:latest@{TGI_LATEST_DIGEST}"
        applied = h.apply(plan, f"+        image: {image}")
        assert h.container()["image"] == image
        h.revert(applied, before)


def test_kubectl_commands_never_show_a_secret_argument() -> None:
    container = {
        "name": "vllm",
        "image": "vllm/vllm-openai:v0.8.5",
        "args": ["--api-key", "s3cr3t-value"],
    }
    deployment = {
        "metadata": {"name": DEPLOY, "namespace": NS, "resourceVersion": "7"},
        "spec": {"template": {"spec": {"containers": [container]}}},
    }
    new = {**container, "args": [*container["args"], "--dtype", "bfloat16"]}
    plan = container_plan(
        deployment, new, step=Step.PIN, action="pin.dtype", title="t", summary="s"
    )
    assert "s3cr3t-value" not in " ".join(plan.kubectl)
    assert "--dtype" in plan.kubectl[0]
    # The patch itself carries the real value: args is an atomic list, sent whole.
    patched = plan.changes[0].patch["spec"]["template"]["spec"]["containers"][0]
    assert patched["args"] == new["args"]


def test_env_from_a_reference_replaced_by_a_value_clears_the_reference() -> None:
    old = {
        "name": "tgi",
        "env": [{"name": "REVISION", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "r"}}}],
    }
    new = {"name": "tgi", "env": [{"name": "REVISION", "value": SHA}]}
    patch = container_patch(old, new)
    # Merged by name, the old valueFrom would stay beside the value: the patch nulls it.
    assert patch["env"] == [{"name": "REVISION", "value": SHA, "valueFrom": None}]
    assert patch["$setElementOrder/env"] == [{"name": "REVISION"}]
    with pytest.raises(InvalidError, match="already has that setting"):
        container_patch(new, new)


def test_runbook_actions_default_to_the_running_digest_and_last_known_good(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    h = Harness(shared_sim, tmp_path)
    findings = pin_findings(h.cluster, NS, DEPLOY)
    actions = {a["id"]: a for a in pin_actions(h.cluster, NS, DEPLOY, findings)}
    assert list(actions) == [
        "pin.image-digest",
        "pin.model-revision",
        "pin.dtype",
        "pin.max-model-len",
    ]
    assert len({a["key"] for a in actions.values()}) == 4
    assert all(a["available"] for a in actions.values())
    defaults = {a["inputs"][0]["name"]: a["inputs"][0]["default"] for a in actions.values()}
    assert defaults == {
        "digest": LATEST_DIGEST,
        "revision": SHA,  # what revision 2, last-known-good, ran
        "dtype": "bfloat16",
        "max_model_len": "8192",
    }
    built = pin_plan(h.cluster, NS, DEPLOY, "pin.dtype", {"dtype": ""})
    assert (built.action, built.title.split(" (")[0]) == (
        "pin.dtype",
        "Set --dtype bfloat16 on container vllm",
    )
    with pytest.raises(InvalidError, match="needs the revision"):
        pin_plan(h.cluster, NS, DEPLOY, "pin.model-revision", {"revision": " "})
    with pytest.raises(InvalidError, match="unknown pin action"):
        pin_plan(h.cluster, NS, DEPLOY, "pin.everything", {})


def test_runbook_actions_unavailable_when_the_template_pins_everything(tmp_path: Path) -> None:
    with Simulator("healthy", speed=SPEED) as sim:
        h = Harness(sim, tmp_path)
        actions = pin_actions(h.cluster, NS, DEPLOY, pin_findings(h.cluster, NS, DEPLOY))
    assert [a["available"] for a in actions] == [False] * 4
    assert all("already pins" in a["reason"] for a in actions)


def test_a_tag_pins_only_when_the_operator_confirms_it(
    shared_sim: Simulator, tmp_path: Path
) -> None:
    h = Harness(shared_sim, tmp_path)
    plan = model_revision_plan(h.cluster, NS, DEPLOY, "tag:v1.0.2")
    assert plan.title == "Set --revision v1.0.2 on container vllm (a tag, as confirmed)"
    args = plan.changes[0].patch["spec"]["template"]["spec"]["containers"][0]["args"]
    assert flag_value(args, "--revision") == "v1.0.2"
    # A full sha needs no confirmation, with or without the prefix.
    for typed in (SHA, f"tag:{SHA}"):
        plan = model_revision_plan(h.cluster, NS, DEPLOY, typed)
        assert "(as given)" in plan.title
    # The prompt says how to confirm a tag.
    actions = {a["id"]: a for a in pin_actions(h.cluster, NS, DEPLOY, [])}
    assert "tag:<name>" in actions["pin.model-revision"]["inputs"][0]["prompt"]
