"""Masking at the edge, before the screen and the journal: secret-looking env names,
secretKeyRef, secret flags, URL credentials, `password=`/`token=`/`api_key=` in any text
(annotations too) and bearer tokens. Issue 9: `DATABASE_URL=postgres://admin:...@...` reached
the journal and the bundle; `password=...` in an annotation reached the screen and the journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.gate import comparable, render_diff
from services.latency import knob_plan
from services.masking import MASK, Unrestorable, mask_object, mask_text, restore_masked
from services.simulator.runner import Simulator
from tests.faults.test_gate_faults import NAME, NS, SECRETS, new_gate, plant_secrets
from tests.services.harness import connect


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "DATABASE_URL=postgres://admin:db-pass-1@db.internal:5432/app",
            f"DATABASE_URL=postgres://admin:{MASK}@db.internal:5432/app",
        ),
        (
            "https://oauth2:glpat-123@gitlab.example/x.git",
            f"https://oauth2:{MASK}@gitlab.example/x.git",
        ),
        ("rotated: password=hunter2-x", f"rotated: password={MASK}"),
        ("token=abc&page=2", f"token={MASK}&page=2"),
        ("api_key=abc123 region=eu", f"api_key={MASK} region=eu"),
        ('{"api_key": "abc123"}', f'{{"api_key": "{MASK}"}}'),
        ("db password: s3cret!", f"db password: {MASK}"),
        ("Authorization: Bearer short-bearer-1", f"Authorization: Bearer {MASK}"),
        ("Authorization: Basic YWRtaW46cHc=", f"Authorization: Basic {MASK}"),
        ("serve --api-key sk-short1 --port 8000", f"serve --api-key {MASK} --port 8000"),
        ("serve --token=tok-1", f"serve --token={MASK}"),
    ],
)
def test_every_secret_shape_in_free_text_is_masked(text: str, masked: str) -> None:
    assert mask_text(text) == masked
    assert mask_text(masked) == masked  # idempotent: a masked copy masks to itself


@pytest.mark.parametrize(
    "text",
    [
        "--max-num-batched-tokens 8192",
        "MAX_TOTAL_TOKENS=4096",
        "https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct",
        "vllm/vllm-openai:v0.8.5@sha256:" + "a" * 64,
        "max token: 512",
        "postgres://db.internal:5432/app",
    ],
)
def test_ordinary_settings_stay_readable(text: str) -> None:
    assert mask_text(text) == text


def test_a_planted_deployment_reaches_screen_and_journal_masked(tmp_path: Path) -> None:
    """Every shape planted in a live Deployment: the diff the operator confirms and the
    journal entries of the apply hold none of the secrets; references stay references."""
    with Simulator("skew-incident", speed=60.0) as sim:
        cluster = connect(sim, tmp_path)
        plant_secrets(cluster)
        live = cluster.get("Deployment", NS, NAME)
        shown = json.dumps(mask_object(live))
        assert not [s for s in SECRETS if s in shown]
        assert "<secret db/password>" in shown  # a secretKeyRef is shown, never resolved
        kept = json.dumps(mask_object(live, keep_refs=True), sort_keys=True)
        assert '"secretKeyRef": {"key": "password", "name": "db"}' in kept
        assert mask_object(mask_object(live)) == mask_object(live)

        gate = new_gate(cluster, tmp_path)
        plan = knob_plan(cluster, NS, NAME, "max_num_seqs", 64)
        preview = gate.preview(plan)
        assert "--max-num-seqs" in preview.diff
        assert not [s for s in SECRETS if s in preview.diff]
        gate.apply(plan, preview)
        journal = gate.journal.path.read_text()
        assert not [s for s in SECRETS if s in journal]
        assert f"postgres://admin:{MASK}@db.internal" in journal
        assert f"password={MASK}" in journal
        assert not [s for s in SECRETS if s in render_diff(live, None, "deployment/x")]
        assert comparable(live, masked=False)["metadata"]["annotations"]["example.com/note"] == (
            "rotated: password=hunter2-x"
        )


def test_restoring_a_masked_copy_takes_each_secret_from_its_own_place() -> None:
    plain = {
        "args": ["--token", "tok-a", "--api-key", "key-b", "--x", "1"],
        "env": [
            {"name": "A_TOKEN", "value": "env-a"},
            {"name": "B_TOKEN", "value": "env-b"},
            {"name": "URL", "value": "https://u:pw-c@h/x"},
        ],
    }
    container = {"containers": [{"name": "c", **plain}]}
    masked = mask_object(container, keep_refs=True)
    # The journaled copy is older: --x changed since, and the env order differs.
    old = json.loads(json.dumps(masked))
    old["containers"][0]["args"][-1] = "2"
    old["containers"][0]["env"].reverse()
    restored = restore_masked(old, [(container, masked)])
    args = restored["containers"][0]["args"]
    assert args == ["--token", "tok-a", "--api-key", "key-b", "--x", "2"]
    env = {e["name"]: e["value"] for e in restored["containers"][0]["env"]}
    assert env == {"A_TOKEN": "env-a", "B_TOKEN": "env-b", "URL": "https://u:pw-c@h/x"}
    gone = json.loads(json.dumps(masked))
    gone["containers"][0]["env"].append({"name": "C_TOKEN", "value": MASK})
    with pytest.raises(Unrestorable, match="/containers/0/env/3"):
        restore_masked(gone, [(container, masked)])


def test_a_change_cause_with_a_password_reaches_the_history_masked(tmp_path: Path) -> None:
    """A CI that pastes its command line into kubernetes.io/change-cause must not put the
    password on the on-call screen (step 1 lists the rollout history with each change-cause)."""
    from services import rollout

    with Simulator("skew-incident", speed=60.0) as sim:
        cluster = connect(sim, tmp_path)
        rs = rollout.owned_replicasets(cluster, cluster.get("Deployment", NS, NAME))[0]
        cause = "deploy.sh --db postgres://ci:pw-in-url-9@db --password=hunter2-x"
        cluster.patch(
            "ReplicaSet",
            NS,
            rs["metadata"]["name"],
            {"metadata": {"annotations": {rollout.CHANGE_CAUSE: cause}}},
            "merge",
        )
        shown = [r.change_cause for r in rollout.history(cluster, NS, NAME)]
        assert any("deploy.sh" in c for c in shown)
        assert not [c for c in shown if "pw-in-url-9" in c or "hunter2-x" in c]
