"""Receiving an archive upload: streamed to a file on disk in chunks, refused as soon as it passes the limit.

Django's own handlers would buffer small files in memory and spool big ones to the temp folder; an
archive may be many gigabytes, so this handler writes straight into ``ARCHIVE_DIR/uploads`` (the same
filesystem the import later reads from) and stops reading at ``ARCHIVE_MAX_UPLOAD_BYTES``.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

UPLOAD_PATH = "/archive/upload/"
FORM_OVERHEAD = 64 * 1024  # multipart boundaries, the CSRF token and the conflict option
TOO_LARGE = "archive_upload_too_large"


def limit_upload_size(app):
    """ASGI wrapper: an upload over the limit is cut off before Django spools it to disk.

    Django's ASGI handler reads a whole request body into a temporary file before any view runs; for
    the archive upload that would fill the disk with whatever a client sends. A declared length over the
    limit is not read at all; an undeclared (chunked) body is cut off as soon as it passes the limit.
    The view sees ``request.scope[TOO_LARGE]`` and answers 413 with the limit.
    """

    async def wrapped(scope, receive, send):
        if scope["type"] != "http" or scope["path"] != UPLOAD_PATH or scope["method"] != "POST":
            return await app(scope, receive, send)
        limit = settings.ARCHIVE_MAX_UPLOAD_BYTES + FORM_OVERHEAD
        declared = dict(scope.get("headers", [])).get(b"content-length")
        seen = 0
        scope = {**scope, TOO_LARGE: bool(declared and declared.isdigit() and int(declared) > limit)}

        async def limited_receive():
            nonlocal seen
            if scope[TOO_LARGE]:
                return {"type": "http.request", "body": b"", "more_body": False}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    scope[TOO_LARGE] = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        return await app(scope, limited_receive, send)

    return wrapped


def upload_dir() -> Path:
    folder = Path(settings.ARCHIVE_DIR) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class ArchiveUploadHandler(FileUploadHandler):
    """Writes the upload to ``uploads/<random>.zip``; over the limit it deletes the part and stops."""

    def __init__(self, request=None):
        super().__init__(request)
        self.path: Path | None = None
        self.fh = None
        self.written = 0
        self.too_large = False
        self.kept = False  # set once a run owns the file; anything else is removed when the request ends

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        if self.field_name != "archive" or self.path is not None:
            raise StopUpload(connection_reset=True)
        self.path = upload_dir() / f"{uuid.uuid4().hex}.zip"
        self.fh = open(self.path, "xb")  # noqa: SIM115 - closed in file_complete / on abort

    def receive_data_chunk(self, raw_data, start):
        self.written += len(raw_data)
        if self.written > settings.ARCHIVE_MAX_UPLOAD_BYTES:
            self.too_large = True
            self.abort()
            raise StopUpload(connection_reset=True)
        self.fh.write(raw_data)
        return None

    def file_complete(self, file_size):
        self.fh.close()
        return UploadedFile(file=open(self.path, "rb"), name=self.file_name, size=file_size)

    def abort(self) -> None:
        if self.fh is not None:
            self.fh.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def upload_interrupted(self):
        self.abort()


ORPHAN_GRACE_SECONDS = 3600  # an upload no run refers to: being written, or left by a refused request


def remove_abandoned(now: float | None = None) -> list[Path]:
    """Delete uploads nobody will import: files no run refers to (after an hour) and checked uploads whose
    plan was never confirmed (after ARCHIVE_UPLOAD_KEEP_HOURS). Files of queued or running runs stay."""
    from archive.models import ArchiveRun

    now = time.time() if now is None else now
    folder = upload_dir()
    runs = ArchiveRun.objects.filter(path__startswith=str(folder))
    busy = {Path(p) for p in runs.filter(status__in=["queued", "running"]).values_list("path", flat=True)}
    known = {Path(p) for p in runs.values_list("path", flat=True)}
    removed = []
    for path in folder.iterdir():
        if path in busy or not path.is_file():
            continue
        keep = settings.ARCHIVE_UPLOAD_KEEP_HOURS * 3600 if path in known else ORPHAN_GRACE_SECONDS
        try:
            if now - path.stat().st_mtime > keep:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue
    return removed
