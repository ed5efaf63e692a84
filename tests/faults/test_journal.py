"""The journal as a write-ahead log, tried the way crashes and second logins try it: real
processes (subprocess, kill -9), a real short write (RLIMIT_FSIZE: the kernel's answer on a
full file system), and a second instance on the same incident."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.errors import ConfigError
from services.journal import Journal, JournalReadOnly
from services.models import Step, Target
from services.runbook import Runbook
from services.session import SessionOptions, open_session
from services.simulator.runner import Simulator
from tests.conftest import FAST
from tests.services.harness import connect

REPO = Path(__file__).resolve().parents[2]
TARGET = Target("ctx", "inference", "llm-serve", "https://x", "alice")


def lines_of(journal: Journal) -> list[dict[str, object]]:
    """Every line of journal.jsonl, parsed: a torn or swallowed line fails the test."""
    return [json.loads(line) for line in journal.path.read_text().splitlines()]


def seqs(journal: Journal) -> list[int]:
    return [int(str(record["seq"])) for record in lines_of(journal)]


class Child:
    """A python process running `body` with `journal_root` and TARGET defined; it prints
    `ready` when set up and runs `after` once a line arrives on its stdin."""

    def __init__(self, root: Path, body: str, after: str = "") -> None:
        script = textwrap.dedent(
            """
            import sys
            from pathlib import Path
            from services.journal import Journal
            from services.models import Target
            journal_root = Path(sys.argv[1])
            TARGET = Target("ctx", "inference", "llm-serve", "https://x", "alice")
            """
        )
        script += textwrap.dedent(body) + "\nprint('ready', flush=True)\nsys.stdin.readline()\n"
        script += textwrap.dedent(after) + "\nprint('done', flush=True)\n"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", script, str(root)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.expect("ready")

    def expect(self, word: str) -> str:
        assert self.proc.stdout is not None
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                stderr = self.proc.stderr.read() if self.proc.stderr else ""
                pytest.fail(f"child exited before {word!r}: {''.join(lines)}{stderr}")
            lines.append(line)
            if line.strip() == word:
                return "".join(lines[:-1])

    def go(self) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return self.expect("done")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        child.stop()


def test_sequence_numbers_continue_from_the_highest_on_disk_after_a_torn_line(
    tmp_path: Path,
) -> None:
    """Issue 9 #3: numbering restarted from the count of valid lines, so after a torn line
    the next entries reused seqs already on disk and a revert hit the older entry."""
    journal = Journal.open_for(TARGET, "alice", tmp_path)
    for i in range(4):
        journal.append("note", {"i": i})
    # What a crash mid-write left in an older journal: a line cut short, then the next entry
    # appended onto it (one unreadable line holding two entries), then more entries.
    with journal.path.open("a") as handle:
        handle.write('{"seq": 6, "type": "applied", "da')
        handle.write(json.dumps({"seq": 7, "ts": "t", "type": "note", "data": {}}) + "\n")
        handle.write(json.dumps({"seq": 8, "ts": "t", "type": "note", "data": {}}) + "\n")
    journal.release()
    reopened = Journal.open_for(TARGET, "alice", tmp_path)
    entry = reopened.append("applied", {"title": "max-num-seqs"})
    readable = [e.seq for e in reopened.entries()]
    assert entry.seq > 8
    assert len(readable) == len(set(readable)), f"duplicate seqs: {readable}"
    assert readable == sorted(readable)


def test_two_processes_writing_one_incident_never_share_a_sequence_number(
    tmp_path: Path, children: list[Child]
) -> None:
    """A session and a headless command (`skewmit validate` adds its verdict) append at the
    same time from two processes: every entry survives, numbered uniquely in file order."""
    journal = Journal.open_for(TARGET, "alice", tmp_path)
    writer = Child(
        tmp_path,
        f"journal = Journal(Path({str(journal.folder)!r}), TARGET, 'bob')",
        "for i in range(300):\n    journal.append('validation', {'i': i, 'pad': 'x' * 3000})",
    )
    children.append(writer)
    assert writer.proc.stdin is not None
    writer.proc.stdin.write("go\n")
    writer.proc.stdin.flush()
    for i in range(300):
        journal.append("note", {"i": i, "pad": "y" * 3000})
    writer.expect("done")
    numbers = seqs(journal)
    assert len(numbers) == 601  # opened + 300 + 300: nothing torn, nothing swallowed
    assert numbers == sorted(set(numbers))


def test_a_second_instance_opens_read_only_and_says_who_holds_the_incident(
    tmp_path: Path, children: list[Child]
) -> None:
    holder = Child(tmp_path, "journal = Journal.open_for(TARGET, 'alice', journal_root)")
    children.append(holder)
    second = Journal.open_for(TARGET, "bob", tmp_path)
    assert second.read_only and not second.owner
    assert second.held_by is not None and second.held_by.pid == holder.proc.pid
    reason = second.read_only_reason()
    assert f"held by pid {holder.proc.pid}" in reason
    assert "@" in reason and "since 20" in reason
    # It can read what the holder journaled, and cannot start a change.
    assert [e.type for e in second.entries()] == ["opened"]
    with pytest.raises(JournalReadOnly, match="held by pid"):
        second.append("apply-intent", {"title": "cordon"})
    assert [e.type for e in second.entries()] == ["opened"]


def test_taking_over_makes_the_old_holder_read_only(tmp_path: Path, children: list[Child]) -> None:
    """An SSH drop left the old session running in tmux; the operator takes over explicitly.
    The old session may finish what it started but can start nothing new."""
    holder = Child(
        tmp_path,
        "journal = Journal.open_for(TARGET, 'alice', journal_root)",
        """
        try:
            journal.append('apply-intent', {'title': 'uncordon'})
            print('wrote intent')
        except Exception as exc:
            print('refused:', exc)
        """,
    )
    children.append(holder)
    mine = Journal.open_for(TARGET, "bob", tmp_path, take_over=True)
    assert mine.owner
    said = holder.go()
    assert "refused:" in said and f"pid {os.getpid()}" in said
    types = [e.type for e in mine.entries()]
    assert types == ["opened", "taken-over", "reopened"]
    taken = next(e for e in mine.entries() if e.type == "taken-over")
    assert taken.data["from"]["pid"] == holder.proc.pid
    assert mine.append("apply-intent", {"title": "cordon"}).seq == 4


def test_a_short_write_is_an_error_and_leaves_no_torn_line(
    tmp_path: Path, children: list[Child]
) -> None:
    """Issue 9: a short os.write was ignored (the entry reported written, a torn line left to
    swallow the next one). A file-size limit makes the kernel write part of the line, as a
    full disk does."""
    child = Child(
        tmp_path,
        """
        import resource, signal
        from services.journal import JournalError
        journal = Journal.open_for(TARGET, 'alice', journal_root)
        journal.append('note', {'n': 1})
        """,
        """
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        size = journal.path.stat().st_size
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, hard))
        try:
            journal.append('apply-intent', {'title': 'big', 'pad': 'z' * 5000})
            print('reported written')
        except JournalError as exc:
            print('error:', exc)
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
        print('next', journal.append('note', {'n': 2}).seq)
        """,
    )
    children.append(child)
    said = child.go()
    assert "reported written" not in said
    assert "error:" in said and "not recorded and nothing was changed" in said
    journal = Journal(child_folder(tmp_path), TARGET, "alice")
    records = lines_of(journal)  # every line whole
    assert [r["type"] for r in records] == ["opened", "note", "note"]
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert "next 3" in said


def child_folder(root: Path) -> Path:
    (folder,) = (root / "incidents").iterdir()
    return folder


def test_a_torn_tail_is_cut_on_open_and_the_cut_recorded(tmp_path: Path) -> None:
    journal = Journal.open_for(TARGET, "alice", tmp_path)
    journal.append("note", {"n": 1})
    journal.release()
    with journal.path.open("a") as handle:  # kill -9 in the middle of a write
        handle.write('{"data": {"title": "cordon gpu-a10g-1"}, "seq": 3, "ty')
    reopened = Journal.open_for(TARGET, "alice", tmp_path)
    records = lines_of(reopened)
    assert [r["type"] for r in records] == ["opened", "note", "repaired", "reopened"]
    repair = records[2]["data"]
    assert isinstance(repair, dict)
    assert repair["torn_bytes"] > 0 and "cordon gpu-a10g-1" in repair["fragment"]
    assert [r["seq"] for r in records] == [1, 2, 3, 4]


def test_kill_9_while_appending_loses_no_acknowledged_entry(
    tmp_path: Path, children: list[Child]
) -> None:
    """A process journaling as fast as it can is killed; every entry it acknowledged (printed
    after append returned) is on disk, readable, and numbering goes on above it."""
    child = Child(
        tmp_path,
        "journal = Journal.open_for(TARGET, 'alice', journal_root)",
        """
        i = 0
        while True:
            entry = journal.append('note', {'i': i, 'pad': 'q' * 20000})
            print('acked', entry.seq, flush=True)
            i += 1
        """,
    )
    children.append(child)
    assert child.proc.stdin is not None and child.proc.stdout is not None
    child.proc.stdin.write("go\n")
    child.proc.stdin.flush()
    acked = 0
    while acked < 50:
        acked = int(child.proc.stdout.readline().split()[1])
    child.proc.send_signal(signal.SIGKILL)
    child.proc.wait(timeout=30)
    journal = Journal.open_for(TARGET, "alice", tmp_path)
    numbers = seqs(journal)  # whole lines only: a torn tail was cut (and recorded)
    assert set(range(1, acked + 1)) <= set(numbers)
    assert numbers == sorted(set(numbers))
    assert journal.entries()[-1].type == "reopened"


def test_read_only_needs_no_writable_state_directory(shared_sim: Simulator, tmp_path: Path) -> None:
    """Issue 9: `--read-only` failed when the state directory could not be written."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory would go")
    root = blocker / "skewmit"
    kubeconfig = shared_sim.write_kubeconfig(tmp_path / "kubeconfig")
    options = SessionOptions(
        kubeconfig=str(kubeconfig),
        context="skewmit-sim",
        namespace="inference",
        deployment="llm-serve",
        journal_root=root,
    )
    with pytest.raises(ConfigError, match="writable directory"):
        open_session(options)  # without --read-only the journal is needed
    runbook = open_session(SessionOptions(**{**options.__dict__, "read_only": True}))
    report = runbook.check(Step.ROLLBACK)
    assert report.state != "failed", report.error
    assert runbook.read_only and runbook.journal is not None
    assert runbook.journal.entries() == []
    assert blocker.read_text().startswith("a file")


def test_findings_are_journaled_when_they_change_not_on_every_check(tmp_path: Path) -> None:
    """Issue 9: every check journaled a full snapshot of its findings (1.3 MB a check on
    `large`). Unchanged checks now add nothing; a cleared finding is journaled once."""
    with Simulator("skew-incident", speed=FAST) as sim:
        cluster = connect(sim, tmp_path)
        journal = Journal.open_for(
            Target("skewmit-sim", "inference", "llm-serve"), "admin", tmp_path / "state"
        )
        runbook = Runbook(cluster, journal.target, journal)
        first = runbook.check(Step.PIN)
        assert first.findings
        size = journal.path.stat().st_size
        for _ in range(5):
            runbook.check(Step.PIN)
        assert journal.path.stat().st_size == size
        seen = [e for e in journal.entries() if e.type == "findings"]
        assert len(seen) == 1
        assert {f["code"] for f in seen[0].data["seen"]} == {f.code for f in first.findings}
        # A restarted session knows what is already active: still nothing new.
        journal.release()
        again = Journal.open_for(journal.target, "admin", tmp_path / "state")
        Runbook(cluster, again.target, again).check(Step.PIN)
        assert [e.type for e in again.entries()][-1] == "reopened"
        # The drift is fixed: each finding is journaled once more, as cleared.
        kept = [f.as_json() for f in first.findings[1:]]
        cleared = again.record_findings("pin", "findings", kept)
        assert cleared is not None and cleared.data["seen"] == []
        gone = first.findings[0]
        assert cleared.data["cleared"] == [
            {"code": gone.code, "subject": gone.subject, "severity": gone.severity.value}
        ]
        assert again.record_findings("pin", "findings", kept) is None
