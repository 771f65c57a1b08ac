"""The archive benchmark runs end to end on a tiny library and reports every figure (timings unchecked)."""

import pytest

from adapters.models import Adapter
from benchmarks import archive as archive_bench


@pytest.mark.django_db(transaction=True)
def test_archive_benchmark_reports_its_figures(tmp_path, settings):
    settings.THUMBNAIL_DIR = tmp_path / "thumbs"
    result = archive_bench.run(total_mb=1, metadata_count=30, library_root=tmp_path / "weights")
    assert result["weights_files"] == 1 and result["metadata_adapters"] == 30
    assert result["metadata_import_created"] == 30 and result["metadata_reimport_identical"] == 30
    for key in (
        "plain_copy_mb_per_s",
        "export_mb_per_s",
        "import_mb_per_s",
        "export_vs_copy_ratio",
        "import_vs_copy_ratio",
    ):
        assert result[key] > 0
    assert Adapter.objects.count() == 0  # the benchmark leaves no adapters behind
