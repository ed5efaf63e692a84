"""The incident journal: a write-ahead log on disk, one exclusive writer per incident.

One folder per incident under the XDG state directory
(`$XDG_STATE_HOME/skewmit/incidents/<id>/`, default `~/.local/state/skewmit/...`), holding
`incident.json` (what and who), `journal.jsonl` (every finding change, plan, apply, verify,
revert and verdict) and `lock` (who holds the incident). Starting skewmit again for the same
target reopens the open incident, so an SSH drop loses nothing. Everything written is masked.

The promises, as etcd's and SQLite's logs make them: an entry `append` returned survives a
crash (written whole, fsync'd); sequence numbers are unique and increase, derived from the
highest on disk under an append lock, so two processes never number alike; a torn tail (a
crash or a full disk mid-write) is cut on the next write and the cut itself recorded. The
session holding `lock` (fcntl.flock) is the only one that may journal an intent to change the
cluster; another instance opens read-only and says who holds it, or takes over explicitly
(the locks are in journal_lock.py).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.clock import WALL_CLOCK, Clock
from services.errors import ConfigError
from services.journal_lock import (
    Holder,
    IncidentLock,
    JournalError,
    JournalReadOnly,
    acquire,
    append_lock,
    drop,
    holder_of,
    os_user,
    utc_now,
)
from services.masking import mask_object
from services.models import Target

# Names callers import from here, some now held by journal_lock.py.
__all__ = [
    "INTENT_TYPES",
    "OUTCOME_TYPES",
    "Entry",
    "Holder",
    "Journal",
    "JournalError",
    "JournalReadOnly",
    "os_user",
    "state_dir",
    "utc_now",
]

Obj = dict[str, Any]
# Entries that start a change: only the lock holder writes them, or nothing is changed.
INTENT_TYPES = frozenset({"apply-intent", "revert-intent"})
# Entries that finish one: written even after a take-over, so no started change goes unrecorded.
OUTCOME_TYPES = frozenset({"applied", "apply-failed", "reverted", "revert-refused", "reconciled"})
SCAN_CHUNK = 1 << 20
TORN_KEPT = 300  # bytes of a torn fragment kept in the repair entry


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path("~/.local/state").expanduser())
    return Path(base) / "skewmit"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:40] or "x"


@dataclass(frozen=True)
class Entry:
    seq: int
    ts: str
    type: str
    data: Obj


class Journal:
    """An incident's journal. Use `Journal.open_for(target, kube_user)`; constructed directly
    (to read, or to add a verdict from a headless command) it holds no lock and may not
    journal intents."""

    def __init__(
        self,
        folder: Path,
        target: Target,
        kube_user: str,
        *,
        read_only: bool = False,
        clock: Clock = WALL_CLOCK,
    ) -> None:
        self.folder = folder
        # Entries are stamped on the session's clock (simulated in the demo), the one the
        # verdict, the baseline and the evidence bundle read.
        self.clock = clock
        self.target = target
        self.kube_user = kube_user
        self.path = folder / "journal.jsonl"
        self.read_only = read_only
        self.held_by: Holder | None = None  # set when another instance holds the incident
        self._lock: IncidentLock | None = None
        self._seq = 0  # the highest seq seen on disk
        self._scanned_to = 0  # bytes of journal.jsonl already scanned for seqs
        self._mutex = threading.RLock()
        self._active: dict[str, tuple[str, dict[tuple[str, str, str], Obj]]] | None = None
        self._taken_from: Holder | None = None  # journaled with the first write after it

    @property
    def incident_id(self) -> str:
        return self.folder.name if (self.folder / "incident.json").exists() else ""

    @property
    def owner(self) -> bool:
        """Whether this session holds the incident's lock (and may change the cluster)."""
        return self._lock is not None and not self.read_only

    def read_only_reason(self) -> str:
        if self.held_by is not None:
            return f"opened read-only: the incident is held by {self.held_by.describe()}"
        if self.read_only:
            return "opened read-only"
        return "this journal holds no lock on the incident"

    @classmethod
    def open_for(
        cls,
        target: Target,
        kube_user: str,
        root: Path | None = None,
        *,
        read_only: bool = False,
        take_over: bool = False,
        clock: Clock = WALL_CLOCK,
    ) -> Journal:
        """Reopen the open incident for this target, or start a new one, and lock it. When
        another instance holds it, the journal opens read-only (`held_by` says who) unless
        `take_over`. With `read_only` nothing is created or written (the state directory may
        be missing or unwritable). Entries, the incident's folder name and its opening time
        are on `clock` (the session's). Raises ConfigError when the state directory cannot be
        written, JournalError when the journal cannot be."""
        incidents = (Path(root) if root else state_dir()) / "incidents"
        if read_only:
            folder = _find_open(incidents, target)
            return cls(folder or incidents / "-", target, kube_user, read_only=True, clock=clock)
        try:
            incidents.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the journal directory {incidents}: {exc}; set "
                "XDG_STATE_HOME to a writable directory, or pass --read-only"
            ) from exc
        folder = _find_open(incidents, target)
        if folder is not None:
            journal = cls(folder, target, kube_user, clock=clock)
            journal._acquire(take_over)
            if journal.owner:
                journal.append("reopened", {})
            return journal
        name = f"{clock.folder_stamp()}-{_slug(target.namespace)}-{_slug(target.deployment)}"
        folder = incidents / name
        suffix = 1
        while folder.exists():
            suffix += 1
            folder = incidents / f"{name}-{suffix}"
        folder.mkdir(mode=0o700)
        _write_json(
            folder / "incident.json",
            {
                "id": folder.name,
                "status": "open",
                "opened_at": clock.journal_stamp(),
                "context": target.context,
                "server": target.server,
                "namespace": target.namespace,
                "deployment": target.deployment,
                "kube_user": kube_user,
                "os_user": os_user(),
            },
        )
        journal = cls(folder, target, kube_user, clock=clock)
        journal._acquire(False)
        journal.append("opened", {})
        return journal

    # -- the lock --------------------------------------------------------------------------

    def _acquire(self, take_over: bool) -> None:
        got = acquire(self.folder / "lock", self.path, take_over)
        self._lock, self._taken_from = got.lock, got.taken_from
        if got.lock is None:
            self.read_only, self.held_by = True, got.held_by

    def release(self) -> None:
        """Give the incident's lock up (on exit; the kernel does it too when a process dies)."""
        lock, self._lock = self._lock, None
        drop(lock)

    # -- writing ---------------------------------------------------------------------------

    def meta(self) -> Obj:
        return _read_json(self.folder / "incident.json") or {}

    def append(self, type_: str, data: Obj) -> Entry:
        """Write one masked entry whole and fsync it before returning. On a read-only journal
        an intent or outcome raises JournalReadOnly and anything else is not recorded
        (returned with seq 0). Raises JournalError when the write fails (the torn part is
        cut, nothing is recorded)."""
        masked: Obj = mask_object(data, keep_refs=True)
        with self._mutex:
            if self.read_only:
                if type_ in INTENT_TYPES | OUTCOME_TYPES:
                    raise JournalReadOnly(f"{self.read_only_reason()}; nothing was changed")
                return Entry(0, self.clock.journal_stamp(), type_, masked)
            with append_lock(self.path) as fd:
                if self._lock is not None and not self._lock.still_ours():
                    self._lost()
                    if type_ not in OUTCOME_TYPES:
                        if type_ in INTENT_TYPES:
                            raise JournalReadOnly(
                                f"{self.read_only_reason()} (taken over); nothing was changed"
                            )
                        return Entry(0, self.clock.journal_stamp(), type_, masked)
                elif self._lock is None and type_ in INTENT_TYPES:
                    raise JournalReadOnly(f"{self.read_only_reason()}; nothing was changed")
                end = self._repair_tail(fd)
                if self._taken_from is not None:
                    taken = {"from": self._taken_from.as_json()}
                    self._taken_from = None
                    self._write(fd, end, "taken-over", taken)
                    end = self._scanned_to
                return self._write(fd, end, type_, masked)

    def _lost(self) -> None:
        """Another instance took the incident over: read-only from now on."""
        lock, self._lock = self._lock, None
        self.read_only = True
        self.held_by = holder_of(self.folder / "lock")
        drop(lock)

    def _write(self, fd: int, end: int, type_: str, masked: Obj) -> Entry:
        self._scan(fd, end)
        seq = self._seq + 1
        record = {
            "seq": seq,
            "ts": self.clock.journal_stamp(),
            "type": type_,
            "who": {"kube_user": self.kube_user, "os_user": os_user()},
            "context": self.target.context,
            "namespace": self.target.namespace,
            "deployment": self.target.deployment,
            "data": masked,
        }
        line = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
        view, written = memoryview(line), 0
        try:
            while written < len(line):
                count = os.write(fd, view[written:])
                if count <= 0:
                    raise OSError("the write made no progress")
                written += count
            os.fsync(fd)
        except OSError as exc:
            _cut(fd, end)
            raise JournalError(
                f"could not write the journal {self.path} ({exc}); the {type_!r} entry was "
                "not recorded and nothing was changed. Free space there or set "
                "XDG_STATE_HOME to a writable directory"
            ) from exc
        self._seq, self._scanned_to = seq, end + len(line)
        return Entry(seq, str(record["ts"]), type_, masked)

    def _repair_tail(self, fd: int) -> int:
        """Cut a torn last line (a crash or a full disk mid-write) and record the cut; a last
        line that is whole but lacks its newline gets one. Returns where the log ends."""
        size = os.fstat(fd).st_size
        if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
            return size
        start = _line_start(fd, size)
        fragment = os.pread(fd, size - start, start)
        try:
            record = json.loads(fragment)
            whole = isinstance(record, dict) and "seq" in record
        except ValueError:
            whole = False
        if whole:
            os.write(fd, b"\n")
            os.fsync(fd)
            return size + 1
        _cut(fd, start)
        self._write(
            fd,
            start,
            "repaired",
            {
                "torn_bytes": len(fragment),
                "at_offset": start,
                "fragment": fragment[:TORN_KEPT].decode(errors="replace"),
                "message": f"cut a torn last line of {len(fragment)} bytes (a crash or a "
                "full disk mid-write); every entry before it stands",
            },
        )
        return self._scanned_to

    def _scan(self, fd: int, end: int) -> None:
        """Raise self._seq to the highest seq in the whole lines up to `end` not yet seen."""
        if end < self._scanned_to:
            self._scanned_to = 0  # the file was cut below what we read: read it again
        pos, rest = self._scanned_to, b""
        while pos < end:
            chunk = os.pread(fd, min(SCAN_CHUNK, end - pos), pos)
            if not chunk:
                break
            pos += len(chunk)
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                self._seq = max(self._seq, _seq_of(line))
        self._scanned_to = pos - len(rest)

    # -- findings as changes of state ------------------------------------------------------

    def record_findings(self, step: str, state: str, findings: Sequence[Obj]) -> Entry | None:
        """Journal what changed in a step's findings since the last check (first seen,
        cleared, the step's state); nothing when nothing changed. Raises JournalError."""
        with self._mutex:
            if self._active is None:
                self._active = _active_findings(self.entries())
            old_state, old = self._active.get(step, ("", {}))
            now = {_finding_key(f): f for f in findings}
            seen = [now[k] for k in sorted(now.keys() - old.keys())]
            cleared = [
                {"code": k[0], "subject": k[1], "severity": k[2]}
                for k in sorted(old.keys() - now.keys())
            ]
            if not seen and not cleared and state == old_state:
                return None
            entry = self.append(
                "findings",
                {
                    "step": step,
                    "state": state,
                    "seen": seen,
                    "cleared": cleared,
                    "active": len(now),
                },
            )
            self._active[step] = (state, now)
            return entry

    # -- reading ---------------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        return [
            Entry(int(r["seq"]), str(r["ts"]), str(r["type"]), r.get("data") or {})
            for r in self.records()
        ]

    def records(self) -> list[Obj]:
        """The raw records, with who/context, for the evidence bundle (a torn line is
        skipped: every entry before it stands)."""
        try:
            text = self.path.read_bytes()
        except OSError:
            return []
        out = []
        for line in text.split(b"\n"):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and {"seq", "ts", "type"} <= record.keys():
                out.append(record)
        return out

    def close(self, verdict: str) -> None:
        """Mark the incident closed. Raises JournalReadOnly without the lock."""
        if not self.owner:
            raise JournalReadOnly(f"{self.read_only_reason()}; the incident stays open")
        meta = self.meta()
        meta.update(status="closed", closed_at=self.clock.journal_stamp(), verdict=verdict)
        _write_json(self.folder / "incident.json", meta)
        self.append("closed", {"verdict": verdict})


def _seq_of(line: bytes) -> int:
    try:
        record = json.loads(line)
        return int(record["seq"]) if isinstance(record, dict) else 0
    except (ValueError, KeyError, TypeError):
        return 0


def _line_start(fd: int, size: int) -> int:
    """Where the last line starts (just after the last newline before `size`)."""
    pos = size
    while pos > 0:
        step = min(SCAN_CHUNK, pos)
        chunk = os.pread(fd, step, pos - step)
        at = chunk.rfind(b"\n")
        if at >= 0:
            return pos - step + at + 1
        pos -= step
    return 0


def _cut(fd: int, size: int) -> None:
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    except OSError:
        pass  # the next write finds the torn tail and cuts it


def _finding_key(finding: Obj) -> tuple[str, str, str]:
    return (str(finding.get("code")), str(finding.get("subject")), str(finding.get("severity")))


def _active_findings(
    entries: Sequence[Entry],
) -> dict[str, tuple[str, dict[tuple[str, str, str], Obj]]]:
    """Each step's state and findings as the journal last recorded them."""
    out: dict[str, tuple[str, dict[tuple[str, str, str], Obj]]] = {}
    for entry in entries:
        step = str(entry.data.get("step", ""))
        if entry.type == "check":  # older journals: a full snapshot per check
            found = entry.data.get("findings") or []
            out[step] = (str(entry.data.get("state", "")), {_finding_key(f): f for f in found})
        elif entry.type == "findings":
            active = dict(out.get(step, ("", {}))[1])
            for f in entry.data.get("cleared") or []:
                active.pop(_finding_key(f), None)
            for f in entry.data.get("seen") or []:
                active[_finding_key(f)] = f
            out[step] = (str(entry.data.get("state", "")), active)
    return out


def _find_open(incidents: Path, target: Target) -> Path | None:
    try:
        folders = sorted(incidents.iterdir(), reverse=True)
    except OSError:
        return None
    for folder in folders:
        meta = _read_json(folder / "incident.json")
        if (
            meta
            and meta.get("status") == "open"
            and (meta.get("context"), meta.get("namespace"), meta.get("deployment"))
            == (target.context, target.namespace, target.deployment)
        ):
            return folder
    return None


def _read_json(path: Path) -> Obj | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: Obj) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
