"""Project-level pages: the home dashboard and the health endpoints."""

from __future__ import annotations

import time

import redis
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from lora_manager.runs import workers


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")


def check_database() -> dict:
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"ok": False, "error": f"database unreachable: {exc}"}
    return {"ok": True, "engine": connection.vendor, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def redis_connection() -> redis.Redis:
    """A connection with short timeouts, so a health check answers even when Redis hangs."""
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)


def check_redis() -> dict:
    started = time.perf_counter()
    try:
        redis_connection().ping()
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": f"redis unreachable at {settings.REDIS_URL}: {exc}"}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def check_workers() -> dict:
    """Workers whose heartbeats are fresh (a SIGKILLed worker stays listed by RQ for minutes: not alive)."""
    try:
        alive = workers.live_workers(redis_connection())
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "count": 0, "error": f"cannot list workers: {exc}"}
    if not alive:
        return {
            "ok": False,
            "count": 0,
            "error": "no RQ worker is alive (none sends heartbeats): start one with 'manage.py run_worker'",
        }
    return {"ok": True, "count": len(alive), "names": sorted(w.name for w in alive)}


@login_not_required
@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": check_database(), "redis": check_redis()}
    checks["workers"] = check_workers() if checks["redis"]["ok"] else {"ok": False, "count": 0, "error": "redis down"}
    failing = [name for name, result in checks.items() if not result["ok"]]
    body = {"ok": not failing, "failing": failing, **checks}
    return JsonResponse(body, status=503 if failing else 200)
