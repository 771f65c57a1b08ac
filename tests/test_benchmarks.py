"""The scan and hash benchmarks run end to end on a tiny library and report every figure (timings unchecked)."""

from __future__ import annotations

import pytest

from adapters.models import Adapter
from benchmarks import hash as hash_bench
from benchmarks import scan as scan_bench
from benchmarks.__main__ import main
from benchmarks.library import MARKER, ensure_library, model_files


@pytest.fixture
def tiny_library(tmp_path, settings):
    settings.THUMBNAIL_DIR = tmp_path / "thumbs"
    return ensure_library(tmp_path / "library", count=30, folders=3)


def test_library_is_generated_once_with_sidecars_and_previews(tiny_library):
    files = model_files(tiny_library)
    assert len(files) == 30
    assert len({path.parent for path in files}) == 3
    assert len(list(tiny_library.rglob("*.json"))) - 1 == 10  # the marker is JSON too
    assert len(list(tiny_library.rglob("*.preview.png"))) == 10
    marker_mtime = (tiny_library / MARKER).stat().st_mtime_ns
    assert ensure_library(tiny_library, count=30, folders=3) == tiny_library
    assert (tiny_library / MARKER).stat().st_mtime_ns == marker_mtime


@pytest.mark.django_db(transaction=True)
def test_scan_benchmark_reports_catalogue_figures(tiny_library):
    result = scan_bench.run(tiny_library)
    assert result["files"] == 30  # and every file hashed, in-process and by the command (the bench checks)
    figures = ("metadata_scan_s", "metadata_scan_files_per_s", "catalogue_with_hashes_s", "unchanged_rescan_s")
    commands = ("command_new_s", "command_catalogue_with_hashes_s", "command_unchanged_rescan_s")
    for key in figures + commands:
        assert result[key] >= 0
    assert Adapter.objects.count() == 30 and not Adapter.objects.filter(sha256__isnull=True).exists()
    assert result["db_engine"] in ("sqlite", "postgresql")
    assert set(Adapter.objects.values_list("base_model", flat=True)) == {"SDXL"}  # the generated files are real
    assert {"target_metadata_files_per_s", "target_catalogue_s", "target_rescan_s"} <= result.keys()
    assert {"target_command_new_s", "target_command_catalogue_s", "target_command_rescan_s"} <= result.keys()


def test_hash_benchmark_reports_both_rates(tiny_library):
    result = hash_bench.run(tiny_library, rounds=1)
    assert result["files"] == 30
    assert result["bytes"] == sum(path.stat().st_size for path in model_files(tiny_library))
    assert result["plain_sha256_gb_per_s"] > 0
    assert result["both_digests_gb_per_s"] > 0
    assert result["ratio"] > 0
    assert result["target_ratio"] == 0.9


def test_unknown_benchmark_exits_2(capsys):
    assert main(["no-such-bench"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err
