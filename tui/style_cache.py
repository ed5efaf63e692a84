"""The app's parsed stylesheets, kept between runs (issue 12).

Textual parses every stylesheet of the screen at each start: the app's .tcss and the default
CSS of each widget class, 39 sources and 231 rules for the main screen, 15-20 ms of the ~150 ms
between `App.run` and the first frame on the 2-core bench machine. Reading them back from a
pickle takes 2-3 ms (bench/RESULTS.md, 2026-12-05).

`KeptStylesheet` is Textual's Stylesheet with one more cache under its own: the rules of a
source parsed in an earlier run, keyed by everything the parse depends on (the CSS text, where
it was read from, its defaults flag, tie breaker and scope), under the theme's variables it was
parsed with. The file carries a stamp of Python's version and of the Textual and Rich it was
written with (their files' paths and modification times): after an upgrade it is ignored and
written again, never read into another version's classes. What is new is written by a daemon
thread
`KEEP_AFTER_S` after the parse that found it, off start-up's path; a run that ends first
loses nothing but the time its next start spends parsing again.

The file is a pickle: it is read only when it is a regular file owned by this user and not
writable by anyone else (the rules of ~/.ssh), in a folder with the same rules; anything else,
or a file that does not load, is ignored and parsed over. Nothing here raises.
"""

from __future__ import annotations

import os
import pickle
import stat
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import rich
import rich.style
import textual
import textual.css.model
from textual.css.model import RuleSet
from textual.css.stylesheet import Stylesheet
from textual.css.types import CSSLocation

KEEP_AFTER_S = 2.0
MAX_KEPT = 300  # sources in the file: what this run used first, then the file's others
FORMAT = 1  # this module's layout of the file


Key = tuple[str, CSSLocation, bool, int, str]
Kept = dict[Key, list[RuleSet]]


def cache_path() -> Path:
    """$XDG_CACHE_HOME/skewmit/styles.pickle (default ~/.cache)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "skewmit" / "styles.pickle"


def stamp() -> tuple[Any, ...]:
    """What the pickled objects depend on: this module's format, Python, and the files of the
    Textual and Rich classes they are made of (an upgrade rewrites them)."""
    files = (textual.__file__, textual.css.model.__file__, rich.__file__, rich.style.__file__)
    return (FORMAT, sys.version, *((f, os.stat(f).st_mtime_ns) for f in files if f))


def _private(mode: int, uid: int) -> bool:
    return uid == os.getuid() and not mode & (stat.S_IWGRP | stat.S_IWOTH)


def load(path: Path, variables: tuple[tuple[str, str], ...]) -> Kept:
    """The rules kept at `path` for these theme variables, or {} (missing, not private, not
    loadable, written by other versions or for other variables)."""
    try:
        folder = os.stat(path.parent)
        if not stat.S_ISDIR(folder.st_mode) or not _private(folder.st_mode, folder.st_uid):
            return {}
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return {}
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or not _private(info.st_mode, info.st_uid):
            return {}
        with os.fdopen(fd, "rb") as file:
            fd = -1
            content = pickle.load(file)
        if content.get("stamp") != stamp() or content.get("variables") != variables:
            return {}
        rules = content["rules"]
    except Exception:  # a torn or foreign file: parsed over
        return {}
    finally:
        if fd >= 0:
            os.close(fd)
    if not isinstance(rules, dict) or not all(isinstance(v, list) for v in rules.values()):
        return {}
    return rules


def save(path: Path, variables: tuple[tuple[str, str], ...], kept: Kept) -> bool:
    """Write `kept` to `path` (private, replaced whole); False when it cannot be written.
    Raises nothing: it runs on the writer's thread, whose traceback would land on the
    operator's screen."""
    try:
        content = {"stamp": stamp(), "variables": variables, "rules": kept}
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=".styles-", dir=path.parent)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as file:
            pickle.dump(content, file, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)
        return True
    except Exception:  # a rule that does not pickle, a full disk: parsed next time
        try:
            os.unlink(temporary)
        except OSError:
            pass
        return False


class KeptStylesheet(Stylesheet):
    """Textual's Stylesheet, its parsed sources also read from and written to `path`."""

    def __init__(self, *, variables: dict[str, str] | None = None, path: Path | None) -> None:
        super().__init__(variables=variables)
        self.path = path
        self._lock = threading.Lock()
        self._variables_key = tuple(sorted(self._variables.items()))
        self._file = load(path, self._variables_key) if path is not None else {}
        self._used: Kept = {}
        self._new = False
        self._writer: threading.Timer | None = None
        self.parsed = 0  # sources this stylesheet parsed itself (not read back)

    def set_variables(self, variables: dict[str, str]) -> None:
        super().set_variables(variables)
        with self._lock:  # rules parsed with other variables are not these
            self._variables_key = tuple(sorted(self._variables.items()))
            self._file, self._used = {}, {}

    def _parse_rules(
        self,
        css: str,
        read_from: CSSLocation,
        is_default_rules: bool = False,
        tie_breaker: int = 0,
        scope: str = "",
    ) -> list[RuleSet]:
        key: Key = (css, read_from, is_default_rules, tie_breaker, scope)
        with self._lock:
            rules = self._used.get(key)
            if rules is None:
                rules = self._file.get(key)
        if rules is None:
            rules = super()._parse_rules(css, read_from, is_default_rules, tie_breaker, scope)
            self.parsed += 1
            if any(rule.errors for rule in rules):
                return rules  # Textual reports it; nothing invalid is kept
            with self._lock:
                self._new = True
            self._write_soon()
        with self._lock:
            self._used[key] = rules
        return rules

    def _write_soon(self) -> None:
        if self.path is None or self._writer is not None:
            return
        self._writer = threading.Timer(KEEP_AFTER_S, self.keep)
        self._writer.daemon = True
        self._writer.name = "skewmit-style-cache"
        self._writer.start()

    def keep(self) -> bool:
        """Write what this run used, then the file's other sources up to MAX_KEPT; True when
        the file was written (False: nothing new, no path, or it cannot be written)."""
        with self._lock:
            self._writer = None
            if not self._new or self.path is None:
                return False
            self._new = False
            kept = dict(self._used)
            for key, rules in self._file.items():
                if len(kept) >= MAX_KEPT:
                    break
                kept.setdefault(key, rules)
            variables = self._variables_key
        return save(self.path, variables, kept)
