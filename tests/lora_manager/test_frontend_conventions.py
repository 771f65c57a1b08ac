"""The front-end conventions docs/architecture.md states, checked: one JavaScript style, one htmx:beforeSwap
handler (one list of swapped error statuses), no inline scripts or handlers (the CSP forbids them), and
one naming of HTMX fragment templates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((ROOT / "static" / "js").glob("*.js"))
TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_every_script_is_one_strict_arrow_iife_without_var(script):
    code = "\n".join(line for line in script.read_text().splitlines() if not line.lstrip().startswith("//"))
    assert code.lstrip().startswith('(() => {\n  "use strict";'), 'open with (() => { "use strict";'
    assert code.rstrip().endswith("})();") and code.count("\n})();") == 1, "one IIFE per file"
    assert not re.search(r"\bvar\s", code), "const/let, never var"
    assert "function (" not in code, "arrow functions for listeners and callbacks"


def test_one_before_swap_handler_decides_which_error_answers_are_swapped():
    handlers = [
        path.name
        for path in SCRIPTS
        for _ in re.finditer(r"addEventListener\(\s*\"htmx:beforeSwap\"", path.read_text())
    ]
    assert handlers == ["htmx-errors.js"]


def test_no_htmx_request_is_aborted_by_a_newer_one():
    """htmx logs every aborted request as a console error ("htmx:sendAbort"), so hx-sync "replace" or "abort"
    put an error in the console whenever someone types faster than the server answers (the composer's search
    failed a browser test this way). "queue last" keeps the newest request without aborting the one in flight."""
    aborting = [
        f"{path.relative_to(ROOT / 'templates')}: {sync}"
        for path in TEMPLATES
        for sync in re.findall(r'hx-sync="([^"]*)"', path.read_text())
        if re.search(r"\b(replace|abort)\b", sync)
    ]
    assert not aborting, aborting


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: str(path.relative_to(ROOT / "templates")))
def test_no_inline_script_or_event_handler_attribute(template):
    html = template.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "scripts come from static/js"
    assert not re.search(r"\s(on[a-z]+|hx-on[:\w-]*)\s*=", html), "no inline handlers"


def test_fragments_are_underscore_files_beside_their_pages():
    """An HTMX fragment (rendered alone by a view or a consumer) is ``<app>/_<name>.html`` beside the
    app's pages (``<app>/<name>.html``): no partials/ or fragments/ folders, no fragments inside pages."""
    folders = {path.parent.name for path in TEMPLATES}
    assert not folders & {"partials", "fragments", "includes"}
    inline = [
        str(path.relative_to(ROOT / "templates"))
        for path in TEMPLATES
        if re.search(r"{%\s*(partialdef|partial)\s", path.read_text())
    ]
    assert inline == [], "fragments are files of their own, rendered and included by name"
