"""Markdown tables for the report and its published pages, laid out by tabulate. Cells are
text as given: no number is re-formatted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from tabulate import tabulate

#: How a Markdown column's cells align.
Align = Literal["left", "right"]


def _md_cell(text: str) -> str:
    """A cell's text safe inside a Markdown table row: ``|`` escaped, line breaks as blanks."""
    return text.replace("|", "\\|").replace("\n", " ")


def pipe_table(
    header: Sequence[str],
    rows: Iterable[Sequence[str]],
    align: Sequence[Align] | None = None,
) -> list[str]:
    """A GitHub-flavoured Markdown table as lines: ``header``, the rule (with ``align``'s
    colons, one per column, when given) and ``rows``, columns padded to line up as text."""
    cells = [[_md_cell(cell) for cell in row] for row in rows]
    text = tabulate(
        cells,
        headers=[_md_cell(name) for name in header],
        tablefmt="pipe" if align else "github",
        colalign=align,
        disable_numparse=True,
    )
    return text.splitlines()
