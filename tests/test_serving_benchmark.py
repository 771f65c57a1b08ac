"""The serving benchmark runs end to end on a tiny library (timings unchecked): it starts the real stack,
reports every figure, and leaves none of its processes behind."""

from __future__ import annotations

import psutil
import pytest

from benchmarks import serving
from benchmarks.library import ensure_library


@pytest.mark.django_db(transaction=True)
def test_serving_benchmark_reports_every_figure_and_stops_what_it_started(tmp_path):
    library = ensure_library(tmp_path / "library", count=20, folders=2)
    before = {p.pid for p in psutil.Process().children(recursive=True)}

    results = serving.run(seconds=1, sockets=6, levels=(1, 4), library=library)

    levels = {r["clients"]: r for r in results if r["case"].startswith("http_")}
    assert set(levels) == {1, 4}
    for level in levels.values():
        assert level["requests"] > 0 and level["errors"] == 0, level
        assert {"requests_per_s", "ms_p50", "ms_p95", "gallery_ms_p50", "dashboard_ms_p95"} <= level.keys()
    assert levels[4]["target_ms_p95_max"] == 400
    summary = next(r for r in results if r["case"] == "summary")
    assert summary["library_files"] == 20 and summary["http_processes"] >= 1
    assert {"throughput_4_vs_1", "target_throughput_4_vs_1_min", "fanout_ms_p95", "target_fanout_ms_p95_max"} <= (
        summary.keys()
    )
    assert summary["fanout_handshake_errors"] == 0 and summary["fanout_job_status"] == "succeeded"
    assert summary["fanout_samples"] > 0
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= before  # the stack, Redis, the stand-in
