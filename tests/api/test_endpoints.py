"""Every endpoint: happy path, auth and permission failures, validation errors (always JSON 4xx, never 500)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from adapters.models import Adapter
from generation.models import GenerationJob, JobStatus
from tests.adapters.catalog_factory import make_adapter
from tests.api.conftest import ApiClient
from tests.standins.sdnext import SDNextStandIn

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(db):
    return {
        "a": make_adapter("alpha", tags=("anime",), base_model="SDXL", usage_count=3, last_used_at=timezone.now()),
        "b": make_adapter("beta", base_model="SD1"),
        "c": make_adapter("gamma", base_model="SDXL", active=False),
    }


@pytest.fixture
def sdnext(settings, tmp_path):
    with SDNextStandIn(lora_dir=tmp_path) as server:  # the SD.Next STAND-IN, a real HTTP server
        settings.SDNEXT_BACKENDS = {"default": {"URL": server.url, "USER": "", "PASSWORD": ""}}
        yield server


# --- adapters -------------------------------------------------------------------------------------


def test_list_uses_the_gallery_filters(viewer_api, catalog):
    everything = viewer_api.get("/api/v1/adapters").json()
    assert everything["count"] == 3 and everything["pages"] == 1 and everything["page_size"] == 48
    assert [a["name"] for a in everything["results"]] == ["alpha", "beta", "gamma"]
    sdxl = viewer_api.get("/api/v1/adapters?base=SDXL&active=1").json()
    assert [a["name"] for a in sdxl["results"]] == ["alpha"] and sdxl["results"][0]["tags"] == ["anime"]
    never = viewer_api.get("/api/v1/adapters?unused=never&sort=-name").json()
    assert [a["name"] for a in never["results"]] == ["gamma", "beta"]
    assert viewer_api.get("/api/v1/adapters?tag=anime").json()["count"] == 1


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("page=0", "page"),
        ("page=abc", "page"),
        ("page=2", "out of range"),
        ("base=SD9", "base"),
        ("sort=sideways", "sort"),
        ("unused=soon", "unused"),
        ("unused=0", "unused"),
        ("colour=red", "Unknown query parameter"),
    ],
)
def test_list_rejects_bad_queries(viewer_api, catalog, query, words):
    response = viewer_api.get(f"/api/v1/adapters?{query}")
    assert 400 <= response.status_code < 500, response.content
    assert words in response.json()["detail"]


def test_detail(viewer_api, catalog):
    detail = viewer_api.get(f"/api/v1/adapters/{catalog['a'].pk}").json()
    assert detail["name"] == "alpha" and detail["files"][0]["status"] == "present" and "notes" in detail
    missing = viewer_api.get("/api/v1/adapters/999999")
    assert missing.status_code == 404 and missing.json()["detail"]


def test_update_validates_like_the_detail_page(editor_api, catalog):
    pk = catalog["a"].pk
    ok = editor_api.patch(
        f"/api/v1/adapters/{pk}",
        {"name": "  Alpha  Knight ", "tags": ["Anime", "knight"], "preferred_weight": 0.8, "favorite": True},
    )
    assert ok.status_code == 200, ok.content
    adapter = Adapter.objects.get(pk=pk)
    assert adapter.name == "Alpha Knight" and adapter.preferred_weight == 0.8 and adapter.favorite
    assert sorted(ok.json()["tags"]) == ["anime", "knight"]
    assert adapter.sources["name"] == "user"  # survives rescans
    bad = editor_api.patch(f"/api/v1/adapters/{pk}", {"weight_min": 1.0, "weight_max": 0.5})
    assert bad.status_code == 422 and "weight_max" in bad.json()["detail"]
    assert Adapter.objects.get(pk=pk).weight_min is None  # nothing half-written
    unknown = editor_api.patch(f"/api/v1/adapters/{pk}", {"nmae": "typo"})
    assert unknown.status_code == 422 and "nmae" in unknown.json()["detail"]
    wrong_type = editor_api.patch(f"/api/v1/adapters/{pk}", {"preferred_weight": "heavy"})
    assert wrong_type.status_code == 422 and "preferred_weight" in wrong_type.json()["detail"]
    malformed = editor_api.patch(f"/api/v1/adapters/{pk}", raw="{not json")
    assert malformed.status_code == 400 and "parse" in malformed.json()["detail"]
    null_name = editor_api.patch(f"/api/v1/adapters/{pk}", {"name": None})
    assert null_name.status_code == 422


def test_viewer_cannot_call_editor_endpoints(viewer_api, catalog):
    response = viewer_api.patch(f"/api/v1/adapters/{catalog['a'].pk}", {"favorite": True})
    assert response.status_code == 403 and "viewer" in response.json()["detail"]
    bulk = viewer_api.post("/api/v1/adapters/bulk", {"action": "deactivate", "ids": [catalog["a"].pk]})
    assert bulk.status_code == 403
    assert Adapter.objects.get(pk=catalog["a"].pk).active


def test_bulk_by_ids_and_by_filter(editor_api, catalog):
    by_ids = editor_api.post(
        "/api/v1/adapters/bulk", {"action": "add_tags", "ids": [catalog["b"].pk, 999], "tags": ["x"]}
    )
    assert by_ids.json() == {"action": "add_tags", "matched": 1, "changed": 1, "skipped_missing": 1, "undoable": True}
    by_filter = editor_api.post("/api/v1/adapters/bulk", {"action": "deactivate", "filter": "unused=never&active=1"})
    assert by_filter.status_code == 200 and by_filter.json()["matched"] == 1  # beta; alpha was used
    assert list(Adapter.objects.filter(active=True).values_list("name", flat=True)) == ["alpha"]
    for body, words in [
        ({"action": "deactivate"}, "either"),
        ({"action": "deactivate", "ids": []}, "empty"),
        ({"action": "add_tags", "ids": [catalog["a"].pk]}, "tags"),
        ({"action": "set_base_model", "ids": [catalog["a"].pk]}, "base_model"),
        ({"action": "explode", "ids": [1]}, "action"),
        ({"action": "deactivate", "filter": "base=SD9"}, "filter"),
        ({"action": "deactivate", "ids": ["one"]}, "ids"),
    ]:
        response = editor_api.post("/api/v1/adapters/bulk", body)
        assert response.status_code == 422, (body, response.content)
        assert words in response.json()["detail"], (body, response.json())


def test_remove_needs_the_delete_permission(editor_api, admin_api, catalog):
    # Editors hold every permission of our apps, so removing is theirs too; viewers never.
    removed = editor_api.post("/api/v1/adapters/bulk", {"action": "remove", "ids": [catalog["c"].pk]})
    assert removed.status_code == 200 and not Adapter.objects.filter(pk=catalog["c"].pk).exists()


def test_similar_and_for_prompt_answer_without_an_index(viewer_api, catalog):
    similar = viewer_api.get(f"/api/v1/adapters/{catalog['a'].pk}/similar?k=5")
    assert similar.status_code == 200 and isinstance(similar.json()["results"], list)
    assert set(similar.json()) == {"results", "unavailable", "note"}
    prompt = viewer_api.get("/api/v1/recommendations/for-prompt?prompt=anime+girl&base_model=SDXL")
    assert prompt.status_code == 200 and isinstance(prompt.json()["results"], list)
    assert viewer_api.get("/api/v1/recommendations/for-prompt?prompt=x&base_model=SD9").status_code == 422
    assert viewer_api.get("/api/v1/recommendations/for-prompt?prompt=x&k=0").status_code == 422
    assert viewer_api.get("/api/v1/adapters/999999/similar").status_code == 404


# --- generation jobs --------------------------------------------------------------------------------


def test_create_list_detail_cancel_a_job(editor_api, catalog, sdnext):
    body = {
        "prompt": "a lighthouse",
        "loras": [{"adapter_id": catalog["a"].pk, "weight": 0.7}],
        "width": 512,
        "height": 512,
        "steps": 4,
    }
    created = editor_api.post("/api/v1/generation/jobs", body)
    assert created.status_code == 201, created.content
    job = created.json()
    assert job["status"] == "queued" and job["loras"][0]["adapter_id"] == catalog["a"].pk
    listed = editor_api.get("/api/v1/generation/jobs?status=queued").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == job["id"]
    assert editor_api.get(f"/api/v1/generation/jobs/{job['id']}").json()["prompt"].startswith("a lighthouse")
    cancelled = editor_api.post(f"/api/v1/generation/jobs/{job['id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"
    assert GenerationJob.objects.get(pk=job["id"]).status == JobStatus.CANCELLED


def test_job_validation_and_permissions(editor_api, viewer_api, catalog, sdnext):
    for body, words in [
        ({"prompt": "x", "width": 513}, "width"),
        ({"prompt": "x", "steps": 0}, "steps"),
        ({"prompt": "x", "backend": "nope"}, "Unknown backend"),
        ({"prompt": "x", "sampler_name": "Euler"}, "sampler_name"),
        ({"prompt": "", "loras": []}, "prompt"),
        ({"prompt": "x", "loras": [{"adapter_id": 999999}]}, ""),
    ]:
        response = editor_api.post("/api/v1/generation/jobs", body)
        assert response.status_code == 422, (body, response.content)
        assert words in response.json()["detail"]
    denied = viewer_api.post("/api/v1/generation/jobs", {"prompt": "x"})
    assert denied.status_code == 403
    assert viewer_api.get("/api/v1/generation/jobs").status_code == 200  # viewers may look
    assert viewer_api.post("/api/v1/generation/jobs/1/cancel").status_code == 403
    assert editor_api.get("/api/v1/generation/jobs?page=5").status_code == 404
    assert editor_api.get("/api/v1/generation/jobs?status=exploded").status_code == 422
    assert editor_api.get("/api/v1/generation/jobs/999999").status_code == 404


# --- system -----------------------------------------------------------------------------------------


def test_status_is_for_staff(admin_api, viewer_api, redis_conn):
    status = admin_api.get("/api/v1/status")
    assert status.status_code == 200 and status.json()["database"]["ok"] is True
    assert viewer_api.get("/api/v1/status").status_code == 403


def test_dashboard_figures(viewer_api, catalog):
    figures = viewer_api.get("/api/v1/dashboard").json()
    assert figures["library"]["total"] == 3 and figures["usage"]["never_used_count"] == 1


def test_openapi_schema_is_published(viewer_api):
    schema = Client().get("/api/v1/openapi.json").json()
    paths = schema["paths"]
    for path in ("/api/v1/adapters", "/api/v1/adapters/bulk", "/api/v1/generation/jobs", "/api/v1/status"):
        assert path in paths
    assert schema["components"]["securitySchemes"]
    docs = Client().get("/api/v1/docs").content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()  # the CSP allows no CDN


# --- session auth -----------------------------------------------------------------------------------


def test_session_auth_enforces_csrf(editor, catalog):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(editor)
    assert browser.get("/api/v1/adapters").status_code == 200
    url = f"/api/v1/adapters/{catalog['a'].pk}"
    refused = browser.patch(url, '{"favorite": true}', content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    browser.get("/api/tokens/")  # sets the CSRF cookie, as any page does
    token = browser.cookies["csrftoken"].value
    accepted = browser.patch(url, '{"favorite": true}', content_type="application/json", headers={"X-CSRFToken": token})
    assert accepted.status_code == 200 and Adapter.objects.get(pk=catalog["a"].pk).favorite


def test_api_never_redirects_to_the_login_page(db):
    response = ApiClient().get("/api/v1/adapters")
    assert response.status_code == 401 and response.json()["detail"].startswith("Authentication required")


def test_unknown_paths_and_methods_answer_json(viewer_api):
    missing = viewer_api.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and "No API endpoint" in missing.json()["detail"]
    wrong_method = viewer_api.client.delete("/api/v1/adapters", headers=viewer_api.headers)
    assert wrong_method.status_code == 405 and "DELETE is not allowed" in wrong_method.json()["detail"]


def test_huge_ids_are_client_errors(editor_api, catalog):
    huge = 10**30
    assert editor_api.get(f"/api/v1/adapters/{huge}").status_code == 404
    assert editor_api.get(f"/api/v1/generation/jobs/{huge}").status_code == 404
    bulk = editor_api.post("/api/v1/adapters/bulk", {"action": "activate", "ids": [huge]})
    assert bulk.status_code == 422
