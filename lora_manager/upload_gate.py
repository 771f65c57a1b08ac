"""ASGI gate for uploads: the user's permission (and the declared size) is checked before one byte of
the body is read.

Django's ASGI handler reads a whole request body into a temporary file before any view or middleware
runs, so a view that refuses a viewer's upload has already let them fill a disk. This wrapper sits in
front of Django for the upload URLs only: it reads the session cookie, asks the same permission the view
asks, and answers 403 (or 413 for a declared length over the limit) without reading the body.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import import_module
from types import SimpleNamespace

from channels.db import database_sync_to_async
from django.conf import settings
from django.http.cookie import parse_cookie

FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the other fields of the form

# path -> (the permission the view checks, the largest body it accepts)
UPLOADS: list[tuple[re.Pattern, str, Callable[[], int]]] = [
    (re.compile(r"^/archive/upload/$"), "archive.import_library", lambda: settings.ARCHIVE_MAX_UPLOAD_BYTES),
    (
        re.compile(r"^/library/\d+/section/image/edit/$"),
        "adapters.change_adapter",
        lambda: settings.MAX_PREVIEW_UPLOAD_BYTES,
    ),
]


def _rule(scope) -> tuple[str, int] | None:
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    for pattern, permission, limit in UPLOADS:
        if pattern.match(scope["path"]):
            return permission, limit()
    return None


@database_sync_to_async
def user_may(cookie_header: str, permission: str) -> bool:
    """The session's user has ``permission`` (the auth backends decide, as for the view)."""
    from django.contrib.auth import get_user

    key = parse_cookie(cookie_header).get(settings.SESSION_COOKIE_NAME)
    if not key:
        return False
    session = import_module(settings.SESSION_ENGINE).SessionStore(key)
    user = get_user(SimpleNamespace(session=session))
    return bool(user.is_authenticated and user.is_active and user.has_perm(permission))


async def _refuse(send, status: int, message: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": message.encode()})


def upload_gate(app):
    async def gated(scope, receive, send):
        rule = _rule(scope)
        if rule is None:
            return await app(scope, receive, send)
        permission, limit = rule
        headers = dict(scope.get("headers", []))
        if not await user_may(headers.get(b"cookie", b"").decode("latin-1"), permission):
            return await _refuse(
                send, 403, f"You do not have permission to upload here (it needs the '{permission}' permission)."
            )
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit + FORM_OVERHEAD:
            return await _refuse(send, 413, f"The upload is larger than the limit of {limit // 2**20} MB.")
        return await app(scope, receive, send)

    return gated
