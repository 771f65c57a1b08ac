"""Importing an archive: check everything, stage and verify the files, then change the DB and library.

Order (docs/archive.md, "Safety"): inspect the ZIP and manifest → plan → free-space check → unpack
every needed file into hidden staging folders while verifying sizes and sha256 of *every* file →
one database transaction that applies the plan and, inside it, moves the staged files into place
with ``os.link`` (which never replaces an existing file). Any failure removes what was moved and
rolls the transaction back: the database and the library are exactly as before.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction

from adapters.models import Adapter, AdapterFile, AdapterStatus, FileStatus, LibraryRoot, Tag
from archive import checking, planning, sections
from archive import manifest as mf
from archive.checking import ArchiveRefused
from archive.planning import Plan

Progress = Callable[[str, int, int], None]
TEXT_FIELDS = ("notes", "description", "activation_text", "negative_text")
LIST_FIELDS = ("trigger_words",)
BATCH = 500
STAGING_PREFIX = ".lora-manager-import-"


@dataclass
class ImportResult:
    plan: Plan
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class _Move:
    staged: Path
    dest: Path
    mtime_ns: int | None
    size: int = 0


class _Files:
    """Staging folders (one per destination filesystem) and the moves into place, undoable."""

    def __init__(self, inspected: checking.Inspected, token: str):
        self.files = inspected.files
        self.token = token
        self.wanted: dict[str, Path] = {}
        self.staging_dirs: set[Path] = set()
        self.moves: list[_Move] = []
        self.placed: list[Path] = []

    def want(self, archive_path: str, dest_folder: Path) -> None:
        staging = dest_folder / f"{STAGING_PREFIX}{self.token}"
        self.staging_dirs.add(staging)
        self.wanted.setdefault(archive_path, staging / archive_path)

    def needs(self) -> dict[Path, int]:
        sizes: dict[Path, int] = {}
        for archive_path, staged in self.wanted.items():
            folder = staged.parent
            while folder.name and not folder.name.startswith(STAGING_PREFIX):
                folder = folder.parent
            sizes[folder.parent] = sizes.get(folder.parent, 0) + self.files[archive_path]["size"]
        return sizes

    def move(self, archive_path: str, dest: Path) -> None:
        if any(m.dest == dest for m in self.moves):
            return
        entry = self.files[archive_path]
        self.moves.append(_Move(self.wanted[archive_path], dest, entry.get("mtime_ns"), entry.get("size", 0)))

    def commit(self) -> None:
        for move in self.moves:
            move.dest.parent.mkdir(parents=True, exist_ok=True)
            if move.mtime_ns:
                os.utime(move.staged, ns=(move.mtime_ns, move.mtime_ns))
            try:
                os.link(move.staged, move.dest)  # FileExistsError rather than replacing anything
            except PermissionError:  # filesystems without hard links
                if move.dest.exists():
                    raise FileExistsError(17, "File exists", str(move.dest)) from None
                os.rename(move.staged, move.dest)
            self.placed.append(move.dest)

    def undo(self) -> None:
        for path in self.placed:
            path.unlink(missing_ok=True)

    def cleanup(self) -> None:
        for folder in self.staging_dirs:
            shutil.rmtree(folder, ignore_errors=True)


def _same_file(path: Path, size: int, sha256: str) -> bool:
    if path.stat().st_size != size:
        return False
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest() == sha256


def _place_adapter_files(item: dict, targets: list[Path], files: _Files, taken: set[str]) -> list[tuple[dict, Path]]:
    """Destination of each archived weights file (and its companions) of one adapter.

    A path held by a different file, or by another adapter's row, gets the content's short hash added
    to the stem (companions follow, so sidecars still belong to it); an identical file is reused.
    """
    placed = []
    for file in item["files"]:
        dest = targets[file["root"]] / file["rel_path"]
        weights = file.get("archive_path")
        if weights:
            entry = files.files[weights]
            busy = str(dest) in taken or (dest.exists() and not _same_file(dest, entry["size"], entry["sha256"]))
            stem = dest.name[: -len(".safetensors")] if dest.name.endswith(".safetensors") else dest.stem
            new_stem = f"{stem}-{entry['sha256'][:8]}" if busy else stem
            dest = dest.with_name(new_stem + dest.name[len(stem) :])
            if not dest.exists():
                files.move(weights, dest)
            for companion in file.get("companions", []):
                name = companion.rsplit("/", 1)[-1]
                cdest = dest.parent / (new_stem + name[len(stem) :] if name.startswith(stem) else name)
                if not cdest.exists():  # never overwrite a sidecar that is already there
                    files.move(companion, cdest)
        taken.add(str(dest))
        placed.append((file, dest))
    return placed


def _file_row(adapter_id: int, root: LibraryRoot, file: dict, dest: Path, archived: bool) -> AdapterFile:
    values = mf.load_fields(AdapterFile, file, mf.FILE_FIELDS)
    row = AdapterFile(adapter_id=adapter_id, root=root, path=str(dest), **values)
    if archived:
        row.status = FileStatus.PRESENT
        return row
    try:
        st = dest.stat()
    except OSError:
        row.status = FileStatus.MISSING
        return row
    row.status = FileStatus.PRESENT
    if (st.st_size, st.st_mtime_ns) != (row.size, row.mtime_ns):  # not provably the same bytes: hash again
        row.size, row.mtime_ns = st.st_size, st.st_mtime_ns
        row.sha256, row.hashed_size, row.hashed_mtime_ns, row.sidecar_signature = "", None, None, ""
    return row


def merge(
    local: Adapter, values: dict, sources: dict, plan: planning.AdapterPlan, on_conflict: str, tags: tuple
) -> set[str]:
    """Apply one matched adapter's archive values as ``on_conflict`` says; returns the tag names to set."""
    local_tags, archive_tags = tags
    if on_conflict == "skip" or plan.outcome == "identical":
        return local_tags
    for name in plan.differences:
        if name == "tags":
            continue
        theirs = values[name]
        if name in plan.conflicts and on_conflict == "keep-both":
            mine = getattr(local, name)
            if name in LIST_FIELDS:
                theirs = [*mine, *(v for v in theirs if v not in mine)]
            elif name in TEXT_FIELDS and mine and theirs and theirs not in mine:
                theirs = f"{mine}\n\n{theirs}"
            else:
                continue  # a single value: ours stays (the plan shows theirs)
        else:
            key = "preview" if name == "preview_source" else name
            if key in sources:
                local.sources[key] = sources[key]
            else:
                local.sources.pop(key, None)
            if name == "preview_source":
                local.preview_key = values.get("preview_key", "")
        setattr(local, name, theirs)
    local.usage_count = max(local.usage_count, values.get("usage_count") or 0)
    if values.get("last_used_at") and (local.last_used_at is None or values["last_used_at"] > local.last_used_at):
        local.last_used_at = values["last_used_at"]
    local.save()
    return archive_tags if on_conflict == "update" else local_tags | archive_tags


def _restamp(rows: list[tuple]) -> None:
    """Give created rows the archive's created/updated times (auto_now fields set "now" on insert).
    One executemany instead of ``bulk_update``, whose CASE expressions cost seconds at 10,000 rows."""
    adapt = connection.ops.adapt_datetimefield_value
    table = connection.ops.quote_name(Adapter._meta.db_table)
    with connection.cursor() as cursor:
        cursor.executemany(
            f"UPDATE {table} SET created_at = %s, updated_at = %s WHERE id = %s",  # noqa: S608 - our own table name
            [(adapt(created), adapt(updated), pk) for created, updated, pk in rows],
        )


def _apply(inspected: checking.Inspected, plan: Plan, files: _Files, report: Progress) -> dict[str, int]:
    manifest = inspected.manifest
    roots, targets = manifest["roots"], [Path(t) for t in plan.targets]
    root_rows = [LibraryRoot.objects.get_or_create(path=str(t))[0] for t in targets]
    items = {item["key"]: item for item in manifest["adapters"]}
    tag_created = {t["name"]: t.get("created_at") for t in manifest["tags"]}
    all_tags = set(tag_created) | {t for item in items.values() for t in item.get("tags", [])}
    existing_tags = dict(Tag.objects.filter(name__in=all_tags).values_list("name", "pk"))
    for name in sorted(all_tags - set(existing_tags)):
        tag = Tag.objects.create(name=name)
        if tag_created.get(name):
            sections._stamp(Tag, tag.pk, {"created_at": tag_created[name]})
        existing_tags[name] = tag.pk
    taken = set(AdapterFile.objects.values_list("path", flat=True))
    counts = dict.fromkeys(("created", "updated", "unchanged", "files_written", "bytes_written"), 0)
    key_to_id = {p.key: p.local_id for p in plan.adapters}
    new_plans = [p for p in plan.adapters if p.outcome == "new"]
    tag_links: list = []
    file_rows: list[AdapterFile] = []
    through = Adapter.tags.through
    for start in range(0, len(new_plans), BATCH):
        chunk = new_plans[start : start + BATCH]
        values = [planning.incoming_values(items[p.key], roots, targets) for p in chunk]
        objs = [Adapter(**v) for v in values]
        Adapter.objects.bulk_create(objs)
        stamps = []
        for p, obj, v in zip(chunk, objs, values, strict=True):
            stamps.append((v.get("created_at") or obj.created_at, v.get("updated_at") or obj.updated_at, obj.pk))
            key_to_id[p.key] = obj.pk
            tag_links += [through(adapter_id=obj.pk, tag_id=existing_tags[t]) for t in items[p.key].get("tags", [])]
            for file, dest in _place_adapter_files(items[p.key], targets, files, taken):
                file_rows.append(_file_row(obj.pk, root_rows[file["root"]], file, dest, bool(file.get("archive_path"))))
        _restamp(stamps)
        counts["created"] += len(chunk)
        report("importing", counts["created"], len(plan.adapters))
    merging = plan.on_conflict != "skip"
    matched = [p for p in plan.adapters if p.outcome != "new"]
    changed = [p for p in matched if p.restore_files or (merging and p.outcome in ("updated", "conflicting"))]
    counts["unchanged"] = len(matched) - len(changed)  # identical (or skipped) adapters are not even loaded
    locals_ = Adapter.objects.in_bulk([p.local_id for p in changed])
    for p in changed:
        item, local = items[p.key], locals_[p.local_id]
        local_tags = set(local.tags.values_list("name", flat=True))
        values = planning.incoming_values(item, roots, targets)
        wanted_tags = merge(
            local,
            values,
            item["fields"].get("sources") or {},
            p,
            plan.on_conflict,
            (local_tags, set(item.get("tags", []))),
        )
        if wanted_tags != local_tags:
            local.tags.set([existing_tags[t] for t in wanted_tags])
        counts[
            "updated" if plan.on_conflict != "skip" and p.outcome in ("updated", "conflicting") else "unchanged"
        ] += 1
        if p.restore_files:
            AdapterFile.objects.filter(adapter_id=local.pk, status__in=[FileStatus.MISSING]).filter(
                path__in=[str(targets[f["root"]] / f["rel_path"]) for f in item["files"]]
            ).delete()
            taken = set(AdapterFile.objects.values_list("path", flat=True))
            for file, dest in _place_adapter_files(item, targets, files, taken):
                if file.get("archive_path"):
                    file_rows.append(_file_row(local.pk, root_rows[file["root"]], file, dest, True))
            Adapter.objects.filter(pk=local.pk).update(status=AdapterStatus.OK)
    through.objects.bulk_create(tag_links, batch_size=BATCH)
    AdapterFile.objects.bulk_create(file_rows, batch_size=BATCH)
    for entry in manifest["files"]:
        if entry["kind"] == "thumbnail":
            dest = planning.thumbnail_destination(entry["path"])
            if not dest.exists():
                files.move(entry["path"], dest)
    resolve = planning.make_resolver(manifest, key_to_id, planning.Matcher())
    section_items = {name: s["items"] for name, s in manifest.get("sections", {}).items()}
    sections.import_presets(section_items.get("presets", []), plan.on_conflict, apply=True)
    feedback = section_items.get("feedback", [])
    sections.import_feedback(feedback, resolve, plan.on_conflict, apply=True)
    sections.create_new_feedback(feedback, resolve, {key_to_id[p.key] for p in new_plans})
    if "history" in section_items:
        media = Path(settings.MEDIA_ROOT)
        sections.import_history(
            section_items["history"], resolve, apply=True, place=lambda src, rel: files.move(src, media / rel)
        )
    counts["files_written"] = len(files.moves)
    counts["bytes_written"] = sum(move.size for move in files.moves)
    return counts


def _want_files(inspected: checking.Inspected, plan: Plan, files: _Files) -> None:
    items = {item["key"]: item for item in inspected.manifest["adapters"]}
    for p in plan.adapters:
        if not p.restore_files:
            continue
        for file in items[p.key]["files"]:
            for ref in planning._file_refs(file):
                files.want(ref, Path(plan.targets[file["root"]]))
    for entry in inspected.manifest["files"]:
        if entry["kind"] == "thumbnail":
            files.want(entry["path"], Path(settings.THUMBNAIL_DIR))
        elif entry["kind"] == "image" and "history" in plan.sections:
            files.want(entry["path"], Path(settings.MEDIA_ROOT))


def import_archive(
    path: str | Path,
    on_conflict: str = "skip",
    library_dir: str | Path | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
    max_size: int | None = None,
) -> ImportResult:
    """Check (always completely) and, unless ``dry_run``, import. Raises ArchiveRefused listing every problem."""
    report = progress or (lambda phase, done, total: None)
    report("checking", 0, 0)
    inspected = checking.inspect(path, max_size)
    try:
        plan = planning.make_plan(inspected.manifest, on_conflict, library_dir)
    except planning.PlanError as exc:
        raise ArchiveRefused([str(exc)]) from None
    plan.warnings += inspected.warnings
    files = _Files(inspected, uuid.uuid4().hex[:12])
    if not dry_run:
        _want_files(inspected, plan, files)
        problems = checking.check_free_space(files.needs())
        if problems:
            raise ArchiveRefused(problems)
    try:
        checking.stage(inspected, files.wanted, report)
        if dry_run:
            return ImportResult(plan)
        try:
            with transaction.atomic():
                counts = _apply(inspected, plan, files, report)
                report("moving", 0, len(files.moves))
                files.commit()
        except OSError as exc:
            files.undo()
            raise ArchiveRefused(
                [f"cannot write {exc.filename or 'a file'} into place: {exc.strerror or exc}"]
            ) from exc
        except (IntegrityError, DatabaseError, KeyError, TypeError, ValueError) as exc:
            files.undo()
            raise ArchiveRefused([f"the database refused the archive's data: {exc}"]) from exc
        except BaseException:
            files.undo()
            raise
    finally:
        files.cleanup()
    report("done", 1, 1)
    return ImportResult(plan, counts)
