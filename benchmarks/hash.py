"""Hashing throughput: both digests (``hash_files``) against one plain sha256 per file on one thread.

Computing the full-file and the tensor sha256 is twice the work of a plain sha256; with
HASH_WORKERS threads it should still keep up with the single-thread baseline (ratio >= 0.9).
Both run over the same page-cache-warm files in the same run, best of three, alternating.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

from django.conf import settings

from adapters.hashing import hash_files
from benchmarks.library import default_library, model_files, warm_page_cache

ROUNDS = 3


def _data_offset(path: Path) -> int:
    with open(path, "rb") as fh:
        return 8 + int.from_bytes(fh.read(8), "little")


def _plain(paths: list[str]) -> None:
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            hashlib.file_digest(fh, "sha256")


def _both(items: list[tuple[str, int]], workers: int) -> None:
    for path, result in hash_files(items, workers=workers):
        if isinstance(result, Exception):
            raise RuntimeError(f"cannot hash {path}: {result}")


def run(library: Path | None = None, rounds: int = ROUNDS) -> dict:
    library = default_library() if library is None else library
    files = model_files(library)
    items = [(str(path), _data_offset(path)) for path in files]
    paths = [path for path, _ in items]
    total = sum(path.stat().st_size for path in files)
    warm_page_cache(library)
    workers = settings.HASH_WORKERS
    plain_s, both_s = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        _plain(paths)
        plain_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        _both(items, workers)
        both_s.append(time.perf_counter() - started)
    plain = total / min(plain_s) / 1e9
    both = total / min(both_s) / 1e9
    return {
        "files": len(files),
        "bytes": total,
        "hash_workers": workers,
        "plain_sha256_gb_per_s": round(plain, 3),
        "both_digests_gb_per_s": round(both, 3),
        "ratio": round(both / plain, 3),
        "target_ratio": 0.9,
    }
