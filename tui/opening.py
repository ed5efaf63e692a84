"""Opening the session after the first frame (issue 12): the opener's one blocking call runs
in a thread worker of the app and answers with `SessionOpened`; quitting meanwhile waits for
it, so that what it opened can still be closed by the launcher. While it runs, the opener
may post what it has before the session is whole (`opening_poster`: the first metrics,
which need nothing from the cluster)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextvars import ContextVar
from functools import partial
from typing import Any

from textual.app import App
from textual.message import Message

from services.errors import SkewmitError
from tui.messages import SessionOpened
from tui.session import Session, SessionOpener
from tui.workers import GROUP_OPEN

Poster = Callable[[Message], object]

# The app's post_message while its opener runs, on the opener's thread: a context variable,
# since the opener's `open` takes no arguments.
_poster: ContextVar[Poster | None] = ContextVar("skewmit_opening_poster", default=None)


def opening_poster() -> Poster | None:
    """Inside the opener's `open`, on its thread: how to post a message to the app before the
    session is open (safe from any thread; hand it on to threads `open` starts). None when
    no app is opening (a test or a tool calling `open` itself)."""
    return _poster.get()


class SessionOpening:
    def __init__(self, opener: SessionOpener) -> None:
        self.opener = opener
        # What a key that needs the session says meanwhile.
        self.connecting = f"still connecting to {opener.header.context or 'the cluster'}…"
        self._done = threading.Event()  # set when opener.open() has returned or raised
        self._started = False  # start() called: open() runs or has run
        self._opened: Session | None = None  # what open() returned, installed or not

    def start(self, app: App[Any]) -> None:
        self._started = True
        app.run_worker(partial(self._open, app), name="open session", group=GROUP_OPEN, thread=True)

    def _open(self, app: App[Any]) -> None:
        """On a thread: open, and post the session or why it could not be opened. Any other
        exception is a bug: the worker fails, Textual shows the traceback and exits 1."""
        token = _poster.set(app.post_message)
        try:
            session = self.opener.open()
        except Exception as exc:
            if not isinstance(exc, SkewmitError) and type(exc).__name__ != "ScenarioError":
                raise
            app.post_message(SessionOpened(None, str(exc)))
            return
        finally:
            _poster.reset(token)
            self._done.set()
        self._opened = session
        app.post_message(SessionOpened(session))

    async def wait(self) -> Session | None:
        """Wait (off the event loop) for open() to return: the session it opened, if any.
        None at once when it never started (the app quit before its first frame was out)."""
        if not self._started:
            return None
        await asyncio.to_thread(self._done.wait)
        return self._opened
