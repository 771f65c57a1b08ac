"""The generation benchmark runs end to end on a few jobs and reports every figure (timings unchecked)."""

from __future__ import annotations

import pytest

from benchmarks import generation as bench
from generation.models import GenerationJob

pytestmark = pytest.mark.django_db(transaction=True)


def test_generation_benchmark_reports_its_figures(redis_conn, tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    result = bench.run(jobs=2, progress_runs=1, drain=5, progress_steps=12)
    assert result["jobs"] == 2 and result["drain_jobs"] == 5
    assert result["drain_succeeded"] == 5 and result["drain_lost_or_failed"] == 0
    assert result["drain_txt2img_requests"] == 5 and result["drain_left_in_queue"] == 0
    assert result["progress_samples"] >= 1 and result["target_progress_latency_ms_p95"] == 100
    for key in ("submit_to_sdnext_ms_p95", "sdnext_return_to_succeeded_ms_p95", "progress_latency_ms_p95"):
        assert result[key] >= 0
    assert not GenerationJob.objects.exists()  # it cleans up after itself
    assert tmp_path / "media" == settings.MEDIA_ROOT
