"""Backups: archives written on a schedule (RQ's scheduler) or on demand into BACKUP_DIR, pruned to BACKUP_KEEP.

A backup is an ordinary archive (metadata only unless weights are asked for), so restoring one is an
import with its dry-run plan; nothing here knows a second format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from archive import exporting

NAME_RE = re.compile(r"^lora-backup-\d{8}-\d{6}(-\d+)?(-full)?\.zip$")


@dataclass(frozen=True)
class Backup:
    name: str
    path: Path
    size: int
    created_at: datetime


def backup_dir() -> Path:
    folder = Path(settings.BACKUP_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def list_backups() -> list[Backup]:
    """Newest first. Only files named like our backups count (the folder may hold other things)."""
    found = []
    for path in backup_dir().iterdir():
        if NAME_RE.match(path.name) and path.is_file():
            st = path.stat()
            created = datetime.fromtimestamp(st.st_mtime, tz=timezone.get_current_timezone())
            found.append(Backup(path.name, path, st.st_size, created))
    return sorted(found, key=lambda b: (b.created_at, b.name), reverse=True)


def backup_path(name: str) -> Path | None:
    """The backup called ``name``, or None: names from URLs never reach the filesystem unchecked."""
    if not NAME_RE.match(name):
        return None
    path = backup_dir() / name
    return path if path.is_file() else None


def prune(keep: int | None = None) -> list[str]:
    keep = settings.BACKUP_KEEP if keep is None else keep
    removed = []
    for backup in list_backups()[keep:]:
        backup.path.unlink(missing_ok=True)
        removed.append(backup.name)
    return removed


def new_backup_path(weights: bool) -> Path:
    folder = backup_dir()
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
    suffix = "-full" if weights else ""
    path, n = folder / f"lora-backup-{stamp}{suffix}.zip", 1
    while path.exists():
        n += 1
        path = folder / f"lora-backup-{stamp}-{n}{suffix}.zip"
    return path


def backup_now(weights: bool = False, progress: exporting.Progress | None = None) -> exporting.ExportResult:
    """Write one backup (everything, history included) and prune the oldest beyond BACKUP_KEEP."""
    result = exporting.export_library(
        new_backup_path(weights), metadata_only=not weights, include_history=True, progress=progress
    )
    prune()
    return result
