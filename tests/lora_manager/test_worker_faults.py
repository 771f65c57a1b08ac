"""Faults with real processes: a forking ``run_worker`` subprocess against the test database and Redis,
work-horses and whole workers killed with SIGKILL mid-run, the janitor on RQ's scheduler, /readyz.

The worker is ``tests/standins/held_worker.py``: the real command, plus a hold file that pauses a run
at its first progress report (so the kill lands mid-run) and a file with each work-horse's pid.
"""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from adapters import scan_runs
from adapters.models import Adapter, ScanRun
from archive import runs as archive_runs
from archive.models import ArchiveRun
from lora_manager.runs import periodic, tracked
from recommendations import embedding_runs
from recommendations.models import EmbeddingRun
from tests.adapters.conftest import lora
from tests.recommendations.conftest import make_adapter
from tests.standins.held_worker import HeldWorker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def row(model, pk: int):
    return model.objects.get(pk=pk)


def kill_horse_mid_run(worker: HeldWorker, model, run) -> None:
    """Wait until the run is RUNNING and held at a progress report, then SIGKILL its work-horse only."""
    horse = worker.horse_pid(run.rq_job_id)
    wait_for(f"{run} to report progress", lambda: row(model, run.pk).phase, worker=worker)
    assert row(model, run.pk).status == model.Status.RUNNING
    os.kill(horse, signal.SIGKILL)


def test_a_work_horse_killed_mid_scan_fails_the_scan_and_the_next_scan_runs(start_worker, tmp_path, editor_client):
    root = tmp_path / "Lora"
    for i in range(3):
        lora(root, f"m{i}.safetensors", seed=i)
    worker = start_worker("default", LORA_MANAGER_LIBRARY_DIRS=str(root))
    worker.hold()
    first = scan_runs.start_scan()
    kill_horse_mid_run(worker, ScanRun, first)
    failed = wait_for("the scan to fail", lambda: row(ScanRun, first.pk).status == "failed" and row(ScanRun, first.pk))
    assert "was killed (SIGKILL" in failed.message and "start a new scan" in failed.message, failed.message
    assert worker.process.poll() is None  # the worker itself lives on
    page = editor_client.get(f"/library/scans/{first.pk}/").content.decode()
    assert "Failed" in page and "was killed (SIGKILL" in page  # what the person watching sees

    worker.release()
    second = scan_runs.start_scan()  # not the dead one: a new scan starts at once
    assert second.pk != first.pk and second.status == ScanRun.Status.QUEUED
    done = wait_for("the next scan", lambda: row(ScanRun, second.pk).status == "succeeded", worker=worker)
    assert done and Adapter.objects.count() == 3


def test_a_work_horse_killed_mid_embedding_fails_the_run_and_the_next_run_embeds(start_worker):
    for name in ("pixelArt", "pixelIcons", "inkSketch"):
        make_adapter(name, tags=["style"])
    worker = start_worker("embeddings")
    worker.hold()
    first = embedding_runs.request_embedding(reason="test")
    kill_horse_mid_run(worker, EmbeddingRun, first)
    failed = wait_for(
        "the run to fail", lambda: row(EmbeddingRun, first.pk).status == "failed" and row(EmbeddingRun, first.pk)
    )
    assert "embedding run was killed" in failed.message.replace("process running this ", ""), failed.message

    worker.release()
    second = embedding_runs.request_embedding(reason="again")
    assert second.pk != first.pk
    wait_for("the next embedding run", lambda: row(EmbeddingRun, second.pk).status == "succeeded", worker=worker)
    assert row(EmbeddingRun, second.pk).embedded == 3


def test_a_work_horse_killed_mid_export_fails_the_export_and_the_next_export_writes_its_archive(start_worker):
    for name in ("pixelArt", "inkSketch"):
        make_adapter(name)
    worker = start_worker("default")
    worker.hold()
    first = archive_runs.start_export(metadata_only=True)
    kill_horse_mid_run(worker, ArchiveRun, first)
    failed = wait_for(
        "the export to fail", lambda: row(ArchiveRun, first.pk).status == "failed" and row(ArchiveRun, first.pk)
    )
    assert "process running this export was killed" in failed.message, failed.message

    worker.release()
    second = archive_runs.start_export(metadata_only=True)
    wait_for("the next export", lambda: row(ArchiveRun, second.pk).status == "succeeded", worker=worker)
    assert Path(row(ArchiveRun, second.pk).path).is_file()


def test_a_worker_killed_outright_is_settled_by_the_janitor_on_rqs_scheduler_and_readyz_stops_counting_it(
    start_worker, client
):
    """The worker, its scheduler and its horse die at once (nobody is left to run a failure callback):
    another worker's janitor, scheduled every 2 s here, fails the run; /readyz counts only live workers."""
    make_adapter("pixelArt")
    janitor = start_worker("default", LORA_MANAGER_JANITOR_SECONDS="2")
    doomed = start_worker("embeddings")
    wait_for("two live workers", lambda: client.get("/readyz").json()["workers"].get("count") == 2, timeout=60)
    doomed.hold()
    run = embedding_runs.request_embedding(reason="test")
    doomed.horse_pid(run.rq_job_id)
    wait_for("the run to start", lambda: row(EmbeddingRun, run.pk).phase, worker=doomed)
    doomed.kill()
    assert row(EmbeddingRun, run.pk).status == EmbeddingRun.Status.RUNNING  # nobody was left to say otherwise
    failed = wait_for(
        "the janitor",
        lambda: row(EmbeddingRun, run.pk).status == "failed" and row(EmbeddingRun, run.pk),
        worker=janitor,
    )
    assert "The worker stopped before this embedding run finished" in failed.message, failed.message
    wait_for("the next janitor run to be scheduled", lambda: periodic.scheduled_ids(periodic.find("janitor")))

    ready = client.get("/readyz").json()
    assert ready["workers"]["count"] == 1 and ready["ok"], ready
    janitor.kill()
    response = client.get("/readyz")  # RQ still lists both workers for minutes; neither is alive
    assert response.status_code == 503 and response.json()["failing"] == ["workers"]
    assert "No RQ worker is alive" in response.json()["workers"]["error"]


def test_a_worker_start_settles_rows_its_dead_predecessor_left_and_runs_the_next(start_worker, tmp_path):
    root = tmp_path / "Lora"
    lora(root, "a.safetensors")
    first = start_worker("default", LORA_MANAGER_LIBRARY_DIRS=str(root))
    first.hold()
    stuck = scan_runs.start_scan()
    first.horse_pid(stuck.rq_job_id)
    wait_for("the scan to start", lambda: row(ScanRun, stuck.pk).phase, worker=first)
    first.kill()
    lost = ScanRun.objects.create(rq_job_id="scan-never-enqueued")  # Redis emptied before a worker took it
    ScanRun.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    replacement = start_worker("default", LORA_MANAGER_LIBRARY_DIRS=str(root))
    # Rows are settled one at a time (and the killed run's may be settled first by RQ's own cleanup): wait for both.
    settled = lambda: {row(ScanRun, stuck.pk).status, row(ScanRun, lost.pk).status} == {"failed"}  # noqa: E731
    wait_for("the start-up reconcile", settled, worker=replacement)
    assert "worker stopped" in row(ScanRun, stuck.pk).message
    assert "lost from the queue" in row(ScanRun, lost.pk).message
    assert tracked.reconcile(ScanRun) == 0  # nothing left to settle
    nxt = scan_runs.start_scan()
    wait_for("the next scan", lambda: row(ScanRun, nxt.pk).status == "succeeded", worker=replacement)
