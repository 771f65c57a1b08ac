"""Cataloguing a library: metadata-only scan, scan plus both hashes, and an unchanged rescan, each
in-process (``scanning.scan`` / ``identity.hash_pending``) and as a whole ``python manage.py scan_library``
command in a subprocess (Python and Django start-up and the tracked run included; thumbnails are made
on first view or by a background job, never by a scan).

The library is read once first so the figures measure the scanner and the database, not the disk.
Each full measurement starts from an empty catalog, as a first scan of a new install would. Figures are
medians of ``LORA_MANAGER_BENCH_SCAN_ROUNDS`` runs (default 3; rescans, being cheap, twice as many).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

from adapters.identity import hash_pending, needs_hash
from adapters.models import Adapter, AdapterFile, LibraryRoot, ScanRun, Tag
from adapters.scanning import scan
from benchmarks.library import default_library, warm_page_cache

BASE_DIR = Path(__file__).resolve().parent.parent
# issue 17's targets, for a 10,000-file library on a quiet 2-core machine
TARGET_FILES_PER_S = 5000
TARGET_CATALOGUE_S = 4.0
TARGET_RESCAN_S = 0.3
TARGET_COMMAND_NEW_S = 2.5
TARGET_COMMAND_CATALOGUE_S = 4.5
TARGET_COMMAND_RESCAN_S = 0.8


def empty_catalog() -> None:
    """Remove everything a scan writes, so the next scan sees a new library."""
    Adapter.objects.all().delete()
    LibraryRoot.objects.all().delete()
    ScanRun.objects.all().delete()
    Tag.objects.all().delete()


def _median(runs: int, measure: Callable[[], float]) -> float:
    return round(statistics.median(measure() for _ in range(runs)), 3)


def _timed(work: Callable[[], object], before: Callable[[], object] | None = None) -> Callable[[], float]:
    def measure() -> float:
        if before is not None:
            before()
        started = time.perf_counter()
        work()
        return time.perf_counter() - started

    return measure


def _check_hashed() -> None:
    lacking = needs_hash().count() + AdapterFile.objects.filter(tensor_sha256="").count()
    if lacking:
        raise RuntimeError(f"{lacking} files lack hashes after hashing; is the library's mtime recent?")


def database_url() -> str:
    """The URL of the database this process uses (under pytest, the test database, not the configured one)."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    auth = quote(db["USER"] or "") + (":" + quote(db["PASSWORD"]) if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST']}:{db['PORT'] or 5432}/{quote(db['NAME'])}"


def _command(*args: str) -> Callable[[], None]:
    """``python manage.py scan_library ...`` on this benchmark's database, as a user would type it."""
    env = {**os.environ, "LORA_MANAGER_DATABASE_URL": database_url()}

    def run() -> None:
        done = subprocess.run(
            [sys.executable, str(BASE_DIR / "manage.py"), "scan_library", *args],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(f"scan_library {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")

    return run


def run(library: Path | None = None) -> dict:
    library = default_library() if library is None else library
    paths = [str(library)]
    rounds = int(os.environ.get("LORA_MANAGER_BENCH_SCAN_ROUNDS", "3"))
    warm_page_cache(library)
    workers = settings.HASH_WORKERS
    hash_phase_s: list[float] = []

    def catalogue() -> None:
        scan(paths)
        started = time.perf_counter()
        counts = hash_pending(workers=workers)
        hash_phase_s.append(time.perf_counter() - started)
        if counts["postponed"] or counts["errors"]:
            raise RuntimeError(f"hash_pending left files unhashed: {counts}")

    metadata_s = _median(rounds, _timed(lambda: scan(paths), before=empty_catalog))
    files = AdapterFile.objects.count()
    catalogue_s = _median(rounds, _timed(catalogue, before=empty_catalog))
    _check_hashed()
    rescan_s = _median(rounds * 2, _timed(lambda: scan(paths)))

    command_new_s = _median(rounds, _timed(_command("--no-hash", *paths), before=empty_catalog))
    command_catalogue_s = _median(rounds, _timed(_command(*paths), before=empty_catalog))
    _check_hashed()
    command_rescan_s = _median(rounds, _timed(_command(*paths)))

    return {
        "files": files,
        "rounds": rounds,
        "hash_workers": workers,
        "scan_read_processes": settings.SCAN_READ_PROCESSES,
        "db_engine": connection.vendor,
        "metadata_scan_s": metadata_s,
        "metadata_scan_files_per_s": round(files / metadata_s),
        "target_metadata_files_per_s": TARGET_FILES_PER_S,
        "catalogue_with_hashes_s": catalogue_s,
        "catalogue_hash_phase_s": round(statistics.median(hash_phase_s), 3),
        "target_catalogue_s": TARGET_CATALOGUE_S,
        "unchanged_rescan_s": rescan_s,
        "target_rescan_s": TARGET_RESCAN_S,
        "command_new_s": command_new_s,
        "target_command_new_s": TARGET_COMMAND_NEW_S,
        "command_catalogue_with_hashes_s": command_catalogue_s,
        "target_command_catalogue_s": TARGET_COMMAND_CATALOGUE_S,
        "command_unchanged_rescan_s": command_rescan_s,
        "target_command_rescan_s": TARGET_COMMAND_RESCAN_S,
    }
