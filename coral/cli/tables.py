"""Tables that fit the terminal without ever breaking a name (DESIGN §8).

A `FitTable` is built like a rich table, with one `key` column (the tensor or file name) and
other columns each given a `drop` rank. To print, columns are dropped lowest rank first until
the table fits the console width; when even the key column and the columns marked `keep` do not
fit, every row is printed as a record instead: the name on its own line, the other fields
indented under it. Names are never wrapped, folded or cut.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text


@dataclass
class Column:
    header: str
    justify: str = "left"
    drop: int = 100  # dropped lowest first when the table is too wide
    key: bool = False  # the name column: never dropped, never wrapped
    keep: bool = False  # never dropped (the table turns into records instead)


@dataclass
class FitTable:
    columns: list[Column]
    title: str | None = None
    caption: str | None = None
    rows: list[list[str]] = field(default_factory=list)

    def add_row(self, *cells: str) -> None:
        self.rows.append([str(c) for c in cells])

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def render(self, console: Console) -> None:
        """Print the widest version of the table that fits `console.width`."""
        shown = list(range(len(self.columns)))
        droppable = sorted(
            (i for i, c in enumerate(self.columns) if not (c.key or c.keep)),
            key=lambda i: (self.columns[i].drop, -i),
        )
        while True:
            table = self._table(shown)
            if _natural_width(table) <= console.width:
                console.print(table)
                return
            if not droppable:
                break
            shown.remove(droppable.pop(0))
        self._records(console)

    def _table(self, shown: list[int]) -> Table:
        table = Table(
            title=self.title,
            title_justify="left",
            caption=self.caption,
            caption_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            expand=False,
        )
        for i in shown:
            col = self.columns[i]
            table.add_column(
                col.header,
                justify=col.justify,  # type: ignore[arg-type]
                no_wrap=True,
                overflow="ignore" if col.key else "ellipsis",
            )
        for row in self.rows:
            table.add_row(*(Text.from_markup(row[i]) for i in shown))
        return table

    def _records(self, console: Console) -> None:
        key = next((i for i, c in enumerate(self.columns) if c.key), 0)
        if self.title:
            console.print(self.title)
        for row in self.rows:
            console.print(Text.from_markup(row[key]), soft_wrap=True)
            fields = [
                f"{escape(self.columns[i].header)} {row[i]}"
                for i in range(len(self.columns))
                if i != key and row[i]
            ]
            line = ""  # fields fill lines of the console's width; a field is never split
            for f in fields:
                if line and cell_len(Text.from_markup(f"{line}  {f}").plain) > console.width:
                    console.print(line, soft_wrap=True)
                    line = ""
                line = f"{line}  {f}" if line else f"    {f}"
            if line:
                console.print(line, soft_wrap=True)
        if self.caption:
            console.print(self.caption)


def _natural_width(table: Table) -> int:
    """Columns of the widest line the table prints when nothing is shrunk."""
    sink = Console(width=1 << 16, file=io.StringIO(), color_system=None, highlight=False)
    with sink.capture() as captured:
        sink.print(table)
    return max((cell_len(line) for line in captured.get().splitlines()), default=0)
