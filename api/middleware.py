"""Errors raised before an API view runs (no such URL, method not allowed) are JSON too, not HTML or text."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from django.http import HttpRequest, HttpResponse, JsonResponse

API_PREFIX = "/api/v1/"


class JsonErrorsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith(API_PREFIX) or response.status_code < 400:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        status = response.status_code
        if status == 404:
            detail = f"No API endpoint at {request.path}: see /api/v1/docs for the list."
        elif status == 405:
            detail = f"{request.method} is not allowed here; allowed: {response.get('Allow', 'see /api/v1/docs')}."
        else:
            detail = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        replacement = JsonResponse({"detail": detail}, status=status)
        if "Allow" in response:
            replacement["Allow"] = response["Allow"]
        return replacement
