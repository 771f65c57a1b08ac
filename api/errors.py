"""Every API error is JSON ``{"detail": "<what is wrong>", ...}`` with a 4xx status, never an HTML page or a 500."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from lora_manager import outages


def _where(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "payload", "filters")]
    return ".".join(parts) or "request"


def install(api: NinjaAPI) -> None:
    @api.exception_handler(ValidationError)
    def validation(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        problems = [
            {"field": _where(e.get("loc", ())), "message": str(e.get("msg", "invalid")), "type": e.get("type", "")}
            for e in exc.errors
        ]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
        return api.create_response(request, {"detail": f"Invalid request: {summary}", "errors": problems}, status=422)

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        message = "Authentication required: send 'Authorization: Bearer <token>' or log in (session + CSRF token)."
        return api.create_response(request, {"detail": message}, status=401)

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return api.create_response(request, {"detail": str(exc) or "Not found."}, status=404)

    @api.exception_handler(PermissionDenied)
    def denied(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
        return api.create_response(request, {"detail": str(exc) or "Permission denied."}, status=403)

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        return api.create_response(request, {"detail": str(exc)}, status=exc.status_code)

    def redis_down(request: HttpRequest, exc: Exception) -> HttpResponse:
        return outages.outage_response(request)  # 503 JSON, also when DEBUG would show a traceback

    for kind in (outages.RedisUnavailable, *outages.REDIS_ERRORS):
        api.add_exception_handler(kind, redis_down)
