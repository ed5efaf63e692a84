"""The serving image's `sh -c` and GNU filters as `kubectl exec` runs them (issue 11, item 8):
what dash and GNU coreutils print and exit with, for the one-liners an SRE types."""

from __future__ import annotations

import pytest

from services.simulator.exec import NotStarted, run_program
from services.simulator.shell import Container

ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOSTNAME": "llm-serve-abc",
    "HF_HUB_OFFLINE": "0",
    "VLLM_ARGS": "--dtype  half",
}
FILES = {
    "/etc/hostname": "llm-serve-abc\n",
    "/tmp/lines": "b 2\na 10\nc 1\na 10\n",
    "/tmp/numbers": "10\n9\n100\n",
}


def _env(argv: list[str]) -> tuple[int, str, str]:
    return 0, "".join(f"{k}={v}\n" for k, v in ENV.items()), ""


CONTAINER = Container({"env": _env}, ENV, FILES)


def sh(script: str, shell: str = "sh") -> tuple[int, str, str]:
    return run_program([shell, "-c", script], CONTAINER)


@pytest.mark.parametrize(
    ("script", "stdout"),
    [
        ("echo $HF_HUB_OFFLINE ${HOSTNAME} ${NOPE:-unset}", "0 llm-serve-abc unset\n"),
        ('echo "$VLLM_ARGS"; echo $VLLM_ARGS', "--dtype  half\n--dtype half\n"),
        ("echo '$HOSTNAME' \\$HOSTNAME", "$HOSTNAME $HOSTNAME\n"),
        ("env | grep -c HF_", "1\n"),
        ("env | grep -v PATH | head -n 1", "HOSTNAME=llm-serve-abc\n"),
        ("env | wc -l", "4\n"),
        ("sort -n -r /tmp/numbers | head -1; sort /tmp/numbers | head -1", "100\n10\n"),
        ("sort -u /tmp/lines | tail -n 1", "c 1\n"),
        ("grep -n 'a 1\\|c' /tmp/lines", "2:a 10\n3:c 1\n4:a 10\n"),
        ("grep -E 'b|c' /tmp/lines | wc -l", "2\n"),
        ("false; echo $?; true && echo and || echo or", "1\nand\n"),
        ("cat /nope 2>/dev/null || echo gone", "gone\n"),
        ("cat /nope 2>&1 | wc -l", "1\n"),
        ("printf '%s=%d\\n' a 1 b 2", "a=1\nb=2\n"),
        ("echo 'a\\tb\\nc'", "a\tb\nc\n"),  # dash's echo reads escapes
        ("echo one; exit 3; echo never", "one\n"),
    ],
)
def test_one_liners_print_what_dash_and_gnu_print(script: str, stdout: str) -> None:
    assert sh(script)[1] == stdout


def test_exit_codes_and_messages() -> None:
    assert sh("exit 3") == (3, "", "")
    assert sh("nvidia-smii -L") == (127, "", "sh: 1: nvidia-smii: not found\n")
    assert sh("nvidia-smii -L", "bash") == (
        127,
        "",
        "bash: line 1: nvidia-smii: command not found\n",
    )
    assert sh("echo 'open") == (2, "", "sh: 1: Syntax error: Unterminated quoted string\n")
    assert sh("| wc -l") == (2, "", 'sh: 1: Syntax error: "|" unexpected\n')
    assert sh("grep x /nope") == (2, "", "grep: /nope: No such file or directory\n")
    assert sh("grep zzz /etc/hostname")[0] == 1
    assert sh("head -n x /etc/hostname") == (1, "", "head: invalid number of lines: ‘x’\n")
    # Control flow is beyond this shell: it says so rather than pretend a command is missing.
    code, _, err = sh("for x in 1 2; do echo $x; done")
    assert code == 2 and "not simulated" in err


def test_direct_exec_of_filters_and_missing_executables() -> None:
    assert run_program(["cat", "/etc/hostname"], CONTAINER) == (0, "llm-serve-abc\n", "")
    assert run_program(["wc", "-l", "/tmp/lines"], CONTAINER) == (0, "4 /tmp/lines\n", "")
    assert run_program(["sh"], CONTAINER) == (0, "", "")  # no terminal: reads EOF, exits
    assert run_program(["sh", "-c"], CONTAINER) == (2, "", "sh: 0: -c requires an argument\n")
    with pytest.raises(NotStarted):
        run_program(["python3.13", "-V"], CONTAINER)
