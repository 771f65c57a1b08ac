"""The scan as a background job: row, real RQ worker, progress pushed to a websocket client."""

import asyncio
import io
import socket
import subprocess
import sys

import pytest
from channels.testing import WebsocketCommunicator

from adapters import scan_runs, thumbnails
from adapters.models import Adapter, ScanRun
from lora_manager.asgi import application
from lora_manager.runs import periodic, tracked
from tests.adapters.conftest import lora
from tests.conftest import InProcessWorker
from tests.factories.sidecars import write_preview
from tests.lora_manager.test_realtime import receive_until, session_headers


@pytest.mark.django_db
def test_scan_button_queues_one_job_that_a_worker_runs(
    editor_client, library, run_worker, django_capture_on_commit_callbacks
):
    lora(library, "a.safetensors")
    with django_capture_on_commit_callbacks(execute=True):
        first = editor_client.post("/library/scans/", HTTP_HX_REQUEST="true")
        editor_client.post("/library/scans/")  # a second click while queued returns the same scan
    assert ScanRun.objects.count() == 1
    assert b'ws-connect="/ws/scans/' in first.content
    run_worker("default")
    run = ScanRun.objects.get()
    assert run.status == ScanRun.Status.SUCCEEDED and run.added == 1 and run.hashed == 1
    page = editor_client.get(f"/library/scans/{run.pk}/")
    assert b"1 added" in page.content


@pytest.mark.django_db
def test_a_scan_job_is_done_before_thumbnails_which_a_follow_up_job_makes(
    editor, library, run_worker, django_capture_on_commit_callbacks
):
    import django_rq

    write_preview(lora(library, "pic.safetensors"), "preview.png", size=(64, 96))
    with django_capture_on_commit_callbacks(execute=True):
        scan_runs.start_scan(user=editor)
    queue = django_rq.get_queue("default")
    scan = queue.jobs[0]
    queue.remove(scan)
    with django_capture_on_commit_callbacks(execute=True):  # the worker runs outside any transaction
        InProcessWorker([queue], connection=queue.connection).execute_job(scan, queue)  # the scan alone
    assert ScanRun.objects.get().status == ScanRun.Status.SUCCEEDED
    assert Adapter.objects.get().preview_key == ""  # the scan is reported done without decoding previews
    assert [job.func_name for job in queue.jobs] == ["adapters.tasks.thumbnails_job"]
    run_worker("default")
    adapter = Adapter.objects.get()
    assert adapter.preview_key and thumbnails.thumbnail_path(adapter.preview_key, "card").is_file()


@pytest.mark.django_db(transaction=True)
def test_scan_progress_reaches_the_page_through_redis(client, editor, library, run_worker):
    for i in range(3):
        lora(library, f"m{i}.safetensors", seed=i)
    run = scan_runs.start_scan(user=editor)
    headers = session_headers(client, editor)

    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/scans/{run.pk}/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        assert "Queued" in await communicator.receive_from(timeout=5)
        await asyncio.to_thread(run_worker, "default")
        done = await receive_until(communicator, "Succeeded")
        assert "3 added" in done and 'id="scan-progress"' in done
        await communicator.disconnect()

    asyncio.run(scenario())
    assert Adapter.objects.count() == 3


@pytest.mark.django_db
def test_stale_running_scan_is_reconciled_and_the_next_scan_starts(redis_conn, editor_client):
    run = ScanRun.objects.create(status=ScanRun.Status.RUNNING, rq_job_id="scan-gone")
    assert tracked.reconcile(ScanRun) == 1
    run.refresh_from_db()
    assert run.status == ScanRun.Status.FAILED and "worker stopped" in run.message and "start a new scan" in run.message
    stuck = ScanRun.objects.create(status=ScanRun.Status.RUNNING, rq_job_id="scan-gone-too")
    editor_client.post("/library/scans/")  # the button settles the dead scan instead of returning it
    stuck.refresh_from_db()
    assert stuck.status == ScanRun.Status.FAILED
    assert ScanRun.objects.filter(status=ScanRun.Status.QUEUED).exclude(pk__in=[run.pk, stuck.pk]).count() == 1


@pytest.mark.django_db
def test_periodic_rescan_is_scheduled_once(redis_conn, settings):
    rescan = periodic.find("rescan")
    settings.RESCAN_INTERVAL_MINUTES = 30
    assert periodic.schedule(rescan) is True
    assert periodic.schedule(rescan) is False
    settings.RESCAN_INTERVAL_MINUTES = 0
    redis_conn.flushdb()
    assert periodic.schedule(rescan) is False


@pytest.mark.django_db
def test_files_still_being_written_are_hashed_by_a_follow_up_job(
    editor, library, run_worker, django_capture_on_commit_callbacks
):
    import django_rq

    from tests.adapters.conftest import age

    age(lora(library, "fresh.safetensors"), seconds=0)
    with django_capture_on_commit_callbacks(execute=True):
        scan_runs.start_scan(user=editor)
    run_worker("default")
    assert ScanRun.objects.get().postponed == 1
    scheduled = django_rq.get_queue("default").scheduled_job_registry.get_job_ids()
    assert len(scheduled) == 1


@pytest.mark.django_db
def test_a_scan_run_by_a_command_is_settled_only_once_its_process_is_gone(library, redis_conn):
    from django.core.management import call_command

    from lora_manager.runs import workers

    lora(library, "a.safetensors")
    call_command("scan_library", "--no-hash", stdout=io.StringIO(), stderr=io.StringIO())
    assert ScanRun.objects.get().rq_job_id == workers.local_job_id()  # the janitor can ask about this process
    ScanRun.objects.all().delete()
    here = ScanRun.objects.create(status=ScanRun.Status.RUNNING, rq_job_id=workers.local_job_id())
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = ScanRun.objects.create(
        status=ScanRun.Status.RUNNING, rq_job_id=f"local:{socket.gethostname()}:{gone.stdout.strip()}"
    )
    assert tracked.reconcile(ScanRun) == 1
    here.refresh_from_db(), dead.refresh_from_db()
    assert here.status == ScanRun.Status.RUNNING and dead.status == ScanRun.Status.FAILED


@pytest.mark.django_db
def test_a_job_rq_cannot_even_start_fails_its_scan_through_rqs_failure_callback(
    library, run_worker, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(ScanRun, "job_path", "adapters.tasks.no_such_job")  # say, a worker of an older version
    with django_capture_on_commit_callbacks(execute=True):
        run = scan_runs.start_scan()
    run_worker("default")
    run.refresh_from_db()
    assert run.status == ScanRun.Status.FAILED
    assert run.message.startswith("The worker could not run this scan (") and "no_such_job" in run.message
    ScanRun.objects.filter(pk=run.pk).update(status=ScanRun.Status.RUNNING)  # as if the callback had not run
    assert tracked.reconcile(ScanRun) == 1  # the janitor reads the same from RQ's failed registry
    run.refresh_from_db()
    assert run.status == ScanRun.Status.FAILED and "no_such_job" in run.message
