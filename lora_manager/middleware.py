from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect

# Only our own static files run or style the page; images may also be data:/blob: (previews).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self' ws: wss:",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "manifest-src 'self'",
    ]
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        return response


class HtmxLoginRedirectMiddleware:
    """An htmx request whose session expired would follow the login redirect and swap the login page
    into a fragment (a polling dashboard, a gallery search): send the whole window to the login page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        location = response.get("Location", "")
        if (
            request.headers.get("HX-Request") == "true"
            and response.status_code == 302
            and location.startswith(resolve_url(settings.LOGIN_URL))
        ):
            login = location.split("?", 1)[0]
            current = request.headers.get("HX-Current-URL", "")
            page = urlsplit(current)
            back = (page.path + (f"?{page.query}" if page.query else "")) if current else request.get_full_path()
            return HttpResponseClientRedirect(f"{login}?{urlencode({REDIRECT_FIELD_NAME: back})}")
        return response
