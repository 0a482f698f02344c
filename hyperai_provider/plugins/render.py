"""Server-side HTML: every value is escaped here; pages carry no scripts (the CSP forbids them)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from html import escape

from hyperai_provider.units import human_bytes

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1f2933}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #cbd2d9;padding:.25rem .6rem;text-align:left}
th{background:#f0f4f8}nav a{margin-right:1rem}form{display:inline;margin-right:.5rem}
pre{background:#f5f7fa;padding:.6rem;overflow:auto}.state{font-weight:600}.hint{color:#52606d}
.readme{border:1px solid #cbd2d9;padding:.2rem 1rem}
"""


def esc(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def size(value: int | None) -> str:
    return human_bytes(value) if value is not None else ""


def link(href: str, text: object) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def table(headers: Iterable[str], rows: Iterable[Iterable[str]], id_: str = "") -> str:
    """A table of already-rendered cells (escape values with ``esc`` or ``link``)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table id="{esc(id_)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def button(action: str, label: str, fields: dict[str, str] | None = None, id_: str = "") -> str:
    """A POST form with one button (actions change state, so never a GET link)."""
    inputs = "".join(
        f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">' for k, v in (fields or {}).items()
    )
    return f'<form method="post" action="{esc(action)}">{inputs}<button id="{esc(id_)}">{esc(label)}</button></form>'


def page(base: str, title: str, body: str) -> str:
    nav = " ".join([link(f"{base}/", "Gears"), link(f"{base}/datasets", "Datasets"), link("/", "Airflow")])
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{esc(title)} - HyperAI</title><style>{_STYLE}</style></head>"
        f"<body><nav>{nav}</nav><h1>{esc(title)}</h1>{body}</body></html>"
    )


def error_page(status: int, headline: str, hint: str | None) -> str:
    body = f'<p id="error">{esc(headline)}</p>' + (f'<p class="hint">{esc(hint)}</p>' if hint else "")
    return page("/hyperai", f"Error {status}", body)


_INLINE = [
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![*\w])\*([^*]+)\*(?!\w)"), r"<em>\1</em>"),
]
# Link text holds no '[', the URL no bracket but one level of balanced '(...)': each try then stops within
# the next brackets and the scan stays linear (with '[^\]]+' a README of 1 MiB of '[' took hours).
_LINK = re.compile(r"\[([^\[\]]+)\]\(((?:[^()\s]|\([^()\s]*\))+)\)")


def _anchor(match: re.Match[str]) -> str:
    """Links to http(s) or to relative paths only: any other scheme (javascript:, data:) stays text."""
    href = match.group(2)
    if ":" in href and not href.lower().startswith(("http://", "https://")):
        return match.group(1)
    return f'<a href="{href}" rel="noopener noreferrer">{match.group(1)}</a>'


def _inline(text: str) -> str:
    """Inline markdown on already-escaped text."""
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    return _LINK.sub(_anchor, text)


class _Blocks:
    """Paragraphs and lists of the markdown subset, collected line by line."""

    def __init__(self) -> None:
        self.out: list[str] = []
        self.paragraph: list[str] = []
        self.in_list = False

    def flush(self) -> None:
        if self.paragraph:
            self.out.append("<p>" + _inline(" ".join(self.paragraph)) + "</p>")
            self.paragraph.clear()
        if self.in_list:
            self.out.append("</ul>")
            self.in_list = False

    def line(self, line: str) -> None:
        if heading := re.match(r"(#{1,6})\s+(.*)", line):
            self.flush()
            level = len(heading.group(1)) + 1
            self.out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif item := re.match(r"\s*[-*+]\s+(.*)", line):
            if self.paragraph:
                self.flush()
            if not self.in_list:
                self.out.append("<ul>")
                self.in_list = True
            self.out.append(f"<li>{_inline(item.group(1))}</li>")
        elif not line.strip():
            self.flush()
        else:
            self.paragraph.append(line.strip())


def markdown(source: str) -> str:
    """A small safe markdown subset (headings, paragraphs, lists, fenced code, emphasis, links).
    The source is HTML-escaped first, so raw HTML in a README shows as text."""
    blocks = _Blocks()
    in_code = False
    for raw in source.splitlines():
        if raw.startswith("```"):
            blocks.flush()
            blocks.out.append("</code></pre>" if in_code else "<pre><code>")
            in_code = not in_code
        elif in_code:
            blocks.out.append(escape(raw, quote=True) + "\n")
        else:
            blocks.line(escape(raw, quote=True))
    blocks.flush()
    if in_code:
        blocks.out.append("</code></pre>")
    return "".join(blocks.out)
