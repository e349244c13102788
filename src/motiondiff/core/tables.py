"""Markdown tables: one writer for the evaluation report, the sweep summary and the sweep comparison."""


def markdown_cell(value) -> str:
    """A value on one line with its pipes escaped, for a Markdown table cell."""
    return " ".join(str("" if value is None else value).split()).replace("|", "\\|")


def markdown_table(header: list, rows: list, align: bool = False) -> str:
    """A Markdown table: the header line, the separator, then one line per row (each a list of cells).

    `align` pads every column to its widest cell, for reading on a terminal (still valid Markdown)."""
    lines = [[markdown_cell(cell) for cell in line] for line in [header] + [list(row) for row in rows]]
    assert all(len(line) == len(header) for line in lines), "every row needs one cell per column"
    widths = [max(len(line[column]) for line in lines) if align else 0 for column in range(len(header))]
    text = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(line, widths)) + " |" for line in lines]
    separator = "|" + "|".join("-" * (width + 2) if align else "---" for width in widths) + "|"
    return "\n".join([text[0], separator, *text[1:]])
