"""Redis outages: what a request that needs Redis answers while it is down (503, never a raw 500).

Redis carries the job queues and the channel layer. While it is down, every page or API call that needs
it answers 503 with a clear message: JSON under /api/, a small fragment for htmx (shown in the page's
alert slot), a readable page otherwise. Nothing is lost: ``jobs.enqueue`` checks Redis before the row
that a job is about is committed, so the row rolls back with the request. redis-py reconnects by itself
on the next call, so the web process recovers as soon as Redis is back, without a restart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string

log = logging.getLogger(__name__)

REDIS_ERRORS: tuple[type[BaseException], ...] = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
RETRY_AFTER_SECONDS = 30
MESSAGE = (
    "The job queue (Redis) is not reachable right now, so background work cannot be started or watched. "
    "Nothing was queued or saved. It usually comes back by itself: try again in a minute "
    "(the Status page says what is down)."
)


class RedisUnavailable(Exception):
    """Redis did not answer; raised before anything was committed."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(MESSAGE)
        self.detail = detail


def is_redis_outage(exc: BaseException) -> bool:
    return isinstance(exc, (RedisUnavailable, *REDIS_ERRORS))


def require_redis(connection: redis.Redis) -> None:
    """Raise RedisUnavailable unless Redis answers a PING now."""
    try:
        connection.ping()
    except REDIS_ERRORS as exc:
        raise RedisUnavailable(str(exc)) from exc


def outage_response(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"detail": MESSAGE, "service": "redis"}, status=503)
    elif request.headers.get("HX-Request") == "true":
        response = HttpResponse(render_to_string("lora_manager/_service_alert.html", {"message": MESSAGE}), status=503)
        response["HX-Retarget"] = "#service-alert"
        response["HX-Reswap"] = "innerHTML"
    else:
        html = render_to_string("lora_manager/service_unavailable.html", {"message": MESSAGE}, request=request)
        response = HttpResponse(html, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class RedisOutageMiddleware:
    """Turns a Redis outage raised by any view into a 503 in the form the caller understands."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_redis_outage(exception):
            return None
        log.warning("Redis is unreachable (%s %s): %s", request.method, request.path, exception)
        return outage_response(request)
