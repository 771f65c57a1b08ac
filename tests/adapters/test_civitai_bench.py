"""The civitai benchmark runs end to end on a tiny catalog and reports every figure (timings unchecked)."""

import pytest

from adapters.models import Adapter
from benchmarks import civitai as civitai_bench


@pytest.mark.django_db
def test_civitai_benchmark_reports_pacing_figures(tmp_path, settings):
    result = civitai_bench.run(adapters=6, interval=0.02, delay=0.0)
    assert (result["adapters"], result["found"], result["not_found"], result["failed"]) == (6, 3, 3, 0)
    assert result["requests"] == 3 * 3 + 3 * 3  # found: hash, model, preview; not found: SHA256, AutoV2, AutoV3
    assert result["rate_never_exceeded"] is True and result["min_gap_client_s"] >= 0.0199
    for key in ("wall_s", "floor_interval_x_requests_s", "ratio_wall_to_floor", "max_requests_in_1s_standin"):
        assert result[key] > 0
    assert not Adapter.objects.filter(name__startswith=civitai_bench.PREFIX).exists()
