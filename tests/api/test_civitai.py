"""The Civitai endpoints: start for one adapter or many, read the run, cancel, read what Civitai said."""

from __future__ import annotations

import pytest

from adapters.models import CivitaiRun
from tests.adapters.catalog_factory import make_adapter
from tests.adapters.civitai_fixtures import published

pytestmark = pytest.mark.django_db


def test_one_adapter_lookup_end_to_end(editor_api, civitai, run_worker, django_capture_on_commit_callbacks):
    adapter, lora = published(civitai, "api one", newer_version=True, trained_words=["api word"])
    before = editor_api.get(f"/api/v1/adapters/{adapter.pk}/civitai").json()
    assert before["found"] is None and before["images"] == []
    with django_capture_on_commit_callbacks(execute=True):
        started = editor_api.post(f"/api/v1/adapters/{adapter.pk}/civitai")
    assert started.status_code == 202 and started.json()["status"] == "queued"
    run_worker("default")
    run = editor_api.get(f"/api/v1/civitai/runs/{started.json()['id']}").json()
    assert (run["status"], run["found"], run["updates"]) == ("succeeded", 1, 1)
    said = editor_api.get(f"/api/v1/adapters/{adapter.pk}/civitai").json()
    assert said["found"] and said["trained_words"] == ["api word"] and said["model_id"] == lora.model_id
    assert said["update"] == {"version_id": lora.newer_version_id, "name": "v2.0"}
    assert said["images"][0]["meta"]["steps"] == 28
    detail = editor_api.get(f"/api/v1/adapters/{adapter.pk}").json()
    assert detail["civitai_update"]["name"] == "v2.0" and detail["civitai_checked_at"]
    assert detail["trigger_words"] == ["api word"]
    listed = editor_api.get("/api/v1/adapters?update=1").json()
    assert [a["id"] for a in listed["results"]] == [adapter.pk]


def test_bulk_by_filter_ids_or_mode(editor_api, civitai):
    a, _ = published(civitai, "api bulk a")
    make_adapter("api bulk b")
    by_filter = editor_api.post("/api/v1/civitai/runs", {"filter": "q=bulk"})
    assert by_filter.status_code == 202 and by_filter.json()["mode"] == "selected"
    busy = editor_api.post("/api/v1/civitai/runs", {"ids": [a.pk]})
    assert busy.status_code == 409 and "is running" in busy.json()["detail"]
    cancelled = editor_api.post(f"/api/v1/civitai/runs/{by_filter.json()['id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    by_mode = editor_api.post("/api/v1/civitai/runs", {"mode": "missing"})
    assert by_mode.status_code == 202 and by_mode.json()["mode"] == "missing"
    again = editor_api.post("/api/v1/civitai/runs", {"mode": "missing"})  # the same mode while it is queued
    assert again.status_code == 409 and f"#{by_mode.json()['id']} is running" in again.json()["detail"]
    assert editor_api.post(f"/api/v1/adapters/{a.pk}/civitai").status_code == 409
    for body, words in [
        ({"ids": [a.pk], "mode": "all"}, "one of"),
        ({"filter": "base=SD9"}, "filter"),
        ({"mode": "everything"}, "mode"),
        ({"ids": [999999]}, "No adapter"),
    ]:
        CivitaiRun.objects.update(status="succeeded")
        answer = editor_api.post("/api/v1/civitai/runs", body)
        assert answer.status_code == 422 and words in answer.json()["detail"], (body, answer.json())


def test_permissions_and_switched_off(viewer_api, editor_api, settings, civitai):
    adapter, _ = published(civitai, "api perms")
    assert viewer_api.post(f"/api/v1/adapters/{adapter.pk}/civitai").status_code == 403
    assert viewer_api.get(f"/api/v1/adapters/{adapter.pk}/civitai").status_code == 200
    assert editor_api.post("/api/v1/adapters/99999999/civitai").status_code == 404
    settings.CIVITAI_URL = ""
    off = editor_api.post(f"/api/v1/adapters/{adapter.pk}/civitai")
    assert off.status_code == 409 and "switched off" in off.json()["detail"]
    assert civitai.requests == []
