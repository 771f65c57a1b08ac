"""Civitai lookups as tracked runs: pages, bulk action, admin, a real RQ worker, progress over Redis, cancel."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from channels.testing import WebsocketCommunicator

from adapters import civitai_lookup, civitai_runs
from adapters.models import Adapter, CivitaiRecord, CivitaiRun
from lora_manager.asgi import application
from lora_manager.runs import tracked
from tests.adapters.catalog_factory import make_adapter
from tests.adapters.civitai_fixtures import fast_client, published
from tests.lora_manager.test_realtime import receive_until, session_headers


def wait_for(predicate, seconds: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.django_db
def test_detail_button_runs_one_lookup_through_a_worker(
    editor_client, civitai, run_worker, django_capture_on_commit_callbacks
):
    adapter, _ = published(civitai, "button", trained_words=["btn word"], base_model="Illustrious")
    page = editor_client.get(f"/library/{adapter.pk}/")
    assert b'id="civitai-lookup-button"' in page.content and b"Never looked up" in page.content
    with django_capture_on_commit_callbacks(execute=True):
        answer = editor_client.post(f"/library/{adapter.pk}/civitai/", HTTP_HX_REQUEST="true")
    assert answer.status_code == 200 and b'ws-connect="/ws/civitai/' in answer.content
    run_worker("default")
    run = CivitaiRun.objects.get()
    assert run.status == "succeeded" and run.found == 1 and run.total == 1 and run.requests == 3
    status = editor_client.get(f"/library/civitai/{run.pk}/")
    assert b"1 found" in status.content and b'id="civitai-reload"' in status.content
    page = editor_client.get(f"/library/{adapter.pk}/")
    assert b"btn word" in page.content and b"Illustrious" in page.content
    card = editor_client.get("/library/?q=button")
    assert f"/library/{adapter.pk}/preview/card".encode() in card.content


@pytest.mark.django_db
def test_bulk_action_and_filter_with_count(editor_client, civitai, run_worker, django_capture_on_commit_callbacks):
    old, _ = published(civitai, "outdated", newer_version=True)
    current, _ = published(civitai, "current")
    with django_capture_on_commit_callbacks(execute=True):
        answer = editor_client.post(
            "/library/bulk/", {"action": "civitai", "ids": [old.pk, current.pk]}, HTTP_HX_REQUEST="true"
        )
    assert b"started for 2 adapters" in answer.content
    run_worker("default")
    assert CivitaiRun.objects.get().updates == 1
    page = editor_client.get("/library/")
    assert b'id="f-update"' in page.content and b"Update available" in page.content
    filtered = editor_client.get("/library/?update=1")
    assert f"adapter-{old.pk}-card".encode() in filtered.content
    assert f"adapter-{current.pk}-card".encode() not in filtered.content
    assert b'<span class="count">1</span>' in filtered.content


@pytest.mark.django_db
def test_card_blur_follows_the_persons_threshold(editor_client, civitai):
    adapter, _ = published(civitai, "spicy", image_nsfw=[8])
    civitai_lookup.lookup(adapter, fast_client(civitai))
    assert b'nsfw-blur"' in editor_client.get("/library/").content  # default: blur above PG-13
    editor_client.post("/library/preferences/nsfw/", {"nsfw_blur_above": "16"})
    assert b'nsfw-blur"' not in editor_client.get("/library/").content
    answer = editor_client.post("/library/preferences/nsfw/", {"nsfw_blur_above": "banana"}, follow=True)
    assert b"Not saved" in answer.content


@pytest.mark.django_db
def test_switched_off_shows_no_buttons_and_refuses(editor_client, settings):
    settings.CIVITAI_URL = ""
    adapter = make_adapter("quiet")
    assert b"civitai-lookup-button" not in editor_client.get(f"/library/{adapter.pk}/").content
    assert b"bulk-civitai" not in editor_client.get("/library/").content
    answer = editor_client.post(f"/library/{adapter.pk}/civitai/", HTTP_HX_REQUEST="true")
    assert answer.status_code == 409 and b"switched off" in answer.content
    answer = editor_client.post("/library/bulk/", {"action": "civitai", "ids": [adapter.pk]}, HTTP_HX_REQUEST="true")
    assert answer.status_code == 422 and b"switched off" in answer.content
    assert CivitaiRun.objects.count() == 0


@pytest.mark.django_db
def test_viewers_cannot_start_lookups(viewer_client, civitai):
    adapter, _ = published(civitai, "viewer")
    assert viewer_client.post(f"/library/{adapter.pk}/civitai/").status_code == 403
    assert viewer_client.post("/library/civitai/", {"mode": "missing"}).status_code == 403


@pytest.mark.django_db
def test_admin_action_queues_a_lookup(admin_client, civitai, django_capture_on_commit_callbacks):
    adapter, _ = published(civitai, "admin")
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post(
            "/admin/adapters/adapter/",
            {"action": "civitai", "_selected_action": [adapter.pk]},
            follow=True,
        )
    assert b"started for 1 adapter" in answer.content
    assert CivitaiRun.objects.get().adapter_ids == [adapter.pk]


@pytest.mark.django_db(transaction=True)
def test_progress_reaches_the_page_through_redis(client, editor, civitai, run_worker):
    for i in range(3):
        published(civitai, f"ws {i}")
    run = civitai_runs.start_run("due", user=editor)
    headers = session_headers(client, editor)

    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/civitai/{run.pk}/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        assert "Queued" in await communicator.receive_from(timeout=5)
        await asyncio.to_thread(run_worker, "default")
        done = await receive_until(communicator, "Succeeded")
        assert "3 found" in done and 'id="civitai-progress"' in done
        await communicator.disconnect()

    asyncio.run(scenario())
    assert CivitaiRecord.objects.filter(found=True).count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_running_lookup_can_be_cancelled(editor_client, civitai, run_worker):
    for i in range(5):
        published(civitai, f"slow {i}")
    civitai.set_fault("429", retry_after="60")  # the worker waits politely ... until cancelled
    run = civitai_runs.start_run("due")
    worker = threading.Thread(target=run_worker, args=("default",))
    worker.start()
    wait_for(lambda: CivitaiRun.objects.get(pk=run.pk).status == "running", what="the run to start")
    wait_for(lambda: civitai.requests, what="the first request")
    answer = editor_client.post(f"/library/civitai/{run.pk}/cancel/", HTTP_HX_REQUEST="true")
    assert answer.status_code == 200
    worker.join(timeout=20)
    assert not worker.is_alive()
    run.refresh_from_db()
    assert run.status == "cancelled" and run.found == 0 and "cancelled after 0 of 5" in run.message
    assert len(civitai.requests) == 1  # asked once, told to wait, stopped waiting


@pytest.mark.django_db
def test_a_queued_lookup_cancels_at_once_and_never_runs(civitai, run_worker, django_capture_on_commit_callbacks):
    published(civitai, "never")
    with django_capture_on_commit_callbacks(execute=True):
        run = civitai_runs.start_run("due")
    civitai_runs.request_cancel(run)
    run_worker("default")
    run.refresh_from_db()
    assert run.status == "cancelled" and civitai.requests == []


@pytest.mark.django_db
def test_unreachable_civitai_fails_the_run_with_a_clear_message(
    civitai, run_worker, django_capture_on_commit_callbacks
):
    published(civitai, "far away")
    civitai.stop()
    with django_capture_on_commit_callbacks(execute=True):
        run = civitai_runs.start_run("all")
    run_worker("default")
    run.refresh_from_db()
    assert run.status == "failed" and "cannot be reached" in run.message


@pytest.mark.django_db
def test_auto_lookup_after_a_scan_only_when_turned_on(civitai, settings, django_capture_on_commit_callbacks):
    make_adapter("new one")
    assert civitai_runs.after_scan() is None  # off by default
    settings.CIVITAI_AUTO = True
    run = civitai_runs.after_scan()
    assert run is not None and run.mode == "missing"
    settings.CIVITAI_URL = ""
    CivitaiRun.objects.all().delete()
    assert civitai_runs.after_scan() is None


@pytest.mark.django_db
def test_reconcile_marks_a_run_without_a_job_failed(redis_conn):
    run = CivitaiRun.objects.create(status="running", rq_job_id="civitai-gone")
    assert tracked.reconcile(CivitaiRun) == 1  # declared in AdaptersConfig.ready(): the janitor runs it
    run.refresh_from_db()
    assert run.status == "failed" and "worker stopped" in run.message
    assert Adapter.objects.count() == 0


@pytest.mark.django_db
def test_trained_words_kept_out_by_an_edit_can_be_added_from_the_detail_page(editor_client, civitai):
    adapter, _ = published(civitai, "edited words", trained_words=["their word"])
    Adapter.objects.filter(pk=adapter.pk).update(trigger_words=["mine"], sources={"trigger_words": "user"})
    civitai_lookup.lookup(Adapter.objects.get(pk=adapter.pk), fast_client(civitai))
    page = editor_client.get(f"/library/{adapter.pk}/").content.decode()
    assert 'value="their word"' in page and "+ their word" in page
    editor_client.post(f"/library/{adapter.pk}/trigger-words/", {"word": "their word"})
    assert Adapter.objects.get(pk=adapter.pk).trigger_words == ["mine", "their word"]
