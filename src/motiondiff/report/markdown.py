"""The Markdown motiondiff writes (tables, headings, lists, paragraphs, images, code) as HTML.

Only the subset core/tables.py and the commands' reports use; anything else comes out as escaped text, never as
markup. Images that name a file in the report's folder are embedded (data URIs), so the page is one file.
"""

import html
import re
from pathlib import Path
from typing import Callable, Optional

HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`]+)`")
BOLD = re.compile(r"\*\*([^*]+)\*\*")
ITEM = re.compile(r"^\s*[-*]\s+(.*)$")
SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")
SAFE_HREF = re.compile(r"^(?![a-zA-Z][a-zA-Z0-9+.-]*:)|^(https?|mailto):", re.ASCII)  # relative, or http(s)/mailto


def inline(text: str, image_source: Callable[[str], Optional[str]]) -> str:
    """One line of Markdown text as HTML: code, images, links and bold; the rest escaped."""
    pieces, position = [], 0
    for matched in CODE.finditer(text):  # code spans first: nothing inside them is markup
        pieces.append(inline_markup(text[position : matched.start()], image_source))
        pieces.append(f"<code>{html.escape(matched[1])}</code>")
        position = matched.end()
    pieces.append(inline_markup(text[position:], image_source))
    return "".join(pieces)


def inline_markup(text: str, image_source: Callable[[str], Optional[str]]) -> str:
    """Images, links and bold in text without code spans; everything else escaped."""
    out, position = [], 0
    for matched in re.finditer(f"{IMAGE.pattern}|{LINK.pattern}", text):
        out.append(bold(html.escape(text[position : matched.start()])))
        if matched.group(0).startswith("!"):
            alt, target = matched[1], matched[2]
            source = image_source(target)
            if source is None:
                out.append(f"<em>[image {html.escape(target)} is not in this folder]</em>")
            else:
                out.append(f'<img class="md-image" src="{html.escape(source)}" alt="{html.escape(alt)}">')
        else:
            label, target = matched[3], matched[4]
            if SAFE_HREF.match(target):
                out.append(f'<a href="{html.escape(target)}">{bold(html.escape(label))}</a>')
            else:
                out.append(bold(html.escape(matched.group(0))))
        position = matched.end()
    out.append(bold(html.escape(text[position:])))
    return "".join(out)


def bold(escaped: str) -> str:
    """**text** as <strong> in already escaped text."""
    return BOLD.sub(r"<strong>\1</strong>", escaped)


def table_cells(line: str) -> list:
    """The cells of a Markdown table line; `\\|` is a pipe inside a cell (core.tables.markdown_cell)."""
    line = line.strip()
    line = line[1:] if line.startswith("|") else line
    line = line[:-1] if line.endswith("|") and not line.endswith("\\|") else line
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)]


def table_html(lines: list, image_source) -> str:
    """A header line, its separator and the body lines as a scrollable HTML table."""
    header = table_cells(lines[0])
    body = [table_cells(line) for line in lines[2:]]
    head = "".join(f"<th>{inline(cell, image_source)}</th>" for cell in header)
    rows = []
    for cells in body:
        cells = (cells + [""] * len(header))[: len(header)]
        rows.append("<tr>" + "".join(f"<td>{inline(cell, image_source)}</td>" for cell in cells) + "</tr>")
    return (
        f'<div class="table-wrap"><table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n'
        + "\n".join(rows)
        + "\n</tbody></table></div>"
    )


def markdown_html(text: str, image_source: Callable[[str], Optional[str]] = lambda _: None, shift: int = 1) -> str:
    """HTML of a Markdown document; headings move down `shift` levels (the page has its own <h1>)."""
    lines, blocks, index = text.splitlines(), [], 0
    paragraph: list = []

    def close_paragraph():
        if paragraph:
            blocks.append("<p>" + " ".join(inline(line.strip(), image_source) for line in paragraph) + "</p>")
            paragraph.clear()

    while index < len(lines):
        line = lines[index]
        if line.strip().startswith("```"):
            close_paragraph()
            end = next((k for k in range(index + 1, len(lines)) if lines[k].strip().startswith("```")), len(lines))
            blocks.append("<pre><code>" + html.escape("\n".join(lines[index + 1 : end])) + "</code></pre>")
            index = end + 1
            continue
        heading = HEADING.match(line)
        if heading:
            close_paragraph()
            level = min(6, len(heading[1]) + shift)
            blocks.append(f"<h{level}>{inline(heading[2].strip(), image_source)}</h{level}>")
        elif line.lstrip().startswith("|") and index + 1 < len(lines) and SEPARATOR.match(lines[index + 1].strip()):
            close_paragraph()
            end = index + 2
            while end < len(lines) and lines[end].lstrip().startswith("|"):
                end += 1
            blocks.append(table_html(lines[index:end], image_source))
            index = end
            continue
        elif ITEM.match(line):
            close_paragraph()
            items = []
            while index < len(lines) and ITEM.match(lines[index]):
                items.append(f"<li>{inline(ITEM.match(lines[index])[1], image_source)}</li>")
                index += 1
            blocks.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif not line.strip():
            close_paragraph()
        else:
            paragraph.append(line)
        index += 1
    close_paragraph()
    return "\n".join(blocks)


def referenced_images(text: str) -> set:
    """The image targets a Markdown document names."""
    return {Path(target).name for _, target in IMAGE.findall(text)}
