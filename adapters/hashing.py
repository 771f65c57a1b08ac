"""Content hashes of LoRA files: the full-file sha256 (Civitai SHA256/AutoV2) and the tensor ("addnet")
sha256 of the data section (AutoV3, survives metadata edits), both from a single read of the file.

hashlib releases the GIL on large buffers, so hashing several files in threads scales across cores.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

IN_FLIGHT_PER_WORKER = 8
# A file modified more recently may still be downloading or copying: it is hashed once it has settled.
SETTLE_SECONDS = 5.0


@dataclass(frozen=True)
class FileDigests:
    sha256: str
    tensor_sha256: str
    size: int


class FileChangedError(Exception):
    """The file's size was not what the caller expected, or changed while it was being read."""


def hash_file(
    path: str | os.PathLike, data_offset: int, expected_size: int | None = None, chunk_size: int = 1 << 20
) -> FileDigests:
    """Hash the whole file and its data section (from ``data_offset`` to EOF) in one pass."""
    full = hashlib.sha256()
    tensors = hashlib.sha256()
    position = 0
    with open(path, "rb", buffering=0) as fh:
        size = os.fstat(fh.fileno()).st_size
        if expected_size is not None and size != expected_size:
            raise FileChangedError(f"file is {size:,} bytes, expected {expected_size:,}; it may still be copying")
        buffer = bytearray(max(1, min(chunk_size, size + 1)))  # +1: small files finish in one read plus EOF
        view = memoryview(buffer)
        while count := fh.readinto(buffer):
            chunk = view[:count]
            full.update(chunk)
            if position + count > data_offset:
                tensors.update(chunk[max(0, data_offset - position) :])
            position += count
    if position != size:
        raise FileChangedError(f"file changed size while hashing ({size:,} bytes before, {position:,} read)")
    return FileDigests(full.hexdigest(), tensors.hexdigest(), position)


def _hash_batch(batch: list[tuple[str, int]]) -> list[tuple[str, FileDigests | Exception]]:
    results: list[tuple[str, FileDigests | Exception]] = []
    for path, data_offset in batch:
        try:
            results.append((path, hash_file(path, data_offset)))
        except Exception as exc:  # noqa: BLE001 - reported per file, the batch goes on
            results.append((path, exc))
    return results


def hash_files(
    items: Iterable[tuple[str, int]], workers: int = 2, batch_files: int = 16
) -> Iterator[tuple[str, FileDigests | Exception]]:
    """Hash (path, data_offset) pairs in a thread pool, yielding results as batches finish.

    Files go to the threads in batches of ``batch_files``: one future per small file made the main
    thread compete with the hashing threads for the GIL, which cost a quarter of the throughput on
    two cores. Errors (OSError, FileChangedError, ...) are yielded in place of digests, so one bad
    file does not stop the rest. At most ``IN_FLIGHT_PER_WORKER * workers`` batches are in flight:
    enough to keep hashing while the caller writes results, few enough for a lazy ``items``.
    """
    workers = max(1, workers)
    pending: set[Future[list[tuple[str, FileDigests | Exception]]]] = set()
    source = iter(items)

    def next_batch() -> list[tuple[str, int]]:
        return list(itertools.islice(source, batch_files))

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hash") as pool:
        try:
            while True:
                while len(pending) < IN_FLIGHT_PER_WORKER * workers and (batch := next_batch()):
                    pending.add(pool.submit(_hash_batch, batch))
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    pending.discard(future)
                    yield from future.result()
        finally:
            for future in pending:  # the consumer stopped early: don't hash what nobody will read
                future.cancel()


def autov2(sha256: str) -> str:
    """Civitai AutoV2: the first 10 hex digits of the full-file sha256."""
    return sha256[:10].lower()


def autov3(tensor_sha256: str) -> str:
    """Civitai AutoV3 / A1111 LoRA short hash: the first 12 hex digits of the tensor sha256."""
    return tensor_sha256[:12].lower()


def is_settled(mtime_ns: int, now_ns: int | None = None, settle_seconds: float = SETTLE_SECONDS) -> bool:
    """False for a file modified in the last few seconds: it may still be downloading, so hash it later.

    An mtime far in the future is clock skew (a NAS, an archive), not a download: it counts as settled.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    settle_ns = int(settle_seconds * 1_000_000_000)
    age_ns = now_ns - mtime_ns
    return age_ns >= settle_ns or age_ns < -settle_ns
