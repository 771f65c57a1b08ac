"""Backups: on demand (command, page), on RQ's scheduler, pruned, listed, restored through the plan."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import django_rq
import pytest
from django.core.management import call_command
from django.test import Client
from rq.job import Job
from rq.scheduler import RQScheduler

from adapters.models import Adapter
from archive import backups
from archive.models import ArchiveRun
from lora_manager.runs import periodic
from tests.archive.conftest import build_library, snapshot


@pytest.mark.django_db
def test_backup_now_writes_a_metadata_backup_and_prunes_old_ones(places, settings, capsys):
    build_library(places)
    settings.BACKUP_KEEP = 2
    for _ in range(3):
        call_command("backup_now")
    listed = backups.list_backups()
    assert len(listed) == 2 and "backup written" in capsys.readouterr().out
    with zipfile.ZipFile(listed[0].path) as zf:
        names = zf.namelist()
    assert "manifest.json" in names and not [n for n in names if n.endswith(".safetensors")]
    (Path(settings.BACKUP_DIR) / "notes.txt").write_text("not a backup")
    backups.prune(1)
    assert len(backups.list_backups()) == 1 and (Path(settings.BACKUP_DIR) / "notes.txt").exists()


@pytest.mark.django_db
def test_scheduled_backup_runs_on_rqs_scheduler_and_reschedules(
    places, settings, redis_conn, run_worker, django_capture_on_commit_callbacks
):
    build_library(places)
    settings.BACKUP_INTERVAL_HOURS = 6
    backup = periodic.find("backup")
    assert periodic.schedule(backup) is True
    assert periodic.schedule(backup) is False  # one schedule, not one per worker start
    queue = django_rq.get_queue("default")
    (job_id,) = periodic.scheduled_ids(backup)
    registry = queue.scheduled_job_registry
    registry.schedule(Job.fetch(job_id, connection=redis_conn), datetime.now(UTC) - timedelta(seconds=1))
    scheduler = RQScheduler([queue], connection=redis_conn)
    assert scheduler.acquire_locks()
    scheduler.enqueue_scheduled_jobs()  # the job is due: RQ's scheduler moves it to the queue
    scheduler.release_locks()
    with django_capture_on_commit_callbacks(execute=True):
        run_worker("default")  # the periodic job queues the backup run ...
    run_worker("default")  # ... which the worker then executes
    run = ArchiveRun.objects.get(kind="backup")
    assert run.status == "succeeded" and Path(run.path).parent == Path(settings.BACKUP_DIR)
    assert len(backups.list_backups()) == 1
    assert periodic.scheduled_ids(backup) and periodic.scheduled_ids(backup) != [job_id]
    settings.BACKUP_INTERVAL_HOURS = 0
    redis_conn.flushdb()
    assert periodic.schedule(backup) is False


@pytest.mark.django_db
def test_page_lists_backups_downloads_and_restores_through_the_plan(
    editor_client, editor, admin_user, places, run_worker, django_capture_on_commit_callbacks
):
    lib = build_library(places, user=editor)
    backup = backups.backup_now()
    before = snapshot()
    page = editor_client.get("/archive/").content.decode()
    assert backup.path.name in page and 'id="backup-list"' in page
    # A backup holds every user's results, private ones included: only admins download it (issue 14).
    assert editor_client.get(f"/archive/backups/{backup.path.name}").status_code == 403
    admin_client = Client()
    admin_client.force_login(admin_user)
    download = admin_client.get(f"/archive/backups/{backup.path.name}")
    assert b"".join(download.streaming_content) == backup.path.read_bytes()
    assert editor_client.get("/archive/backups/..%2Fsecret.zip").status_code == 404
    Adapter.objects.filter(pk=lib["zelda"].pk).update(notes="changed after the backup")
    with django_capture_on_commit_callbacks(execute=True):
        editor_client.post(f"/archive/backups/{backup.path.name}/restore/")
    run_worker("default")
    check = ArchiveRun.objects.get(kind="check")
    assert check.status == "ready" and check.plan["counts"] == {
        "new": 0,
        "identical": 3,
        "updated": 0,
        "conflicting": 1,
    }
    with django_capture_on_commit_callbacks(execute=True):
        editor_client.post(f"/archive/runs/{check.pk}/import/", {"on_conflict": "update"})
    run_worker("default")
    after = snapshot()["adapters"]
    for adapter in (*after.values(), *before["adapters"].values()):
        adapter["fields"].pop("updated_at")  # the restored adapter was saved just now
    assert after == before["adapters"]
    assert backup.path.exists()  # restoring never deletes the backup


@pytest.mark.django_db
def test_admin_action_exports_the_selected_adapters(
    admin_user, client, places, run_worker, django_capture_on_commit_callbacks
):
    lib = build_library(places, user=admin_user)
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/adapters/adapter/",
            {"action": "export_selected", "_selected_action": [lib["zelda"].pk, lib["flux"].pk]},
        )
    run = ArchiveRun.objects.get()
    assert response["Location"] == f"/archive/runs/{run.pk}/" and run.options["adapter_ids"] == sorted(
        [lib["zelda"].pk, lib["flux"].pk]
    )
    run_worker("default")
    run.refresh_from_db()
    assert run.status == "succeeded" and run.result["adapters"] == 2
