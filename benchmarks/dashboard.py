"""Dashboard figures and the gallery's "unused" filter on a large catalog (the gallery benchmark's seed).

Prints p50 / p95 milliseconds of: every dashboard figure (``dashboard.collect()``), and the gallery
page for ``unused=never&active=1`` (first ask, then repeated). Environment: LORA_MANAGER_BENCH_ADAPTERS
(default 100000), LORA_MANAGER_BENCH_ROUNDS (default 10).
"""

from __future__ import annotations

import os
import time

from django.db import connection
from django.http import QueryDict

from adapters import facets, gallery
from benchmarks.gallery import cleanup, seed
from lora_manager.dashboard import figures as dashboard


def _ms(func, rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        func()
        samples.append((time.perf_counter() - started) * 1000)
    return sorted(samples)


def _stats(samples: list[float], prefix: str) -> dict:
    return {
        f"{prefix}_p50_ms": round(samples[len(samples) // 2], 1),
        f"{prefix}_p95_ms": round(samples[min(len(samples) - 1, int(len(samples) * 0.95))], 1),
    }


def run(count: int | None = None, rounds: int | None = None) -> list[dict]:
    count = count or int(os.environ.get("LORA_MANAGER_BENCH_ADAPTERS", "100000"))
    rounds = rounds or int(os.environ.get("LORA_MANAGER_BENCH_ROUNDS", "10"))
    seeded = seed(count)
    try:
        figures = _stats(_ms(dashboard.figures, rounds), "figures")

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
            {"case": "dashboard figures", "adapters": count, "db_engine": connection.vendor, **figures},
            {"case": "gallery unused=never&active=1", "matches": matches, **first, **repeat},
        ]
    finally:
        cleanup(seeded)
