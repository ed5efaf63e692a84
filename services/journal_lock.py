"""Who may write an incident's journal: the incident lock and the append lock.

The session holding an incident's `lock` file (fcntl.flock) is the only one that may journal
an intent to change the cluster; another instance opens read-only and is told who holds it,
or takes the incident over (a new lock file, so the old holder notices on its next write).
Every append, by any process, holds the flock on journal.jsonl itself. Also the journal's
errors, which both locks raise.
"""

from __future__ import annotations

import dataclasses
import fcntl
import getpass
import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.errors import SkewmitError

Obj = dict[str, Any]


class JournalError(SkewmitError):
    """The journal cannot record what skewmit is about to do; nothing was changed."""


class JournalReadOnly(JournalError):
    """This session holds no lock on the incident (another does, or --read-only)."""


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


@dataclass(frozen=True)
class Holder:
    """Who holds an incident's lock."""

    pid: int
    os_user: str
    host: str
    since: str

    def describe(self) -> str:
        return f"pid {self.pid}, {self.os_user}@{self.host}, since {self.since}"

    def as_json(self) -> Obj:
        return dataclasses.asdict(self)

    @classmethod
    def me(cls) -> Holder:
        return cls(os.getpid(), os_user(), socket.gethostname(), utc_now())

    @classmethod
    def parse(cls, text: str) -> Holder:
        try:
            data = json.loads(text)
            return cls(int(data["pid"]), str(data["os_user"]), str(data["host"]), data["since"])
        except (ValueError, KeyError, TypeError):
            return cls(0, "?", "?", "?")  # a holder that died while writing its name


@dataclass
class IncidentLock:
    """An incident lock held by this process (shared by its Journal objects)."""

    fd: int
    path: Path
    holder: Holder

    def still_ours(self) -> bool:
        """False once another instance took the incident over (it replaced the lock file)."""
        try:
            return os.stat(self.path).st_ino == os.fstat(self.fd).st_ino
        except OSError:
            return False


@dataclass(frozen=True)
class Acquired:
    """What `acquire` found: the lock (None when another instance holds the incident, then
    `held_by` says who), and whom it was taken over from."""

    lock: IncidentLock | None
    held_by: Holder | None = None
    taken_from: Holder | None = None


_HELD: dict[str, IncidentLock] = {}
_HELD_GUARD = threading.Lock()


def acquire(path: Path, journal_path: Path, take_over: bool) -> Acquired:
    """Lock the incident whose lock file is `path`. One process is one instance: a lock this
    process already holds is shared. Held by another instance: no lock (`held_by` says who)
    unless `take_over`. Raises JournalError when the lock file cannot be opened,
    JournalReadOnly when a third instance won a take-over race."""
    with _HELD_GUARD:
        held = _HELD.get(str(path))
        if held is not None and held.still_ours():
            return Acquired(held)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise JournalError(f"cannot lock the incident ({path}): {exc}") from exc
        taken_from = None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Holder.parse(os.pread(fd, 4096, 0).decode(errors="replace"))
            os.close(fd)
            if not take_over:
                return Acquired(None, held_by=holder)
            fd = _replace_lock(path, journal_path, holder)
            taken_from = holder
        me = Holder.me()
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me.as_json()).encode(), 0)
        os.fsync(fd)
        lock = _HELD[str(path)] = IncidentLock(fd, path, me)
        return Acquired(lock, taken_from=taken_from)


def _replace_lock(path: Path, journal_path: Path, previous: Holder) -> int:
    """Take the incident over: a new lock file under the append lock, so the old holder sees
    on its next write that it lost the incident. Raises JournalReadOnly when a third instance
    won the race."""
    with append_lock(journal_path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        try:
            new = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise JournalReadOnly(
                f"could not take the incident over from {previous.describe()}: {exc}"
            ) from exc
        try:
            fcntl.flock(new, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(new)
            raise JournalReadOnly(
                f"could not take the incident over from {previous.describe()}: {exc}"
            ) from exc
    return new


def drop(lock: IncidentLock | None) -> None:
    """Give a lock this process holds up (closing its file releases the flock)."""
    with _HELD_GUARD:
        if lock is not None and _HELD.get(str(lock.path)) is lock:
            del _HELD[str(lock.path)]
            os.close(lock.fd)


def holder_of(path: Path) -> Holder:
    """Who the lock file at `path` names (an unreadable one: an unknown holder)."""
    try:
        return Holder.parse(path.read_text())
    except OSError:
        return Holder(0, "?", "?", "?")


@contextmanager
def append_lock(path: Path) -> Iterator[int]:
    """journal.jsonl opened for appending and flock'd: one writer at a time, across processes
    and threads (each holds its own open file description). Raises JournalError."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise JournalError(f"cannot open the journal {path}: {exc}; nothing was changed") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the flock
