"""Who is calling: a personal token (``Authorization: Bearer lm_...``) or the browser session (CSRF checked).

Permissions are the UI's (lora_manager/roles.py): every endpoint calls ``require`` with the same Django
permission the matching page checks, so a viewer's token can read but not change, as in the browser.
"""

from __future__ import annotations

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
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
        # Failed tokens count like failed logins (django-axes): from one address, the limit locks out
        # every token for the lockout time, so tokens cannot be guessed at request speed.
        credentials = {"username": f"api-token:{token.strip()[:10]}"}
        if AxesProxyHandler.is_locked(request, credentials):
            minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
            raise HttpError(
                429,
                f"Too many failed logins or API token attempts from this address: refused for {minutes} minutes "
                "(an admin can unlock it sooner).",
            )
        try:
            user = tokens.authenticate(token.strip())
        except tokens.TokenError as exc:
            user_login_failed.send(sender=type(self), credentials=credentials, request=request)
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
