"""Who is calling: a personal token (``Authorization: Bearer lm_...``) or the browser session (CSRF checked).

Permissions are the UI's (lora_manager/roles.py): every endpoint calls ``require`` with the same Django
permission the matching page checks, so a viewer's token can read but not change, as in the browser.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja.errors import HttpError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.security.session import SessionAuth

from api import tokens
from lora_manager.roles import role_of


class TokenAuth(HttpBearer):
    def __call__(self, request: HttpRequest):
        header = request.headers.get("Authorization", "")
        if header and not header.lower().startswith("bearer "):
            raise HttpError(401, "Use 'Authorization: Bearer <token>' (other schemes are not supported).")
        return super().__call__(request)

    def authenticate(self, request: HttpRequest, token: str):
        try:
            user = tokens.authenticate(token.strip())
        except tokens.TokenError as exc:
            raise HttpError(401, str(exc)) from exc
        request.user = user
        request.csrf_processing_done = True  # a token is not a cookie: no cross-site request can carry it
        return user


class BrowserSession(SessionAuth):
    """The logged-in browser session; unsafe methods need the CSRF token (X-CSRFToken header)."""

    def __call__(self, request: HttpRequest):
        if request.headers.get("Authorization") or not request.user.is_authenticated:
            return None  # a request with a token is judged by its token only; no session: 401
        try:
            return APIKeyCookie.__call__(self, request)
        except HttpError as exc:
            raise HttpError(
                403, "CSRF check failed: session requests that change things need the X-CSRFToken header."
            ) from exc


AUTH = [TokenAuth(), BrowserSession(csrf=True)]


def require(request: HttpRequest, permission: str, action: str) -> None:
    """403 with the role and the permission it lacks, as the UI would refuse it."""
    user = request.user
    if not user.has_perm(permission):
        role = role_of(user) or "no role"
        raise HttpError(403, f"Your role ({role}) cannot {action}: it needs the '{permission}' permission.")


def require_staff(request: HttpRequest, action: str) -> None:
    if not request.user.is_staff:
        raise HttpError(403, f"Only admins (staff) can {action}.")
