"""The rooms' boundaries hold: services never reaches the UI, the simulator stays an independent
oracle, widgets see only the dataclasses and the sanitiser. The import-linter contracts in
pyproject.toml say so; these tests run them (and prove they would catch a break), and check
what importing the widgets actually loads, in a fresh process.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
WIDGETS = sorted(p.stem for p in (ROOT / "widgets").glob("*.py") if p.stem != "__init__")


def lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(cwd / "pyproject.toml")],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_contracts_hold_on_the_tree() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout, result.stdout


def test_the_contracts_catch_each_kind_of_break(tmp_path: Path) -> None:
    """A copy of the tree with one forbidden import per contract: every contract breaks, and
    the report names the import, so the contracts are not vacuous."""
    for room in ("services", "tui", "widgets"):
        shutil.copytree(ROOT / room, tmp_path / room, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    planted = {
        "services/gpu.py": "import textual",
        "services/simulator/faults.py": "import services.kube",
        "widgets/checklist.py": "from services import runbook",
        "services/sanitize.py": "import kubernetes",
    }
    for path, line in planted.items():
        with (tmp_path / path).open("a") as f:
            f.write(f"\n{line}  # planted\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "0 kept, 4 broken" in result.stdout, result.stdout
    for importer, imported in [
        ("services.gpu", "textual"),
        ("services.simulator.faults", "services.kube"),
        ("widgets.checklist", "services.runbook"),
        ("services.sanitize", "kubernetes"),
    ]:
        assert f"{importer} -> {imported}" in result.stdout, result.stdout


def imported_by(code: str) -> set[str]:
    """Every module a fresh interpreter imports to run `code`, from `-X importtime`."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[1].strip() for line in lines[1:]}  # [0] is the header


def test_widgets_load_no_cluster_or_prometheus_client() -> None:
    """Each widget renders a dataclass it is given: importing them all loads services.models
    and services.sanitize and nothing that talks to a cluster or to Prometheus."""
    loaded = imported_by("; ".join(f"import widgets.{name}" for name in WIDGETS))
    assert "widgets.step_detail" in loaded  # the measurement saw the widgets
    services = {m for m in loaded if m.split(".")[0] == "services"}
    assert services == {"services", "services.models", "services.sanitize"}
    clients = {m for m in loaded if m.split(".")[0] in ("kubernetes", "prometheus_api_client")}
    assert not clients, sorted(clients)[:5]


def test_the_report_types_load_no_client_and_no_ui() -> None:
    loaded = imported_by("import services.models, services.sanitize")
    packages = {m.split(".")[0] for m in loaded}
    assert "services" in packages
    heavy = {"kubernetes", "prometheus_api_client", "urllib3", "aiohttp", "textual", "rich"}
    assert not packages & heavy, sorted(packages & heavy)
    assert {m for m in loaded if m.startswith("services.")} == {
        "services.models",
        "services.sanitize",
    }
