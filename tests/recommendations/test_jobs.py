"""The embedding job: debounced requests, a real RQ worker, the hooks after scans and edits, live progress."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import django_rq
import pytest
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.utils import timezone

from adapters import bulk_edit, scan_runs
from adapters.models import Adapter, Tag
from lora_manager.asgi import application
from lora_manager.runs import tracked
from recommendations import embedding_runs, index, ranking
from recommendations.models import Embedding, EmbeddingRun
from tests.adapters.conftest import lora
from tests.lora_manager.test_realtime import receive_until, session_headers
from tests.recommendations.conftest import make_adapter


def queued_job_ids() -> list[str]:
    return django_rq.get_queue("embeddings").get_job_ids()


@pytest.mark.django_db
def test_a_bulk_edit_of_5000_adapters_and_hundreds_of_single_edits_make_one_job(
    redis_conn, django_capture_on_commit_callbacks
):
    Adapter.objects.bulk_create([Adapter(name=f"a{i}") for i in range(5000)])
    ids = list(Adapter.objects.values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        assert bulk_edit.add_tags(ids, ["bulk"]) == 5000
        for i in range(300):
            bulk_edit.set_active([ids[i]], False)
    assert EmbeddingRun.objects.count() == 1
    run = EmbeddingRun.objects.get()
    assert run.status == EmbeddingRun.Status.QUEUED and run.reason == "edit: add_tags"
    assert queued_job_ids() == [run.rq_job_id]


@pytest.mark.django_db
def test_edits_that_change_nothing_ask_for_nothing(redis_conn):
    adapter = make_adapter("a")
    assert bulk_edit.set_active([adapter.pk], True) == 0
    assert bulk_edit.remove_tags([adapter.pk], ["not there"]) == 0
    assert not EmbeddingRun.objects.exists()


@pytest.mark.django_db
def test_a_real_worker_embeds_the_library_and_publishes_the_index(
    redis_conn, run_worker, st_model, django_capture_on_commit_callbacks
):
    first, second = make_adapter("pixelArt", tags=["pixel art"]), make_adapter("pixelIcons", tags=["pixel art"])
    with django_capture_on_commit_callbacks(execute=True):
        run = embedding_runs.request_embedding(reason="test")
    run_worker("embeddings")
    run.refresh_from_db()
    assert run.status == EmbeddingRun.Status.SUCCEEDED, run.message
    assert (run.embedded, run.unchanged, run.indexed, run.index_kind) == (2, 0, 2, "exact")
    assert run.done == run.total == 2 and run.percent == 100
    assert "2 embedded" in run.message
    assert Embedding.objects.count() == 2 and index.current() is not None
    assert [s.id for s in ranking.similar(first).suggestions] == [second.pk]


@pytest.mark.django_db
def test_a_request_while_running_queues_exactly_one_follow_up(redis_conn):
    running = EmbeddingRun.objects.create(status=EmbeddingRun.Status.RUNNING, rq_job_id="embed-x")
    follow_up = embedding_runs.request_embedding(reason="edit")
    assert follow_up.pk != running.pk and follow_up.status == EmbeddingRun.Status.QUEUED
    assert embedding_runs.request_embedding(reason="edit", rebuild=True).pk == follow_up.pk
    follow_up.refresh_from_db()
    assert follow_up.rebuild is True


@pytest.mark.django_db
def test_a_queued_run_whose_job_vanished_is_replaced(redis_conn):
    lost = EmbeddingRun.objects.create(rq_job_id="embed-gone")
    EmbeddingRun.objects.filter(pk=lost.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    fresh = embedding_runs.request_embedding(reason="edit")
    lost.refresh_from_db()
    assert fresh.pk != lost.pk and lost.status == EmbeddingRun.Status.FAILED and "lost" in lost.message


@pytest.mark.django_db
def test_redis_down_fails_the_run_not_the_edit(monkeypatch, django_capture_on_commit_callbacks):
    adapter = make_adapter("a")

    def unreachable(name):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(django_rq, "get_queue", unreachable)
    with django_capture_on_commit_callbacks(execute=True):
        assert bulk_edit.add_tags([adapter.pk], ["new"]) == 1
    assert list(Adapter.objects.get().tags.values_list("name", flat=True)) == ["new"]
    run = EmbeddingRun.objects.get()
    assert run.status == EmbeddingRun.Status.FAILED and "redis is down" in run.message


@pytest.mark.django_db
def test_stale_running_runs_are_reconciled(redis_conn):
    run = EmbeddingRun.objects.create(status=EmbeddingRun.Status.RUNNING, rq_job_id="embed-dead")
    assert tracked.reconcile(EmbeddingRun) == 1
    run.refresh_from_db()
    assert run.status == EmbeddingRun.Status.FAILED and "worker stopped" in run.message


@pytest.mark.django_db
def test_a_failing_run_says_why(redis_conn, run_worker, settings, django_capture_on_commit_callbacks):
    make_adapter("a")
    settings.EMBEDDING_MODEL = "/nowhere/model"
    with django_capture_on_commit_callbacks(execute=True):
        run = embedding_runs.request_embedding(reason="test")
    run_worker("embeddings")
    run.refresh_from_db()
    assert run.status == EmbeddingRun.Status.FAILED and "/nowhere/model does not exist" in run.message
    assert django_rq.get_queue("embeddings").failed_job_registry.get_job_ids() == [run.rq_job_id]


@pytest.mark.django_db
def test_a_scan_queues_an_embedding_run_that_embeds_what_it_found(
    editor,
    lora_root,
    run_worker,
    st_model,
    django_capture_on_commit_callbacks,
):
    lora(lora_root, "pixel/pixelArtXL.safetensors", seed=1, ss_tag_frequency='{"1_pixel": {"pixel art": 9}}')
    lora(lora_root, "water/watercolorWash.safetensors", seed=2)
    with django_capture_on_commit_callbacks(execute=True):
        scan_runs.start_scan(user=editor)
    with django_capture_on_commit_callbacks(execute=True):  # the scan job's own on-commit enqueue
        run_worker("default")
    run = EmbeddingRun.objects.get()
    assert run.reason == "scan" and queued_job_ids() == [run.rq_job_id]
    run_worker("embeddings")
    run.refresh_from_db()
    assert run.status == EmbeddingRun.Status.SUCCEEDED and run.embedded == 2
    assert set(Embedding.objects.values_list("adapter__name", flat=True)) == {"pixelArtXL", "watercolorWash"}


@pytest.mark.django_db(transaction=True)
def test_embedding_progress_reaches_the_page_through_redis(client, editor, run_worker, st_model):
    for i in range(3):
        make_adapter(f"adapter{i}", tags=["tag"])
    run = embedding_runs.request_embedding(reason="test")  # autocommit: queued at once
    headers = session_headers(client, editor)

    def drain() -> None:
        try:
            run_worker("embeddings")
        finally:
            connections.close_all()  # the worker thread's connection would outlive the test database

    async def scenario():
        communicator = WebsocketCommunicator(application, f"/ws/recommendations/embeddings/{run.pk}/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        first = await communicator.receive_from(timeout=5)
        assert "Queued" in first and 'id="embed-progress"' in first
        await asyncio.to_thread(drain)
        done = await receive_until(communicator, "Succeeded", timeout=30)
        assert "3 embedded" in done and 'id="embed-panel"' in done
        await communicator.disconnect()

    asyncio.run(scenario())


@pytest.mark.django_db(transaction=True)
def test_anonymous_progress_websocket_is_refused(redis_conn):
    async def scenario():
        communicator = WebsocketCommunicator(
            application, "/ws/recommendations/embeddings/1/", headers=[(b"origin", b"http://127.0.0.1")]
        )
        connected, code = await communicator.connect()
        assert not connected and code == 4403

    asyncio.run(scenario())


@pytest.mark.django_db
def test_single_adapter_edits_ask_for_a_run_but_creations_do_not(redis_conn):
    adapter = Adapter.objects.create(name="fresh")  # scans create adapters; they ask once per scan
    assert not EmbeddingRun.objects.exists()
    adapter.description = "now with a description"
    adapter.save(update_fields=["description"])  # the detail page's inline edit
    assert EmbeddingRun.objects.get().reason == "edit"
    EmbeddingRun.objects.all().delete()
    tag = Tag.objects.create(name="old tag")
    Adapter.tags.through.objects.create(adapter=adapter, tag=tag)  # as a scan links tags: no signal
    assert not EmbeddingRun.objects.exists()
    adapter.tags.remove(tag)  # a person removing a tag in a form
    assert EmbeddingRun.objects.get().reason == "edit: tags"
