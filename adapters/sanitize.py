"""Make third-party HTML (Civitai descriptions, sidecar notes) safe to show, or flatten it to text.

Descriptions are stored raw and cleaned at display time, so tightening this allow-list later needs no rescan.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3
from django import forms

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


# --- The one gate for untrusted text ------------------------------------------------------------------
# Every string that arrives from a file (safetensors headers, sidecars, preview names), a form, the API
# or an archive manifest passes ``storable_problem`` / ``storable`` before it is stored: a lone surrogate
# cannot be encoded as UTF-8 (so it breaks every page that later renders it, and SQLite/PostgreSQL
# writes), and NUL is refused by PostgreSQL text columns. People get the problem back as an error;
# files get the characters replaced and a per-file issue, so one bad sidecar never stops a scan.

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT = "\ufffd"


class UnstorableText(ValueError):
    """A string holds characters that cannot be stored or shown (lone surrogates, NUL)."""


def storable_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored and shown, or None when it can."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    char = found.group()
    what = "a NUL character" if char == "\x00" else f"a lone surrogate (U+{ord(char):04X}, not valid Unicode text)"
    return f"contains {what} at position {found.start() + 1}"


def check_storable(value: str, label: str = "text") -> str:
    """``value`` unchanged, or UnstorableText naming the field (for forms and the API: people fix it)."""
    problem = storable_problem(value)
    if problem:
        raise UnstorableText(f"{label} {problem}")
    return value


def storable(value: str) -> str:
    """``value`` with unstorable characters replaced by U+FFFD (for files: the scan goes on)."""
    return _UNSTORABLE.sub(REPLACEMENT, value) if _UNSTORABLE.search(value) else value


def storable_data(data, found: list[str] | None = None, where: str = ""):
    """A JSON-like value (dicts, lists, strings; keys too) made storable; each replaced place is
    appended to ``found`` (a dotted path) so the caller can report it."""
    if isinstance(data, str):
        if found is not None and _UNSTORABLE.search(data):
            found.append(where or "value")
        return storable(data)
    if isinstance(data, dict):
        return {
            storable_data(key, found, f"{where}.{storable(str(key))}".lstrip(".")): storable_data(
                value, found, f"{where}.{storable(str(key))}".lstrip(".")
            )
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        return [storable_data(item, found, f"{where}[{i}]") for i, item in enumerate(data)]
    return data


class StorableTextForm:
    """Form mixin: every text value a form cleaned (strings, and the strings inside lists and JSON
    values) passes the gate; a bad one becomes that field's error instead of a stored value that breaks
    pages later. Put it first in the bases (the admin's forms use it too)."""

    def clean(self):
        data = super().clean()
        for name, value in list((data or {}).items()):
            found: list[str] = []
            storable_data(value, found)
            if found:
                first = next(text for text in _strings(value) if storable_problem(text))
                self.add_error(name if name in self.fields else None, f"This text {storable_problem(first)}.")
        return data


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


class _ShownJSONField(forms.JSONField):
    """Redisplays a refused value with its bad characters as U+FFFD (as typed, it could not be sent)."""

    def prepare_value(self, value):
        return storable(super().prepare_value(value))


class StorableModelForm(StorableTextForm, forms.ModelForm):
    """The admin's base form (``ModelAdmin.form``): JSON fields typed there pass the gate too."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if type(field) is forms.JSONField:
                field.__class__ = _ShownJSONField
