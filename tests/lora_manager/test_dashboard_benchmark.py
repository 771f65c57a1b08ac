"""The dashboard benchmark runs on a small catalog, reports its figures and leaves no rows behind."""

from __future__ import annotations

import pytest

from adapters.models import Adapter
from benchmarks import dashboard as dashboard_bench
from benchmarks.__main__ import REGISTRY


@pytest.mark.django_db(transaction=True)
def test_dashboard_benchmark_reports_and_cleans_up():
    figures, unused = dashboard_bench.run(count=200, rounds=2, also_sqlite=False)
    assert figures["adapters"] == 200 and figures["figures_p95_ms"] > 0
    assert figures["figures_after_write_p95_ms"] > 0  # the first request right after a write, measured
    assert figures["target_figures_p95_ms"] == 50 and figures["target_figures_after_write_p95_ms"] == 200
    assert unused["matches"] > 0 and unused["unused_filter_first_p95_ms"] > 0
    assert not Adapter.objects.exists()
    assert REGISTRY["dashboard"] == "benchmarks.dashboard"
