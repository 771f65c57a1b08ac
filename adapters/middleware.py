"""The text gate (adapters.sanitize) for query strings: a NUL in a URL has no legitimate use, and
PostgreSQL refuses it in any query (a search for it used to be a 500). Browsers cannot send lone
surrogates (Django decodes bad UTF-8 as U+FFFD), so NUL is what is left: it is replaced with U+FFFD,
and the page answers as for any other text that matches nothing."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, QueryDict

from adapters.sanitize import storable, storable_problem


class UnstorableQueryMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if any(storable_problem(text) for key, values in request.GET.lists() for text in (key, *values)):
            cleaned = QueryDict(mutable=True)
            for key, values in request.GET.lists():
                cleaned.setlist(storable(key), [storable(value) for value in values])
            cleaned._mutable = False
            request.GET = cleaned
        return self.get_response(request)
