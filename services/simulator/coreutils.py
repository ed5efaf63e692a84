"""The GNU filters of the serving image (Ubuntu): `cat`, `grep`, `head`, `tail`, `wc`, `sort`.

Each reads its files from the container's few simulated files, or its standard input, and
answers with GNU's messages and exit codes for the options an SRE types. Options beyond those
are refused as GNU refuses an unknown option.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

Utility = Callable[[list[str], str, Mapping[str, str]], tuple[int, str, str]]
Result = tuple[int, str, str]


def _missing(tool: str, path: str) -> str:
    return f"{tool}: {path}: No such file or directory\n"


def _unknown_option(tool: str, option: str, usage: str) -> Result:
    return (
        2 if tool == "grep" else 1,
        "",
        f"{tool}: invalid option -- '{option}'\nUsage: {tool} {usage}\n"
        f"Try '{tool} --help' for more information.\n",
    )


def _inputs(
    tool: str, paths: list[str], stdin: str, files: Mapping[str, str]
) -> tuple[list[tuple[str, str]], str]:
    """(name, text) per input and the errors for missing ones; stdin when no path."""
    if not paths:
        return [("-", stdin)], ""
    found: list[tuple[str, str]] = []
    errors = ""
    for path in paths:
        if path == "-":
            found.append(("-", stdin))
        elif path in files:
            found.append((path, files[path]))
        else:
            errors += _missing(tool, path)
    return found, errors


def cat(argv: list[str], stdin: str, files: Mapping[str, str]) -> Result:
    found, errors = _inputs("cat", argv[1:], stdin, files)
    return (1 if errors else 0), "".join(text for _, text in found), errors


def _bre_to_python(pattern: str) -> str:
    """GNU basic regular expressions: `\\|`, `\\+`, `\\?`, `\\(`... are the operators and the
    bare characters are literal; Python's syntax is the other way round."""
    out = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append(nxt if nxt in "|+?(){}" else ch + nxt)
            i += 2
            continue
        out.append("\\" + ch if ch in "|+?(){}" else ch)
        i += 1
    return "".join(out)


def grep(argv: list[str], stdin: str, files: Mapping[str, str]) -> Result:
    flags: set[str] = set()
    args: list[str] = []
    patterns: list[str] = []
    rest = argv[1:]
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            args += rest
            break
        if arg == "-e" and rest:
            patterns.append(rest.pop(0))
        elif arg.startswith("-") and len(arg) > 1 and not args:
            for letter in arg[1:]:
                if letter not in "ivcEFqnwl":
                    return _unknown_option("grep", letter, "[OPTION]... PATTERNS [FILE]...")
                flags.add(letter)
        else:
            args.append(arg)
    if not patterns:
        if not args:
            return (
                2,
                "",
                "Usage: grep [OPTION]... PATTERNS [FILE]...\n"
                + ("Try 'grep --help' for more information.\n"),
            )
        patterns.append(args.pop(0))
    sources = [p if "F" in flags else p if "E" in flags else _bre_to_python(p) for p in patterns]
    if "F" in flags:
        sources = [re.escape(p) for p in patterns]
    if "w" in flags:
        sources = [rf"\b(?:{s})\b" for s in sources]
    try:
        regex = re.compile("|".join(sources), re.IGNORECASE if "i" in flags else 0)
    except re.error:
        return 2, "", "grep: Unmatched ( or \\(\n"
    found, errors = _inputs("grep", args, stdin, files)
    many = len(found) > 1
    out: list[str] = []
    matched = False
    for name, text in found:
        hits = [
            (n, line)
            for n, line in enumerate(text.splitlines(), 1)
            if bool(regex.search(line)) != ("v" in flags)
        ]
        matched = matched or bool(hits)
        prefix = f"{name}:" if many else ""
        if "l" in flags:
            out += [f"{name}\n"] if hits else []
        elif "c" in flags:
            out.append(f"{prefix}{len(hits)}\n")
        else:
            out += [f"{prefix}{f'{n}:' if 'n' in flags else ''}{line}\n" for n, line in hits]
    if "q" in flags:
        return (0 if matched else 2 if errors else 1), "", errors
    return (2 if errors else 0 if matched else 1), "".join(out), errors


class _Refused(Exception):
    def __init__(self, result: Result) -> None:
        super().__init__(result[2])
        self.result = result


def _count(tool: str, argv: list[str]) -> tuple[int | str, list[str]]:
    """head/tail's line count (-n N, -N, -n +N for tail) and the remaining paths.

    Raises _Refused with GNU's answer to a bad option or count.
    """
    count: int | str = 10
    paths: list[str] = []
    rest = argv[1:]
    while rest:
        arg = rest.pop(0)
        value = None
        if arg == "-n" and rest:
            value = rest.pop(0)
        elif arg.startswith("-n"):
            value = arg[2:]
        elif arg.startswith("-") and arg[1:].isdigit():
            value = arg[1:]
        elif arg.startswith("-") and len(arg) > 1:
            raise _Refused(_unknown_option(tool, arg[1], "[OPTION]... [FILE]..."))
        else:
            paths.append(arg)
            continue
        if tool == "tail" and value.startswith("+") and value[1:].isdigit():
            count = value
        elif value.lstrip("-").isdigit():
            count = int(value)
        else:
            raise _Refused((1, "", f"{tool}: invalid number of lines: ‘{value}’\n"))
    return count, paths


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def head(argv: list[str], stdin: str, files: Mapping[str, str]) -> Result:
    try:
        count, paths = _count("head", argv)
    except _Refused as refused:
        return refused.result
    found, errors = _inputs("head", paths, stdin, files)
    n = int(count)  # a negative count keeps all but the last lines, as GNU head does
    out = "".join("".join(_lines(text)[:n]) for _, text in found)
    return (1 if errors else 0), out, errors


def tail(argv: list[str], stdin: str, files: Mapping[str, str]) -> Result:
    try:
        count, paths = _count("tail", argv)
    except _Refused as refused:
        return refused.result
    found, errors = _inputs("tail", paths, stdin, files)
    out = []
    for _, text in found:
        lines = _lines(text)
        if isinstance(count, str):  # +N: from line N on
            out += lines[max(int(count[1:]) - 1, 0) :]
        else:
            out += lines[len(lines) - abs(count) :] if count else []
    return (1 if errors else 0), "".join(out), errors


def wc(argv: list[str], stdin: str, files: Mapping[str, str]) -> Result:
    flags = "".join(a[1:] for a in argv[1:] if a.startswith("-") and len(a) > 1)
    bad = next((f for f in flags if f not in "lwc"), None)
    if bad:
        return _unknown_option("wc", bad, "[OPTION]... [FILE]...")
    paths = [a for a in argv[1:] if not a.startswith("-") or a == "-"]
    wanted = [f for f in "lwc" if f in flags] or ["l", "w", "c"]
    found, errors = _inputs("wc", paths, stdin, files)
    rows = []
    for name, text in found:
        counts = {"l": text.count("\n"), "w": len(text.split()), "c": len(text.encode())}
        rows.append(([counts[f] for f in wanted], name))
    if len(rows) > 1:
        rows.append(([sum(r[0][i] for r in rows) for i in range(len(wanted))], "total"))
    # GNU prints a lone count bare, several counts from a pipe 7 wide, from files as wide as
    # the widest.
    if len(wanted) == 1 and len(rows) == 1:
        width = 0
    elif not paths:
        width = 7
    else:
        width = max(len(str(c)) for r in rows for c in r[0])
    out = "".join(
        " ".join(f"{c:>{width}}" for c in counts) + (f" {name}" if name != "-" else "") + "\n"
        for counts, name in rows
    )
    return (1 if errors else 0), out, errors


def sort(argv: list[str], stdin: str, files: Mapping[str, str]) -> Result:
    flags = "".join(a[1:] for a in argv[1:] if a.startswith("-") and len(a) > 1)
    bad = next((f for f in flags if f not in "rnu"), None)
    if bad:
        return _unknown_option("sort", bad, "[OPTION]... [FILE]...")
    paths = [a for a in argv[1:] if not a.startswith("-") or a == "-"]
    found, errors = _inputs("sort", paths, stdin, files)
    lines = [line for _, text in found for line in text.splitlines()]
    if "n" in flags:
        match = re.compile(r"^\s*(-?\d+(?:\.\d+)?)")

        def key(line: str) -> tuple[float, str]:
            m = match.match(line)
            return (float(m.group(1)) if m else 0.0, line)

        lines.sort(key=key, reverse="r" in flags)
    else:
        lines.sort(reverse="r" in flags)
    if "u" in flags:
        lines = list(dict.fromkeys(lines))
    return (2 if errors else 0), "".join(f"{line}\n" for line in lines), errors


UTILITIES: dict[str, Utility] = {
    "cat": cat,
    "grep": grep,
    "head": head,
    "tail": tail,
    "wc": wc,
    "sort": sort,
}
