"""The text gate (adapters.sanitize) for query strings: a NUL in a URL has no legitimate use, and
PostgreSQL refuses it in any query (a search for it used to be a 500)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from adapters.sanitize import storable_problem

API_PREFIX = "/api/"


class UnstorableQueryMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        for key, values in request.GET.lists():
            for text in (key, *values):
                problem = storable_problem(text)
                if problem:
                    message = f"The address's query parameter {key[:40]!r} {problem}: remove it and try again."
                    if request.path.startswith(API_PREFIX):
                        return JsonResponse({"detail": message}, status=400)
                    return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
