"""Reading the Prometheus text exposition format (0.0.4) and OpenMetrics sample lines.

Only what the simulator source needs: sample name, labels, value and the optional timestamp
(OpenMetrics writes seconds, the 0.0.4 format milliseconds). Comments, `# EOF` and blank lines
are skipped; a malformed line is skipped too, as Prometheus fails the whole scrape but a
sparkline should not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?[ \t]+(\S+)(?:[ \t]+(\S+))?[ \t]*$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_UNESCAPE = re.compile(r"\\[\\\"n]")
# Label sets repeat on every scrape: parse each text once.
_LABEL_CACHE: dict[str, tuple[tuple[str, str], ...] | None] = {}
_CACHE_LIMIT = 100_000


@dataclass(frozen=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]  # sorted by label name
    value: float
    timestamp: float | None  # unix seconds, None when the line has none


def _float(text: str) -> float:
    lowered = text.lower()
    if lowered in ("+inf", "inf"):
        return math.inf
    if lowered == "-inf":
        return -math.inf
    return float(text)


def _labels(text: str) -> tuple[tuple[str, str], ...] | None:
    cached = _LABEL_CACHE.get(text)
    if cached is not None or text in _LABEL_CACHE:
        return cached
    labels: list[tuple[str, str]] = []
    pos, result = 0, None
    while pos < len(text):
        match = _LABEL.match(text, pos)
        if match is None or match.end() == pos:
            break
        raw = match.group(2)
        value = _UNESCAPE.sub(lambda m: _ESCAPES[m.group(0)], raw) if "\\" in raw else raw
        labels.append((match.group(1), value))
        pos = match.end()
    else:
        result = tuple(sorted(labels))
    if len(_LABEL_CACHE) > _CACHE_LIMIT:
        _LABEL_CACHE.clear()
    _LABEL_CACHE[text] = result
    return result


def parse_line(line: str, openmetrics: bool = False) -> Sample | None:
    """One sample line, or None for a comment, a blank or a malformed line."""
    if not line or line[0] == "#":
        return None
    match = _LINE.match(line)
    if match is None:
        return None
    name, label_text, raw_value, raw_stamp = match.groups()
    labels = _labels(label_text) if label_text else ()
    if labels is None:
        return None
    try:
        value = _float(raw_value)
        stamp = float(raw_stamp) if raw_stamp is not None else None
    except ValueError:
        return None
    if stamp is not None and not openmetrics:
        stamp /= 1000.0  # the 0.0.4 text format writes milliseconds
    return Sample(name, labels, value, stamp)


def parse(text: str) -> Iterator[Sample]:
    """Every sample of a page. OpenMetrics is recognised by its `# EOF` line."""
    openmetrics = text.rstrip().endswith("# EOF")
    for line in text.splitlines():
        sample = parse_line(line.strip(), openmetrics)
        if sample is not None:
            yield sample
