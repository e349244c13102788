"""index.html of a folder motiondiff wrote: one self-contained page that opens from the file system.

The page holds the motion player on the folder's motions (folders.py), its Markdown tables rendered as HTML, its
plots (PNG files, embedded as data URIs), links to its videos and other files (relative, so the folder can move),
and links to other reports (`links`: each run's report from a comparison). Nothing on it is fetched from a network.
"""

import base64
import html
import json
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from motiondiff.core.errors import UserError
from motiondiff.core.files import write_new_file
from motiondiff.core.units import megabytes
from motiondiff.report.folders import PlayerGroup, folder_title, player_groups, read_generation
from motiondiff.report.markdown import markdown_html, referenced_images
from motiondiff.report.player import asset, player_assets, player_html

REPORT_FILE = "index.html"
MARKDOWN_ORDER = ("paper_table.md", "metrics.md", "comparison.md", "evaluations.md", "sweep_summary.md")
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
MAX_EMBEDDED_IMAGE = 8 * 2**20  # bytes: a larger picture is linked, not embedded
FILE_DEPTH = 2  # folder levels listed under "Files"
MAX_FILES = 200
PROVENANCE_FILE = "source.json"  # runs.provenance writes it beside generations and evaluations


def href(target: Path, folder: Path) -> str:
    """A link from a page in `folder` to `target`, relative, with forward slashes and URL quoting."""
    return quote(Path(os.path.relpath(target, folder)).as_posix())


def image_source(folder: Path):
    """A function: an image name a Markdown file gives -> a data URI of that file in `folder`, else None."""

    def source(target: str):
        path = (folder / target).resolve()
        if path.parent != folder.resolve() or path.suffix.lower() not in IMAGE_TYPES or not path.is_file():
            return None
        return data_uri(path)

    return source


def data_uri(path: Path) -> str:
    """The file as a data: URI (the page stays one file); a relative link when it is too large to embed."""
    if path.stat().st_size > MAX_EMBEDDED_IMAGE:
        return quote(path.name)
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"data:{IMAGE_TYPES[path.suffix.lower()]};base64,{encoded}"


def facts(folder: Path, generation) -> list:
    """(label, HTML) pairs: the run, checkpoint, sampler, seed, guidance of the folder where it records them."""
    found = []
    provenance = folder / PROVENANCE_FILE
    if provenance.is_file():
        record = json.loads(provenance.read_text())
        run_dir = Path(record.get("run_dir", ""))
        found.append(("run", f'<a href="{href(run_dir, folder)}">{html.escape(str(run_dir))}</a>'))
        found.append(("checkpoint", f"<code>{html.escape(Path(record.get('checkpoint', '')).name)}</code>"))
    if generation:
        sampler = generation.get("sampler") or {}
        steps = sampler.get("num_steps")
        if sampler:
            name = str(sampler.get("name", "")).replace("Sampler", "").lower() or "?"
            found.append(("sampler", html.escape(f"{name}, {steps} steps" if steps else name)))
        for key in ("seed", "guidance_weight", "units"):
            if generation.get(key) is not None:
                found.append((key.replace("_", " "), html.escape(str(generation[key]))))
        source = generation.get("source") or {}
        if source.get("path"):
            found.append(("source", f"<code>{html.escape(str(source['path']))}</code>"))
    return found


def player_section(group: PlayerGroup) -> str:
    """A heading, an optional note and the player of one group of motions."""
    note = f'<p class="note">{html.escape(group.note)}</p>' if group.note else ""
    return (
        f'<section class="players"><h2>{html.escape(group.title)}</h2>{note}\n'
        f"{player_html(group.motions, group.element_id)}</section>"
    )


def markdown_files(folder: Path) -> list:
    """The folder's Markdown files, the commands' reports first."""
    present = sorted(path.name for path in folder.glob("*.md"))
    return [name for name in MARKDOWN_ORDER if name in present] + [n for n in present if n not in MARKDOWN_ORDER]


def markdown_sections(folder: Path) -> tuple:
    """(HTML of each Markdown file in its own section, the image names they show)."""
    sections, shown = [], set()
    for name in markdown_files(folder):
        text = (folder / name).read_text(encoding="utf-8", errors="replace")
        shown |= referenced_images(text)
        body = markdown_html(text, image_source(folder))
        sections.append(f'<section class="document"><div class="source-name">{html.escape(name)}</div>{body}</section>')
    return sections, shown


def plots_section(folder: Path, shown: set) -> str:
    """Every picture of the folder the Markdown files did not already show, embedded."""
    pictures = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_TYPES and p.name not in shown]
    if not pictures:
        return ""
    figures = "".join(
        f'<figure class="plot"><img src="{html.escape(data_uri(path))}" alt="{html.escape(path.name)}">'
        f"<figcaption>{html.escape(path.name)}</figcaption></figure>"
        for path in pictures
    )
    return f'<section><h2>Plots</h2><div class="plots">{figures}</div></section>'


def links_section(folder: Path, links: Sequence) -> str:
    """Links to other reports (label, index.html path); one that does not exist is named without a link."""
    if not links:
        return ""
    items = []
    for label, target in links:
        target = Path(target)
        if target.is_file():
            items.append(f'<li><a href="{href(target, folder)}">{html.escape(label)}</a></li>')
        else:
            items.append(f'<li>{html.escape(label)} <span class="muted">(no report)</span></li>')
    return f'<section><h2>Reports</h2><ul class="links">{"".join(items)}</ul></section>'


def listed_files(folder: Path) -> list:
    """The folder's files (FILE_DEPTH levels, hidden ones and the report itself left out), at most MAX_FILES."""
    found = []
    for path in sorted(folder.rglob("*")):
        parts = path.relative_to(folder).parts
        if len(parts) > FILE_DEPTH or any(part.startswith(".") for part in parts) or not path.is_file():
            continue
        if parts != (REPORT_FILE,):
            found.append(path)
    return found[:MAX_FILES]


def files_section(folder: Path, files: list) -> str:
    """Videos first (linked, they open in the browser), then every other file with its size."""
    if not files:
        return ""
    videos = [path for path in files if path.suffix.lower() in (".mp4", ".webm")]
    others = [path for path in files if path not in videos]

    def item(path: Path) -> str:
        name = html.escape(path.relative_to(folder).as_posix())
        size = megabytes(path.stat().st_size)
        return f'<li><a href="{href(path, folder)}">{name}</a> <span class="muted">{size}</span></li>'

    parts = []
    if videos:
        parts.append(f'<h3>Videos</h3><ul class="files">{"".join(map(item, videos))}</ul>')
    if others:
        parts.append(f'<h3>Other files</h3><ul class="files">{"".join(map(item, others))}</ul>')
    return f"<section><h2>Files</h2>{''.join(parts)}</section>"


def build_page(folder: Path, title: str = None, links: Sequence = ()) -> str:
    """The page's HTML."""
    generation = read_generation(folder)
    kind = folder_title(folder, generation)
    heading = f"{kind}: {title}" if title else kind
    groups, player_note = player_groups(folder, generation)
    documents, shown = markdown_sections(folder)
    fact_rows = "".join(
        f'<span class="fact"><span class="fact-label">{label}</span> {value}</span>'
        for label, value in facts(folder, generation)
    )
    body = [
        f'<header><h1>{html.escape(heading)}</h1><p class="path">{html.escape(str(folder.resolve()))}</p>',
        f'<div class="facts">{fact_rows}</div>' if fact_rows else "",
        "</header>",
        links_section(folder, links),
        *(player_section(group) for group in groups),
        f'<p class="note">{html.escape(player_note)}</p>' if player_note else "",
        *documents,
        plots_section(folder, shown),
        files_section(folder, listed_files(folder)),
        f"<footer>Written by motiondiff on {datetime.now():%Y-%m-%d %H:%M}; "
        "this page needs no server and no network: open it from the folder.</footer>",
    ]
    player = player_assets() if groups else ""
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(heading)} · motiondiff</title>\n<style>\n{asset('page.css')}</style>\n{player}</head>\n"
        f"<body>\n<main>\n{''.join(part + chr(10) for part in body if part)}</main>\n</body>\n</html>\n"
    )


def write_report(folder, title: str = None, links: Sequence = ()) -> Path:
    """Write <folder>/index.html (never over an existing one) and return its path.

    `title` is added to the heading; `links` are (label, path of another index.html) pairs shown as links."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"'{folder}' is not a folder; give the folder a command wrote (a generation, an evaluation).")
    page = build_page(folder, title, links)
    return write_new_file(
        folder / REPORT_FILE,
        lambda temporary: temporary.write_text(page, encoding="utf-8"),
        what="the report",
        fix="delete it to write a new one",
    )
