"""Make third-party HTML (Civitai descriptions, sidecar notes) safe to show, or flatten it to text.

Descriptions are stored raw and cleaned at display time, so tightening this allow-list later needs no rescan.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3

_INLINE = {"b", "i", "strong", "em", "a", "code"}
_TAGS = _INLINE | {"p", "br", "ul", "ol", "li", "pre", "h1", "h2", "h3", "h4", "blockquote"}
_BLOCKS = _TAGS - _INLINE | {"div", "tr", "table", "hr", "h5", "h6", "section"}
_HIDDEN = {"script", "style", "template", "noscript"}


def _only_web_links(tag: str, attribute: str, value: str) -> str | None:
    """Keep only absolute http(s) hrefs: relative links would point into this app, not at the author's site."""
    if attribute != "href" or value.strip().lower().startswith(("http://", "https://")):
        return value
    return None


_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags={"script", "style"},
    attributes={"a": {"href"}},
    attribute_filter=_only_web_links,
    url_schemes={"http", "https"},
    link_rel="noopener noreferrer nofollow",
)


def clean_html(html: str) -> str:
    """HTML safe to render: a small allow-list of formatting tags, no attributes but http(s) link targets."""
    return _CLEANER.clean(html or "")


class _TextExtractor(HTMLParser):
    """Collects visible text, turning block boundaries into line breaks so words do not run together."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


_SPACES = re.compile(r"[^\S\n]+")


def to_text(html: str) -> str:
    """Plain text of an HTML fragment (for search and embeddings): tags dropped, entities decoded,
    one line per block, whitespace collapsed."""
    parser = _TextExtractor()
    parser.feed(html or "")
    parser.close()
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(parser.parts).split("\n"))
    return "\n".join(line for line in lines if line)
