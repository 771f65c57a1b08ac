"""Writing a library (or part of it) to a ZIP archive with a manifest that lists every field and file.

The ZIP is written to a hidden temporary file beside the destination and renamed only when complete,
so a half-written archive never carries the final name. Weights are stored uncompressed (they do not
compress, and stored entries can be copied at disk speed); JSON and sidecars are deflated.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from adapters.models import Adapter, AdapterFile, Tag
from adapters.previews import PREVIEW_EXTENSIONS
from adapters.thumbnails import SIZES, thumbnail_path
from archive import manifest as mf
from archive import sections

Progress = Callable[[str, int, int], None]
CHUNK = 4 * 1024 * 1024
STORED_SUFFIXES = (".safetensors", ".mp4", ".webm", *(f".{ext}" for ext in PREVIEW_EXTENSIONS))


@dataclass
class ExportResult:
    path: Path
    size: int
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class _Entry:
    source: Path
    kind: str
    size: int
    sha256: str = ""  # known and current (hash cache), else computed while writing
    mtime_ns: int = 0


class ExportError(Exception):
    """The export could not be written; the message says why (nothing is left at the destination)."""


def select_adapters(adapter_ids: Iterable[int] | None = None, tags: Iterable[str] | None = None) -> QuerySet[Adapter]:
    """The adapters an export covers: all, the given ids, and/or those carrying any of the given tags."""
    adapters = Adapter.objects.all()
    if adapter_ids is not None:
        adapters = adapters.filter(pk__in=list(adapter_ids))
    tag_names = [t for t in (tags or []) if t]
    if tag_names:
        unknown = sorted(set(tag_names) - set(Tag.objects.filter(name__in=tag_names).values_list("name", flat=True)))
        if unknown:
            raise ExportError(f"unknown tag(s): {', '.join(unknown)}")
        adapters = adapters.filter(tags__name__in=tag_names).distinct()
    return adapters.order_by("pk")


def _companions(file: AdapterFile) -> list[Path]:
    """Sidecars and previews next to a weights file: same folder, name starting with its stem + '.'."""
    path = Path(file.path)
    stem = path.name[: -len(".safetensors")] if path.name.lower().endswith(".safetensors") else path.stem
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    found = []
    for name in sorted(names):
        if name.startswith(stem + ".") and name != path.name and not name.lower().endswith(".safetensors"):
            candidate = path.parent / name
            if candidate.is_file() and not candidate.is_symlink():
                found.append(candidate)
    return found


class _Collector:
    """Builds the manifest's adapter list and the set of files to write, each file once."""

    def __init__(self, metadata_only: bool):
        self.metadata_only = metadata_only
        self.roots: list[str] = []
        self.entries: dict[str, _Entry] = {}

    def root_index(self, root_path: str) -> int:
        if root_path not in self.roots:
            self.roots.append(root_path)
        return self.roots.index(root_path)

    def add(self, archive_path: str, source: Path, kind: str, sha256: str = "") -> str | None:
        if archive_path in self.entries:
            return archive_path
        try:
            st = source.stat()
        except OSError:
            return None
        self.entries[archive_path] = _Entry(source, kind, st.st_size, sha256, st.st_mtime_ns)
        return archive_path

    def adapter(self, adapter: Adapter) -> dict:
        item = {
            "key": f"a{adapter.pk}",
            "fields": {name: mf.dump_value(getattr(adapter, name)) for name in mf.ADAPTER_FIELDS},
            "tags": sorted(t.name for t in adapter.tags.all()),
            "files": [],
            "thumbnails": [],
        }
        for file in adapter.files.all():
            root = self.root_index(file.root.path)
            rel = os.path.relpath(file.path, file.root.path).replace(os.sep, "/")
            entry = {"root": root, "rel_path": rel, **{n: mf.dump_value(getattr(file, n)) for n in mf.FILE_FIELDS}}
            entry["archive_path"], entry["companions"] = None, []
            if Path(file.path).is_file():
                base = f"library/r{root}/"
                if not self.metadata_only:
                    st = os.stat(file.path)
                    cached = (
                        file.sha256
                        if (file.hash_is_current and (st.st_size, st.st_mtime_ns) == (file.size, file.mtime_ns))
                        else ""
                    )
                    entry["archive_path"] = self.add(base + rel, Path(file.path), "weights", cached)
                for companion in _companions(file):
                    crel = os.path.relpath(companion, file.root.path).replace(os.sep, "/")
                    if self.add(base + crel, companion, "companion"):
                        entry["companions"].append(base + crel)
            item["files"].append(entry)
        if adapter.preview_key:
            for size in SIZES:
                thumb = thumbnail_path(adapter.preview_key, size)
                if thumb.is_file() and self.add(f"thumbnails/{thumb.name}", thumb, "thumbnail"):
                    item["thumbnails"].append(f"thumbnails/{thumb.name}")
        return item


def _zip_info(name: str, source: Path) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=time.localtime(max(source.stat().st_mtime, 315532800))[:6])
    stored = name.lower().endswith(STORED_SUFFIXES)
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    info.external_attr = 0o100644 << 16
    return info


def _crc32(path: Path) -> tuple[int, int]:
    """(CRC-32, size) of a file; runs in a thread pool (zlib releases the GIL on large buffers)."""
    crc, size = 0, 0
    with open(path, "rb", buffering=0) as fh:
        while chunk := fh.read(CHUNK):
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
    return crc, size


def _copy_range(src_fd: int, dst_fd: int, count: int, advance: Callable[[int], None]) -> None:
    """Copy ``count`` bytes in the kernel (copy_file_range, else sendfile), else through a buffer."""
    left = count
    for method in ("copy_file_range", "sendfile"):
        try:
            while left:
                if method == "copy_file_range":
                    n = os.copy_file_range(src_fd, dst_fd, min(left, 1 << 30))
                else:
                    n = os.sendfile(dst_fd, src_fd, None, min(left, 1 << 30))
                if n == 0:
                    raise OSError(f"{count - left} of {count} bytes copied: the file shrank while exporting")
                left -= n
                advance(n)
            return
        except (AttributeError, OSError) as exc:
            unsupported = (None, 18, 22, 38, 95)  # no such call, EXDEV, EINVAL, ENOSYS, ENOTSUP: try the next way
            if left != count or getattr(exc, "errno", None) not in unsupported:
                raise
    while left:
        chunk = os.read(src_fd, min(left, CHUNK))
        if not chunk:
            raise OSError(f"{count - left} of {count} bytes copied: the file shrank while exporting")
        os.write(dst_fd, chunk)
        left -= len(chunk)
        advance(len(chunk))


def _write_stored(zf: zipfile.ZipFile, name: str, entry: _Entry, crc_future: Future, advance) -> int:
    """A stored entry copied by the kernel while a thread computes its CRC-32; returns its size.

    This is what ``ZipFile.open(name, "w")`` does (header, data, header rewritten with the CRC), without
    pushing every byte through Python, which made exports 3x slower than a plain copy. ``testzip()`` in the
    tests proves the result.
    """
    info = _zip_info(name, entry.source)
    with open(entry.source, "rb", buffering=0) as src:
        size = os.fstat(src.fileno()).st_size
        info.compress_type, info.flag_bits = zipfile.ZIP_STORED, 0
        info.file_size = info.compress_size = size
        info.CRC = 0
        zf.fp.seek(zf.start_dir)
        info.header_offset = zf.fp.tell()
        zf._writecheck(info)
        zf._didModify = True
        zf.fp.write(info.FileHeader(zip64=True))
        zf.fp.flush()
        _copy_range(src.fileno(), zf.fp.fileno(), size, advance)
    crc, crc_size = crc_future.result()
    if crc_size != size:
        raise OSError(f"{entry.source} changed while exporting")
    info.CRC = crc
    end = zf.fp.seek(0, os.SEEK_END)
    zf.fp.seek(info.header_offset)
    zf.fp.write(info.FileHeader(zip64=True))
    zf.fp.seek(end)
    zf.start_dir = end
    zf.filelist.append(info)
    zf.NameToInfo[name] = info
    return size


def _write_entry(zf: zipfile.ZipFile, name: str, entry: _Entry, advance: Callable[[int], None]) -> tuple[int, str]:
    """Copy one file into the archive; returns (size, sha256). Hashes only when the cache is stale."""
    digest = None if entry.sha256 else hashlib.sha256()
    size = 0
    with open(entry.source, "rb") as src, zf.open(_zip_info(name, entry.source), "w", force_zip64=True) as dst:
        while chunk := src.read(CHUNK):
            dst.write(chunk)
            if digest is not None:
                digest.update(chunk)
            size += len(chunk)
            advance(len(chunk))
    return size, entry.sha256 or digest.hexdigest()


def export_library(
    out_path: str | Path,
    adapter_ids: Iterable[int] | None = None,
    tags: Iterable[str] | None = None,
    metadata_only: bool = False,
    include_history: bool = False,
    progress: Progress | None = None,
    history_user=sections.EVERYTHING,
) -> ExportResult:
    """Write the archive to ``out_path`` (temp file, then rename). Raises ExportError with a reason."""
    out = Path(out_path).expanduser().resolve()
    if out.suffix.lower() != ".zip":
        raise ExportError(f"{out.name}: the archive name must end in .zip")
    if not out.parent.is_dir():
        raise ExportError(f"{out.parent}: no such folder")
    report = progress or (lambda phase, done, total: None)
    adapters = select_adapters(adapter_ids, tags).prefetch_related("tags", "files__root")
    collector = _Collector(metadata_only)
    total_adapters = adapters.count()
    items = []
    for done, adapter in enumerate(adapters.iterator(chunk_size=1000), 1):
        items.append(collector.adapter(adapter))
        if done % 500 == 0 or done == total_adapters:
            report("collecting", done, total_adapters)
    whole = adapter_ids is None and not tags
    tag_rows = Tag.objects.all() if whole else Tag.objects.filter(name__in={t for i in items for t in i["tags"]})
    keys = {int(i["key"][1:]): i["key"] for i in items}
    manifest_sections = {
        "presets": {"version": 1, "items": sections.export_presets()},
        "feedback": {"version": 1, "items": sections.export_feedback(keys)},
    }
    if include_history:
        history, images = sections.export_history(keys, history_user)
        for archive_path, source in images:
            collector.add(archive_path, source, "image")
        manifest_sections["history"] = {"version": 1, "items": history}
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    total_bytes = sum(e.size for e in collector.entries.values())
    written = 0

    def advance(n: int) -> None:
        nonlocal written
        written += n
        report("writing", written, total_bytes)

    files = []
    # Weights whose sha256 is cached only need a CRC-32: computed ahead in threads while the kernel copies.
    fast = [n for n, e in collector.entries.items() if e.sha256 and n.lower().endswith(".safetensors")]
    pool = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)))
    crcs: dict[str, Future] = {name: pool.submit(_crc32, collector.entries[name].source) for name in fast}
    try:
        with zipfile.ZipFile(tmp, "w", allowZip64=True, compresslevel=6) as zf:
            for name, entry in collector.entries.items():
                try:
                    if name in crcs:
                        size, sha = _write_stored(zf, name, entry, crcs[name], advance), entry.sha256
                    else:
                        size, sha = _write_entry(zf, name, entry, advance)
                except OSError as exc:
                    raise ExportError(f"cannot read {entry.source}: {exc.strerror or exc}") from exc
                files.append(
                    {"path": name, "size": size, "sha256": sha, "kind": entry.kind, "mtime_ns": entry.mtime_ns}
                )
            counts = {
                "adapters": len(items),
                "tags": len(tag_rows),
                "files": len(files),
                "bytes": sum(f["size"] for f in files),
                **{name: len(section["items"]) for name, section in manifest_sections.items()},
            }
            document = {
                "format": mf.FORMAT,
                "format_version": mf.FORMAT_VERSION,
                "app_version": mf.app_version(),
                "created_at": timezone.now().isoformat(),
                "metadata_only": metadata_only,
                "scope": {"adapter_ids": sorted(keys) if adapter_ids is not None else None, "tags": list(tags or [])},
                "counts": counts,
                "roots": collector.roots,
                "tags": [{"name": t.name, "created_at": t.created_at.isoformat()} for t in tag_rows],
                "adapters": items,
                "files": files,
                "sections": manifest_sections,
            }
            info = zipfile.ZipInfo(mf.MANIFEST_NAME, date_time=time.localtime()[:6])
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o100644 << 16
            zf.writestr(info, json.dumps(document, ensure_ascii=False, separators=(",", ":")))
        os.replace(tmp, out)
    except BaseException as exc:
        for future in crcs.values():
            future.cancel()
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ExportError(f"cannot write {out}: {exc.strerror or exc}") from exc
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    report("done", total_bytes, total_bytes)
    return ExportResult(out, out.stat().st_size, counts)


def default_export_path(metadata_only: bool) -> Path:
    folder = Path(settings.ARCHIVE_DIR) / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    return folder / f"lora-library-{stamp}{'-metadata' if metadata_only else ''}.zip"
