"""How long `skewmit --help` and a headless command's `--help` take, beside `python -c pass`
(the interpreter's own start, the floor) measured in the same run, and what each imports.

    .venv/bin/python bench/startup_bench.py [--runs 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import (
    PYTHON,
    SKEWMIT,
    machine,
    median,
    row,
    table_header,
    timed_run,
    unwind_on_sigterm,
)

HEAVY = ("kubernetes", "textual", "prometheus_api_client", "aiohttp", "rich")


def imported(argv: list[str]) -> list[str]:
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print(' '.join(m for m in {HEAVY!r} if m in sys.modules),"
        " file=sys.stderr))\n"
        "from tui.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [PYTHON, "-c", code, *argv], capture_output=True, text=True, check=False
    )
    return result.stderr.strip().splitlines()[-1:] or []


def main() -> None:
    unwind_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"# startup — {machine()}")
    commands = {
        "`skewmit --help`": [*SKEWMIT, "--help"],
        "`skewmit check --help`": [*SKEWMIT, "check", "--help"],
        "`skewmit demo --help`": [*SKEWMIT, "demo", "--help"],
    }
    floor_times: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in commands}
    timed_run([PYTHON, "-c", "pass"])  # warm the page cache once for both
    for _ in range(args.runs):
        # Interleaved, so a burst of load from other processes hits both alike.
        floor_times.append(timed_run([PYTHON, "-c", "pass"]))
        for name, argv in commands.items():
            times[name].append(timed_run(argv))
    floor = median(floor_times)
    print(table_header())
    for name, values in times.items():
        print(row(name, median(values), "`python -c pass`", floor))
    for name, argv in commands.items():
        heavy = imported(argv[3:])
        print(f"{name} imports of {', '.join(HEAVY)}: {heavy[0] if heavy and heavy[0] else 'none'}")


if __name__ == "__main__":
    main()
