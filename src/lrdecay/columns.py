"""Plain-text tables for the terminal: the one printer behind the sweep's job table and the
Optuna sweeper's top trials."""

from __future__ import annotations

from collections.abc import Sequence


def columns(rows: Sequence[Sequence[str]], gap: str = "  ") -> list[str]:
    """``rows`` of cells as text lines: each column as wide as its widest cell, cells left
    aligned and ``gap`` apart, trailing blanks cut. The widest line is as wide as the table."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        gap.join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
