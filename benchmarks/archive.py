"""Archive throughput: export and import of a library with weights against a plain copy of the same
bytes (same run, same page-cache state, best of three, alternating), and metadata-only export +
import of 10,000 adapters.

Targets: export and import each reach >= 0.8 of the plain copy's throughput. The plain copy is
``shutil.copyfile`` of every weights file into a fresh folder (what ``cp -r`` does). Export writes the
same bytes into one ZIP through ``ZipFile.open`` (stored, CRC-32) and hashes each file's sha256 as it
writes it; import additionally reads the ZIP, verifies every sha256 and moves the files into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from django.conf import settings

from adapters.identity import hash_pending
from adapters.models import Adapter, AdapterFile, LibraryRoot, Tag
from adapters.scanning import scan
from archive import exporting, importing
from benchmarks import gallery
from benchmarks.library import warm_page_cache
from tests.factories.lora_files import write_lora

ROUNDS = 3
CPUS = os.cpu_count() or 1
MARKER = ".bench-archive.json"
TARGET_RATIO = 0.8


def weights_library(root: Path, total_mb: int) -> Path:
    """Real SDXL LoRA files (~57 MB each, full module set) adding up to ``total_mb``; generated once."""
    params = {"version": 1, "total_mb": total_mb}
    marker = root / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    written, index, past = 0, 0, time.time() - 3600
    while written < total_mb * 2**20:
        path = root / f"set_{index % 4}" / f"bench_weights_{index:03d}.safetensors"
        path.parent.mkdir(exist_ok=True)
        write_lora(path, kind="sdxl", rank=8, seed=10_000 + index)
        os.utime(path, (past, past))
        written += path.stat().st_size
        index += 1
    print(f"archive bench: {index} weights files, {written / 2**20:.0f} MB", file=sys.stderr, flush=True)
    marker.write_text(json.dumps(params))
    return root


def _empty_catalog() -> None:
    Adapter.objects.all().delete()
    LibraryRoot.objects.all().delete()
    Tag.objects.all().delete()


def _plain_copy(files: list[Path], dest: Path) -> None:
    for index, path in enumerate(files):
        shutil.copyfile(path, dest / f"{index}-{path.name}")


def _sha256_all(files: list[Path]) -> None:
    for path in files:
        with open(path, "rb") as fh:
            hashlib.file_digest(fh, "sha256")


def _timed(func) -> float:
    """Wall time of ``func``, each starting with no dirty pages waiting (written data is flushed first), so
    a step is not throttled by the writeback of the step before it."""
    os.sync()
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


def _with_weights(work: Path, total_mb: int, library_root: Path | None = None) -> dict:
    library = weights_library(library_root or settings.DATA_DIR / "bench-archive-library", total_mb)
    files = sorted(library.rglob("*.safetensors"))
    total = sum(p.stat().st_size for p in files)
    warm_page_cache(library)
    export_s, import_s, copy_s, sha_s = [], [], [], []
    archive = work / "bench.zip"
    for round_no in range(ROUNDS):
        _empty_catalog()  # the catalog of the library itself (the last import replaced it)
        scan([str(library)])
        hash_pending(workers=settings.HASH_WORKERS)
        copy_dir = work / f"copy-{round_no}"
        copy_dir.mkdir()
        copy_s.append(_timed(lambda d=copy_dir: _plain_copy(files, d)))
        sha_s.append(_timed(lambda: _sha256_all(files)))
        shutil.rmtree(copy_dir)
        archive.unlink(missing_ok=True)
        export_s.append(_timed(lambda: exporting.export_library(archive)))
        target = work / f"import-{round_no}"
        Adapter.objects.all().delete()  # an empty catalog: every adapter and file is new
        import_s.append(_timed(lambda t=target: importing.import_archive(archive, library_dir=t)))
        shutil.rmtree(target)
    _empty_catalog()
    plain = total / min(copy_s)
    return {
        "weights_files": len(files),
        "weights_bytes": total,
        "plain_copy_mb_per_s": round(plain / 2**20, 1),
        "export_mb_per_s": round(total / min(export_s) / 2**20, 1),
        "import_mb_per_s": round(total / min(import_s) / 2**20, 1),
        "sha256_one_thread_mb_per_s": round(total / min(sha_s) / 2**20, 1),  # what import must verify
        "export_vs_copy_ratio": round(min(copy_s) / min(export_s), 3),
        "import_vs_copy_ratio": round(min(copy_s) / min(import_s), 3),
        "target_ratio": TARGET_RATIO,
        "cpus": CPUS,
    }


def _metadata_only(work: Path, count: int) -> dict:
    seeded = gallery.seed(count)
    archive = work / "metadata.zip"
    try:
        ids = list(range(seeded["first_id"], seeded["last_id"] + 1))
        started = time.perf_counter()
        result = exporting.export_library(archive, adapter_ids=ids, metadata_only=True)
        export_s = time.perf_counter() - started
    finally:
        gallery.cleanup(seeded)
    target = work / "metadata-library"
    started = time.perf_counter()
    imported = importing.import_archive(archive, library_dir=target)
    import_s = time.perf_counter() - started
    started = time.perf_counter()
    again = importing.import_archive(archive, library_dir=target)
    reimport_s = time.perf_counter() - started
    created = AdapterFile.objects.filter(path__startswith=str(target)).values_list("adapter_id", flat=True)
    Adapter.objects.filter(pk__in=list(created)).delete()
    LibraryRoot.objects.filter(path__startswith=str(target)).delete()
    Tag.objects.filter(adapters__isnull=True, name__in=gallery._tag_names()).delete()
    return {
        "metadata_adapters": result.counts["adapters"],
        "metadata_archive_bytes": result.size,
        "metadata_export_s": round(export_s, 3),
        "metadata_import_s": round(import_s, 3),
        "metadata_export_plus_import_s": round(export_s + import_s, 3),
        "metadata_reimport_identical_s": round(reimport_s, 3),
        "metadata_import_created": imported.plan.counts["new"],
        "metadata_reimport_identical": again.plan.counts["identical"],
    }


def run(total_mb: int | None = None, metadata_count: int | None = None, library_root: Path | None = None) -> dict:
    total_mb = total_mb or int(os.environ.get("LORA_MANAGER_BENCH_ARCHIVE_MB", "1024"))
    metadata_count = metadata_count or int(os.environ.get("LORA_MANAGER_BENCH_ARCHIVE_ADAPTERS", "10000"))
    work = Path(tempfile.mkdtemp(prefix="bench-archive-", dir=settings.DATA_DIR))
    try:
        figures = _with_weights(work, total_mb, library_root)
        figures.update(_metadata_only(work, metadata_count))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from django.db import connection

    return {**figures, "db_engine": connection.vendor}
