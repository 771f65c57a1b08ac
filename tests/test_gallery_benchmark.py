"""The gallery benchmark runs end to end on a small catalog, reports every figure, and leaves no rows behind."""

from __future__ import annotations

import pytest

from adapters.models import Adapter, AdapterFile, LibraryRoot, Tag
from benchmarks import gallery as gallery_bench
from benchmarks.__main__ import REGISTRY


@pytest.mark.django_db(transaction=True)
def test_gallery_benchmark_reports_each_case_and_cleans_up(settings, tmp_path):
    settings.THUMBNAIL_DIR = tmp_path / "thumbs"
    Tag.objects.create(name="kept")
    results = gallery_bench.run(count=300, rounds=2, separate_process=False)
    cases, overall = results[:-1], results[-1]
    assert len(cases) == len(gallery_bench.cases({"first_id": 1, "last_id": 300, "roots": [1, 2, 3]}))
    for case in cases:
        assert case["first_p95_ms"] > 0 and case["repeat_p95_ms"] > 0 and case["matches"] >= 0
    landing = next(case for case in cases if case["case"] == "landing page (full)")
    assert landing["matches"] == 300
    assert (
        overall["db_engine"] in ("sqlite", "postgresql")
        and overall["seeded_adapters"] == 300
        and overall["catalog_adapters"] == 300
    )
    assert {"first_p95_ms", "repeat_p95_ms", "peak_rss_mb", "facet_columns_load_ms", "after_write_p50_ms"} <= set(
        overall
    )
    assert not Adapter.objects.exists() and not AdapterFile.objects.exists() and not LibraryRoot.objects.exists()
    assert list(Tag.objects.values_list("name", flat=True)) == ["kept"]
    assert REGISTRY["gallery"] == "benchmarks.gallery"
