"""On PostgreSQL, the gallery and dashboard benchmarks run again on SQLite (same size) and report both."""

from __future__ import annotations

import pytest
from django.db import connection

from benchmarks import dashboard as dashboard_bench


@pytest.mark.django_db(transaction=True)
def test_the_dashboard_benchmark_reports_each_engine(tmp_path, monkeypatch):
    monkeypatch.setenv("LORA_MANAGER_DATA_DIR", str(tmp_path))  # the SQLite run's own database file
    results = dashboard_bench.run(count=60, rounds=2)
    engines = [row["db_engine"] for row in results if row["case"] == "dashboard figures"]
    if connection.vendor == "postgresql":
        assert engines == ["postgresql", "sqlite"]
        assert all(row["adapters"] == 60 for row in results if row["case"] == "dashboard figures")
    else:
        assert engines == ["sqlite"]  # already SQLite: nothing to run again
