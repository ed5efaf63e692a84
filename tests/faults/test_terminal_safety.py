"""Issue 9, terminal takeover: cluster and Prometheus text never reaches the terminal raw.

Anyone who can set an annotation reaches the on-call terminal unless skewmit sanitises what it
shows: `kubectl annotate deploy llm-serve kubernetes.io/change-cause=$'x\\e]0;pwned\\e\\\\'`
retitled the window from step 1's rollback history, OSC 52 wrote the clipboard. Here OSC 0, 8
and 52, CSI 2J and BEL are planted in every field the app shows (annotations incl.
change-cause, args, env names, image, events, nvidia-smi output and DCGM's `modelName` label
as the metrics source scrapes it; node labels are tried too, though an API server refuses
such values) and the real app runs in tmux: the bytes it writes to the pty (`pipe-pane`) are
searched, not the widget tree.

Run as a module (`python -m tests.faults.test_terminal_safety SCENARIO STATE`), this file is
the app under test: the demo assembly on a planted scenario.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from services.sanitize import is_terminal_safe, terminal_line, terminal_text
from tests.conftest import require_tool

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "services" / "simulator" / "scenarios"


def payload(tag: str) -> str:
    """Every attack at once, tagged so the screen shows which field it came through."""
    return (
        f"{tag}"
        f"\x1b]0;pwned-{tag}\x07"  # OSC 0: window title, BEL-terminated
        f"\x1b]52;c;cHduZWQ=\x1b\\"  # OSC 52: write the clipboard
        f"\x1b]8;;https://evil.example/{tag}\x1b\\link\x1b]8;;\x1b\\"  # OSC 8: hyperlink
        f"\x1b[2J"  # CSI 2J: clear the screen
        f"\x07"  # BEL
        f"\x9b31m"  # C1 CSI
        f"[link=https://evil.example/]markup[/link]"
    )


# What must never appear in the pty stream: the planted sequences as sent (their visible,
# sanitised forms start with "␛" instead of ESC and are expected on screen).
FORBIDDEN = (
    b"\x1b]0;pwned",
    b"\x1b]52;",
    b"\x1b]8;;https://evil",
    b"\x1b\\\x1b[2J",  # the planted CSI 2J after the planted OSC 8's terminator
    b"\xc2\x9b31m",
)
# Textual's own OSC 22 (pointer shape) ends in BEL; any other BEL came from data.
TEXTUAL_OSC = re.compile(rb"\x1b\]22;[\w-]*\x07")


# -- the app under test (child process) ---------------------------------------------------


def planted_scenario(path: Path) -> Path:
    """skew-incident with a payload in every field a third party controls."""
    data: dict[str, Any] = yaml.safe_load((SCENARIOS / "skew-incident.yaml").read_text())
    deployment = data["deployments"][0]
    history = deployment["history"]
    for i, revision in enumerate(history):
        revision["change_cause"] = f"rev{i + 1} " + payload(f"CAUSE{i + 1}")
    current = copy.deepcopy(history[-1]["template"])
    meta = current["metadata"]
    meta["annotations"] = {**meta["annotations"], "team.example/note": payload("ANNOT")}
    container = current["spec"]["containers"][0]
    image = "vllm/vllm-openai:latest" + payload("IMAGE")
    data["images"][image] = data["images"]["vllm/vllm-openai:latest"]
    container["image"] = image
    # A second served model name: vLLM takes several; the metrics label is the first.
    container["args"] = [*container["args"], "alias" + payload("ARGS")]
    container["env"] = [*container["env"], {"name": "X" + payload("ENVNAME"), "value": "1"}]
    history[-1]["template"] = current
    path.write_text(yaml.safe_dump(data, allow_unicode=False))
    return path


def plant_gpu_names() -> None:
    """nvidia-smi's name and DCGM's modelName for the A10G nodes carry the payload (the
    simulator reads its GPU table when it builds nodes, so this precedes the start)."""
    from dataclasses import replace

    from services.simulator import gpus

    planted = replace(gpus.A10G, nvml_name=gpus.A10G.nvml_name + payload("SMI"))
    gpus._BY_PRODUCT["NVIDIA-A10G"] = planted


def plant_live(kubeconfig: Path, namespace: str) -> None:
    """What `kubectl annotate`, `kubectl label` and an event writer would do, over HTTP."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(kubeconfig))
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.patch_namespaced_deployment(
        "llm-serve",
        namespace,
        {"metadata": {"annotations": {"kubernetes.io/change-cause": "x" + payload("KUBECTL")}}},
    )
    # Label values cannot hold control characters: the API server refuses them (422), as
    # the simulator's admission does. Tried anyway, in case a cluster lets one through.
    for node in core.list_node().items:
        if node.metadata.name.startswith("gpu-a10g"):
            try:
                core.patch_node(node.metadata.name, {"metadata": {"labels": {"x": payload("N")}}})
            except client.ApiException as exc:
                assert exc.status == 422, exc
    for pod in core.list_namespaced_pod(namespace).items:
        core.create_namespaced_event(
            namespace,
            {
                "metadata": {"generateName": "planted-"},
                "involvedObject": {
                    "kind": "Pod",
                    "name": pod.metadata.name,
                    "namespace": namespace,
                },
                "reason": "Planted" + payload("EVREASON"),
                "message": payload("EVENT"),
                "type": "Warning",
            },
        )


def run_child(scenario: Path, state: Path) -> int:
    os.environ["XDG_STATE_HOME"] = str(state)
    plant_gpu_names()
    from tui.app import SkewmitApp
    from tui.launchers import close_session, open_demo_session

    session = open_demo_session(str(scenario), 30.0, evidence_dir=state / "evidence")
    try:
        kubeconfig = session.simulator.write_kubeconfig(state / "kubeconfig")
        plant_live(kubeconfig, session.runbook.target.namespace)
        return SkewmitApp(session).run() or 0
    finally:
        close_session(session)


# -- the test (parent) ------------------------------------------------------------------------


class Terminal:
    """A tmux server of the test's own, one window of `width`x`height`, its output piped raw
    to a file."""

    def __init__(self, tmux: str, name: str, raw: Path) -> None:
        self.tmux, self.name, self.raw = tmux, name, raw

    def run(self, *args: str) -> str:
        result = subprocess.run(
            [self.tmux, "-L", self.name, *args], capture_output=True, text=True, timeout=10
        )
        return result.stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.name)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.name, *keys)

    def wait_for(self, *needles: str, limit_s: float = 60) -> str:
        deadline = time.monotonic() + limit_s
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if all(n in screen for n in needles):
                return screen
            time.sleep(0.3)
        raise AssertionError(f"never saw {needles} on screen; last screen:\n{screen}")

    def wait_gone(self, needle: str, limit_s: float = 30) -> None:
        """Wait until `needle` leaves the screen (so a key after Esc is not read as Alt+key)."""
        deadline = time.monotonic() + limit_s
        while needle in self.screen():
            assert time.monotonic() < deadline, f"{needle!r} stayed on screen"
            time.sleep(0.3)


def test_planted_escape_sequences_never_reach_the_terminal(tmp_path: Path) -> None:
    tmux = require_tool("tmux")
    scenario = planted_scenario(tmp_path / "planted.yaml")
    state = tmp_path / "state"
    state.mkdir()
    go, raw = tmp_path / "go", tmp_path / "pty.raw"
    name = f"skewmit-safety-{os.getpid()}"
    term = Terminal(tmux, name, raw)
    child = (
        f"while [ ! -e {go} ]; do sleep 0.1; done; cd {ROOT} && "
        f"{sys.executable} -m tests.faults.test_terminal_safety {scenario} {state}; "
        "echo EXITED $?; sleep 30"
    )
    env = {**os.environ, "TERM": "xterm-256color"}
    subprocess.run(
        [tmux, "-L", name, "new-session", "-d", "-s", name, "-x", "200", "-y", "60", child],
        check=True,
        env=env,
        timeout=10,
    )
    try:
        term.run("pipe-pane", "-o", "-t", name, f"cat >> {raw}")
        go.touch()
        # Step 1: the rollback history quotes every revision's change-cause.
        # Both ends of the history in one capture: a capture taken mid-paint (CI, loaded)
        # once held the newest revision's line and not yet revision 1's.
        seen = {
            "step 1": term.wait_for("KUBECTL␛]0;pwned", "CAUSE1␛]0;pwned", "simulated clock x30")
        }
        for key, needle in (("3", "Stabilize"), ("4", "Route"), ("5", "SMI␛]0;")):
            term.keys(key)
            seen[f"step {key}"] = term.wait_for(needle)
        term.keys("2")
        seen["step 2"] = term.wait_for("IMAGE␛]0;pwned", "p Pin dtype")
        # A preview's diff shows the container: args, env names, image.
        term.keys("p")
        term.wait_for("Preview [enter]")
        term.keys("Enter")
        seen["preview"] = term.wait_for("Preview: Set", "Cancel [esc]")
        term.keys("Escape")
        term.wait_gone("Cancel [esc]")
        term.keys("6")
        term.keys("v")
        seen["validation view"] = term.wait_for("Validation gate")
        term.keys("v")
        term.keys("?")
        seen["help"] = term.wait_for("skewmit help")
        term.keys("Escape")
        term.wait_gone("skewmit help")
        term.keys("q")
        term.wait_for("EXITED 0", limit_s=30)
    finally:
        term.run("kill-server")
    stream = raw.read_bytes()
    assert len(stream) > 10_000, "the pipe caught the app's output"
    leaks = {needle: stream.count(needle) for needle in FORBIDDEN if needle in stream}
    assert not leaks, f"planted control sequences reached the terminal: {leaks}"
    assert b"\x07" not in TEXTUAL_OSC.sub(b"", stream), "a planted BEL reached the terminal"
    # The fields were on screen, made visible rather than dropped.
    everything = "\n".join(seen.values())
    (tmp_path / "screens.txt").write_text(everything)
    # (A preview's diff shows YAML and JSON escapes, `\e` and `\u001b`: safe too.)
    for tag in ("KUBECTL", "CAUSE1", "IMAGE", "ARGS", "SMI"):
        forms = (f"{tag}␛]0;pwned", f"{tag}\\e]0;pwned", f"{tag}\\u001b]0;pwned")
        assert any(form in everything for form in forms), f"{tag} was shown, visibly"
    assert "[link=https://evil.example/]markup[/link]" in everything, "markup stays literal"


def planted_reports(reports: dict[Any, Any]) -> dict[Any, Any]:
    """The fake runbook's reports with a payload in every text a widget renders."""
    from dataclasses import replace

    from services.models import HardwareReport, RollbackData, Verdict

    def finding(f: Any, tag: str) -> Any:
        return replace(f, message=f.message + payload(tag), subject=f.subject + payload(tag))

    out = {}
    for step, report in reports.items():
        tag = f"R{step.value[:3].upper()}"
        actions = tuple(
            replace(
                a,
                title=a.title + payload(tag + "T"),
                description=a.description + payload(tag + "D"),
                kubectl=tuple(c + payload(tag + "K") for c in a.kubectl),
            )
            for a in report.actions
        )
        data = report.data
        if isinstance(data, RollbackData):
            problem = finding(report.findings[0], "PROBLEM")
            progress = replace(
                data.progress,
                message=data.progress.message + payload("ROLLOUT"),
                problems=(problem,),
            )
            data = replace(data, progress=progress)
        if isinstance(data, HardwareReport):
            rows = tuple(
                replace(r, smi_name=f"{r.smi_name}{payload('SMI')}", note=payload("NOTE"))
                for r in data.rows
            )
            data = replace(data, rows=rows, expected_reason=payload("REASON"))
        if isinstance(data, Verdict):
            checks = tuple(replace(c, message=c.message + payload("CHECK")) for c in data.checks)
            data = replace(data, checks=checks)
        out[step] = replace(
            report,
            findings=tuple(finding(f, tag) for f in report.findings),
            detail=tuple(d + payload(tag + "L") for d in report.detail),
            actions=actions,
            data=data,
        )
    return out


async def test_every_widget_renders_planted_text_without_control_characters() -> None:
    """What the driver would write for each screen (the compositor's full update, rendered to
    terminal bytes) on a fake runbook whose every rendered text carries the payload: findings,
    detail lines, actions and their kubectl, rollout problems, GPU rows, gate checks, metric
    label values, action-log titles and notes, toasts (the pty test above covers the real
    cluster path; this one reaches the fields the simulator cannot fill)."""
    from services.models import Step
    from tests.tui.fakes import FakeRunbook, fake_session, metrics, reports
    from tui.app import SkewmitApp

    class Planted(FakeRunbook):
        def check(self, step: Any) -> Any:
            return planted_reports(reports(self.read_only))[step]

        def progress(self) -> Any:
            return self.check(Step.ROLLBACK).progress

    runbook = Planted()
    runbook.journal.append(
        "applied", {"title": "Pin" + payload("LOGT"), "verified": True, "verify": payload("LOGN")}
    )
    series = [replace_labels(s) for s in metrics()]
    app = SkewmitApp(fake_session(runbook, metrics_sampler=lambda: series))
    app.animation_level = "none"
    frames: list[str] = []

    def frame() -> None:
        update = app.screen._compositor.render_full_update()
        frames.append(update.render_segments(app.console))

    async with app.run_test(size=(200, 60)) as pilot:
        while len(app.board.reports) < 6 or not app.main.query_one("ActionLog").row_count:
            await pilot.pause(0.05)
        app.notify("toast" + payload("TOAST"))
        for key in "123456":
            await pilot.press(key)
            await pilot.pause()
            frame()
        await pilot.press("v")
        await pilot.pause()
        frame()
    stream = "".join(frames).encode()
    leaks = {needle: stream.count(needle) for needle in FORBIDDEN if needle in stream}
    assert not leaks, f"planted control sequences in the rendered screen: {leaks}"
    assert b"\x07" not in TEXTUAL_OSC.sub(b"", stream)
    text = stream.decode()
    # Shown where there is room (a narrow column cuts the rest): the sanitised form.
    for tag in ("RROLT", "RPIND", "RHARK", "PROBLEM", "ROLLOUT", "SMI", "CHECK", "LOGT"):
        assert f"{tag}␛]0;pwn" in text, f"{tag} was rendered, visibly"


def replace_labels(series: Any) -> Any:
    from dataclasses import replace

    return replace(series, labels={"modelName": "NVIDIA H100" + payload("LABEL")})


def test_the_sanitiser_shows_every_control_and_keeps_the_text() -> None:
    planted = payload("T") + "\ttab\nnewline\r\x00\x7f\u202e"
    shown = terminal_text(planted)
    assert is_terminal_safe(shown)
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert shown.startswith("T␛]0;pwned-T␇␛]52;c;cHduZWQ=␛\\")
    assert "\\x9b31m" in shown and "\\u202e" in shown and "␍␀␡" in shown
    assert "\ttab\nnewline" in shown  # layout characters stay
    assert "\n" not in terminal_line(planted) and "\t" not in terminal_line(planted)
    assert terminal_text("x" * 50, 10) == "x" * 10 + "… (+40 chars)"


if __name__ == "__main__":
    sys.exit(run_child(Path(sys.argv[1]), Path(sys.argv[2])))
