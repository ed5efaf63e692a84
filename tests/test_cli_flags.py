"""The command line reads the same everywhere: a target flag means and says the same in the app,
`check` and the headless commands (one definition), and help text shows as written."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tui.cli import build_parser

TARGET_FLAGS = ("--kubeconfig", "--context", "--namespace", "--deployment", "--config")
METRICS_FLAGS = ("--prometheus", "--preset")


def subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser([name])
    for action in parser._actions:  # argparse keeps its subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            found: argparse.ArgumentParser = action.choices[name]
            return found
    raise AssertionError(f"no subcommand {name}")


def flag_help(parser: argparse.ArgumentParser, flags: tuple[str, ...]) -> dict[str, str | None]:
    return {
        option: action.help
        for action in parser._actions
        for option in action.option_strings
        if option in flags
    }


@pytest.mark.parametrize("command", ["check", "validate", "evidence"])
def test_the_target_flags_say_the_same_in_every_command(command: str) -> None:
    app = flag_help(build_parser(None), TARGET_FLAGS)
    assert set(app) == set(TARGET_FLAGS)
    assert flag_help(subparser(command), TARGET_FLAGS) == app


@pytest.mark.parametrize("command", ["validate", "evidence"])
def test_the_metrics_flags_say_the_same_in_the_app_and_headless(command: str) -> None:
    app = flag_help(build_parser(None), METRICS_FLAGS)
    assert set(app) == set(METRICS_FLAGS)
    assert flag_help(subparser(command), METRICS_FLAGS) == app


def test_a_bad_namespace_is_refused_by_the_app_as_by_check(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv in (["-n", "Bad_NS"], ["check", "-n", "Bad_NS", "--deployment", "x"]):
        with pytest.raises(SystemExit) as exited:
            build_parser(argv).parse_args(argv)
        assert exited.value.code == 2
        assert "Bad_NS" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["validate", "evidence", "check"])
def test_help_shows_percent_signs_once(command: str) -> None:
    text = subparser(command).format_help()
    assert "%%" not in text
    if command == "validate":
        assert "90% of baseline" in text


def test_the_app_reads_the_config_file_skewmit_config_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--help says the config defaults to $SKEWMIT_CONFIG; the app's session gets that file
    as `validate` and `check` do, and --config still wins."""
    from tui.cli import session_options

    named = tmp_path / "skewmit.yaml"
    monkeypatch.setenv("SKEWMIT_CONFIG", str(named))
    args = build_parser(None).parse_args(["--deployment", "llm-serve"])
    assert session_options(args).config == str(named)
    args = build_parser(None).parse_args(["--deployment", "llm-serve", "--config", "mine.yaml"])
    assert session_options(args).config == "mine.yaml"


def test_a_config_file_that_is_not_yaml_is_one_line_naming_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A YAML slip in the config file (a tab, an unclosed bracket) printed libyaml's eight-line
    report; the operator gets one line: the file, the line and column, and what to do."""
    from tui.cli import main

    config = tmp_path / "skewmit.yaml"
    config.write_text("prometheus:\n  url: http://prom:9090\n  preset: [vllm\nthresholds: {}\n")
    argv = ["check", "--deployment", "llm-serve", "--kubeconfig", str(tmp_path / "kc")]
    assert main([*argv, "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert str(config) in err and "line 4, column 11" in err, err
    assert "fix it or pass another --config" in err, err


def test_force_conflicts_reaches_the_gate_only_when_given(kubeconfig: Path, tmp_path: Path) -> None:
    """The refusal of a field another manager owns says "re-run skewmit with
    --force-conflicts": that flag exists, and it is the only way the gate forces."""
    from dataclasses import replace

    from services.session import open_session
    from tui.cli import session_options

    base = ["--kubeconfig", str(kubeconfig), "--context", "skewmit-sim", "-n", "inference"]
    base += ["--deployment", "llm-serve"]
    for extra, forced in (([], False), (["--force-conflicts"], True)):
        options = session_options(build_parser(None).parse_args([*base, *extra]))
        runbook = open_session(replace(options, journal_root=tmp_path / str(forced)))
        assert runbook.gate.force_conflicts is forced
    assert "--force-conflicts" in build_parser(None).format_help()
