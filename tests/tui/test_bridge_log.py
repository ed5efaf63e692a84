"""The bridge's action log reads the journal with the action log's own rule (newest first,
reverted changes marked) and offers no revert: the bridge changes nothing."""

from __future__ import annotations

from pathlib import Path

from services.journal import Journal
from services.models import Target
from tui.screens.bridge_view import BridgeSource


def test_the_bridge_log_lists_the_journal_newest_first_and_reverts_nothing(tmp_path: Path) -> None:
    journal = Journal.open_for(Target("skewmit-sim", "inference", "llm-serve"), "admin", tmp_path)
    pinned = journal.append("applied", {"title": "Pin the image", "verified": True})
    journal.append("applied", {"title": "Set --dtype", "verified": True, "verify": "live"})
    journal.append("reverted", {"reverts": pinned.seq, "title": "Revert: Pin the image"})

    _, log = BridgeSource(journal.folder).read()

    assert [(e.title, e.status) for e in log] == [
        ("Revert: Pin the image", "applied"),
        ("Set --dtype", "applied"),
        ("Pin the image", "reverted"),
    ]
    assert not any(e.revertible for e in log)
