"""The parsed stylesheets kept between runs (tui.style_cache, issue 12: 15-20 ms of the first
frame). A start that reads them back must style every widget exactly as one that parses, and
the file is used only when it is this user's own, whole, written by the same Textual and Rich,
and for the same theme."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.tui.conftest import wait_until
from tests.tui.fakes import FakeRunbook, fake_session
from tui import style_cache
from tui.app import SkewmitApp
from tui.style_cache import KeptStylesheet

RED = "Label { color: red; }"


async def styles_of_a_run(path: Path) -> tuple[int, dict[str, str], str]:
    """One run of the app on a fake session: how many sources it parsed itself, each widget's
    styles as CSS, and the rules it styled them with; its new rules are written to `path`."""
    app = SkewmitApp(fake_session(FakeRunbook()))
    app.stylesheet = KeptStylesheet(variables=app.get_css_variables(), path=path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: len(app.board.reports) == 6, "checks")
        await pilot.pause()
        styles = {
            f"{i} {type(w).__name__}#{w.id}": repr(sorted(w.styles.base.get_rules().items()))
            for i, w in enumerate(app.main.walk_children(with_self=True))
        }
        stylesheet = app.stylesheet
        assert isinstance(stylesheet, KeptStylesheet)
        stylesheet.keep()
        rules = [
            (rule.selectors, rule.is_default_rules, rule.tie_breaker, sorted(rule.selector_names))
            for rule in stylesheet.rules
        ]
        declarations = [repr(sorted(rule.styles.get_rules().items())) for rule in stylesheet.rules]
        return stylesheet.parsed, styles, repr((rules, declarations))


async def test_a_second_start_parses_nothing_and_styles_every_widget_the_same(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cache" / "styles.pickle"
    parsed, styles, rules = await styles_of_a_run(path)
    assert parsed > 30  # the app's .tcss and each widget class's default CSS
    assert path.exists() and path.stat().st_mode & 0o777 == 0o600
    again, styles_again, rules_again = await styles_of_a_run(path)
    assert again == 0
    assert styles_again == styles
    assert rules_again == rules


def parse(path: Path, css: str = RED, **variables: str) -> KeptStylesheet:
    sheet = KeptStylesheet(variables=variables or {"accent": "#ff0000"}, path=path)
    sheet.add_source(css, read_from=("app.tcss", ""))
    sheet.parse()
    return sheet


def test_a_changed_source_is_parsed_again_not_served_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "styles.pickle"
    assert parse(path).keep()
    assert parse(path).parsed == 0
    blue = parse(path, "Label { color: blue; }")
    assert blue.parsed == 1
    assert "#0000FF" in blue.css and "#FF0000" not in blue.css


def test_other_theme_variables_are_parsed_again(tmp_path: Path) -> None:
    path = tmp_path / "styles.pickle"
    parse(path, "Label { color: $accent; }").keep()
    other = parse(path, "Label { color: $accent; }", accent="#0000ff")
    assert other.parsed == 1
    assert "#0000FF" in other.css.upper()


def test_a_file_from_another_textual_or_rich_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "styles.pickle"
    parse(path).keep()
    monkeypatch.setattr(style_cache, "stamp", lambda: ("textual upgraded",))
    assert parse(path).parsed == 1


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda p: p.chmod(0o666), id="others-can-write-the-file"),
        pytest.param(lambda p: p.parent.chmod(0o777), id="others-can-write-the-folder"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[:100]), id="torn"),
        pytest.param(lambda p: p.write_bytes(b"not a pickle"), id="garbage"),
    ],
)
def test_a_file_that_is_not_private_and_whole_is_parsed_over(spoil: Any, tmp_path: Path) -> None:
    path = tmp_path / "cache" / "styles.pickle"
    parse(path).keep()
    spoil(path)
    sheet = parse(path)
    assert sheet.parsed == 1 and "#FF0000" in sheet.css
    path.parent.chmod(0o700)
    assert sheet.keep()  # written again, private
    assert path.stat().st_mode & 0o777 == 0o600
    assert parse(path).parsed == 0


def test_a_link_in_place_of_the_file_is_not_followed(tmp_path: Path) -> None:
    path = tmp_path / "styles.pickle"
    parse(tmp_path / "elsewhere.pickle").keep()
    os.symlink(tmp_path / "elsewhere.pickle", path)
    assert parse(path).parsed == 1


def test_an_unwritable_cache_folder_costs_nothing_but_the_parse(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    sheet = parse(blocked / "styles.pickle")
    assert sheet.parsed == 1 and "#FF0000" in sheet.css
    assert sheet.keep() is False
