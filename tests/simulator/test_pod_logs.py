"""How the simulated kubelet cuts a container log (issue 11, item 6): `tailLines` and
`sinceTime`/`sinceSeconds`, the byte limit counting the timestamp prefix, the fixed-width
RFC3339Nano prefix, and PodLogOptions refused as the API server refuses them."""

from __future__ import annotations

import pytest

from services.simulator.errors import ApiError
from services.simulator.pod_logs import LogOptions, parse_options, render, rfc3339_nano

T0 = 1_764_660_000.0  # 2025-12-02T07:20:00Z
LINES = [(T0 + 1.5, "one"), (T0 + 2.25, "two"), (T0 + 9.0, "three")]


def test_tail_and_since_cut_the_log() -> None:
    cut = render(LINES, LogOptions(tail_lines=2, since_time=T0 + 5), now=T0 + 10)
    assert cut == b"three\n"
    assert render(LINES, LogOptions(since_seconds=8), now=T0 + 10) == b"two\nthree\n"
    assert render(LINES, LogOptions(tail_lines=0), now=T0 + 10) == b""


def test_timestamps_are_fixed_width_and_count_towards_the_byte_limit() -> None:
    assert rfc3339_nano(T0 + 1.5) == "2025-12-02T07:20:01.500000000Z"
    assert rfc3339_nano(T0) == "2025-12-02T07:20:00.000000000Z"
    out = render(LINES, LogOptions(timestamps=True, limit_bytes=40), now=T0 + 10)
    assert out == b"2025-12-02T07:20:01.500000000Z one\n2025-"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"tailLines": "-1"}, "tailLines: Invalid value: -1: must be greater than or equal to 0"),
        ({"limitBytes": "0"}, "limitBytes: Invalid value: 0: must be greater than 0"),
        ({"sinceSeconds": "0"}, "sinceSeconds: Invalid value: 0: must be greater than 0"),
        (
            {"sinceSeconds": "5", "sinceTime": "2025-12-02T07:20:00Z"},
            ": Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified",
        ),
    ],
)
def test_options_out_of_range_are_422(query: dict[str, str], message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_options(query, "llm-serve-abc")
    assert caught.value.code == 422
    assert str(caught.value.status()["message"]) == (
        f'PodLogOptions "llm-serve-abc" is invalid: {message}'
    )
