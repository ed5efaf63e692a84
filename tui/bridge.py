"""`skewmit bridge`: a read-only view of a running incident, served to browsers.

The view is built from the incident's journal alone (the checklist's states, the validation
verdict, the action log, the drill's progress), read again every second, plus the rollout
read through a kubeconfig when one is given. It holds no gate and opens the journal
read-only, and it has no key that changes anything: a browser can watch, never act.

textual-serve runs one view process per browser tab (`python -m tui.screens.bridge_view FOLDER`);
the server listens on 127.0.0.1 unless told otherwise and refuses every page and websocket that
does not carry the random token printed at start.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Imported where used: `skewmit --help` builds this command's parser and must stay fast.
if TYPE_CHECKING:
    from services.models import Step

DEFAULT_PORT = 8470
STATES = {"ok": "clear", "findings": "findings", "failed": "failed"}


@dataclass(frozen=True)
class BridgeTarget:
    """What a bridge watches: an incident's journal folder, and a (read-only) kubeconfig
    context for the rollout when given."""

    folder: Path
    kubeconfig: str = ""
    context: str = ""


@dataclass(frozen=True)
class StepRow:
    step: Step
    number: int
    title: str
    state: str
    errors: int = 0
    warnings: int = 0


@dataclass(frozen=True)
class IncidentView:
    """What the bridge shows, from the journal's entries."""

    incident: str
    rows: tuple[StepRow, ...]
    verdict: str  # PASS | FAIL | UNKNOWN | NOT YET CHECKED
    verdict_notes: tuple[str, ...]
    drill: str = ""  # "drill running" / "drill over: ..."
    closed: bool = False


def incident_view(incident: str, entries: list[Any]) -> IncidentView:
    """The bridge's view of an incident from its journal entries (oldest first)."""
    from services.models import STEP_ORDER, STEP_TITLES, Step

    states: dict[Step, str] = {}
    active: dict[Step, dict[tuple[str, str], tuple[str, str]]] = {}
    acted: set[str] = set()
    drill, closed = "", False
    for entry in entries:
        data = entry.data
        if entry.type == "findings":
            try:
                step = Step(str(data.get("step", "")))
            except ValueError:
                continue
            states[step] = STATES.get(str(data.get("state")), "checking")
            found = active.setdefault(step, {})
            for f in data.get("cleared") or []:
                found.pop((str(f.get("code")), str(f.get("subject"))), None)
            for f in data.get("seen") or []:
                key = (str(f.get("code")), str(f.get("subject")))
                found[key] = (str(f.get("severity")), str(f.get("message", "")))
        elif entry.type == "applied":
            acted.add(str(data.get("action", "")).split(".", 1)[0])
        elif entry.type == "drill":
            event = data.get("event")
            drill = "drill running" if event in ("started", "hint", "fault") else "drill over"
        elif entry.type == "closed":
            closed = True
    rows = []
    for i, step in enumerate(STEP_ORDER):
        state = states.get(step, "pending")
        if state == "clear" and step.value in acted:
            state = "done"
        severities = [s for s, _ in active.get(step, {}).values()]
        rows.append(
            StepRow(
                step,
                i + 1,
                STEP_TITLES[step],
                state,
                severities.count("error"),
                severities.count("warning"),
            )
        )
    verdict_state = states.get(Step.VALIDATE)
    verdict = {"clear": "PASS", "findings": "FAIL", "failed": "UNKNOWN"}.get(
        verdict_state or "", "NOT YET CHECKED"
    )
    notes = tuple(m for _, m in active.get(Step.VALIDATE, {}).values())
    return IncidentView(incident, tuple(rows), verdict, notes, drill=drill, closed=closed)


# -- serving --------------------------------------------------------------------------------


def _server_class() -> Any:
    """textual-serve's Server with the access token on every page and websocket."""
    import asyncio
    import hmac
    import signal

    import aiohttp_jinja2
    import jinja2
    from aiohttp import web
    from textual_serve.server import Server

    class TokenServer(Server):
        def __init__(self, command: str, host: str, port: int, token: str) -> None:
            super().__init__(command, host=host, port=port, title="skewmit bridge")
            self.token = token

        def allowed(self, given: str) -> bool:
            return hmac.compare_digest(given.encode(), self.token.encode())

        async def _make_app(self) -> web.Application:
            app = web.Application()
            aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates_path))
            app.add_routes(
                [
                    web.get("/", self.handle_index, name="index"),
                    web.get("/ws/{token}", self.handle_token_websocket, name="websocket"),
                    web.static("/static", self.statics_path, name="static"),
                ]
            )
            return app

        async def handle_index(self, request: web.Request) -> web.StreamResponse:
            if not self.allowed(request.query.get("token", "")):
                raise web.HTTPForbidden(text="skewmit bridge: open the URL with its token\n")
            # From the address the browser used (an SSH tunnel's, a host name for --host):
            # the bound address (0.0.0.0) means nothing to a browser.
            ws = "wss" if request.secure else "ws"
            context = {
                "font_size": 16,
                "app_websocket_url": f"{ws}://{request.host}/ws/{self.token}",
                "config": {"static": {"url": "/static/"}},
                "application": {"name": self.title},
            }
            return aiohttp_jinja2.render_template("app_index.html", request, context)

        async def handle_token_websocket(self, request: web.Request) -> web.StreamResponse:
            if not self.allowed(request.match_info.get("token", "")):
                raise web.HTTPForbidden(text="skewmit bridge: bad token\n")
            response: web.StreamResponse = await self.handle_websocket(request)
            return response

        def serve(self, debug: bool = False) -> None:
            self.initialize_logging()
            asyncio.run(self.run_until_stopped())

        async def run_until_stopped(self) -> None:
            runner = web.AppRunner(await self._make_app())
            await runner.setup()
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            # The URL only once the socket listens (and with the real port for --port 0).
            server = getattr(site, "_server", None)
            sockets = getattr(server, "sockets", None) or ()
            port = sockets[0].getsockname()[1] if sockets else self.port
            host = f"[{self.host}]" if ":" in self.host else self.host
            self.public_url = f"http://{host}:{port}"
            print(f"skewmit bridge (read-only): {self.public_url}/?token={self.token}", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            try:
                await stop.wait()
            finally:
                await runner.cleanup()

        def initialize_logging(self) -> None:
            import logging

            logging.basicConfig(level=logging.WARNING)

    return TokenServer


def add_bridge_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "bridge",
        help="serve a read-only view of a running incident to browsers",
        description="Serve the incident's checklist, validation verdict, rollout and action "
        "log, live and read-only, to browsers (textual-serve). Prints a URL with a random "
        "access token; requests without it are refused.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--incident", help="the incident's id or journal folder")
    which.add_argument("--drill", help="a running drill's kubeconfig (skewmit drill --kubeconfig)")
    p.add_argument("--kubeconfig", help="kubeconfig to read the rollout with (optional)")
    p.add_argument("--context", help="its context (a read-only one is best)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)")


def resolve_source(args: argparse.Namespace) -> BridgeTarget:
    """Raises ConfigError when the incident or the drill cannot be found."""
    import json

    from services.errors import ConfigError
    from services.journal import state_dir

    if args.drill:
        side = Path(args.drill).with_name(Path(args.drill).name + ".drill.json")
        try:
            drill = json.loads(side.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"no running drill beside {args.drill}: {exc}") from None
        return BridgeTarget(Path(drill["journal"]), args.drill, "skewmit-sim-readonly")
    folder = Path(args.incident)
    if not folder.is_dir():
        folder = state_dir() / "incidents" / args.incident
    if not (folder / "journal.jsonl").exists():
        raise ConfigError(f"no incident journal at {folder}; pass --incident ID or FOLDER")
    return BridgeTarget(folder, args.kubeconfig or "", args.context or "")


def run_bridge(args: argparse.Namespace) -> int:
    import secrets
    import shlex

    from services.errors import ConfigError

    try:
        source = resolve_source(args)
    except ConfigError as exc:
        print(f"skewmit bridge: {exc}", file=sys.stderr)
        return 2
    view = [sys.executable, "-m", "tui.screens.bridge_view", str(source.folder)]
    if source.kubeconfig:
        view += ["--kubeconfig", source.kubeconfig, "--context", source.context]
    token = secrets.token_urlsafe(24)
    server = _server_class()(shlex.join(view), args.host, args.port, token)
    try:
        server.serve()
    except OSError as exc:
        print(
            f"skewmit bridge: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; "
            "choose another --port (0 for any free port)",
            file=sys.stderr,
        )
        return 2
    return 0
