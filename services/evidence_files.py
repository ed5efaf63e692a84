"""Writing the evidence bundle to disk: a folder only its owner can read (0700, files 0600),
a SHA-256 manifest and a .tar.gz beside it (0600), at a path that cannot leave `--out`.

The folder name is built from cluster names, which are data: every character outside
[A-Za-z0-9_.-] becomes "-", dots cannot form "..", and the resolved folder is checked to sit
directly under the resolved `--out` before anything is written.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from services.errors import ConfigError
from services.masking import mask_text

FOLDER_MODE = 0o700
FILE_MODE = 0o600
PREFIX = "skewmit-evidence"


def segment(text: str) -> str:
    """A name part that is one path segment and never "." or "..": separators, dots runs and
    anything unusual become "-"."""
    clean = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)
    clean = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", "-", clean)).strip(".-")
    return clean[:63] or "x"


def bundle_name(namespace: str, deployment: str, now: float) -> str:
    """The folder name: the target and the capture time on the session's clock."""
    stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{PREFIX}-{segment(namespace)}-{segment(deployment)}-{stamp}"


def inside(folder: Path, out_dir: Path) -> bool:
    """Whether `folder` resolves to a direct child of `out_dir` (symlinks followed)."""
    return folder.resolve().parent == out_dir.resolve()


def new_folder(out_dir: Path, name: str) -> Path:
    """Create `out_dir` (0700 when new) and a fresh folder `name` (or name-2, -3...) in it,
    mode 0700. Raises ConfigError when the folder would land outside `out_dir` or cannot be
    created."""
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ConfigError(f"evidence folder name {name!r} is not one plain path segment")
    try:
        out_dir.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
        folder = out_dir / name
        suffix = 1
        while any(p.exists() or p.is_symlink() for p in (folder, _tarball_of(folder))):
            suffix += 1
            folder = out_dir / f"{name}-{suffix}"
        if not inside(folder, out_dir):
            raise ConfigError(
                f"the evidence folder {folder} would be outside --out {out_dir}; not writing"
            )
        folder.mkdir(mode=FOLDER_MODE)
        os.chmod(folder, FOLDER_MODE)  # mkdir's mode is filtered by the umask
    except OSError as exc:
        raise ConfigError(
            f"cannot write the evidence bundle under {out_dir}: {exc}; choose another --out"
        ) from exc
    return folder


def _tarball_of(folder: Path) -> Path:
    return folder.parent / f"{folder.name}.tar.gz"


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, FILE_MODE)


def write_files(folder: Path, files: Mapping[str, str], secrets: Sequence[str]) -> tuple[str, ...]:
    """Write each file (relative path -> text) masked with `secrets`, then MANIFEST.sha256.
    Returns the relative paths written, the manifest last. Raises ConfigError for a path that
    would leave the folder or a write that fails."""
    root = folder.resolve()
    manifest = []
    try:
        for rel in sorted(files):
            path = folder / rel
            if not path.resolve().is_relative_to(root) or ".." in Path(rel).parts:
                raise ConfigError(f"evidence file {rel!r} would be outside the bundle folder")
            for parent in reversed(path.relative_to(folder).parents[:-1]):
                sub = folder / parent
                if not sub.exists():
                    sub.mkdir(mode=FOLDER_MODE)
                    os.chmod(sub, FOLDER_MODE)
            data = mask_text(files[rel], list(secrets)).encode()
            _write_private(path, data)
            manifest.append(f"{hashlib.sha256(data).hexdigest()}  {rel}")
        _write_private(folder / "MANIFEST.sha256", ("\n".join(manifest) + "\n").encode())
    except OSError as exc:
        raise ConfigError(f"cannot write the evidence bundle in {folder}: {exc}") from exc
    return (*sorted(files), "MANIFEST.sha256")


def _private_member(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mode = FOLDER_MODE if info.isdir() else FILE_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_tarball(folder: Path) -> Path:
    """`<folder>.tar.gz` beside the folder, created 0600 (never readable by others, not even
    for a moment), its members 0600/0700. Raises ConfigError when it cannot be written."""
    tarball = _tarball_of(folder)
    buffer = io.BytesIO()
    try:
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(folder, arcname=folder.name, filter=_private_member)
        _write_private(tarball, buffer.getvalue())
    except OSError as exc:
        raise ConfigError(f"cannot write the evidence tarball {tarball}: {exc}") from exc
    return tarball
