"""The changes an incident made, read from its journal entries: what was applied, reverted,
failed or left unknown by a crash, and which applies a revert may still undo. One rule for
the action log, the bridge and the gate's revert offer."""

from __future__ import annotations

from collections.abc import Sequence

from services.journal import Entry
from services.models import ActionStatus, JournalAction


def reverted_by(entries: Sequence[Entry]) -> dict[int, int]:
    """Applied entry seq -> the seq of the `reverted` entry that undid it."""
    return {
        int(e.data["reverts"]): e.seq
        for e in entries
        if e.type == "reverted" and isinstance(e.data.get("reverts"), int)
    }


def journal_actions(entries: Sequence[Entry]) -> tuple[JournalAction, ...]:
    """The action log's rows, newest first. Entries of other types (findings, intents,
    verdicts) are not changes and are skipped."""
    reverted = reverted_by(entries)
    refused = {e.data.get("reverts") for e in entries if e.type == "revert-refused"}
    rows: list[JournalAction] = []
    for entry in entries:
        when = entry.ts[11:19] if len(entry.ts) >= 19 else entry.ts
        data = entry.data
        if entry.type == "applied":
            undone = entry.seq in reverted
            note = str(data.get("verify", ""))
            if undone:
                note = f"reverted by #{reverted[entry.seq]}"
            elif entry.seq in refused:
                note = "revert refused: the object changed since"
            status: ActionStatus = (
                "reverted" if undone else ("applied" if data.get("verified") else "unverified")
            )
            title = str(data.get("title", data.get("action", "")))
            rows.append(JournalAction(entry.seq, when, title, status, note, not undone))
        elif entry.type == "apply-failed":
            title = f"apply of entry {data.get('intent')}"
            rows.append(JournalAction(entry.seq, when, title, "failed", str(data.get("error", ""))))
        elif entry.type == "reconciled":
            # An intent a crash left without an outcome, and the cluster could not say.
            title, message = str(data.get("title", "")), str(data.get("message", ""))
            rows.append(JournalAction(entry.seq, when, title, "unknown", message))
        elif entry.type == "reverted":
            title = str(data.get("title", "revert"))
            rows.append(
                JournalAction(entry.seq, when, title, "applied", str(data.get("verify", "")))
            )
    rows.reverse()
    return tuple(rows)
