"""Archive work as tracked runs: the row users watch, the job that executes it, progress as it goes.

Views, the admin action, the scheduler and the commands share the domain functions (``exporting``,
``importing``, ``backups``); this module only wraps them in a row with progress and a clear outcome.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from adapters.signals import send_catalog_changed
from archive import backups, exporting, importing
from archive.checking import ArchiveRefused
from archive.models import ArchiveRun
from lora_manager import realtime
from lora_manager.runs import tracked

Status = ArchiveRun.Status


def _start(kind: str, user=None, **fields) -> ArchiveRun:
    return tracked.start(ArchiveRun, kind=kind, requested_by=user, **fields)


def start_export(
    user=None,
    adapter_ids: list[int] | None = None,
    tags: list[str] | None = None,
    metadata_only: bool = False,
    include_history: bool = False,
    scope: str = "all",
) -> ArchiveRun:
    options = {
        "scope": scope,
        "adapter_ids": adapter_ids,
        "tags": tags or [],
        "metadata_only": metadata_only,
        "include_history": include_history,
    }
    return _start("export", user, options=options)


def start_backup(user=None, weights: bool | None = None) -> ArchiveRun:
    return _start("backup", user, options={"weights": settings.BACKUP_WEIGHTS if weights is None else weights})


def start_check(
    path: Path, user=None, original_name: str = "", on_conflict: str = "skip", upload: bool = True
) -> ArchiveRun:
    options = {"on_conflict": on_conflict, "upload": upload}
    return _start("check", user, path=str(path), original_name=original_name, size=path.stat().st_size, options=options)


def start_import(check: ArchiveRun, on_conflict: str, user=None) -> ArchiveRun:
    options = {**check.options, "on_conflict": on_conflict, "check_id": check.pk}
    return _start("import", user, path=check.path, original_name=check.original_name, size=check.size, options=options)


def execute(run: ArchiveRun) -> ArchiveRun:
    """Run the row's work; the row ends SUCCEEDED/READY or FAILED with every problem listed."""
    return tracked.execute(run, _refusing)


def _refusing(run: ArchiveRun, reporter: realtime.RunReporter) -> None:
    """An archive refused (bad manifest, checksum, path, size) fails the row without raising: nothing changed."""
    try:
        _work(run, reporter)
    except (ArchiveRefused, exporting.ExportError) as exc:
        problems = getattr(exc, "problems", [str(exc)])
        run.status, run.problems = Status.FAILED, problems
        plural = "s" * (len(problems) != 1)
        run.message = f"{run.get_kind_display()} refused: {len(problems)} problem{plural}; nothing was changed"


def _work(run: ArchiveRun, reporter: realtime.RunReporter) -> None:
    options = run.options
    if run.kind in (ArchiveRun.Kind.EXPORT, ArchiveRun.Kind.BACKUP):
        if run.kind == ArchiveRun.Kind.BACKUP:
            result = backups.backup_now(weights=options.get("weights", False), progress=reporter)
        else:
            result = exporting.export_library(
                exporting.default_export_path(options.get("metadata_only", False)),
                adapter_ids=options.get("adapter_ids"),
                tags=options.get("tags"),
                metadata_only=options.get("metadata_only", False),
                include_history=options.get("include_history", False),
                progress=reporter,
                history_user=run.requested_by,  # someone else's private results never leave in an export
            )
        run.path, run.size, run.result = str(result.path), result.size, result.counts
        run.status, run.message = Status.SUCCEEDED, f"wrote {result.path.name}"
        return
    dry_run = run.kind == ArchiveRun.Kind.CHECK
    result = importing.import_archive(
        run.path,
        on_conflict=options.get("on_conflict", "skip"),
        dry_run=dry_run,
        progress=reporter,
        max_size=settings.ARCHIVE_MAX_UPLOAD_BYTES if options.get("upload") else None,
    )
    run.plan = result.plan.as_dict()
    if dry_run:
        run.status, run.message = Status.READY, "checked: every file verified; confirm to import"
        return
    run.result = result.counts
    run.status, run.message = Status.SUCCEEDED, "imported"
    if options.get("upload"):
        Path(run.path).unlink(missing_ok=True)  # the upload has served its purpose
    send_catalog_changed("import")
