"""The serving image's `/bin/sh` (dash) as far as an SRE's one-liners need it.

`kubectl exec POD -- sh -c '...'` runs here: words with '...' and "..." quoting, `$VAR`,
`${VAR}` and `$?` from the container's environment, pipelines into the few filters an SRE
uses (`grep`, `head`, `tail`, `wc`, `sort`, `cat`), lists with `;`, `&&` and `||`, and the
redirections `2>&1`, `>&2` and `>/dev/null`. Not a general shell: no assignments, no
control flow, no globbing. What it does not know exits 127 with dash's own message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from services.simulator.coreutils import UTILITIES

Program = Callable[[list[str]], tuple[int, str, str]]
EXIT_SYNTAX = 2
EXIT_NOT_FOUND = 127
RESERVED = {"if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done", "case"}
NO_CONTROL_FLOW = "control flow is not simulated (skewmit simulator's sh)"


@dataclass(frozen=True)
class Container:
    """What a process in the container sees: its executables, environment and files."""

    programs: Mapping[str, Program]
    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.programs or name in UTILITIES


class ShellSyntaxError(Exception):
    """dash refuses the command line; the message is what it prints after `sh: 1: `."""


# -- words -------------------------------------------------------------------

# A word is parts: (text, quoted, expand). Unquoted expansions are split into fields.
Part = tuple[str, bool, bool]
OPERATORS = ("&&", "||", ";", "|")


@dataclass
class _Redirect:
    fd: int  # 1 or 2
    target: str  # "&1", "&2" or a path


@dataclass
class _Command:
    words: list[list[Part]] = field(default_factory=list)
    redirects: list[_Redirect] = field(default_factory=list)


def _tokens(line: str) -> list[str | list[Part] | _Redirect]:
    """Operators, words and redirections, in order. Raises ShellSyntaxError."""
    out: list[str | list[Part] | _Redirect] = []
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch in " \t\n":
            i += 1
            continue
        if ch == "#":
            break
        op = next((o for o in OPERATORS if line.startswith(o, i)), None)
        if op:
            out.append(op)
            i += len(op)
            continue
        if ch == "&":
            raise ShellSyntaxError('Syntax error: "&" is not simulated (no background jobs)')
        redirect = _redirect_at(line, i)
        if redirect is not None:
            target, i = redirect
            out.append(target)
            continue
        word, i = _word(line, i)
        out.append(word)
    return out


def _redirect_at(line: str, i: int) -> tuple[_Redirect, int] | None:
    fd = 1
    j = i
    if line[j].isdigit() and j + 1 < len(line) and line[j + 1] == ">":
        fd = int(line[j])
        j += 1
    if line[j] != ">":
        return None
    j += 1
    if j < len(line) and line[j] == ">":
        j += 1  # >> appends: the same to /dev/null
    while j < len(line) and line[j] in " \t":
        j += 1
    if j < len(line) and line[j] == "&":
        k = j + 1
        while k < len(line) and line[k].isdigit():
            k += 1
        return _Redirect(fd, line[j:k]), k
    word, k = _word(line, j)
    target = "".join(text for text, _, _ in word)
    if not target:
        raise ShellSyntaxError("Syntax error: newline unexpected")
    return _Redirect(fd, target), k


def _word(line: str, i: int) -> tuple[list[Part], int]:
    parts: list[Part] = []
    n = len(line)
    while i < n and line[i] not in " \t\n;&|<>":
        ch = line[i]
        if ch == "'":
            end = line.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("Syntax error: Unterminated quoted string")
            parts.append((line[i + 1 : end], True, False))
            i = end + 1
        elif ch == '"':
            j = i + 1
            text = []
            while j < n and line[j] != '"':
                if line[j] == "\\" and j + 1 < n and line[j + 1] in '"\\$`':
                    j += 1
                text.append(line[j])
                j += 1
            if j >= n:
                raise ShellSyntaxError("Syntax error: Unterminated quoted string")
            parts.append(("".join(text), True, True))
            i = j + 1
        elif ch == "\\" and i + 1 < n:
            parts.append((line[i + 1], True, False))
            i += 2
        else:
            j = i
            while j < n and line[j] not in " \t\n;&|<>'\"\\":
                j += 1
            parts.append((line[i:j], False, True))
            i = j
    return parts, i


def _expand(text: str, env: Mapping[str, str], status: int) -> str:
    out = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch != "$" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "?":
            out.append(str(status))
            i += 2
        elif nxt == "{":
            end = text.find("}", i)
            if end < 0:
                raise ShellSyntaxError("Syntax error: Missing '}'")
            name, _, default = text[i + 2 : end].partition(":-")
            out.append(env.get(name) or default)
            i = end + 1
        elif nxt.isalpha() or nxt == "_":
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            out.append(env.get(text[i + 1 : j], ""))
            i = j
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _fields(word: list[Part], env: Mapping[str, str], status: int) -> list[str]:
    """One word after expansion: unquoted expansions split on blanks, like dash's IFS."""
    fields: list[str] = []
    current: str | None = None
    for text, quoted, expand in word:
        value = _expand(text, env, status) if expand else text
        if quoted or "$" not in text:
            current = (current or "") + value
            continue
        pieces = value.split()
        if value[:1].isspace() and current is not None:
            fields.append(current)
            current = None
        for k, piece in enumerate(pieces):
            if k > 0 and current is not None:
                fields.append(current)
                current = None
            current = (current or "") + piece
        if value[-1:].isspace() and current is not None:
            fields.append(current)
            current = None
    if current is not None:
        fields.append(current)
    return fields


# -- parsing -------------------------------------------------------------------

Pipeline = list[_Command]
# A list: pipelines joined by the operator before each (";" for the first).
CommandList = list[tuple[str, Pipeline]]


def parse(line: str) -> CommandList:
    """Parse a `sh -c` string. Raises ShellSyntaxError with dash's wording."""
    result: CommandList = []
    joiner = ";"
    pipeline: Pipeline = []
    command = _Command()
    for token in _tokens(line):
        if isinstance(token, _Redirect):
            command.redirects.append(token)
        elif isinstance(token, list):
            command.words.append(token)
        else:
            if not command.words:
                raise ShellSyntaxError(f'Syntax error: "{token}" unexpected')
            pipeline.append(command)
            command = _Command()
            if token != "|":
                result.append((joiner, pipeline))
                joiner, pipeline = token, []
    if command.words:
        pipeline.append(command)
    elif pipeline:  # ended on "|", "&&" or "||"
        raise ShellSyntaxError("Syntax error: end of file unexpected")
    if pipeline:
        result.append((joiner, pipeline))
    elif joiner in ("&&", "||"):
        raise ShellSyntaxError("Syntax error: end of file unexpected")
    return result


# -- running -------------------------------------------------------------------


def run_shell(name: str, script: str, container: Container) -> tuple[int, str, str]:
    """Run `name -c script` (name is sh or bash). Returns (exit code, stdout, stderr)."""
    try:
        commands = parse(script)
    except ShellSyntaxError as refused:
        return EXIT_SYNTAX, "", f"{_prefix(name)}{refused}\n"
    status = 0
    out: list[str] = []
    err: list[str] = []
    for joiner, pipeline in commands:
        if (joiner == "&&" and status != 0) or (joiner == "||" and status == 0):
            continue
        status, stdout, stderr, leave = _pipeline(name, pipeline, container, status)
        out.append(stdout)
        err.append(stderr)
        if leave:
            break
    return status, "".join(out), "".join(err)


def _prefix(name: str) -> str:
    return "bash: line 1: " if name == "bash" else f"{name}: 1: "


def _pipeline(
    name: str, pipeline: Pipeline, container: Container, status: int
) -> tuple[int, str, str, bool]:
    stdin = ""
    errors: list[str] = []
    code = 0
    leave = False
    for command in pipeline:
        argv = [f for word in command.words for f in _fields(word, container.env, status)]
        code, out, err, leave = _command(name, argv, stdin, container)
        for redirect in command.redirects:
            out, err = _redirected(redirect, out, err)
        stdin = out
        errors.append(err)
    return code, stdin, "".join(errors), leave


def _redirected(redirect: _Redirect, out: str, err: str) -> tuple[str, str]:
    if redirect.target == "&1" and redirect.fd == 2:
        return out + err, ""
    if redirect.target == "&2" and redirect.fd == 1:
        return "", err + out
    # Anything else goes to a file; the one an SRE names is /dev/null.
    return ("", err) if redirect.fd == 1 else (out, "")


def _command(
    name: str, argv: list[str], stdin: str, container: Container
) -> tuple[int, str, str, bool]:
    """(exit code, stdout, stderr, leave the shell)."""
    if not argv:
        return 0, "", "", False
    program = argv[0].rsplit("/", 1)[-1]
    if program == "exit":
        code = int(argv[1]) & 0xFF if len(argv) > 1 and argv[1].isdigit() else 0
        return code, "", "", True
    if program == "command" and argv[1:2] == ["-v"]:
        found = [w for w in argv[2:] if container.has(w) or w in ("sh", "bash", "echo")]
        return (
            (0 if found and len(found) == len(argv) - 2 else 1),
            "".join(f"{_path_of(w)}\n" for w in found),
            "",
            False,
        )
    if argv[0] in RESERVED:
        return EXIT_SYNTAX, "", f"{_prefix(name)}Syntax error: {NO_CONTROL_FLOW}\n", True
    if program in ("echo", "printf", "true", "false", ":"):
        return (*_builtin(name, program, argv), False)
    if program in UTILITIES:
        code, out, err = UTILITIES[program](argv, stdin, container.files)
        return code, out, err, False
    if program in container.programs:
        code, out, err = container.programs[program](argv)
        return code, out, err, False
    if name == "bash":
        return EXIT_NOT_FOUND, "", f"bash: line 1: {argv[0]}: command not found\n", False
    return EXIT_NOT_FOUND, "", f"{name}: 1: {argv[0]}: not found\n", False


def _path_of(name: str) -> str:
    return "echo" if name == "echo" else f"/usr/bin/{name}"


def _builtin(shell: str, program: str, argv: list[str]) -> tuple[int, str, str]:
    if program == "echo":
        words = argv[1:]
        newline = "\n"
        if words[:1] == ["-n"]:
            words, newline = words[1:], ""
        text = " ".join(words)
        if shell != "bash":  # dash's echo always reads backslash escapes; \c ends the output
            text, stop, _ = _escaped(text).partition("\\c")
            newline = "" if stop else newline
        return 0, text + newline, ""
    if program == "printf":
        return _printf(argv[1:])
    return (1 if program == "false" else 0), "", ""


_PRINTF_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "r": "\r"}


def _escaped(text: str) -> str:
    """Backslash escapes as dash's echo reads them (\\c is left for the caller)."""
    out = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _PRINTF_ESCAPES:
            out.append(_PRINTF_ESCAPES[text[i + 1]])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _printf(args: list[str]) -> tuple[int, str, str]:
    """dash's printf for %s, %d and %% with \\n, \\t escapes; the format is reused while
    arguments remain, as POSIX says."""
    if not args:
        return 2, "", "printf: usage: printf format [arg ...]\n"
    fmt, rest = args[0], args[1:]
    out: list[str] = []
    while True:
        i = 0
        used = False
        while i < len(fmt):
            ch = fmt[i]
            if ch == "\\" and i + 1 < len(fmt):
                out.append(_PRINTF_ESCAPES.get(fmt[i + 1], fmt[i + 1]))
                i += 2
            elif ch == "%" and i + 1 < len(fmt):
                spec = fmt[i + 1]
                if spec == "%":
                    out.append("%")
                else:
                    value = rest.pop(0) if rest else ""
                    used = True
                    out.append(
                        str(int(value or 0))
                        if spec == "d" and value.lstrip("-").isdigit()
                        else value
                    )
                i += 2
            else:
                out.append(ch)
                i += 1
        if not rest or not used:
            return 0, "".join(out), ""
