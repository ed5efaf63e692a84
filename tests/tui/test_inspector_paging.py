"""The GPU inspector on a large fleet (issue 12: "the inspector pages rather than rendering
every row"): 1,000 pods are one page of rows in the table at a time, the pods on the wrong GPU
class come first, the header says which rows are shown, and the cursor walks from page to page
with the keys it already uses."""

from __future__ import annotations

from dataclasses import replace

from textual.app import App, ComposeResult

from services.models import SMI_NOT_READ_YET, GpuReading
from widgets.inspector_table import PAGE_ROWS, InspectorTable

FLEET = 1000
WRONG = {7, 480, 993}  # pods on an A10G among H100s, spread over the fleet
UNREAD = {5, 612}


def reading(i: int, *, wrong: bool | None = None) -> GpuReading:
    bad = i in WRONG if wrong is None else wrong
    cls = "A10G" if bad else "H100-80GB"
    note = SMI_NOT_READ_YET if i in UNREAD else ""
    return GpuReading(f"llm-serve-7456b8d59d-p{i:04d}", f"gpu-node-{i // 2}", cls,
                      "label nvidia.com/gpu.product", None, None, None, cls, "H100-80GB",
                      bad, note)  # fmt: skip


class Host(App[None]):
    def compose(self) -> ComposeResult:
        yield InspectorTable(id="inspector")


def header(table: InspectorTable) -> str:
    return table.render_line(0).text


async def test_a_thousand_pods_are_paged_with_the_wrong_class_first() -> None:
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(InspectorTable)
        table.show([reading(i) for i in range(FLEET)])
        await pilot.pause()
        assert table.row_count == PAGE_ROWS < FLEET
        assert f"Pod 1-{PAGE_ROWS}/{FLEET}" in header(table)
        assert table.mismatches == len(WRONG)
        first = [table.page_readings[i].pod[-5:] for i in range(len(WRONG) + len(UNREAD))]
        assert first == ["p0007", "p0480", "p0993", "p0005", "p0612"]
        shown = "\n".join(table.render_line(y).text for y in range(1, 4))
        assert shown.count("✗") == 3, shown
        assert table.max_scroll_x == 0, "the header's row range fits at 80 columns"


async def test_the_cursor_walks_across_pages_and_back() -> None:
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(InspectorTable)
        table.show([reading(i) for i in range(FLEET)])
        table.focus()
        await pilot.pause()
        await pilot.press("ctrl+end")  # the last pod of the last page
        await pilot.pause()
        assert table.page == table.pages - 1 == FLEET // PAGE_ROWS - 1
        assert table.selected is not None and table.selected.pod.endswith("p0999")
        assert f"Pod {FLEET - PAGE_ROWS + 1}-{FLEET}/{FLEET}" in header(table)
        await pilot.press("ctrl+home", "pagedown", "pagedown", "pagedown", "pagedown")
        await pilot.pause()
        before = table.page_readings[-1].pod
        for _ in range(PAGE_ROWS):
            if table.page == 1:
                break
            await pilot.press("pagedown")
        assert table.page == 1 and table.cursor_row == 0, "past the last row: the next page"
        assert table.selected is not None and table.selected.pod != before
        assert f"Pod {PAGE_ROWS + 1}-{2 * PAGE_ROWS}/{FLEET}" in header(table)
        await pilot.press("up")
        await pilot.pause()
        assert table.page == 0 and table.cursor_row == PAGE_ROWS - 1
        assert table.selected is not None and table.selected.pod == before


async def test_a_poll_keeps_the_page_and_the_pod_under_the_cursor() -> None:
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(InspectorTable)
        table.show([reading(i) for i in range(FLEET)])
        table.focus()
        table.go_to_page(3, 10)
        await pilot.pause()
        pod = table.selected.pod if table.selected is not None else ""
        detail = table.selected_detail()
        # The next poll: one more pod found on the wrong class, earlier in the order.
        table.show([reading(i, wrong=i in WRONG or i == 250) for i in range(FLEET)])
        await pilot.pause()
        assert table.page == 3
        assert table.selected is not None and table.selected.pod == pod
        assert table.selected_detail() == detail
        assert table.mismatches == len(WRONG) + 1
        assert [r.pod[-5:] for r in table.readings[:4]] == ["p0007", "p0250", "p0480", "p0993"]


async def test_a_fleet_of_one_page_lists_the_wrong_class_first_under_a_plain_header() -> None:
    """At 120x40 the list shows three rows above the detail pane: a pod on the wrong GPU class
    (or not read yet) must not sit below them out of sight, one page or not."""
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(InspectorTable)
        rows = [reading(i) for i in range(10)]
        table.show(rows)
        await pilot.pause()
        assert [r.pod[-5:] for r in table.readings[:2]] == ["p0007", "p0005"]
        assert sorted(table.readings, key=lambda r: r.pod) == rows, "every pod, once"
        assert table.row_count == 10
        assert "Pod " in header(table) and "/" not in header(table)
        assert "✗" in table.render_line(1).text


async def test_until_the_operator_moves_it_the_cursor_stays_on_the_top_row() -> None:
    """The first list comes in name order (every pod 'checking'); when the verdicts move the
    wrong-class pods up, the cursor and the detail pane are on the first of them, not on the
    pod that happened to be first by name, now below the rows on screen. Once the operator
    has moved the cursor, it follows its pod."""
    app = Host()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(InspectorTable)
        checking = [replace(reading(i, wrong=False), gpu_class="", note=SMI_NOT_READ_YET)
                    for i in range(10)]  # fmt: skip
        table.show(checking)
        await pilot.pause()
        assert table.selected is not None and table.selected.pod.endswith("p0000")
        table.show([reading(i) for i in range(10)])
        await pilot.pause()
        assert table.cursor_row == 0
        assert table.selected is not None and table.selected.pod.endswith("p0007")
        assert "p0007" in table.selected_detail()

        table.focus()
        await pilot.press("down", "down")  # onto an H100 pod, by the operator
        chosen = table.selected.pod if table.selected is not None else ""
        table.show([reading(i, wrong=i in WRONG or i == 3) for i in range(10)])
        await pilot.pause()
        assert table.selected is not None and table.selected.pod == chosen
