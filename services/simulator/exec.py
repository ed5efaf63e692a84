"""`pods/exec` over websocket, with the v5 and v4 channel protocols kubectl and the Python
client speak, and the tiny set of executables a serving container has."""

from __future__ import annotations

import json
import secrets
import shlex
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from services.simulator.errors import ApiError, bad_request

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDOUT, STDERR, ERROR, CLOSE = 1, 2, 3, 255

Program = Callable[[list[str]], tuple[int, str, str]]


class NotStarted(Exception):
    """The container runtime could not start the process (no such executable)."""


def not_found_message(executable: str) -> str:
    return (
        "OCI runtime exec failed: exec failed: unable to start container process: exec: "
        f'"{executable}": executable file not found in $PATH: unknown'
    )


def start_failure_status(reason: str) -> dict[str, Any]:
    """What containerd's CRI exec sends when the process cannot start: not an exit code but
    an InternalError Status (kubectl prints "error: Internal error occurred: ..." and exits 1).
    """
    error = (
        "error executing command in container: failed to exec in container: failed to start "
        f'exec "{secrets.token_hex(32)}": {reason}'
    )
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"Internal error occurred: {error}",
        "reason": "InternalError",
        "details": {"causes": [{"message": error}]},
        "code": 500,
    }


def exit_status(code: int, argv: list[str]) -> dict[str, Any]:
    """The Status a real kubelet sends on the error channel when the command ends."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": (
            f"command terminated with non-zero exit code: error executing command "
            f"[{' '.join(argv)}], exit code {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


def run_program(argv: list[str], programs: dict[str, Program]) -> tuple[int, str, str]:
    """Run argv against the container's executables; a shell's -c runs one simple command.

    Raises NotStarted when argv[0] is not an executable of the container.
    """
    if not argv:
        return 1, "", "error: you must specify at least one command for the container\n"
    name = argv[0].rsplit("/", 1)[-1]
    if name in ("sh", "bash") and len(argv) >= 3 and argv[1] == "-c":
        try:
            inner = shlex.split(argv[2])
        except ValueError as exc:
            return 2, "", f"{name}: syntax error: {exc}\n"
        if not inner:
            return 0, "", ""
        inner_name = inner[0].rsplit("/", 1)[-1]
        if inner_name == "exit":
            return (int(inner[1]) & 0xFF if len(inner) > 1 and inner[1].isdigit() else 0), "", ""
        if inner_name not in programs:
            # dash (the image's /bin/sh) and bash word it differently; both exit 127.
            if name == "bash":
                return 127, "", f"bash: line 1: {inner[0]}: command not found\n"
            return 127, "", f"{name}: 1: {inner[0]}: not found\n"
        return programs[inner_name](inner)
    if name not in programs and name not in ("sh", "bash"):
        raise NotStarted(not_found_message(argv[0]))
    if name not in programs:
        return 0, "", ""  # an interactive shell with no terminal reads EOF and exits
    return programs[name](argv)


async def serve(
    request: web.Request,
    run: Callable[[list[str]], tuple[int, str, str]],
) -> web.StreamResponse:
    """Upgrade to a websocket, run the command, stream its output and exit status."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise bad_request("Upgrade request required")
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if not any(p in PROTOCOLS for p in offered):
        raise ApiError(
            400,
            "BadRequest",
            "unable to upgrade connection: requested protocols "
            f"{offered} are not supported; supported: {list(PROTOCOLS)}",
        )
    argv = request.query.getall("command", [])
    ws = web.WebSocketResponse(protocols=PROTOCOLS)
    await ws.prepare(request)
    try:
        code, out, err = run(argv)
    except NotStarted as refused:
        status = start_failure_status(str(refused))
    else:
        if out and request.query.get("stdout", "true") != "false":
            await ws.send_bytes(bytes([STDOUT]) + out.encode())
        if err and request.query.get("stderr", "true") != "false":
            await ws.send_bytes(bytes([STDERR]) + err.encode())
        status = exit_status(code, argv)
    await ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
    # Drain whatever the client sends (stdin close signals) until it goes, briefly.
    try:
        msg = await ws.receive(timeout=0.05)
        while msg.type not in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
            msg = await ws.receive(timeout=0.05)
    except TimeoutError:
        pass
    await ws.close()
    return ws
