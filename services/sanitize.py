"""Text from the cluster or Prometheus made safe to put on an operator's terminal.

Anyone who can set an annotation, a label, an argument, an image name, an event message or a
metric label (a CI job writing commit messages into `kubernetes.io/change-cause`, say) would
otherwise reach the on-call terminal: OSC 0 retitles the window, OSC 52 writes the clipboard,
OSC 8 plants a link, CSI 2J clears the screen, BEL rings. `terminal_text` shows every control
character instead of sending it: C0 controls as their Unicode control pictures (ESC reads
`␛`), DEL as `␡`, C1 controls and the bidirectional overrides that reorder what is read as
`\\x9b` / `\\u202e`. Tab and newline stay. The result is plain text, never markup: the screens
render it as such (Textual `Content`, `Label(markup=False)`), so `[link=...]` stays literal.

Pure text: this module imports nothing beyond the standard library.
"""

from __future__ import annotations

from collections.abc import Iterable

# C0 controls (except tab and newline) -> U+2400 + code: "␛" for ESC, "␇" for BEL, "␍" for CR.
_C0 = {code: chr(0x2400 + code) for code in range(0x20) if code not in (0x09, 0x0A)}
# C1 controls: a UTF-8 terminal may act on U+009B as CSI; no pictures exist, so hex escapes.
_C1 = {code: f"\\x{code:02x}" for code in range(0x80, 0xA0)}
# Characters that reorder or hide text (Trojan Source), and line separators some terminals
# take as a newline: shown as escapes so what the operator reads is what the object holds.
_INVISIBLE = {
    code: f"\\u{code:04x}"
    for code in (
        0x061C,  # arabic letter mark
        0x200B,  # zero width space
        0x200E,  # left-to-right mark
        0x200F,  # right-to-left mark
        0x2028,  # line separator
        0x2029,  # paragraph separator
        *range(0x202A, 0x202F),  # embeddings and overrides
        *range(0x2066, 0x206A),  # isolates
        0xFEFF,  # byte order mark / zero width no-break space
    )
}
_TABLE: dict[int, str] = {**_C0, 0x7F: "\u2421", **_C1, **_INVISIBLE}


def terminal_text(value: object, limit: int | None = None) -> str:
    """`value` as text that cannot act on a terminal: every control character made visible
    (see the module docstring), tab and newline kept. With `limit`, text longer than that
    many characters is cut and says how much was left out. Raises nothing (`str(value)` of
    any object is used)."""
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}… (+{len(text) - limit} chars)"
    return text.translate(_TABLE)


def terminal_line(value: object, limit: int | None = None) -> str:
    """`terminal_text` on one line: newlines and tabs shown as `␊` and `␉` too, for a table
    cell, a title or a label that must stay one row high. Raises nothing."""
    return terminal_text(value, limit).replace("\n", "\u240a").replace("\t", "\u2409")


def terminal_lines(values: Iterable[object], limit: int | None = None) -> list[str]:
    """`terminal_text` of each value. Raises nothing."""
    return [terminal_text(value, limit) for value in values]


def is_terminal_safe(text: str) -> bool:
    """Whether `text` holds no character `terminal_text` would replace (tab and newline are
    safe). Raises nothing."""
    return not any(ord(ch) in _TABLE for ch in text)
