"""The incident journal: append-only JSONL on disk, fsync'd around every change.

One folder per incident under the XDG state directory
(`$XDG_STATE_HOME/skewmit/incidents/<id>/`, default `~/.local/state/skewmit/...`), holding
`incident.json` (what and who) and `journal.jsonl` (every check, finding, plan, apply, verify,
revert and verdict). Starting skewmit again for the same target reopens the open incident, so
an SSH drop loses nothing. Everything written is masked first.
"""

from __future__ import annotations

import getpass
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.errors import ConfigError
from services.masking import mask_object
from services.models import Target

Obj = dict[str, Any]


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path("~/.local/state").expanduser())
    return Path(base) / "skewmit"


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:40] or "x"


@dataclass(frozen=True)
class Entry:
    seq: int
    ts: str
    type: str
    data: Obj


class Journal:
    """An incident's journal. Use `Journal.open_for(target, kube_user)`."""

    def __init__(self, folder: Path, target: Target, kube_user: str) -> None:
        self.folder = folder
        self.target = target
        self.kube_user = kube_user
        self.path = folder / "journal.jsonl"
        self._seq = sum(1 for _ in self.entries())

    @property
    def incident_id(self) -> str:
        return self.folder.name

    @classmethod
    def open_for(cls, target: Target, kube_user: str, root: Path | None = None) -> Journal:
        """Reopen the open incident for this target, or start a new one.

        Raises ConfigError when the state directory cannot be written.
        """
        root = root or state_dir()
        incidents = root / "incidents"
        try:
            incidents.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the journal directory {incidents}: {exc}; set "
                "XDG_STATE_HOME to a writable directory"
            ) from exc
        for folder in sorted(incidents.iterdir(), reverse=True):
            meta = _read_json(folder / "incident.json")
            if (
                meta
                and meta.get("status") == "open"
                and (meta.get("context"), meta.get("namespace"), meta.get("deployment"))
                == (target.context, target.namespace, target.deployment)
            ):
                journal = cls(folder, target, kube_user)
                journal.append("reopened", {})
                return journal
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        name = f"{stamp}-{_slug(target.namespace)}-{_slug(target.deployment)}"
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
                "opened_at": utc_now(),
                "context": target.context,
                "server": target.server,
                "namespace": target.namespace,
                "deployment": target.deployment,
                "kube_user": kube_user,
                "os_user": os_user(),
            },
        )
        journal = cls(folder, target, kube_user)
        journal.append("opened", {})
        return journal

    def meta(self) -> Obj:
        return _read_json(self.folder / "incident.json") or {}

    def append(self, type_: str, data: Obj) -> Entry:
        """Write one masked entry and fsync it before returning."""
        self._seq += 1
        record = {
            "seq": self._seq,
            "ts": utc_now(),
            "type": type_,
            "who": {"kube_user": self.kube_user, "os_user": os_user()},
            "context": self.target.context,
            "namespace": self.target.namespace,
            "deployment": self.target.deployment,
            "data": mask_object(data, keep_refs=True),
        }
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return Entry(self._seq, record["ts"], type_, record["data"])

    def entries(self) -> list[Entry]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line after a crash: everything before it stands
            out.append(Entry(int(record["seq"]), record["ts"], record["type"], record["data"]))
        return out

    def records(self) -> list[Obj]:
        """The raw records, with who/context, for the evidence bundle."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def close(self, verdict: str) -> None:
        meta = self.meta()
        meta.update(status="closed", closed_at=utc_now(), verdict=verdict)
        _write_json(self.folder / "incident.json", meta)
        self.append("closed", {"verdict": verdict})


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
