"""Scanning library roots into the catalog, incrementally.

A file whose size and mtime (and those of its sidecars) are unchanged is skipped without being
opened, so a rescan of an unchanged library costs one directory listing. New and changed files are
read (header + sidecars only); a new file whose header fingerprint and size match a missing one is
the same LoRA moved or renamed and is relinked, keeping every edit. Files that vanished are marked
missing, never deleted; a root that cannot be reached marks its files offline instead.
Hashing is a separate phase (``adapters.identity``) so the catalog is usable before it finishes.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models.base import ModelState
from django.utils import timezone

from adapters import sanitize, sidecar_writing
from adapters.models import USER_SOURCE, Adapter, AdapterFile, AdapterStatus, FileStatus, LibraryRoot, Tag
from adapters.reading import SCANNED_FIELDS, FileRead, read_file, sidecar_signature
from adapters.thumbnails import store_embedded_preview
from lora_manager.bulk_sql import insert_returning_ids

log = logging.getLogger(__name__)
BATCH = 500
PARALLEL_READ_MIN = 400  # below this, starting processes costs more than it saves
READ_CHUNK = 64
MAX_RECORDED_ISSUES = 2000
UNSTORABLE_NAME = "skipped: the name is not valid UTF-8 (rename it to catalogue it)"

Progress = Callable[[str, int, int], None]


@dataclass
class ScanSummary:
    found: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    relinked: int = 0
    missing: int = 0
    offline: int = 0
    errors: int = 0
    hashed: int = 0
    postponed: int = 0
    issues: list[dict[str, str]] = field(default_factory=list)

    def add_issue(self, path: str, message: str) -> None:
        if len(self.issues) < MAX_RECORDED_ISSUES:  # paths from the disk may hold undecodable bytes
            self.issues.append({"path": sanitize.storable(path), "message": sanitize.storable(message)})

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if k != "issues"}


class KnownFile(NamedTuple):
    """What the catalog knows of a file, enough to tell it unchanged (model instances cost more than the rescan)."""

    pk: int
    path: str
    size: int
    mtime_ns: int
    sidecar_signature: str
    status: str
    adapter_id: int
    header_sha256: str


@dataclass
class FoundFile:
    path: str
    directory: str
    stem: str
    size: int
    mtime_ns: int
    dir_names: set[str]


def configured_roots() -> list[LibraryRoot]:
    for path in settings.LIBRARY_DIRS:
        LibraryRoot.objects.get_or_create(path=str(path))
    return list(LibraryRoot.objects.all())


def roots_for(paths: list[str] | None) -> list[LibraryRoot]:
    if not paths:
        return configured_roots()
    return [LibraryRoot.objects.get_or_create(path=str(Path(p).expanduser().resolve()))[0] for p in paths]


def walk(root: Path, summary: ScanSummary) -> Iterator[FoundFile]:
    """Every .safetensors file below root; symlinked folders followed once, loops reported."""
    seen_dirs: set[tuple[int, int]] = set()
    stack = [str(root)]
    while stack:
        directory = stack.pop()
        try:
            st = os.stat(directory)
        except OSError as exc:
            summary.add_issue(directory, f"cannot open folder: {exc.strerror or exc}")
            continue
        if (st.st_dev, st.st_ino) in seen_dirs:
            summary.add_issue(directory, "folder reached twice through a symlink loop; skipped the second time")
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except OSError as exc:
            summary.add_issue(directory, f"cannot list folder: {exc.strerror or exc}")
            continue
        names = {entry.name for entry in entries}
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            if sanitize.storable_problem(entry.path):
                summary.add_issue(entry.path, UNSTORABLE_NAME)
                summary.errors += 1
                continue
            try:
                if entry.is_dir():
                    stack.append(entry.path)
                    continue
                if not name.lower().endswith(".safetensors"):
                    continue
                stat = entry.stat()
            except OSError as exc:
                reason = "symlink loop" if exc.errno == errno.ELOOP else (exc.strerror or str(exc))
                summary.add_issue(entry.path, f"cannot read file: {reason}")
                summary.errors += 1
                continue
            yield FoundFile(entry.path, directory, name[: -len(".safetensors")], stat.st_size, stat.st_mtime_ns, names)


def _skip_own_writes(row: AdapterFile, found: FoundFile, read: FileRead) -> None:
    """Values LoRA Manager wrote to the A1111 ``<stem>.json`` itself are not read back as news (no loop)."""
    if not row.sidecar_written:
        return
    for name in sidecar_writing.already_applied(row, found.directory, found.dir_names):
        if read.sources.get(name) == "a1111_json":
            read.values.pop(name, None)
            read.sources.pop(name, None)


def _apply(adapter: Adapter, read: FileRead, size: int) -> None:
    """Copy scanned values onto an adapter, never over a value the user edited here."""
    adapter.size = size
    for key, value in read.values.items():
        if adapter.sources.get(key) == USER_SOURCE:
            continue
        setattr(adapter, key, value)
        adapter.sources[key] = read.sources[key]
    keeps_own = adapter.sources.get("preview") == USER_SOURCE
    if not read.error and read.preview_source and not keeps_own:
        if read.preview_source != "embedded" or not adapter.preview_source:
            adapter.preview_source = read.preview_source
            adapter.sources["preview"] = "embedded" if read.preview_source == "embedded" else "preview file"
    elif not read.error and not keeps_own and adapter.sources.get("preview") == "preview file":
        adapter.preview_source, adapter.preview_key = "", ""  # its preview file is gone or is not an image
        adapter.sources.pop("preview", None)
    kept = [i for i in adapter.issues or [] if str(i).startswith(sidecar_writing.ISSUE_PREFIX)]  # until fixed
    adapter.issues = [*read.issues, *kept]
    adapter.status = AdapterStatus.ERROR if read.error else AdapterStatus.OK


def new_instance_factory(model: type[models.Model]) -> Callable[..., models.Model]:
    """``model(**attnames)`` for rows the scan inserts, without Model.__init__'s per-field work: a
    first scan builds 20,000 instances, and the defaults' lookup was a fifth of its writing. Callable
    defaults (``list``, ``dict``) are called for each instance, as Model.__init__ does; the catalog's
    models have no pre_init/post_init receivers (tests/adapters/test_scan_writes.py checks both)."""
    fixed: dict[str, object] = {}
    called: list[tuple[str, Callable[[], object]]] = []
    for f in model._meta.concrete_fields:
        if f.generated:  # computed by the database; Model.__init__ leaves them unset too
            continue
        if f.has_default() and callable(f.default):
            called.append((f.attname, f.default))
        else:
            fixed[f.attname] = f.get_default()

    def make(**values: object) -> models.Model:
        obj = model.__new__(model)
        state = obj.__dict__
        state["_state"] = ModelState()
        state.update(fixed)
        for name, default in called:
            state[name] = default()
        state.update(values)
        return obj

    return make


_new_adapter = new_instance_factory(Adapter)
_new_file = new_instance_factory(AdapterFile)


def _add_tags(pairs: list[tuple[int, str]]) -> None:
    """Link tags to adapters; a raw INSERT ... ON CONFLICT DO NOTHING is 5x faster than bulk_create here."""
    if not pairs:
        return
    names = {name for _, name in pairs}
    Tag.objects.bulk_create([Tag(name=n) for n in names], ignore_conflicts=True)
    ids = dict(Tag.objects.filter(name__in=names).values_list("name", "id"))
    table = connection.ops.quote_name(Adapter.tags.through._meta.db_table)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} (adapter_id, tag_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",  # noqa: S608
            [(adapter_id, ids[name]) for adapter_id, name in set(pairs)],
        )


class _Writer:
    """Collects reads of one root and writes them in batches, relinking moved files."""

    def __init__(
        self,
        root: LibraryRoot,
        summary: ScanSummary,
        existing: dict[str, KnownFile],
        vanished: dict[int, KnownFile],
    ) -> None:
        self.root, self.summary, self.existing, self.vanished = root, summary, existing, vanished
        self.pending: list[tuple[FoundFile, FileRead, str]] = []
        self.relinked: set[int] = set()

    def add(self, found: FoundFile, read: FileRead, signature: str) -> None:
        self.pending.append((found, read, signature))
        if read.error:
            self.summary.errors += 1
        for issue in read.issues:
            self.summary.add_issue(found.path, issue)
        if len(self.pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending = self.pending, []
        now = timezone.now()
        with transaction.atomic():
            changed = [(f, r, s) for f, r, s in batch if f.path in self.existing]
            new = [(f, r, s) for f, r, s in batch if f.path not in self.existing]
            relink = self._relink_candidates(new)
            tag_pairs: list[tuple[int, str]] = []
            files_to_update: list[AdapterFile] = []
            wanted = {self.existing[f.path].adapter_id for f, _, _ in changed} | {r.adapter_id for r in relink.values()}
            adapters_to_update: dict[int, Adapter] = {}
            known = Adapter.objects.in_bulk(wanted)
            rows = AdapterFile.objects.in_bulk([self.existing[f.path].pk for f, _, _ in changed])
            for found, read, signature in changed:
                row = rows[self.existing[found.path].pk]
                adapter = known[row.adapter_id]
                _skip_own_writes(row, found, read)
                self._refresh_row(row, found, read, signature, now)
                _apply(adapter, read, found.size)
                adapters_to_update[adapter.pk] = adapter
                files_to_update.append(row)
                tag_pairs += [(adapter.pk, t) for t in read.tags]
                self.summary.updated += 1
            created: list[tuple[Adapter, FoundFile, FileRead, str]] = []
            for found, read, signature in new:
                row = relink.pop((read.header_sha256, found.size), None) if read.header_sha256 else None
                if row is not None:
                    adapter = known[row.adapter_id]
                    self.relinked.add(row.pk)
                    row.path, row.root = found.path, self.root
                    self._refresh_row(row, found, read, signature, now)
                    _apply(adapter, read, found.size)
                    adapters_to_update[adapter.pk] = adapter
                    files_to_update.append(row)
                    tag_pairs += [(adapter.pk, t) for t in read.tags]
                    self.summary.relinked += 1
                    continue
                adapter = _new_adapter()
                _apply(adapter, read, found.size)
                created.append((adapter, found, read, signature))
            if adapters_to_update:
                fields = [
                    *SCANNED_FIELDS,
                    "size",
                    "sources",
                    "issues",
                    "status",
                    "preview_source",
                    "preview_key",
                    "updated_at",
                ]
                for adapter in adapters_to_update.values():
                    adapter.updated_at = now
                Adapter.objects.bulk_update(list(adapters_to_update.values()), fields, batch_size=BATCH)
            if files_to_update:
                AdapterFile.objects.bulk_update(
                    files_to_update,
                    [
                        "path",
                        "root",
                        "size",
                        "mtime_ns",
                        "data_offset",
                        "header_sha256",
                        "sidecar_signature",
                        "status",
                        "issues",
                        "last_seen_at",
                    ],
                    batch_size=BATCH,
                )
            if created:
                insert_returning_ids(Adapter, [c[0] for c in created])
                insert_returning_ids(
                    AdapterFile,
                    [
                        _new_file(
                            adapter_id=adapter.pk,
                            root_id=self.root.pk,
                            path=found.path,
                            size=found.size,
                            mtime_ns=found.mtime_ns,
                            data_offset=read.data_offset,
                            header_sha256=read.header_sha256,
                            sidecar_signature=signature,
                            issues=read.issues,
                            last_seen_at=now,
                        )
                        for adapter, found, read, signature in created
                    ],
                )
                for adapter, _, read, _ in created:
                    tag_pairs += [(adapter.pk, t) for t in read.tags]
                self.summary.added += len(created)
            _add_tags(tag_pairs)
        for adapter, _, read, _ in created:
            if read.embedded_preview:
                store_embedded_preview(adapter, read.embedded_preview)

    def _relink_candidates(self, new: list[tuple[FoundFile, FileRead, str]]) -> dict[tuple[str, int], AdapterFile]:
        """Files not where they were (missing before, or vanished in this scan) that a new file may be."""
        fingerprints = {r.header_sha256 for _, r, _ in new if r.header_sha256}
        if not fingerprints:
            return {}
        rows = list(AdapterFile.objects.filter(header_sha256__in=fingerprints).exclude(status=FileStatus.PRESENT))
        moved = [k.pk for k in self.vanished.values() if k.header_sha256 in fingerprints and k.pk not in self.relinked]
        if moved:
            rows += AdapterFile.objects.filter(pk__in=moved)
        return {(row.header_sha256, row.size): row for row in rows}

    @staticmethod
    def _refresh_row(row: AdapterFile, found: FoundFile, read: FileRead, signature: str, now) -> None:
        row.size, row.mtime_ns = found.size, found.mtime_ns
        row.data_offset, row.header_sha256 = read.data_offset, read.header_sha256
        row.sidecar_signature, row.status, row.issues, row.last_seen_at = (
            signature,
            FileStatus.PRESENT,
            read.issues,
            now,
        )


def _read_chunk(names: set[str], items: list[tuple[str, int]]) -> list[FileRead]:
    return [read_file(path, size, names) for path, size in items]


def read_all(to_read: list[tuple[FoundFile, str]]) -> Iterator[FileRead]:
    """Reads in file order; big batches go to forked reader processes while this one writes.

    Parsing headers and sidecars is pure CPU in Python, so on two cores reading in other processes
    while the main one writes to the database nearly halves a first scan. Chunks stay within one
    directory so its listing is sent once per chunk, not once per file.
    """
    workers = settings.SCAN_READ_PROCESSES
    if workers < 2 or len(to_read) < PARALLEL_READ_MIN:
        for found, _ in to_read:
            yield read_file(found.path, found.size, found.dir_names)
        return
    chunks: list[tuple[set[str], list[tuple[str, int]]]] = []
    for found, _ in to_read:
        if not chunks or chunks[-1][0] is not found.dir_names or len(chunks[-1][1]) >= READ_CHUNK:
            chunks.append((found.dir_names, []))
        chunks[-1][1].append((found.path, found.size))
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        for reads in pool.map(_read_chunk, *zip(*chunks, strict=True)):
            yield from reads


def scan_root(root: LibraryRoot, summary: ScanSummary, progress: Progress | None = None) -> set[int]:
    """Scan one root; returns the ids of adapters whose status may have changed."""
    path = Path(root.path)
    affected: set[int] = set()
    if not path.is_dir() or not os.access(path, os.R_OK | os.X_OK):
        gone = AdapterFile.objects.filter(root=root, status=FileStatus.PRESENT)
        affected.update(gone.values_list("adapter_id", flat=True))
        summary.offline += gone.update(status=FileStatus.OFFLINE)
        summary.add_issue(
            root.path, "library folder is unreachable (unmounted or removed): its files are marked offline"
        )
        LibraryRoot.objects.filter(pk=root.pk).update(online=False)
        return affected
    known = AdapterFile.objects.filter(root=root).values_list(*KnownFile._fields)
    existing = {row.path: row for row in map(KnownFile._make, known)}
    to_read: list[tuple[FoundFile, str]] = []
    seen: set[str] = set()
    back_online: list[int] = []
    for found in walk(path, summary):
        summary.found += 1
        seen.add(found.path)
        signature = sidecar_signature(found.directory, found.stem, found.dir_names)
        row = existing.get(found.path)
        if row is not None and (row.size, row.mtime_ns, row.sidecar_signature) == (
            found.size,
            found.mtime_ns,
            signature,
        ):
            summary.unchanged += 1
            if row.status != FileStatus.PRESENT:
                back_online.append(row.pk)
                affected.add(row.adapter_id)
        else:
            to_read.append((found, signature))
    vanished = {row.pk: row for p, row in existing.items() if p not in seen}
    writer = _Writer(root, summary, existing, vanished)
    for done, ((found, signature), read) in enumerate(zip(to_read, read_all(to_read), strict=True), 1):
        writer.add(found, read, signature)
        if progress:  # the run reporter throttles what it writes and announces
            progress("reading", done, len(to_read))
    writer.flush()
    if progress:
        progress("reading", len(to_read), len(to_read))
    if back_online:
        AdapterFile.objects.filter(pk__in=back_online).update(status=FileStatus.PRESENT)
    gone = [row for pk, row in vanished.items() if pk not in writer.relinked and row.status != FileStatus.MISSING]
    if gone:
        AdapterFile.objects.filter(pk__in=[r.pk for r in gone]).update(status=FileStatus.MISSING)
        affected.update(r.adapter_id for r in gone)
        summary.missing += len(gone)
    LibraryRoot.objects.filter(pk=root.pk).update(online=True, last_scan_at=timezone.now())
    return affected


def refresh_statuses(adapter_ids: set[int]) -> None:
    """An adapter is ok while any file is present; offline if its files are on an unreachable root."""
    ids = list(adapter_ids)
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        present = set(
            AdapterFile.objects.filter(adapter_id__in=chunk, status=FileStatus.PRESENT).values_list(
                "adapter_id", flat=True
            )
        )
        offline = (
            set(
                AdapterFile.objects.filter(adapter_id__in=chunk, status=FileStatus.OFFLINE).values_list(
                    "adapter_id", flat=True
                )
            )
            - present
        )
        missing = set(chunk) - present - offline
        Adapter.objects.filter(pk__in=present, status__in=[AdapterStatus.MISSING, AdapterStatus.OFFLINE]).update(
            status=AdapterStatus.OK
        )
        Adapter.objects.filter(pk__in=offline).update(status=AdapterStatus.OFFLINE)
        Adapter.objects.filter(pk__in=missing).update(status=AdapterStatus.MISSING)


def scan(paths: list[str] | None = None, progress: Progress | None = None) -> ScanSummary:
    """Read every root (or the given folders) into the catalog. Hashing is ``identity.hash_pending``."""
    summary = ScanSummary()
    affected: set[int] = set()
    for root in roots_for(paths):
        affected |= scan_root(root, summary, progress)
    refresh_statuses(affected)
    return summary
