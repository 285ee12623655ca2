"""README Markdown to HTML that is safe to embed: CommonMark with raw HTML off, then an allow-list
sanitizer (nh3) as a second wall, so neither a script nor an event handler nor a javascript: link survives."""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

_PARSER = MarkdownIt("commonmark", {"html": False}).enable("table").enable("strikethrough")
_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li",
    "ol", "p", "pre", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
# No images: the page's Content-Security-Policy would block other sites' anyway.
_ATTRIBUTES = {"a": {"href", "title"}, "th": {"align"}, "td": {"align"}}


def render(source: str) -> Markup:
    """The README as sanitised HTML."""
    html = _PARSER.render(source)
    return Markup(  # noqa: S704 (sanitised just above by an allow-list)
        nh3.clean(
            html,
            tags=_TAGS,
            attributes=_ATTRIBUTES,
            url_schemes={"http", "https", "mailto"},
            link_rel="noopener noreferrer nofollow",
        )
    )
