"""Markdown tables: one writer for the evaluation report, the sweep summary and the sweep comparison."""


def markdown_cell(value) -> str:
    """A value on one line with its pipes escaped, for a Markdown table cell."""
    return " ".join(str("" if value is None else value).split()).replace("|", "\\|")


def markdown_table(header: list, rows: list) -> str:
    """A Markdown table: the header line, the separator, then one line per row (each a list of cells)."""
    lines = [header] + [list(row) for row in rows]
    assert all(len(line) == len(header) for line in lines), "every row needs one cell per column"
    text = ["| " + " | ".join(markdown_cell(cell) for cell in line) + " |" for line in lines]
    return "\n".join([text[0], "|---" * len(header) + "|", *text[1:]])
