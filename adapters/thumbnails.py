"""Adapter previews as cached thumbnails, made lazily (first view) or in the background, never in scans.

Decoding a preview costs ~10 ms, a hundred times more than reading a header, so a scan only notes
where the preview is; thumbnails are made when a page first asks for one, or by tasks.thumbnails_job,
which the scan job queues once the scan is done. Embedded previews are the exception: their bytes exist
only while the header is read.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from adapters.models import Adapter
from adapters.previews import PreviewError, make_thumbnails, thumbnails_from_file

SIZES = {"card": 384, "large": 1024}
HELD_SOURCES = ("embedded", "upload", "civitai")  # previews whose bytes we held once: no file to re-read


def thumbnail_path(key: str, size: str) -> Path:
    return Path(settings.THUMBNAIL_DIR) / f"{key[:2]}/{key}-{SIZES[size]}.webp"


def _record_failure(adapter: Adapter, message: str) -> None:
    """Keep why the preview failed; a preview FILE that cannot be decoded stops being the preview (no
    broken image on every page). Embedded and uploaded ones keep their source: their bytes are gone."""
    issue = f"preview {Path(adapter.preview_source).name}: {message}"
    if issue not in adapter.issues:
        adapter.issues = [*adapter.issues, issue]
    adapter.preview_key = ""
    changes = {"issues": adapter.issues, "preview_key": ""}
    if adapter.preview_source not in ("", "embedded", "upload"):
        adapter.preview_source = changes["preview_source"] = ""
    Adapter.objects.filter(pk=adapter.pk).update(**changes)


def ensure_thumbnails(adapter: Adapter) -> str:
    """The adapter's thumbnail key, making the thumbnails if needed; "" when it has no usable preview."""
    if adapter.preview_key and thumbnail_path(adapter.preview_key, "card").is_file():
        return adapter.preview_key
    source = adapter.preview_source
    if not source or source in HELD_SOURCES:
        return adapter.preview_key if adapter.preview_key and source else ""
    try:
        thumbs = thumbnails_from_file(Path(source), Path(settings.THUMBNAIL_DIR))
    except PreviewError as exc:
        _record_failure(adapter, str(exc))
        return ""
    adapter.preview_key = thumbs.key
    Adapter.objects.filter(pk=adapter.pk).update(preview_key=thumbs.key)
    return thumbs.key


def store_preview_bytes(adapter: Adapter, data: bytes, source: str) -> str:
    """Thumbnails from bytes we hold (embedded in the header, or uploaded); raises PreviewError."""
    thumbs = make_thumbnails(data, Path(settings.THUMBNAIL_DIR))
    adapter.preview_key, adapter.preview_source = thumbs.key, source
    Adapter.objects.filter(pk=adapter.pk).update(preview_key=thumbs.key, preview_source=source)
    return thumbs.key


def store_embedded_preview(adapter: Adapter, data: bytes) -> None:
    try:
        store_preview_bytes(adapter, data, "embedded")
    except PreviewError as exc:
        adapter.preview_source = "embedded"
        _record_failure(adapter, str(exc))


def pending_thumbnails(adapter_ids: list[int] | None = None):
    """Adapters whose preview is a file not yet turned into thumbnails."""
    pending = Adapter.objects.filter(preview_key="").exclude(preview_source__in=["", *HELD_SOURCES])
    return pending if adapter_ids is None else pending.filter(pk__in=adapter_ids)


def make_missing_thumbnails(adapter_ids: list[int] | None = None) -> int:
    """Background pass after a scan (tasks.thumbnails_job), so the gallery's first view does not pay for
    decoding; never part of the scan itself. A preview viewed meanwhile is simply found made."""
    made = 0
    for adapter in pending_thumbnails(adapter_ids).only("pk", "preview_source", "preview_key", "issues"):
        if ensure_thumbnails(adapter):
            made += 1
    return made
