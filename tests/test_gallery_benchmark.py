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
    results = gallery_bench.run(count=300, rounds=2, separate_process=False, also_sqlite=False)
    overall = results[-1]
    cases = [r for r in results[:-1] if not r["case"].startswith("composer")]
    composer = [r for r in results[:-1] if r["case"].startswith("composer")]
    assert len(cases) == len(gallery_bench.cases({"first_id": 1, "last_id": 300, "roots": [1, 2, 3]}))
    assert [r["case"] for r in composer] == [name for name, _ in gallery_bench.COMPOSER_SEARCHES]
    assert all(r["p95_ms"] > 0 for r in composer)
    assert next(r for r in composer if r["case"] == "composer search miss")["shown"] == 0
    assert next(r for r in composer if r["case"] == "composer search one word")["shown"] > 0
    for case in cases:
        assert case["first_p95_ms"] > 0 and case["repeat_p95_ms"] > 0 and case["matches"] >= 0
    landing = next(case for case in cases if case["case"] == "landing page (full)")
    assert landing["matches"] == 300 - overall["unreadable_adapters"]  # unreadable files are not adapters
    assert (
        overall["db_engine"] in ("sqlite", "postgresql")
        and overall["seeded_adapters"] == 300
        and overall["catalog_adapters"] == 300
    )
    assert {"first_p95_ms", "repeat_p95_ms", "peak_rss_mb", "facet_columns_load_ms", "after_write_p50_ms"} <= set(
        overall
    )
    assert overall["target_after_write_p50_ms"] == 60
    assert not Adapter.objects.exists() and not AdapterFile.objects.exists() and not LibraryRoot.objects.exists()
    assert list(Tag.objects.values_list("name", flat=True)) == ["kept"]
    assert REGISTRY["gallery"] == "benchmarks.gallery"
