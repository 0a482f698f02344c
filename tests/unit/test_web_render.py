"""The web UI's HTML helpers: everything a user wrote is shown as text, never run."""

from __future__ import annotations

import pytest

from hyperai_provider.plugins.render import esc, markdown


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("# Title", "<h2>Title</h2>", id="heading"),
        pytest.param("a **b** *c* `d`", "<p>a <strong>b</strong> <em>c</em> <code>d</code></p>", id="inline"),
        pytest.param("- one\n- two", "<ul><li>one</li><li>two</li></ul>", id="list"),
        pytest.param(
            "```\n<b>x</b>\n```", "<pre><code>&lt;b&gt;x&lt;/b&gt;\n</code></pre>", id="code-escaped"
        ),
        pytest.param(
            "[doc](https://x.example/a)",
            '<p><a href="https://x.example/a" rel="noopener noreferrer">doc</a></p>',
            id="http-link",
        ),
        pytest.param(
            "[doc](sub/notes.md)",
            '<p><a href="sub/notes.md" rel="noopener noreferrer">doc</a></p>',
            id="relative-link",
        ),
    ],
)
def test_markdown_subset(source: str, expected: str) -> None:
    assert markdown(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("<script>alert(1)</script>", id="script-tag"),
        pytest.param("[x](javascript:alert(1))", id="javascript-link"),
        pytest.param("[x](data:text/html,<script>alert(1)</script>)", id="data-link"),
        pytest.param('<img src=x onerror="alert(1)">', id="event-handler"),
        pytest.param('[x](https://a.example/"onmouseover="alert(1))', id="quote-breakout"),
    ],
)
def test_markdown_never_emits_active_content(source: str) -> None:
    html = markdown(source)
    assert "<script" not in html and "<img" not in html
    assert "javascript:" not in html.split("href=")[-1] if "href=" in html else True
    assert 'href="data:' not in html and '"onmouseover="' not in html


def test_esc_quotes_attributes() -> None:
    assert esc('"><b>') == "&quot;&gt;&lt;b&gt;"
