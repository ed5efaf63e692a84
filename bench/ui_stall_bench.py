"""The app's longest event-loop stall on `large` (1,000 serving pods among 5,000).

Runs the real app headless (`App.run_test`) against `skewmit sim --scenario large` in a
process of its own (as a real API server would be), through the real Kubernetes client, with
no metrics source (the demo's backfilled history for 1,000 pods takes more memory than this
machine has). Waits until steps 1-4 and 6 have been checked once (step 5 runs nvidia-smi in
each of the 1,000 pods and takes minutes), then opens each step (keys 1-6), the validation
view and back, several rounds, while the checks keep polling. A 10 ms asyncio ticker in the
app's own loop records how late it wakes: that lateness is what the operator feels as a
frozen screen. Prints the longest stall per phase; asserts nothing.

    .venv/bin/python bench/ui_stall_bench.py [--rounds 3] [--dwell 1.0] [--no-cache] [--gc-freeze]
        [--heap keeper|rounds|app] [--profile 1,5,v] [--stretches] [--scenario S] [--latency 3]
        [--size 120x40]

The app reads pods and nodes from watches (services.informer: a paged first list, then
events); the rounds start once those are in sync, after the first load. `--no-cache` is the
behaviour before: every check re-lists 1,000 pods and 500 nodes, and a worker's `json.loads`
of a 1,000-pod list (2.9 MB) holds the GIL, and so freezes the UI thread, for the whole parse.
The API requests the app sent during the rounds are printed per minute, by verb and resource.

`--gc-freeze` calls gc.freeze() once the first load is in: a what-if for the stalls left,
which line up with the garbage collector's full collections of the app's own heap (the GC
column).

`--heap keeper` (the default) is the app as it runs: tui.heap.HeapKeeper told of every check
answer, freezing what survives the interpreter's own full collections too; `--heap rounds` is
the keeper's round freezes only (the behaviour before that); `--heap app` puts back the app's
one start-up freeze, the behaviour before the keeper. The
GC column gives each phase's longest collection in wall time and in the collecting thread's
CPU time (on a loaded machine the wall time is mostly the scheduler's). After the rounds the
bench counts what the collector still walks, by type, then unfreezes and collects everything:
the garbage found is what frozen objects had become (what HeapKeeper's sweeps give back).

`--profile s,1,5,v` runs cProfile on the UI thread while those phases are in progress (the
start's first checks, steps 1 and 5, the validation view) and prints and saves
(/tmp/ui_stall_*.prof) what it spent.
`--stretches` names what ran in each phase's longest synchronous stretches of the event loop
(messages dispatched, layout and render of the screen, widgets rendered or measured,
collections): the cause, where the stall column gives the length; it also counts each phase's
layouts of the whole screen (Textual lays out the whole screen for any widget whose size may
change) with the widgets that asked for them (polls' updates included). The last column is the
time from a step key to the step pane holding that step (the paint follows on the screen's
next update).

`--scenario skew-incident --latency 3` is issue 12's responsiveness figure: the small
scenario with the simulator adding 3 s to every API call (its fault API, POST /_sim/faults)
once the first checks are in, while the keys are pressed and the checks keep polling.

`--per-pod` is the behaviour before aggregation (one finding per pod, every finding and line
rendered), for comparison. `--page N` lists objects N at a time (`limit`/`continue`), to show
what paging alone would do.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

START_PHASE = "start: first checks"  # its name in the tables, and `--profile s`

TICK_S = 0.01


class StallMeter:
    """How late a TICK_S sleep wakes, attributed to the phase in progress."""

    def __init__(self) -> None:
        self.phase = "idle"
        self.worst: dict[str, float] = defaultdict(float)
        self.samples: dict[str, int] = defaultdict(int)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(TICK_S)
            late = loop.time() - start - TICK_S
            self.worst[self.phase] = max(self.worst[self.phase], late)
            self.samples[self.phase] += 1

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


class ParseMeter:
    """The longest single `json.loads` of an API answer in worker threads, per phase: a C call
    that holds the GIL for its whole length, so the UI thread cannot run meanwhile, however
    idle the machine. Unlike the stall it does not depend on what else the machine runs."""

    def __init__(self, meter: StallMeter) -> None:
        self.meter = meter
        self.worst: dict[str, tuple[float, int]] = defaultdict(lambda: (0.0, 0))

    def install(self) -> None:
        import json

        import services.kube
        import services.watch_stream

        meter = self

        class TimedJson:
            def __getattr__(self, name: str) -> Any:
                return getattr(json, name)

            @staticmethod
            def loads(data: Any, *args: Any, **kwargs: Any) -> Any:
                began = time.perf_counter()
                try:
                    return json.loads(data, *args, **kwargs)
                finally:
                    took = time.perf_counter() - began
                    phase = meter.meter.phase
                    if took > meter.worst[phase][0]:
                        meter.worst[phase] = (took, len(data))

        setattr(services.kube, "json", TimedJson())  # noqa: B010
        setattr(services.watch_stream, "json", TimedJson())  # noqa: B010


class GcMeter:
    """The longest pause of Python's cyclic garbage collector per phase: it runs in whichever
    thread allocates when a threshold is crossed and holds the GIL throughout, so a full
    collection over a large heap (the watched pods and nodes are a million objects) is a
    stall of its own. Wall time, and the collecting thread's CPU time: on a loaded machine
    the wall time of a collection is its CPU time stretched by the scheduler, the CPU time is
    what the collector itself costs (what the app can change)."""

    def __init__(self, meter: StallMeter) -> None:
        self.meter = meter
        self.worst: dict[str, tuple[float, int]] = defaultdict(lambda: (0.0, 0))
        self.worst_cpu: dict[str, float] = defaultdict(float)
        self._began = 0.0
        self._began_cpu = 0.0
        # Full collections during the rounds: (wall s, CPU s, objects freed).
        self.full: list[tuple[float, float, int]] = []

    def _callback(self, stage: str, info: dict[str, Any]) -> None:
        if stage == "start":
            self._began = time.perf_counter()
            self._began_cpu = time.thread_time()
            return
        took = time.perf_counter() - self._began
        cpu = time.thread_time() - self._began_cpu
        phase = self.meter.phase
        if info.get("generation") == 2 and phase.startswith(("open", "validation")):
            self.full.append((took, cpu, int(info.get("collected", 0))))
        self.worst_cpu[phase] = max(self.worst_cpu[phase], cpu)
        if took > self.worst[phase][0]:
            self.worst[phase] = (took, int(info.get("generation", -1)))

    def install(self) -> None:
        import gc

        gc.callbacks.append(self._callback)


class StretchMeter:
    """`--stretches`: the longest synchronous stretches of the event loop per phase (one
    asyncio callback or task step: the loop cannot tick during it), each named by the
    messages dispatched, the screen updates (layout, render) and the collections run in it:
    the stall's cause, where the stall column only gives its length."""

    def __init__(self, meter: StallMeter, keep: int = 4) -> None:
        self.meter = meter
        self.keep = keep
        self.longest: dict[str, list[tuple[float, str]]] = defaultdict(list)
        # The UI thread's CPU time in the phase's longest-CPU stretch: what the app itself
        # costs, where the wall time adds the scheduler's share on a loaded machine.
        self.cpu: dict[str, float] = defaultdict(float)
        self._what: list[str] = []
        self._depth = 0
        self._widgets: dict[str, float] = defaultdict(float)  # render + measure, this stretch
        # Whole-screen layouts per phase, and the widgets whose refresh(layout=True) asked.
        self.layouts: dict[str, int] = defaultdict(int)
        self.asked: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def note(self, what: str) -> None:
        if self._depth and len(self._what) < 12:
            self._what.append(what)

    def install(self) -> None:
        import asyncio.events
        import gc

        from textual.message_pump import MessagePump
        from textual.screen import Screen

        meter = self
        run = asyncio.events.Handle._run

        def timed_run(handle: Any) -> None:
            meter._depth += 1
            began = time.perf_counter()
            began_cpu = time.thread_time()
            try:
                run(handle)
            finally:
                meter._depth -= 1
                took = time.perf_counter() - began
                phase = meter.meter.phase
                meter.cpu[phase] = max(meter.cpu[phase], time.thread_time() - began_cpu)
                what, meter._what = meter._what, []
                costs, meter._widgets = meter._widgets, defaultdict(float)
                ranked = sorted(costs.items(), key=lambda item: -item[1])[:3]
                what += [f"{name} {ms * 1000:.0f} ms" for name, ms in ranked if ms > 0.005]
                if took > 0.02:
                    kept = meter.longest[phase]
                    cpu = time.thread_time() - began_cpu
                    named = ", ".join(dict.fromkeys(what))
                    if not named or all(w.startswith("gc ") for w in what):
                        # Nothing of the app's or Textual's named: the callback itself.
                        named = ", ".join(filter(None, [named, repr(handle)[:160]]))
                    kept.append((took, f"(CPU {cpu * 1000:.0f} ms) {named}"))
                    kept.sort(key=lambda item: -item[0])
                    del kept[meter.keep :]

        asyncio.events.Handle._run = timed_run  # type: ignore[method-assign]
        on_layout = Screen._on_layout

        async def counted_layout(screen: Any, message: Any) -> None:
            widget = message.widget
            meter.asked[meter.meter.phase][f"{type(widget).__name__}#{widget.id or ''}"] += 1
            await on_layout(screen, message)

        Screen._on_layout = counted_layout  # type: ignore[method-assign]
        refresh_layout = Screen._refresh_layout

        def counted_refresh(screen: Any, *args: Any, **kwargs: Any) -> Any:
            if not kwargs.get("scroll") or screen._layout_widgets:
                meter.layouts[meter.meter.phase] += 1
            return refresh_layout(screen, *args, **kwargs)

        Screen._refresh_layout = counted_refresh  # type: ignore[method-assign]
        dispatch = MessagePump._dispatch_message

        async def timed_dispatch(pump: Any, message: Any) -> None:
            meter.note(f"{type(pump).__name__}<-{type(message).__name__}")
            await dispatch(pump, message)

        MessagePump._dispatch_message = timed_dispatch  # type: ignore[method-assign]
        for name in ("_refresh_layout", "_compositor_refresh", "_on_screen_resume"):
            original = getattr(Screen, name)

            def wrapped(
                screen: Any, *args: Any, _o: Any = original, _n: str = name, **kwargs: Any
            ) -> Any:
                began = time.perf_counter()
                try:
                    return _o(screen, *args, **kwargs)
                finally:
                    ms = (time.perf_counter() - began) * 1000
                    meter.note(f"{type(screen).__name__}.{_n} {ms:.0f} ms")

            setattr(Screen, name, wrapped)

        from textual.widget import Widget

        def timed_widget(name: str) -> None:
            original = getattr(Widget, name)

            def wrapped(widget: Any, *args: Any, **kwargs: Any) -> Any:
                began = time.perf_counter()
                try:
                    return original(widget, *args, **kwargs)
                finally:
                    label = f"{type(widget).__name__}#{widget.id or ''}.{name}"
                    meter._widgets[label] += time.perf_counter() - began

            setattr(Widget, name, wrapped)

        timed_widget("render_lines")
        timed_widget("get_content_height")
        timed_widget("get_content_width")

        def collected(stage: str, info: dict[str, Any]) -> None:
            if stage == "stop":
                meter.note(f"gc gen {info.get('generation')}")

        gc.callbacks.append(collected)


class OneFreeze:
    """`--heap app`: the app's policy before tui.heap, one gc.freeze() once four steps have
    answered and the watches are in sync, nothing after."""

    def __init__(self) -> None:
        self.seen: set[Any] = set()
        self.done = False

    def answered(self, step: Any, *, synced: bool = True, overlay: bool = False) -> None:
        import gc

        self.seen.add(step)
        if self.done or len(self.seen) < 4 or not synced:
            return
        gc.collect()
        gc.freeze()
        self.done = True

    def stop_following(self) -> None:
        """The app's unmount asks HeapKeeper this; the one freeze follows nothing."""


def per_pod_behaviour() -> None:
    """Undo the aggregation and the render caps: the pre-fix behaviour."""
    import services.pin
    import widgets.step_detail

    setattr(services.pin, "aggregate_pod_findings", list)  # noqa: B010
    widgets.step_detail.MAX_FINDINGS = 10**9
    widgets.step_detail.MAX_DETAIL_LINES = 10**9
    widgets.step_detail.MAX_COMMANDS = 10**9


class SimProcess:
    """`skewmit sim --scenario large` (or another scenario) in a process of its own."""

    def __init__(self, speed: float, folder: Path, scenario: str = "large") -> None:
        self.kubeconfig = folder / "kubeconfig"
        command = [sys.executable, "-m", "tui.cli", "sim", "--scenario", scenario]
        command += ["--speed", str(speed), "--kubeconfig", str(self.kubeconfig)]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if "kubeconfig:" in line:
                break
        else:
            raise RuntimeError("skewmit sim exited before it served")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def large_session(speed: float, scenario: str = "large") -> Any:
    """The app's session on the `large` simulator (or `scenario`'s), journal in a temporary
    folder."""
    from services.journal import Journal
    from services.kube import KubeCluster
    from services.models import Target
    from services.runbook import Runbook
    from tui.session import Intervals, Session

    folder = Path(tempfile.mkdtemp(prefix="skewmit-bench-"))
    sim = SimProcess(speed, folder, scenario)
    cluster = KubeCluster(str(sim.kubeconfig))
    target = Target(cluster.context, "inference", "llm-serve", cluster.server, cluster.whoami())
    journal = Journal.open_for(target, target.user, folder / "state")
    return Session(
        Runbook(cluster, target, journal),
        evidence_dir=folder / "evidence",
        # The demo's polling: every step re-checked 5 s after the last check answered.
        intervals=Intervals(checks=5.0, validate=2.0, rollout=5.0, rollout_active=0.5, metrics=1.0),
        simulator=sim,
        metrics_note="no metrics source in this benchmark",
    )


def paged_lists(page: int) -> None:
    """KubeCluster.list in pages of `page` objects (what the API server's chunking offers)."""
    from services.kube import KubeCluster

    def paged(
        self: Any,
        kind: str,
        namespace: str = "",
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[Any]:
        items: list[Any] = []
        token = ""
        while True:
            query = {"labelSelector": label_selector, "fieldSelector": field_selector}
            result = self._request(
                "GET",
                self._path(kind, namespace),
                query={**query, "limit": page, "continue": token},
                what=f"list {kind}",
            )
            items += result.get("items", [])
            token = (result.get("metadata") or {}).get("continue", "")
            if not token:
                return items

    setattr(KubeCluster, "list", paged)  # noqa: B010


class PhaseProfile:
    """`--profile PHASES`: cProfile of the UI thread (the event loop's) while each named phase
    is in progress, over every round: what the app computes on that thread when a step opens."""

    def __init__(self, phases: list[str]) -> None:
        import cProfile

        self.profiles = {phase: cProfile.Profile() for phase in phases}

    def enter(self, phase: str) -> None:
        if phase in self.profiles:
            self.profiles[phase].enable()

    def leave(self, phase: str) -> None:
        if phase in self.profiles:
            self.profiles[phase].disable()

    def report(self, top: int = 40) -> None:
        import pstats

        for phase, profile in self.profiles.items():
            out = Path(tempfile.gettempdir()) / f"ui_stall_{phase.replace(' ', '_')}.prof"
            profile.dump_stats(out)
            print(f"\n## cProfile of the UI thread during '{phase}' (all rounds), {out}")
            stats = pstats.Stats(profile, stream=sys.stdout).strip_dirs()
            stats.sort_stats("cumulative").print_stats(top)
            stats.sort_stats("tottime").print_stats(top // 2)


async def measure(
    rounds: int,
    dwell_s: float,
    speed: float,
    gc_freeze: bool = False,
    heap: str = "keeper",
    profile: PhaseProfile | None = None,
    stretches: bool = False,
    scenario: str = "large",
    latency_s: float = 0.0,
    size: tuple[int, int] = (200, 60),
) -> dict[str, Any]:
    from tui.app import SkewmitApp
    from tui.launchers import close_session
    from widgets.step_detail import StepDetail

    started = time.monotonic()
    session = large_session(speed, scenario)
    setup_s = time.monotonic() - started
    meter = StallMeter()
    parses = ParseMeter(meter)
    parses.install()
    collections = GcMeter(meter)
    collections.install()
    stretch = StretchMeter(meter)
    if stretches:
        stretch.install()
    first_checks_s = 0.0
    keeper = None
    try:
        app = SkewmitApp(session)
        if heap in ("keeper", "rounds"):
            keeper = app.heap  # tui.heap.HeapKeeper, as the app runs it
            if heap == "rounds":
                keeper.covered = None  # freezes per round only (before issue 12's fix)
        else:
            app.heap = OneFreeze()  # type: ignore[assignment]
        app.animation_level = "none"
        async with app.run_test(size=size) as pilot:
            meter.start()
            meter.phase = START_PHASE
            if profile is not None:
                profile.enter(meter.phase)
            begun = time.monotonic()
            reflectors = app.informer.reflectors.values() if app.informer is not None else ()
            while time.monotonic() - begun < 600 and (
                len(app.board.reports) < 5 or not all(r.synced for r in reflectors)
            ):
                await pilot.pause(0.2)
            first_checks_s = time.monotonic() - begun
            if profile is not None:
                profile.leave(START_PHASE)
            # Reads that began before the watches were in sync (live lists of every pod) may
            # still be in flight: the rounds start once each step answered twice since.
            since = dict(app.board.answered)
            checked = [s for s in since if s.value != "hardware"]
            while time.monotonic() - begun < 900 and any(
                app.board.answered[s] < since[s] + 2 for s in checked
            ):
                await pilot.pause(0.2)
            if gc_freeze:
                import gc

                gc.freeze()  # the heap of the first load: never scanned again
            if latency_s:
                # Every API call slower from here on (the simulator's fault API), as a
                # congested API server or a slow link would make it.
                sys.path.insert(0, str(ROOT / "bench"))
                from latency_bench import set_faults

                faults = [{"verb": "*", "resource": "*", "latency_s": latency_s}]
                await asyncio.to_thread(set_faults, session.simulator.kubeconfig, faults)
            counted = session.runbook.cluster.request_counts()
            detail = app.main.query_one(StepDetail)
            key_s: dict[str, float] = {}
            rounds_began = time.monotonic()
            for _ in range(rounds):
                for key in "123456":
                    meter.phase = f"open step {key}"
                    if profile is not None:
                        profile.enter(meter.phase)
                    # From the key to the step pane holding the new step (its next paint is
                    # the screen's update timer's); pilot.press itself waits for the screen
                    # to settle, which is not what the operator waits for.
                    pressed = time.perf_counter()
                    press = asyncio.get_running_loop().create_task(pilot.press(key))
                    while not heading(detail).startswith(f"{key} · "):
                        await asyncio.sleep(0.001)
                    shown = time.perf_counter() - pressed
                    await press
                    key_s[meter.phase] = max(key_s.get(meter.phase, 0.0), shown)
                    await pilot.pause(dwell_s)
                    if profile is not None:
                        profile.leave(meter.phase)
                meter.phase = "validation view"
                if profile is not None:
                    profile.enter(meter.phase)
                await pilot.press("v")
                await pilot.pause(dwell_s)
                await pilot.press("v")
                await pilot.pause(dwell_s)
                if profile is not None:
                    profile.leave(meter.phase)
            meter.stop()
            meter.phase = "after the rounds"
            minutes = (time.monotonic() - rounds_began) / 60
            sent = session.runbook.cluster.request_counts()
            per_minute = {
                f"{verb} {resource}": (count - counted.get((verb, resource), 0)) / minutes
                for (verb, resource), count in sorted(sent.items())
                if count > counted.get((verb, resource), 0)
            }
            findings = {
                s.value: len(r.findings) if not r.error else f"failed: {r.error[:120]}"
                for s, r in app.board.reports.items()
            }
            # What each step's pane holds: findings, lines read, and per action its kubectl
            # commands and characters of text (what opening the step lays out).
            sizes = {
                s.value: (
                    len(r.findings),
                    len(r.detail),
                    [(len(a.kubectl), len(a.description) + len(a.reason)) for a in r.actions],
                )
                for s, r in app.board.reports.items()
            }
            census = heap_census()
            census["keeper"] = (
                None
                if keeper is None
                else (
                    keeper.rounds,
                    keeper.sweeps,
                    keeper.longest_pause_s,
                    keeper.frozen,
                    getattr(keeper, "followed", 0),
                )
            )
            census["leaked"], census["sweep_s"] = sweep()
    finally:
        close_session(session)
        # The kubeconfig, journal and evidence folder this run made (large_session).
        shutil.rmtree(session.simulator.kubeconfig.parent, ignore_errors=True)
    return {
        "setup_s": setup_s,
        "first_checks_s": first_checks_s,
        "worst": dict(meter.worst),
        "parses": dict(parses.worst),
        "collections": dict(collections.worst),
        "collections_cpu": dict(collections.worst_cpu),
        "samples": dict(meter.samples),
        "findings": findings,
        "sizes": sizes,
        "per_minute": per_minute,
        "full": list(collections.full),
        "heap": census,
        "stretches": dict(stretch.longest),
        "stretch_cpu": dict(stretch.cpu),
        "layouts": dict(stretch.layouts),
        "asked": {phase: dict(asked) for phase, asked in stretch.asked.items()},
        "key_s": key_s,
    }


def heading(detail: Any) -> str:
    """The step the step pane holds (`_title` in trees from before the `title` property)."""
    return str(getattr(detail, "title", "") or getattr(detail, "_title", ""))


def sweep() -> tuple[int, float]:
    """Unfreeze and collect everything: the garbage found is what frozen objects had turned
    into since they were frozen (cycles the collector could not see), and the time is what
    one full collection of today's heap costs."""
    import gc

    gc.unfreeze()
    began = time.perf_counter()
    found = gc.collect()
    return found, time.perf_counter() - began


def heap_census(top: int = 12) -> dict[str, Any]:
    """What the collector still walks (objects outside the frozen heap) by type, and the
    frozen count: what a full collection costs is the walked count."""
    import gc

    counts: dict[str, int] = defaultdict(int)
    walked = gc.get_objects()
    for obj in walked:
        counts[type(obj).__qualname__] += 1
    ranked = sorted(counts.items(), key=lambda item: -item[1])[:top]
    return {"walked": len(walked), "frozen": gc.get_freeze_count(), "types": ranked}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dwell", type=float, default=1.0, help="seconds on each step")
    parser.add_argument("--speed", type=float, default=12.0)
    parser.add_argument("--per-pod", action="store_true", help="the behaviour before the fix")
    parser.add_argument("--page", type=int, default=0, help="list N objects at a time")
    parser.add_argument(
        "--no-cache", action="store_true", help="re-list pods and nodes every check (before)"
    )
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gc.freeze() after the first load (a what-if)"
    )
    parser.add_argument(
        "--heap",
        choices=("keeper", "rounds", "app"),
        default="keeper",
        help="keeper: tui.heap.HeapKeeper as the app runs it; rounds: its round freezes only "
        "(not after the interpreter's full collections); app: one start-up freeze",
    )
    parser.add_argument(
        "--switch", type=float, default=0.0, help="sys.setswitchinterval (seconds) for the run"
    )
    parser.add_argument(
        "--profile",
        default="",
        metavar="PHASE",
        help="cProfile the UI thread during phases, e.g. s,1,5,v: the start, step N opened, "
        "the validation view",
    )
    parser.add_argument("--scenario", default="large", help="the simulator's scenario")
    parser.add_argument(
        "--latency",
        type=float,
        default=0.0,
        help="seconds the simulator adds to every API call once the first checks are in",
    )
    parser.add_argument(
        "--size",
        default="200x60",
        help="the screen, COLSxROWS (issue 12's figures are at 120x40, issue 9's at 200x60)",
    )
    parser.add_argument(
        "--stretches",
        action="store_true",
        help="name what ran in each phase's longest synchronous stretches of the loop",
    )
    args = parser.parse_args()
    cols, _, rows = args.size.partition("x")
    size = (int(cols), int(rows))
    profile = PhaseProfile(
        [
            {"v": "validation view", "s": START_PHASE}.get(name, f"open step {name}")
            for name in args.profile.split(",")
            if name
        ]
    )
    if args.switch:
        sys.setswitchinterval(args.switch)
    if args.per_pod:
        per_pod_behaviour()
    if args.page:
        paged_lists(args.page)
    if args.no_cache:
        import services.cached_cluster

        setattr(services.cached_cluster, "cache_reads", lambda runbook: None)  # noqa: B010
    result = asyncio.run(
        measure(
            args.rounds,
            args.dwell,
            args.speed,
            args.gc_freeze,
            args.heap,
            profile,
            args.stretches,
            args.scenario,
            args.latency,
            size,
        )
    )
    mode = "per-pod (before)" if args.per_pod else "aggregated"
    mode += f", lists paged by {args.page}" if args.page else ""
    mode += ", every check re-lists pods and nodes" if args.no_cache else ", watch-fed cache"
    mode += ", gc.freeze() after the first load" if args.gc_freeze else ""
    mode += {
        "keeper": ", tui.heap.HeapKeeper (freeze after every round and full collection)",
        "rounds": ", tui.heap.HeapKeeper (freeze after every round only)",
        "app": ", the app's one start-up freeze",
    }[args.heap]
    mode += f", {size[0]}x{size[1]}, GIL switch interval {sys.getswitchinterval() * 1000:g} ms"
    mode += f", {args.latency:g} s added to every API call" if args.latency else ""
    print(
        f"{args.scenario}, {mode}: set-up {result['setup_s']:.1f} s, first checks of five steps "
        f"{result['first_checks_s']:.1f} s"
    )
    print(f"findings per step: {result['findings']}")
    print(f"(findings, detail lines, [(kubectl commands, text) per action]): {result['sizes']}")
    print(
        "| phase | longest event-loop stall | ticks | longest json.loads of an answer "
        "| longest GC pause | its CPU time | key to the step's heading |"
    )
    print("|---|---|---|---|---|---|---|")
    for phase, worst in result["worst"].items():
        took, size = result["parses"].get(phase, (0.0, 0))
        parse = f"{took * 1000:.0f} ms ({size / 1e6:.2f} MB)"
        paused, generation = result["collections"].get(phase, (0.0, 0))
        pause = f"{paused * 1000:.0f} ms (gen {generation})"
        ticks = result["samples"][phase]
        cpu = result["collections_cpu"].get(phase, 0.0) * 1000
        key = result["key_s"].get(phase)
        shown = "" if key is None else f"{key * 1000:.0f} ms"
        print(
            f"| {phase} | {worst * 1000:.0f} ms | {ticks} | {parse} | {pause} | {cpu:.0f} ms "
            f"| {shown} |"
        )
    full = result["full"]
    if full:
        print(
            f"full collections during the rounds: {len(full)}, "
            f"{sum(t for t, _, _ in full) * 1000:.0f} ms in all "
            f"({sum(c for _, c, _ in full) * 1000:.0f} ms CPU), longest "
            f"{max(t for t, _, _ in full) * 1000:.0f} ms "
            f"({max(c for _, c, _ in full) * 1000:.0f} ms CPU), "
            f"{sum(n for _, _, n in full)} objects freed"
        )
    heap = result["heap"]
    print(
        f"after the rounds the collector walks {heap['walked']} objects "
        f"({heap['frozen']} frozen): "
        + ", ".join(f"{name} {count}" for name, count in heap["types"])
    )
    if heap["keeper"] is not None:
        rounds, sweeps, longest, frozen, followed = heap["keeper"]
        print(
            # A round ends in a freeze only past the keeper's freeze_at walkable objects.
            f"HeapKeeper: {rounds} rounds ended, {sweeps} sweeps, its longest collection "
            f"{longest * 1000:.0f} ms, {frozen} objects frozen, survivors of {followed} of "
            "the interpreter's full collections frozen"
        )
    print(
        f"then unfrozen and collected: {heap['leaked']} objects of garbage found (what the "
        f"frozen heap had held); a full collection of the whole heap took "
        f"{heap['sweep_s'] * 1000:.0f} ms"
    )
    total = sum(result["per_minute"].values())
    print(f"API requests per minute during the rounds: {total:.0f}")
    for request, rate in sorted(result["per_minute"].items(), key=lambda item: -item[1]):
        print(f"  {request}: {rate:.1f}")
    if result["stretch_cpu"]:
        print(
            "longest stretch of the loop in CPU time of the UI thread, per phase: "
            + ", ".join(f"{p} {c * 1000:.0f} ms" for p, c in result["stretch_cpu"].items())
        )
    for phase, count in result["layouts"].items():
        asked = sorted(result["asked"].get(phase, {}).items(), key=lambda item: -item[1])
        named = ", ".join(f"{name} {n}" for name, n in asked[:8])
        print(f"whole-screen layouts, {phase}: {count} (asked by {named})")
    for phase, kept in result["stretches"].items():
        print(f"longest stretches, {phase}:")
        for took, what in kept:
            print(f"  {took * 1000:.0f} ms: {what}")
    profile.report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
