"""The archive pages end to end: real views, a real RQ worker, progress through Redis to a websocket."""

from __future__ import annotations

import asyncio
import io
import re
import zipfile
from pathlib import Path

import pytest
from channels.testing import WebsocketCommunicator
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from adapters.models import Adapter
from archive import exporting
from archive.models import ArchiveRun
from lora_manager.asgi import application
from tests.archive.conftest import build_library, snapshot, wipe
from tests.lora_manager.test_realtime import receive_until, session_headers


@pytest.mark.django_db
def test_export_everything_from_the_page_then_download(
    editor_client, editor, places, run_worker, django_capture_on_commit_callbacks
):
    build_library(places, user=editor)
    page = editor_client.get("/archive/")
    assert b'id="export-form"' in page.content and b'id="import-form"' in page.content
    with django_capture_on_commit_callbacks(execute=True):
        response = editor_client.post("/archive/export/", {"scope": "all"}, HTTP_HX_REQUEST="true")
    run = ArchiveRun.objects.get()
    assert response["HX-Redirect"] == f"/archive/runs/{run.pk}/"
    assert b'ws-connect="/ws/archive/runs/' in editor_client.get(response["HX-Redirect"]).content
    run_worker("default")
    run.refresh_from_db()
    assert run.status == "succeeded" and run.result["adapters"] == 4
    fragment = editor_client.get(f"/archive/runs/{run.pk}/status/", HTTP_HX_REQUEST="true").content.decode()
    assert 'id="archive-download"' in fragment and "<html" not in fragment
    download = editor_client.get(f"/archive/runs/{run.pk}/download/")
    data = b"".join(download.streaming_content)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert "manifest.json" in zf.namelist()


@pytest.mark.django_db
def test_export_selected_from_the_gallery_and_by_filter(
    editor_client, editor, places, run_worker, django_capture_on_commit_callbacks
):
    lib = build_library(places, user=editor)
    with django_capture_on_commit_callbacks(execute=True):
        editor_client.post("/archive/export/", {"from_gallery": "1", "ids": [lib["ink"].pk], "metadata_only": "1"})
        editor_client.post("/archive/export/", {"scope": "filter", "filter": "tag=style"})
    none = editor_client.post("/archive/export/", {"from_gallery": "1"}, HTTP_HX_REQUEST="true")
    assert none.status_code == 422 and b"Select at least one adapter" in none.content
    assert none["HX-Retarget"] == "#feedback"  # shown in the library's bulk bar
    run_worker("default")
    selected, filtered = ArchiveRun.objects.order_by("pk")
    assert selected.result["adapters"] == 1 and filtered.result["adapters"] >= 1
    with zipfile.ZipFile(selected.path) as zf:
        assert not [n for n in zf.namelist() if n.endswith(".safetensors")]  # metadata only


@pytest.mark.django_db
def test_upload_shows_the_plan_then_imports_on_confirmation(
    editor_client, editor, places, settings, tmp_path, run_worker, django_capture_on_commit_callbacks
):
    build_library(places, user=editor)
    before = snapshot()
    archive = exporting.export_library(tmp_path / "lib.zip").path
    wipe(places, settings)
    with django_capture_on_commit_callbacks(execute=True):
        response = editor_client.post(
            "/archive/upload/", {"archive": SimpleUploadedFile("lib.zip", archive.read_bytes()), "on_conflict": "skip"}
        )
    check = ArchiveRun.objects.get(kind="check")
    assert response.status_code == 302 and Path(check.path).parent == Path(settings.ARCHIVE_DIR) / "uploads"
    run_worker("default")
    check.refresh_from_db()
    assert check.status == "ready" and check.plan["counts"]["new"] == 4 and Adapter.objects.count() == 0
    page = editor_client.get(f"/archive/runs/{check.pk}/").content.decode()
    assert 'id="confirm-import"' in page and 'class="plan-new">4<' in page
    with django_capture_on_commit_callbacks(execute=True):
        confirmed = editor_client.post(f"/archive/runs/{check.pk}/import/", {"on_conflict": "update"})
    imported = ArchiveRun.objects.get(kind="import")
    assert confirmed["Location"] == f"/archive/runs/{imported.pk}/" and imported.options["on_conflict"] == "update"
    run_worker("default")
    imported.refresh_from_db()
    assert imported.status == "succeeded" and imported.result["created"] == 4
    assert snapshot() == before
    assert not Path(check.path).exists()  # the upload is removed once imported
    again = editor_client.post(f"/archive/runs/{check.pk}/import/", {"on_conflict": "skip"}, HTTP_HX_REQUEST="true")
    assert again.status_code == 409 and ArchiveRun.objects.filter(kind="import").count() == 1


@pytest.mark.django_db
def test_a_refused_upload_lists_every_problem(editor_client, places, run_worker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        editor_client.post("/archive/upload/", {"archive": SimpleUploadedFile("x.zip", b"PK\x03\x04 not really a zip")})
    run_worker("default")
    check = ArchiveRun.objects.get()
    assert check.status == "failed" and "not a valid ZIP archive" in check.problems[0]
    page = editor_client.get(f"/archive/runs/{check.pk}/").content.decode()
    assert "nothing was changed" in page and 'id="confirm-import"' not in page


@pytest.mark.django_db
def test_upload_over_the_limit_is_refused_and_not_kept(editor_client, places, settings):
    settings.ARCHIVE_MAX_UPLOAD_BYTES = 100_000
    big = SimpleUploadedFile("big.zip", b"\0" * 300_000)
    response = editor_client.post("/archive/upload/", {"archive": big}, HTTP_HX_REQUEST="true")
    assert response.status_code == 413 and b"larger than the upload limit" in response.content
    assert ArchiveRun.objects.count() == 0
    uploads = Path(settings.ARCHIVE_DIR) / "uploads"
    assert not uploads.exists() or not list(uploads.glob("*"))


@pytest.mark.django_db
def test_streaming_handler_stops_writing_at_the_limit(editor_client, places, settings):
    """A body within the form-overhead margin passes the up-front check; the handler still stops at the limit."""
    settings.ARCHIVE_MAX_UPLOAD_BYTES = 100_000
    big = SimpleUploadedFile("big.zip", b"\1" * 120_000)
    response = editor_client.post("/archive/upload/", {"archive": big}, HTTP_HX_REQUEST="true")
    assert response.status_code == 413 and ArchiveRun.objects.count() == 0
    assert not list((Path(settings.ARCHIVE_DIR) / "uploads").glob("*"))


@pytest.mark.django_db
def test_asgi_wrapper_refuses_a_declared_oversize_body_without_reading_it(settings):
    from archive.uploads import TOO_LARGE, limit_upload_size

    settings.ARCHIVE_MAX_UPLOAD_BYTES = 1000
    seen = {}

    async def app(scope, receive, send):
        seen["flag"] = scope[TOO_LARGE]
        seen["body"] = await receive()

    async def receive():
        raise AssertionError("the body must not be read")

    headers = [(b"content-length", b"10000000")]
    scope = {"type": "http", "path": "/archive/upload/", "method": "POST", "headers": headers}
    asyncio.run(limit_upload_size(app)(scope, receive, None))
    assert seen == {"flag": True, "body": {"type": "http.request", "body": b"", "more_body": False}}


@pytest.mark.django_db
def test_upload_needs_csrf_and_import_permission(client, viewer, editor, places):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(editor)
    refused = csrf_client.post("/archive/upload/", {"archive": SimpleUploadedFile("a.zip", b"x")})
    assert refused.status_code == 403
    client.force_login(viewer)
    assert client.get("/archive/").status_code == 200
    assert client.post("/archive/upload/", {"archive": SimpleUploadedFile("a.zip", b"x")}).status_code == 403
    assert client.post("/archive/export/", {"scope": "all"}).status_code == 403
    assert b'id="export-form"' not in client.get("/archive/").content


@pytest.mark.django_db(transaction=True)
def test_export_progress_reaches_the_page_through_redis(client, editor, places, run_worker):
    from archive import runs

    build_library(places, user=editor)
    run = runs.start_export(editor)
    headers = session_headers(client, editor)

    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/archive/runs/{run.pk}/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        assert "Queued" in await communicator.receive_from(timeout=5)
        await asyncio.to_thread(run_worker, "default")
        done = await receive_until(communicator, "Succeeded")
        assert 'id="archive-download"' in done and 'id="archive-run"' in done
        await communicator.disconnect()

    asyncio.run(scenario())


@pytest.mark.django_db
def test_export_page_offers_the_current_gallery_filter(editor_client, editor, places):
    build_library(places, user=editor)
    page = editor_client.get("/archive/", {"filter": "tag=style"}).content.decode()
    assert 'value="filter" checked' in page and "1 adapter" in page


@pytest.mark.django_db
def test_runs_left_by_a_killed_worker_are_marked_failed(redis_conn):
    from lora_manager.runs import tracked

    run = ArchiveRun.objects.create(kind="import", status="running", rq_job_id="archive-gone")
    assert tracked.reconcile(ArchiveRun) == 1
    run.refresh_from_db()
    assert run.status == "failed" and "worker stopped" in run.message


@pytest.mark.django_db
def test_the_plan_names_each_adapter_and_its_figures_match_the_result(
    editor_client, editor, places, settings, tmp_path, run_worker, django_capture_on_commit_callbacks
):
    """Importing a library's own archive back: every adapter is named as identical, nothing is to be
    written (its thumbnails are already here), and the result says so in words."""
    lib = build_library(places, user=editor)
    archive = exporting.export_library(tmp_path / "lib.zip").path
    with django_capture_on_commit_callbacks(execute=True):
        editor_client.post("/archive/upload/", {"archive": SimpleUploadedFile("lib.zip", archive.read_bytes())})
    run_worker("default")
    check = ArchiveRun.objects.get(kind="check")
    assert check.plan["write_files"] == 0 and check.plan["write_bytes"] == 0
    page = editor_client.get(f"/archive/runs/{check.pk}/").content.decode()
    identical = page[page.index('id="plan-identical"') :].split("</details>", 1)[0]
    for adapter in lib.values():
        assert f'<li data-outcome="identical">{adapter.name}' in identical
    assert "4 identical" in identical and "nothing to write: every file is already here" in page
    written = page.split("Archive written ", 1)[1].split(" by LoRA Manager", 1)[0]
    assert re.fullmatch(r"(today|yesterday) \d\d:\d\d|\d+ \w+ \d{4}, \d\d:\d\d", written), written  # not ISO
    with django_capture_on_commit_callbacks(execute=True):
        editor_client.post(f"/archive/runs/{check.pk}/import/", {"on_conflict": "skip"})
    run_worker("default")
    done = ArchiveRun.objects.get(kind="import")
    assert done.result["files_written"] == 0
    page = editor_client.get(f"/archive/runs/{done.pk}/").content.decode()
    assert "Adapters: 0 new, 0 updated, 4 unchanged · no file needed writing" in page and "fileswritten" not in page


@pytest.mark.django_db
def test_a_plan_lists_new_adapters_by_name_and_caps_long_lists(places, settings, tmp_path, monkeypatch):
    from archive import planning
    from archive.importing import import_archive

    lib = build_library(places)
    archive = exporting.export_library(tmp_path / "lib.zip").path
    wipe(places, settings)
    monkeypatch.setattr(planning, "MAX_PLAN_ROWS", 3)
    plan = import_archive(archive, dry_run=True).plan.as_dict()
    new = next(g for g in plan["groups"] if g["outcome"] == "new")
    assert new["count"] == 4 and len(new["rows"]) == 3 and new["more"] == 1
    assert {row["name"] for row in new["rows"]} < {a.name for a in lib.values()}
    assert plan["write_files"] > 0 and plan["write_bytes"] > 0
    result = import_archive(archive)
    assert result.counts["files_written"] == plan["write_files"]
    assert result.counts["bytes_written"] == plan["write_bytes"]
