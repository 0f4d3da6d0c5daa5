"""``report.html``: the report's Markdown as one self-contained HTML page.

MLflow's artifact viewer shows a Markdown file as text, its images as link text; the HTML page
beside it shows the table as a table and carries the figures inline. The Markdown is rendered as
CommonMark with tables (markdown-it-py). Names in the report come from the runs' tags, which
anyone who can log to the store may set, so raw HTML in the text is shown as text, never run,
and only PNG files inside the report's own folder are read into the page.
"""

from __future__ import annotations

import base64
from pathlib import Path

from markdown_it import MarkdownIt

STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:1em auto;padding:0 1em;line-height:1.4}"
    "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:2px 8px}"
    "th{background:#f3f3f3}img{width:100%}pre{white-space:pre-wrap;background:#f6f6f6;"
    "padding:.5em}blockquote{color:#555;border-left:3px solid #ccc;margin-left:0;padding-left:1em}"
)


def _embedded(src: str, root: Path) -> str | None:
    """``src`` as a data URI when it names a PNG file inside ``root``; else None (left as is)."""
    path = (root / src).resolve()
    if src.endswith(".png") and path.is_relative_to(root) and path.is_file():
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    return None


def render_html(markdown: str, out_dir: Path) -> str:
    """The HTML page of ``markdown`` (a report written into ``out_dir``), figures embedded."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(markdown)
    root = out_dir.resolve()
    for token in tokens:
        for child in token.children or []:
            if child.type == "image":
                data = _embedded(str(child.attrGet("src") or ""), root)
                if data is not None:
                    child.attrSet("src", data)
    body = md.renderer.render(tokens, md.options, {})
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )
