"""`fill_table` sizes every column before the table's first idle: a frame painted between
adding rows and that idle must not cut the cells to their headers' width (the cause of a
`coral browse` screen on a loaded machine whose tensor names read `enco`)."""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual.app import App, ComposeResult
from textual.widgets import DataTable

from coral.tui.tables import cell_width, fill_table

LONG = "encoder.layer.0.attention.self.query.weight"


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        table: DataTable[str | Text] = DataTable()
        table.add_columns("name", "size")
        yield table


def test_columns_fit_their_cells_before_any_idle() -> None:
    async def scenario() -> None:
        app = TableApp()
        async with app.run_test(size=(80, 24)) as pilot:
            table = app.query_one(DataTable)
            fill_table(
                table, ("name", "size"), [([Text(LONG), "16 B"], "a"), (["b", "2 KiB"], "b")]
            )
            # No await between the fill and these reads: the table has not been idle since.
            widths = [
                c.get_render_width(table) - 2 * table.cell_padding for c in table.ordered_columns
            ]
            assert widths == [len(LONG), len("2 KiB")]
            assert [c.label.plain for c in table.ordered_columns] == ["name", "size"]
            await pilot.pause()
            first = table.render_line(1).text  # under the header
            assert LONG in first and "16 B" in first
            fill_table(table, ("name", "size"), [(["short", "1 B"], "a")])
            assert table.row_count == 1
            assert (
                table.ordered_columns[0].get_render_width(table)
                == len("short") + 2 * table.cell_padding
            )

    asyncio.run(scenario())


def test_cell_width_counts_terminal_columns() -> None:
    assert cell_width("‖Δ‖₂") == 4
    assert cell_width(Text("ab\nabcd")) == 4
    assert cell_width("") == 0
