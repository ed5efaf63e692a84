"""CI's strict mode holds on pytest-xdist workers: with `SKEWMIT_STRICT=1` a test that needs a
missing tool, or that skips for any other reason, fails instead of passing by silence.

A small suite of its own is run through pytest in a subprocess, on two workers as `make test`
runs the real one, with this project's tests/conftest.py as its plugin.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = """
import pytest

from tests.conftest import require_tool


@pytest.fixture
def missing_tool() -> str:
    return require_tool("skewmit-no-such-tool")


def test_needs_a_missing_tool(missing_tool: str) -> None:
    assert missing_tool


def test_skips_itself() -> None:
    pytest.skip("nothing to check here")


def test_passes() -> None:
    assert True
"""


def run_suite(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_tiny.py").write_text(SUITE)
    # Only the plugins the check needs: xdist and this project's conftest (no Textual to import).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    env["SKEWMIT_STRICT"] = "1"
    plugins = ["-p", "xdist.plugin", "-p", "tests.conftest", "-p", "no:cacheprovider"]
    ini = ["-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path)]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            *plugins,
            *ini,
            *args,
            str(tmp_path / "test_tiny.py"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_strict_mode_fails_every_skip_on_xdist_workers(tmp_path: Path) -> None:
    result = run_suite(tmp_path, "-n", "2", "--dist", "loadgroup", "-rfE")
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "strict mode: skewmit-no-such-tool is not installed" in out
    assert "strict mode (SKEWMIT_STRICT=1): skipped: nothing to check here" in out
    assert out.splitlines()[-1].startswith("1 failed, 1 passed, 1 error"), out
