"""RQ jobs of the archive app. They take ids and call the domain functions (through ``runs.execute``)."""

from __future__ import annotations

from archive import runs
from archive.models import ArchiveRun
from lora_manager.runs.jobs import tracked


@tracked
def archive_job(run_id: int) -> dict:
    """Export, backup, import check or import: the row's kind says which."""
    run = runs.execute(ArchiveRun.objects.get(pk=run_id))
    return {"status": run.status, "message": run.message}


export_job = backup_job = check_job = import_job = archive_job  # jobs queued before the upgrade
