"""Checking an archive before anything changes: structure, names, manifest, sizes, hashes, disk space.

``inspect`` reads only the ZIP directory and the manifest; ``stage`` then streams every listed file,
verifies its size and sha256, and writes the ones the import needs into a hidden staging folder.
Both collect *every* problem before refusing, so the user fixes an archive once, not once per error.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
import threading
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from archive import manifest as mf

CHUNK = 4 * 1024 * 1024
RATIO_MIN_BYTES = 1024 * 1024  # small entries may compress well (JSON); the ratio limit applies above this
MAX_LISTED_PROBLEMS = 500


class ArchiveRefused(Exception):
    """The archive failed one or more checks; ``problems`` lists every one (nothing was changed)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = problems[:MAX_LISTED_PROBLEMS]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__(
            f"archive refused, nothing was changed ({len(problems)} problem{'s' * (len(problems) != 1)}):\n  "
            + "\n  ".join(shown)
            + more
        )


@dataclass
class Inspected:
    path: Path
    manifest: dict
    infos: dict[str, zipfile.ZipInfo] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def files(self) -> dict[str, dict]:
        return {entry["path"]: entry for entry in self.manifest["files"]}


def name_problem(name: str) -> str | None:
    """Why an entry name could escape the destination (zip slip), or None when it is safe."""
    return mf.name_problem(name)


def _read_manifest(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> dict | list[str]:
    if info.file_size > mf.MAX_MANIFEST_BYTES:
        return [f"manifest.json is too large ({info.file_size} bytes)"]
    try:
        with zf.open(info) as fh:
            raw = fh.read(mf.MAX_MANIFEST_BYTES + 1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        return [f"manifest.json cannot be read (corrupt archive): {exc}"]
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [f"manifest.json is not valid JSON: {exc}"]


def inspect(path: str | Path, max_size: int | None = None) -> Inspected:
    """Check the ZIP's directory and manifest without extracting anything; raises ArchiveRefused."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ArchiveRefused([f"{path}: cannot read the archive: {exc.strerror or exc}"]) from None
    if max_size is not None and size > max_size:
        raise ArchiveRefused([f"the archive is {size} bytes, larger than the configured limit of {max_size} bytes"])
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise ArchiveRefused([f"not a valid ZIP archive (truncated or corrupt): {exc}"]) from None
    with zf:
        problems: list[str] = []
        infos: dict[str, zipfile.ZipInfo] = {}
        for info in zf.infolist():
            name = info.filename
            reason = name_problem(name)
            if reason:
                problems.append(f"unsafe entry name {reason}")
                continue
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                problems.append(f"{name}: symbolic link entries are not allowed")
                continue
            if name in infos or name.rstrip("/") in infos:
                problems.append(f"{name}: duplicate entry")
                continue
            if info.flag_bits & 0x1:
                problems.append(f"{name}: encrypted entries are not supported")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                problems.append(f"{name}: unsupported compression method {info.compress_type}")
            if info.file_size > RATIO_MIN_BYTES and info.file_size > settings.ARCHIVE_MAX_RATIO * max(
                info.compress_size, 1
            ):
                problems.append(
                    f"{name}: compression ratio {info.file_size // max(info.compress_size, 1)}:1 is above the limit "
                    f"of {settings.ARCHIVE_MAX_RATIO}:1 (zip bomb?)"
                )
            if not info.is_dir():
                infos[name] = info
        total = sum(i.file_size for i in infos.values())
        if total > settings.ARCHIVE_MAX_UNCOMPRESSED_BYTES:
            problems.append(
                f"the archive unpacks to {total} bytes, above the limit of {settings.ARCHIVE_MAX_UNCOMPRESSED_BYTES}"
            )
        manifest_info = infos.pop(mf.MANIFEST_NAME, None)
        if manifest_info is None:
            raise ArchiveRefused([*problems, "manifest.json is missing: not a LoRA Manager archive"])
        if problems:  # never parse a manifest from an archive that already looks hostile
            raise ArchiveRefused(problems)
        manifest = _read_manifest(zf, manifest_info)
        if isinstance(manifest, list):
            raise ArchiveRefused(manifest)
        problems = mf.validate(manifest)
        if problems:
            raise ArchiveRefused(problems)
        listed = {entry["path"]: entry for entry in manifest["files"]}
        for name in sorted(set(listed) - set(infos)):
            problems.append(f"{name}: listed in the manifest but missing from the archive")
        for name in sorted(set(infos) - set(listed)):
            problems.append(f"{name}: in the archive but not listed in the manifest")
        for name in sorted(set(listed) & set(infos)):
            if infos[name].file_size != listed[name]["size"]:
                problems.append(
                    f"{name}: the manifest says {listed[name]['size']} bytes, the archive holds {infos[name].file_size}"
                )
        if problems:
            raise ArchiveRefused(problems)
    warnings = [
        f"section {name!r} is not known to this version and is ignored" for name in mf.ignored_sections(manifest)
    ]
    return Inspected(path, manifest, infos, warnings)


def check_free_space(needs: dict[Path, int]) -> list[str]:
    """One problem per filesystem that would keep less than ARCHIVE_MIN_FREE_BYTES free after the import."""
    by_device: dict[int, tuple[Path, int]] = {}
    for folder, size in needs.items():
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        dev = existing.stat().st_dev
        known = by_device.get(dev, (existing, 0))
        by_device[dev] = (known[0], known[1] + size)
    problems = []
    for folder, size in by_device.values():
        free = shutil.disk_usage(folder).free
        if free - size < settings.ARCHIVE_MIN_FREE_BYTES:
            problems.append(
                f"not enough free disk space in {folder}: the import writes {size} bytes, {free} are free, "
                f"and {settings.ARCHIVE_MIN_FREE_BYTES} must stay free (LORA_MANAGER_ARCHIVE_MIN_FREE_MB)"
            )
    return problems


class _DiskFull(Exception):
    pass


def _stored_data_start(fh, info: zipfile.ZipInfo) -> int:
    """Offset of a stored entry's bytes, after checking its local header against the central directory."""
    fh.seek(info.header_offset)
    header = fh.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile("bad local file header")
    name_len, extra_len = int.from_bytes(header[26:28], "little"), int.from_bytes(header[28:30], "little")
    name = fh.read(name_len)
    if name.decode("utf-8" if info.flag_bits & 0x800 else "cp437") != info.orig_filename:
        raise zipfile.BadZipFile("local file name differs from the central directory")
    return info.header_offset + 30 + name_len + extra_len


def _stored_chunks(fh, start: int, count: int):
    """The raw bytes of a stored entry, read straight from the file: its sha256 is verified instead of
    the weaker CRC-32, so the bytes pass through Python once, not twice."""
    fh.seek(start)
    left = count
    while left > 0:
        chunk = fh.read(min(CHUNK, left))
        if not chunk:
            raise EOFError("the archive ends inside this entry")
        left -= len(chunk)
        yield chunk


class _KernelCopy(threading.Thread):
    """Copies a byte range between files inside the kernel (copy_file_range) while the caller hashes it."""

    def __init__(self, src_fd: int, dst_fd: int, offset: int, count: int):
        super().__init__(daemon=True)
        self.args_ = (src_fd, dst_fd, offset, count)
        self.error: BaseException | None = None

    def run(self) -> None:
        src_fd, dst_fd, offset, left = self.args_
        try:
            while left > 0:
                n = os.copy_file_range(src_fd, dst_fd, min(left, 1 << 30), offset)
                if n == 0:
                    raise EOFError("the archive ends inside this entry")
                offset, left = offset + n, left - n
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, which re-raises it
            self.error = exc


def _start_kernel_copy(fh, out, start: int, count: int) -> _KernelCopy | None:
    """A running kernel copy, or None where copy_file_range cannot do it (then Python writes the bytes)."""
    if not hasattr(os, "copy_file_range") or count == 0:
        return None
    try:
        first = os.copy_file_range(fh.fileno(), out.fileno(), min(count, 1 << 20), start)
    except OSError as exc:
        if exc.errno in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            return None
        raise
    copy = _KernelCopy(fh.fileno(), out.fileno(), start + first, count - first)
    copy.start()
    return copy


def _verify_one(inspected: Inspected, name: str, entry: dict, target: Path | None, advance, stop) -> list[str]:
    """Hash one entry (writing it to ``target`` when given); returns its problems. Runs in a thread."""
    digest, size, out = hashlib.sha256(), 0, None
    info = inspected.infos[name]
    try:
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            out = open(target, "xb")  # noqa: SIM115 - closed below
        with open(inspected.path, "rb") as fh, open(inspected.path, "rb") as copy_fh:
            copy = None
            if info.compress_type == zipfile.ZIP_STORED:
                start = _stored_data_start(fh, info)
                if out is not None and info.compress_size == entry["size"]:
                    copy = _start_kernel_copy(copy_fh, out, start, entry["size"])  # then this thread only hashes
                chunks = _stored_chunks(fh, start, min(info.compress_size, entry["size"] + 1))
            else:
                zf = zipfile.ZipFile(fh)
                src = zf.open(info)
                chunks = iter(lambda: src.read(CHUNK), b"")
            try:
                for chunk in chunks:
                    if stop.is_set():
                        return []
                    size += len(chunk)
                    if size > entry["size"]:
                        break
                    digest.update(chunk)
                    if out is not None and copy is None:
                        out.write(chunk)
                    advance(len(chunk))
            finally:
                if copy is not None:
                    copy.join()  # never close the files under a running copy
            if copy is not None and copy.error is not None:
                raise copy.error
        if out is not None:
            out.close()
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            stop.set()
            raise _DiskFull(f"the disk filled up while unpacking {name}: {exc.strerror}") from None
        return [f"{name}: cannot be unpacked: {exc}"]
    except (zipfile.BadZipFile, EOFError, ValueError, zlib.error) as exc:
        return [f"{name}: corrupt data in the archive ({exc})"]
    finally:
        if out is not None and not out.closed:
            out.close()
    if size != entry["size"]:
        return [f"{name}: the manifest says {entry['size']} bytes, the entry holds more or less"]
    if digest.hexdigest() != entry["sha256"]:
        return [f"{name}: sha256 does not match the manifest (damaged or altered)"]
    return []


def stage(
    inspected: Inspected,
    wanted: dict[str, Path],
    progress: Callable[[str, int, int], None] | None = None,
) -> None:
    """Verify size and sha256 of every listed file; write those in ``wanted`` to their staging paths.

    Files are verified in parallel threads (hashlib releases the GIL), largest first. Raises
    ArchiveRefused listing every mismatch (and removes whatever it wrote) on any problem.
    """
    files = inspected.files
    total = sum(entry["size"] for entry in files.values())
    done = [0]
    lock = threading.Lock()
    stop = threading.Event()

    def advance(n: int) -> None:
        with lock:
            done[0] += n

    order = sorted(files, key=lambda n: -files[n]["size"])
    problems: list[str] = []
    disk_full: list[str] = []
    try:
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
            futures = {
                pool.submit(_verify_one, inspected, name, files[name], wanted.get(name), advance, stop): name
                for name in order
            }
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                if progress:
                    progress("verifying", done[0], total)
                for future in finished:
                    try:
                        problems.extend(future.result())
                    except _DiskFull as exc:
                        disk_full.append(str(exc))
        if disk_full:
            raise ArchiveRefused(disk_full)
        if problems:
            raise ArchiveRefused(sorted(problems))
    except BaseException:
        stop.set()
        for path in wanted.values():
            path.unlink(missing_ok=True)
        raise
