"""A revert is previewed like every other change: the recorded inverse made concrete against the
live Deployment, a server-side dry run of it and the diff, or the reason it would be refused;
the preview itself changes nothing and journals nothing."""

from __future__ import annotations

from pathlib import Path

from services.gate import Gate
from services.latency import knob_plan
from services.simulator.runner import Simulator
from tests.services.test_pin import DEPLOY, NS, SPEED, Harness


def test_revert_preview_shows_the_diff_and_dry_run_then_refuses_once_changed_since(
    tmp_path: Path,
) -> None:
    with Simulator("healthy", speed=SPEED) as sim:
        h = Harness(sim, tmp_path)
        original = h.template()
        first = h.apply(knob_plan(h.cluster, NS, DEPLOY, "max_num_seqs"), "192")
        h.settle()
        entries = len(h.journal.entries())
        deployment = h.deployment()

        preview = h.gate.preview_revert(first.seq)
        assert preview.allowed, preview.denied_reason
        assert preview.dry_run_ok, preview.dry_run_message
        assert "dry run accepted" in preview.dry_run_message
        # Live (192) -> after the revert (256): the args line that changes, nothing else.
        assert "-        - '192'" in preview.diff
        assert "+        - '256'" in preview.diff
        assert preview.plan.title.startswith("Revert: ")
        assert [c.operation for c in preview.plan.changes] == ["patch"]
        # Nothing written: not the Deployment, not the journal.
        rv = deployment["metadata"]["resourceVersion"]
        assert h.deployment()["metadata"]["resourceVersion"] == rv
        assert len(h.journal.entries()) == entries
        assert [seq for seq, _ in h.gate.applied_entries()] == [first.seq]

        # A newer change on top: the preview refuses as revert would, and shows how it moved.
        second = h.apply(knob_plan(h.cluster, NS, DEPLOY, "max_model_len"), "6144")
        h.settle()
        entries = len(h.journal.entries())
        refused = h.gate.preview_revert(first.seq)
        assert not refused.allowed and not refused.dry_run_ok
        assert "changed since skewmit applied entry" in refused.denied_reason
        assert "6144" in refused.diff
        assert len(h.journal.entries()) == entries  # a preview's refusal is not journaled

        unknown = h.gate.preview_revert(second.seq + 1000)
        assert not unknown.allowed
        assert "is not an applied change" in unknown.denied_reason

        # revert itself is unchanged: newest first brings the template back.
        h.gate.revert(second.seq)
        h.settle()
        again = h.gate.preview_revert(first.seq)
        assert again.allowed and again.dry_run_ok, again.denied_reason or again.dry_run_message
        h.gate.revert(first.seq)
        assert h.template() == original


def test_revert_preview_in_a_later_session_restores_a_secret_without_showing_it(
    tmp_path: Path,
) -> None:
    secret = "sk-live-0123456789abcdef0123456789abcdef"
    with Simulator("healthy", speed=SPEED) as sim:
        h = Harness(sim, tmp_path)
        # A plain secret in the template, put there by hand before the incident.
        container = h.container()
        env = [*container.get("env", []), {"name": "API_KEY", "value": secret}]
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "vllm", "env": env}]}}}}
        h.cluster.patch("Deployment", NS, DEPLOY, patch, "strategic")
        h.settle()
        original = h.template()
        applied = h.apply(knob_plan(h.cluster, NS, DEPLOY, "max_num_seqs"), "192")
        h.settle()
        assert secret not in h.journal.path.read_text()
        # A later session: only the masked journal, no plain copy in memory.
        later = Gate(h.cluster, h.journal)
        preview = later.preview_revert(applied.seq)
        assert preview.allowed and preview.dry_run_ok, preview.dry_run_message
        assert "+        - '256'" in preview.diff
        assert secret not in preview.diff and secret not in preview.dry_run_message
        later.revert(applied.seq)
        assert h.template() == original  # the secret restored from the live object
