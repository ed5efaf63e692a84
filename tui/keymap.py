"""One keymap for the whole runbook: every step action has its own letter, the same on every
step, and no letter means two things.

The services name each action's letter (`ActionSpec.key`, shown in the step detail); this
table declares the same letters as Textual bindings with stable ids, and a test holds the two
to each other. `a` is always the selected step's first available fix and `r` always reverts
the highlighted action log entry; neither is any action's own letter.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.models import STEP_ORDER, Step

FIX_KEY = "a"
REVERT_KEY = "r"


@dataclass(frozen=True)
class StepKey:
    """A step action's letter, the footer's label and the help screen's line for it."""

    action_id: str
    key: str
    label: str  # the footer's few words
    what: str  # the help screen's line

    @property
    def step(self) -> Step:
        return step_of_action(self.action_id)

    @property
    def binding_id(self) -> str:
        return f"step-action.{self.action_id}"


STEP_KEYS: tuple[StepKey, ...] = (
    StepKey("rollback.undo", "u", "Roll back", "roll back to last-known-good"),
    StepKey("pin.image-digest", "i", "Pin image", "pin the image by digest"),
    StepKey("pin.model-revision", "m", "Pin model rev", "pin the model revision"),
    StepKey("pin.dtype", "p", "Pin dtype", "set the dtype (precision) explicitly"),
    StepKey("pin.max-model-len", "w", "Pin max len", "set max model len (context window)"),
    StepKey("latency.max-output-tokens", "o", "Cut output", "reduce max output tokens"),
    StepKey("latency.max-model-len", "k", "Cut context", "reduce max context length"),
    StepKey("latency.max-num-seqs", "n", "Cut seqs", "reduce max running sequences"),
    StepKey("route.long-context", "l", "Route long", "route long-context requests apart"),
    StepKey("hardware.node-selector", "s", "nodeSelector", "require the expected GPU class"),
    StepKey("hardware.cordon", "c", "Cordon", "cordon a node with the wrong GPU"),
    StepKey("hardware.taint", "t", "Taint", "taint a node with the wrong GPU"),
    StepKey("hardware.delete-pods", "d", "Delete pods", "delete the pods on the wrong GPU"),
    StepKey("validate.evidence", "e", "Evidence", "capture the evidence bundle"),
)
BY_ACTION: dict[str, StepKey] = {k.action_id: k for k in STEP_KEYS}
BY_KEY: dict[str, StepKey] = {k.key: k for k in STEP_KEYS}


def step_of_action(action_id: str) -> Step:
    """The step an action id belongs to (ids start with the step's name: `pin.dtype`).
    Raises ValueError for an id of no step."""
    prefix = action_id.split(".", 1)[0]
    return Step(prefix)


def step_number(step: Step) -> int:
    return STEP_ORDER.index(step) + 1
