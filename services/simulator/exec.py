"""`pods/exec` over websocket, with the v5 and v4 channel protocols kubectl and the Python
client speak, and the executables a serving container has: its programs, the GNU filters
(coreutils.py) and `sh -c` (shell.py)."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from services.simulator.coreutils import UTILITIES
from services.simulator.errors import ApiError, bad_request
from services.simulator.shell import Container, Program, run_shell

__all__ = ["Container", "NotStarted", "Program", "run_program", "serve"]

PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDOUT, STDERR, ERROR, CLOSE = 1, 2, 3, 255
SHELLS = ("sh", "bash", "dash")
# Before its first frame, the time a runtime takes to start the process (runc's exec alone
# takes tens of ms). kubectl (client-go's websocket executor) reads the socket in one goroutine
# while another creates its stdout/stderr/error streams, and drops a frame that arrives for a
# stream not created yet: an answer sent the moment the upgrade completes lost its output, or
# the whole exchange ("error: closed all streams", exit 1), when kubectl was slow to be
# scheduled (1 run in 45 of test_exec_shell_expands_pipes_and_lists[1.32] under load; none in
# 75 with this wait).
PROCESS_START_S = 0.02


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


def run_program(argv: list[str], container: Container) -> tuple[int, str, str]:
    """Run argv in the container: `sh -c`/`bash -c` through the shell, else the executable.

    Raises NotStarted when argv[0] is not an executable of the container.
    """
    if not argv:
        return 1, "", "error: you must specify at least one command for the container\n"
    name = argv[0].rsplit("/", 1)[-1]
    if name in SHELLS:
        if argv[1:2] != ["-c"]:
            return 0, "", ""  # an interactive shell with no terminal reads EOF and exits
        if len(argv) < 3:
            if name == "bash":
                return 2, "", "bash: -c: option requires an argument\n"
            return 2, "", f"{name}: 0: -c requires an argument\n"
        return run_shell("bash" if name == "bash" else "sh", argv[2], container)
    if name in UTILITIES:
        return UTILITIES[name](argv, "", container.files)
    if name in container.programs:
        return container.programs[name](argv)
    raise NotStarted(not_found_message(argv[0]))


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
    await asyncio.sleep(PROCESS_START_S)
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
    if request.query.get("stdin", "false") == "true":
        # Drain what the client still sends on stdin (its data, the close signal) until it
        # goes, briefly: kubectl 1.32 `exec -i` logs "websocket: close" when the stream is
        # closed under its stdin copy.
        try:
            msg = await ws.receive(timeout=0.05)
            while msg.type not in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                msg = await ws.receive(timeout=0.05)
        except TimeoutError:
            pass
    # Without stdin the client sends nothing more and waits for the server to close, as the
    # kubelet does once the status is sent: waiting 50 ms for the client to close first made
    # every exec (step 5's nvidia-smi reads) 50 ms longer.
    await ws.close()
    return ws
