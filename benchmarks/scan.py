"""Cataloguing a library: metadata-only scan, scan plus both hashes, and an unchanged rescan.

The library is read once first so the figures measure the scanner and the database, not the disk.
Each full measurement starts from an empty catalog, as a first scan of a new install would.
"""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from adapters.identity import hash_pending, needs_hash
from adapters.models import Adapter, AdapterFile, LibraryRoot, ScanRun, Tag
from adapters.scanning import scan
from benchmarks.library import default_library, warm_page_cache


def empty_catalog() -> None:
    """Remove everything a scan writes, so the next scan sees a new library."""
    Adapter.objects.all().delete()
    LibraryRoot.objects.all().delete()
    ScanRun.objects.all().delete()
    Tag.objects.all().delete()


def run(library: Path | None = None) -> dict:
    library = default_library() if library is None else library
    paths = [str(library)]
    warm_page_cache(library)

    empty_catalog()
    started = time.perf_counter()
    first = scan(paths)
    metadata_s = time.perf_counter() - started

    empty_catalog()
    started = time.perf_counter()
    scan(paths)
    scanned = time.perf_counter()
    counts = hash_pending(workers=settings.HASH_WORKERS)
    catalogue_s = time.perf_counter() - started
    hash_phase_s = time.perf_counter() - scanned
    lacking = needs_hash().count() + AdapterFile.objects.filter(tensor_sha256="").count()
    if lacking or counts["postponed"] or counts["errors"]:
        raise RuntimeError(f"{lacking} files lack hashes after hash_pending ({counts}); is the library's mtime recent?")

    started = time.perf_counter()
    again = scan(paths)
    rescan_s = time.perf_counter() - started

    return {
        "files": first.found,
        "errors": first.errors,
        "metadata_scan_s": round(metadata_s, 3),
        "metadata_scan_files_per_s": round(first.found / metadata_s),
        "catalogue_with_hashes_s": round(catalogue_s, 3),
        "catalogue_hash_phase_s": round(hash_phase_s, 3),
        "files_hashed": AdapterFile.objects.exclude(sha256="").exclude(tensor_sha256="").count(),
        "unchanged_rescan_s": round(rescan_s, 3),
        "unchanged": again.unchanged,
        "hash_workers": settings.HASH_WORKERS,
        "db_engine": connection.vendor,
        "target_metadata_files_per_s": 5000,
        "target_catalogue_s": 4,
        "target_rescan_s": 0.5,
    }
