"""Dashboard figures and the gallery's "unused" filter on a large catalog (the gallery benchmark's seed).

Prints p50 / p95 milliseconds, each with its target (issue 17) beside it, of: every dashboard figure
(``figures.collect()``) while the catalog does not change ("warm", what the 15-second poll costs), and
on the first request right after a write (a favorite toggled, then the figures); and the gallery page
for ``unused=never&active=1`` (first ask, then repeated). On PostgreSQL it runs on SQLite as well
(``benchmarks/engines.py``). Environment: LORA_MANAGER_BENCH_ADAPTERS (default 100000),
LORA_MANAGER_BENCH_ROUNDS (default 10).
"""

from __future__ import annotations

import os
import time

from django.db import connection
from django.db.models import F
from django.http import QueryDict

from adapters import derived, facets, gallery
from adapters.models import Adapter
from benchmarks.engines import on_sqlite_too
from benchmarks.gallery import cleanup, seed
from lora_manager.dashboard import figures as dashboard

TARGET_WARM_P95_MS = 50
TARGET_AFTER_WRITE_P95_MS = 200


def _ms(func, rounds: int, before=None) -> list[float]:
    samples = []
    for _ in range(rounds):
        if before is not None:
            before()
        started = time.perf_counter()
        func()
        samples.append((time.perf_counter() - started) * 1000)
    return sorted(samples)


def _stats(samples: list[float], prefix: str) -> dict:
    return {
        f"{prefix}_p50_ms": round(samples[len(samples) // 2], 1),
        f"{prefix}_p95_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.95))], 1),
    }


def measure(count: int, rounds: int, seeded: dict) -> list[dict]:
    facets.clear_caches()
    dashboard.clear_cache()
    started = time.perf_counter()
    dashboard.collect()
    cold_ms = (time.perf_counter() - started) * 1000
    warm = _stats(_ms(dashboard.collect, rounds), "figures")

    def write() -> None:  # a favorite toggled: the catalog version changes
        token = derived.catalog_token()
        Adapter.objects.filter(pk=seeded["first_id"]).update(favorite=~F("favorite"))
        if derived.catalog_token() == token:
            raise RuntimeError("the catalog version did not change after a write")

    after_write = _stats(_ms(dashboard.collect, rounds, before=write), "figures_after_write")

    def unused_page(fresh: bool):
        def ask():
            if fresh:
                facets.clear_caches(keep_columns=True)
            return gallery.results(gallery.parse(QueryDict("unused=never&active=1")))

        return ask

    first = _stats(_ms(unused_page(True), rounds), "unused_filter_first")
    repeat = _stats(_ms(unused_page(False), rounds), "unused_filter_repeat")
    matches = gallery.total("unused=never&active=1")
    return [
        {
            "case": "dashboard figures",
            "adapters": count,
            "db_engine": connection.vendor,
            "figures_cold_ms": round(cold_ms, 1),
            **warm,
            "target_figures_p95_ms": TARGET_WARM_P95_MS,
            **after_write,
            "target_figures_after_write_p95_ms": TARGET_AFTER_WRITE_P95_MS,
        },
        {
            "case": "gallery unused=never&active=1",
            "db_engine": connection.vendor,
            "matches": matches,
            **first,
            **repeat,
        },
    ]


def run(count: int | None = None, rounds: int | None = None, also_sqlite: bool = True) -> list[dict]:
    """``also_sqlite``: when configured for PostgreSQL, run on SQLite as well (``make bench``; tests say no)."""
    count = count or int(os.environ.get("LORA_MANAGER_BENCH_ADAPTERS", "100000"))
    rounds = rounds or int(os.environ.get("LORA_MANAGER_BENCH_ROUNDS", "10"))
    seeded = seed(count)
    try:
        results = measure(count, rounds, seeded)
    finally:
        cleanup(seeded)
    return results + (on_sqlite_too("dashboard", count, rounds) if also_sqlite else [])
