"""Civitai lookups against the STAND-IN (tests/standins/civitai.py) answering after 50 ms: pacing, not speed.

1,000 adapters (half of them known to the stand-in, so a run mixes "found" with preview downloads and
"not on Civitai" with three hash lookups) are looked up in one run, as ``fetch_civitai`` would. Reported:
wall time next to the configured minimum interval x requests (the floor politeness imposes; the ratio says
how close the run stays to it), and the highest request rate observed, from the client's send times and
from the stand-in's arrival times, next to the configured rate (1 / interval), which it must never exceed.
``BENCH_CIVITAI_ADAPTERS`` and ``BENCH_CIVITAI_INTERVAL`` change the size and the interval.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import tempfile
import time
from pathlib import Path

from django.test import override_settings

from adapters import civitai_lookup, civitai_runs
from adapters.models import Adapter, CivitaiRun
from tests.standins.civitai import CivitaiStandIn, StandInLora

PREFIX = "civitai-bench-"
ADAPTERS = int(os.environ.get("BENCH_CIVITAI_ADAPTERS", "1000"))
INTERVAL = float(os.environ.get("BENCH_CIVITAI_INTERVAL", "0.06"))
DELAY = 0.05


def _max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most requests that started within any ``window`` seconds."""
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def _min_gap(times: list[float]) -> float | None:
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return min(gaps) if gaps else None


def run(adapters: int = ADAPTERS, interval: float = INTERVAL, delay: float = DELAY) -> dict:
    Adapter.objects.filter(name__startswith=PREFIX).delete()
    standin = CivitaiStandIn(delay=delay).start()
    try:
        ids = []
        for i in range(adapters):
            sha = hashlib.sha256(f"{PREFIX}{i}".encode()).hexdigest()
            tensor = hashlib.sha256(f"{PREFIX}tensors {i}".encode()).hexdigest()
            if i % 2 == 0:
                standin.add_lora(StandInLora(sha, tensor, name=f"Bench {i}", image_nsfw=[1], newer_version=i % 10 == 0))
            ids.append(Adapter.objects.create(name=f"{PREFIX}{i}", sha256=sha, tensor_sha256=tensor).pk)
        with (
            tempfile.TemporaryDirectory() as thumbs,
            override_settings(CIVITAI_URL=standin.url, CIVITAI_MIN_INTERVAL=interval, THUMBNAIL_DIR=Path(thumbs)),
        ):
            client = civitai_lookup.make_client()
            civitai_run = CivitaiRun.objects.create(mode=CivitaiRun.Mode.SELECTED, adapter_ids=ids)
            started = time.perf_counter()
            civitai_run = civitai_runs.execute(civitai_run, client=client)
            wall = time.perf_counter() - started
        civitai_run.delete()  # the bench's own run: not part of the library's history
        sent = sorted(client.sent_at)
        arrived = sorted(r["at"] for r in standin.requests)
    finally:
        standin.stop()
        Adapter.objects.filter(name__startswith=PREFIX).delete()
    floor = interval * len(sent)
    sent_gap, arrived_gap = _min_gap(sent), _min_gap(arrived)
    return {
        "adapters": adapters,
        "standin_delay_s": delay,
        "configured_min_interval_s": interval,
        "requests": len(sent),
        "found": civitai_run.found,
        "not_found": civitai_run.not_found,
        "updates": civitai_run.updates,
        "failed": civitai_run.failed,
        "wall_s": round(wall, 3),
        "floor_interval_x_requests_s": round(floor, 3),
        "ratio_wall_to_floor": round(wall / floor, 3) if floor else None,
        "configured_rate_per_s": round(1 / interval, 3) if interval else None,
        "max_rate_per_s_client": round(1 / sent_gap, 3) if sent_gap else None,
        "max_requests_in_1s_client": _max_in_window(sent),
        "max_requests_in_1s_standin": _max_in_window(arrived),
        "min_gap_client_s": round(sent_gap, 4) if sent_gap is not None else None,
        "min_gap_standin_s": round(arrived_gap, 4) if arrived_gap is not None else None,
        "rate_never_exceeded": sent_gap is None or sent_gap >= interval * 0.999,
    }
