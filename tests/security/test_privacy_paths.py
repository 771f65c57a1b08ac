"""Defect 3 of issue 14 and its guard: another user's private generation never shows, on ANY path.

The test walks the URLconf (``get_resolver()``) and the websocket routes. Every route must be in
``ROUTES`` (how to exercise it) or ``UNRELATED`` (why it cannot show a job); a new URL that is in
neither fails the test, so whoever adds one decides how it keeps private results private.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from adapters.models import Adapter
from api import tokens
from generation import ratings, recipes
from generation.models import GenerationJob, JobStatus, Recipe, ResultRating, Sweep
from generation.progress import JOBS_GROUP, snapshot
from lora_manager.asgi import application
from lora_manager.realtime.routing import websocket_urlpatterns
from tests.conftest import make_user
from tests.generation.results_factory import finished_job, image_of
from tests.lora_manager.test_realtime import session_headers

SECRET = "SECRET-lighthouse-of-mallory-9Q7"
NEGATIVE = "NEGATIVE-secret-3XK"
PREVIEW = "data:image/jpeg;base64,UFJJVkFURVBSRVZJRVc="

# route -> requests: (method, url, data); {job} {image} {sweep} {adapter} {run} {index} are filled in.
ROUTES: dict[str, list[tuple[str, str, dict | None]]] = {
    "": [("get", "/", None)],
    "generate/": [("get", "/generate/?job={job}", None), ("get", "/generate/?job={job}&adapter={adapter}", None)],
    "generate/preview/": [("post", "/generate/preview/", {"prompt": "x"})],
    "generate/submit/": [("get", "/generate/submit/", None)],
    "generate/loras/search/": [("get", "/generate/loras/search/?q=lighthouse", None)],
    "generate/loras/row/": [("get", "/generate/loras/row/?adapter={adapter}", None)],
    "generate/jobs/": [("get", "/generate/jobs/", None)],
    "generate/jobs/queue/": [("get", "/generate/jobs/queue/", None)],
    "generate/jobs/recent/": [("get", "/generate/jobs/recent/", None)],
    "generate/jobs/<int:pk>/": [("get", "/generate/jobs/{job}/", None), ("get", "/generate/jobs/{active}/", None)],
    "generate/jobs/<int:pk>/panel/": [("get", "/generate/jobs/{job}/panel/", None)],
    "generate/jobs/<int:pk>/cancel/": [("post", "/generate/jobs/{active}/cancel/", {"fragment": "panel"})],
    "generate/jobs/<int:pk>/rerun/": [("post", "/generate/jobs/{job}/rerun/", {})],
    "generate/jobs/<int:pk>/images/<int:index>/<str:kind>": [
        ("get", "/generate/jobs/{job}/images/0/original", None),
        ("get", "/generate/jobs/{job}/images/0/thumb", None),
        ("get", "/generate/jobs/{job}/images/0/full", None),
    ],
    "generate/history/": [("get", "/generate/history/", None), ("get", "/generate/history/?q=lighthouse", None)],
    "generate/history/delete/": [("post", "/generate/history/delete/", {"job": "{job}"})],
    "generate/jobs/<int:pk>/results/": [("get", "/generate/jobs/{job}/results/", None)],
    "generate/jobs/<int:pk>/pin/": [("post", "/generate/jobs/{job}/pin/", {"value": "1"})],
    "generate/jobs/<int:pk>/images/delete/": [("post", "/generate/jobs/{job}/images/delete/", {"image": "0"})],
    "generate/images/<int:image_id>/rate/": [("post", "/generate/images/{image}/rate/", {"thumb": "1"})],
    "generate/images/<int:image_id>/set-preview/": [
        ("post", "/generate/images/{image}/set-preview/", {"adapter": "{adapter}"})
    ],
    "generate/curation/": [("get", "/generate/curation/", None)],
    "generate/images/<int:image_id>/save-recipe/": [("post", "/generate/images/{image}/save-recipe/", {})],
    "generate/recipes/": [("get", "/generate/recipes/", None), ("get", "/generate/recipes/?q=lighthouse", None)],
    "generate/recipes/<int:pk>/": [("get", "/generate/recipes/{recipe}/", None)],
    "generate/recipes/<int:pk>/image/<str:size>": [
        ("get", "/generate/recipes/{recipe}/image/full", None),
        ("get", "/generate/recipes/{recipe}/image/card", None),
    ],
    "generate/recipes/<int:pk>/delete/": [("post", "/generate/recipes/{recipe}/delete/", {})],
    "generate/recipes/<int:pk>/generate/": [("post", "/generate/recipes/{recipe}/generate/", {})],
    "generate/recipes/<int:pk>/rematch/": [("post", "/generate/recipes/{recipe}/rematch/", {})],
    "generate/recipes/<int:pk>/loras/<int:lora_id>/civitai/": [
        ("get", "/generate/recipes/{recipe}/loras/{recipe_lora}/civitai/", None)
    ],
    "generate/recipes/from-civitai/<int:adapter_id>/": [("post", "/generate/recipes/from-civitai/{adapter}/", {})],
    "api/v1/recipes/<int:recipe_id>": [("api-get", "/api/v1/recipes/{recipe}", None)],
    "generate/adapters/<int:pk>/results/": [("get", "/generate/adapters/{adapter}/results/", None)],
    "generate/sweeps/<int:pk>/": [("get", "/generate/sweeps/{sweep}/", None)],
    "generate/sweeps/<int:pk>/panel/": [("get", "/generate/sweeps/{sweep}/panel/", None)],
    "generate/sweeps/<int:pk>/grid.png": [("get", "/generate/sweeps/{sweep}/grid.png", None)],
    "library/": [("get", "/library/", None)],
    "library/<int:pk>/": [("get", "/library/{adapter}/", None)],
    "library/<int:pk>/preview/<str:size>": [("get", "/library/{adapter}/preview/card", None)],
    "recommendations/for-prompt/": [("get", "/recommendations/for-prompt/?prompt=lighthouse", None)],
    "recommendations/for-prompt.json": [("get", "/recommendations/for-prompt.json?prompt=lighthouse", None)],
    "recommendations/similar/<int:adapter_id>/": [("get", "/recommendations/similar/{adapter}/", None)],
    "recommendations/similar/<int:adapter_id>.json": [("get", "/recommendations/similar/{adapter}.json", None)],
    "api/v1/recommendations/for-prompt": [("api-get", "/api/v1/recommendations/for-prompt?prompt=lighthouse", None)],
    "api/v1/adapters/<int:adapter_id>": [("api-get", "/api/v1/adapters/{adapter}", None)],
    "api/v1/adapters/<int:adapter_id>/similar": [("api-get", "/api/v1/adapters/{adapter}/similar", None)],
    "status/": [("get", "/status/", None)],
    "api/v1/generation/jobs": [("api-get", "/api/v1/generation/jobs", None)],
    "api/v1/generation/jobs/<int:job_id>": [("api-get", "/api/v1/generation/jobs/{job}", None)],
    "api/v1/generation/jobs/<int:job_id>/cancel": [("api-post", "/api/v1/generation/jobs/{active}/cancel", {})],
    "api/v1/dashboard": [("api-get", "/api/v1/dashboard", None)],
    "archive/": [("get", "/archive/", None)],
    "archive/export/": [("post", "/archive/export/", {"scope": "all", "include_history": "1"})],
    "archive/runs/<int:pk>/": [("get", "/archive/runs/{run}/", None)],
    "archive/runs/<int:pk>/status/": [("get", "/archive/runs/{run}/status/", None)],
    "archive/runs/<int:pk>/download/": [("get", "/archive/runs/{run}/download/", None)],
    "archive/backups/<str:name>": [("get", "/archive/backups/{backup}", None)],
}

# route -> why it cannot show a generation job, image, sweep or rating. Matched EXACTLY: a new URL, even one
# beside these (api/v1/generation/images, recommendations/from-job/<int:pk>/), is unknown until classified.
UNRELATED = {
    "favicon.ico": "a redirect to a static icon",
    "healthz": "liveness, no data",
    "readyz": "readiness, no data",
    "accounts/login/": "the login form",
    "accounts/logout/": "logs out",
    "accounts/password/": "the caller's password change",
    "accounts/password/done/": "a confirmation",
    "library/scans/": "scan runs (catalog only)",
    "library/scans/<int:pk>/": "one scan run (catalog only)",
    "library/bulk/": "catalog bulk edits",
    "library/bulk/<int:pk>/undo/": "undoes a catalog bulk edit",
    "library/tags/": "catalog tags",
    "library/tags/<int:pk>/delete/": "catalog tags",
    "library/tags/<int:pk>/rename/": "catalog tags",
    "library/tags/merge/": "catalog tags",
    "library/tags/suggest/": "catalog tag names",
    "library/<int:pk>/section/<str:section>/": "catalog detail sections (SECTION_FORMS: names, texts, weights...)",
    "library/<int:pk>/section/<str:section>/edit/": "catalog detail sections",
    "library/<int:pk>/toggle/<str:field>/": "catalog flags",
    "library/<int:pk>/trigger-words/": "catalog trigger words",
    "library/<int:pk>/civitai/": "Civitai lookups of the catalog",
    "library/civitai/": "Civitai lookup runs (catalog)",
    "library/civitai/<int:pk>/": "one Civitai lookup run (catalog)",
    "library/civitai/<int:pk>/cancel/": "cancels a Civitai lookup run",
    "library/preferences/nsfw/": "the caller's display preference",
    "library/problems/": "catalog problems",
    "recommendations/": "recommendations from the catalog and embeddings (no job text)",
    "recommendations/embed/": "starts an embedding run",
    "recommendations/embed/<int:pk>/": "one embedding run (counts)",
    "recommendations/feedback/": "the caller's thumbs on a suggestion",
    "recommendations/status/": "embedding state",
    "recommendations/status.json": "embedding state",
    "generate/backend/": "SD.Next backend state",
    "generate/backend/refresh-loras/": "SD.Next's LoRA list",
    "generate/presets/": "presets are shared by design",
    "generate/presets/<int:pk>/delete/": "presets are shared by design",
    "generate/curation/run/": "applies the retention policy (staff action, no job text in the answer)",
    "generate/adapters/<int:pk>/sweep/": "starts a new sweep of the caller's own",
    "generate/recipes/import/": "imports the caller's own images as recipes",
    "api/v1/recipes": "imports the caller's own images as recipes (POST)",
    "status.json": "staff only",
    "suggestions/accepted": "recommendation feedback",
    "api/v1/": "the API root",
    "api/v1/openapi.json": "the schema",
    "api/v1/docs": "the schema's page",
    "api/v1/adapters": "catalog",
    "api/v1/adapters/bulk": "catalog bulk edits",
    "api/v1/adapters/<int:adapter_id>/civitai": "a Civitai lookup of the catalog",
    "api/v1/civitai/runs": "Civitai lookup runs (catalog)",
    "api/v1/civitai/runs/<int:run_id>": "one Civitai lookup run (catalog)",
    "api/v1/civitai/runs/<int:run_id>/cancel": "cancels a Civitai lookup run",
    "api/v1/me": "the caller",
    "api/v1/status": "staff only",
    "api/tokens/": "the caller's tokens",
    "api/tokens/<int:pk>/revoke": "the caller's tokens",
    "archive/upload/": "uploads an archive",
    "archive/runs/<int:pk>/import/": "confirms the caller's import check",
    "archive/backups/": "backup_now (a run) and restore (an import check)",
    "archive/backups/<str:name>/restore/": "restore (an import check), admins only",
}
# Prefixes owned as a whole by something else: the Django admin and the RQ dashboard (staff only, checked below).
UNRELATED_PREFIXES = {"admin/": "Django admin and the RQ dashboard: staff only (a non-staff user is redirected)"}


def all_routes() -> list[str]:
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    return sorted(set(walk(get_resolver().url_patterns)))


def classify(route: str) -> str:
    if route in ROUTES:
        return "exercised"
    if route in UNRELATED or route.startswith(tuple(UNRELATED_PREFIXES)):
        return "unrelated"
    return "unknown"


def test_every_url_is_known_to_this_test(db):
    unknown = [route for route in all_routes() if classify(route) == "unknown"]
    assert not unknown, f"new URL(s) this privacy test does not know how to exercise: {unknown}"
    stale = [route for route in (*ROUTES, *UNRELATED) if route not in all_routes()]
    assert not stale, f"ROUTES / UNRELATED list URLs that no longer exist: {stale}"


@pytest.mark.parametrize(
    "route",
    [
        "api/v1/generation/images",
        "api/v1/adapters/<int:adapter_id>/results",
        "recommendations/from-job/<int:pk>/",
        "library/scans/<int:pk>/results/",
        "accounts/my-results/",
        "archive/runs/<int:pk>/history/",
    ],
)
def test_a_new_url_is_unknown_until_someone_classifies_it(route):
    """A URL added next to known ones (same prefix) must not pass as unrelated by its prefix alone."""
    assert classify(route) == "unknown"


@pytest.fixture
def world(db, settings, tmp_path, redis_conn):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.THUMBNAIL_DIR = tmp_path / "thumbs"
    settings.ARCHIVE_DIR = tmp_path / "archive"
    settings.BACKUP_DIR = tmp_path / "backups"
    owner = make_user("olivia", "editor")
    mallory = make_user("mallory", "editor")
    adapter = Adapter.objects.create(name="lighthouse_lora")
    job = finished_job([(adapter, 0.7)], user=owner, private=True, prompt=SECRET, negative_prompt=NEGATIVE)
    image = image_of(job)
    ratings.rate(owner, image, ratings.Verdict(1, 5))
    recipe = recipes.from_job_image(image, owner)  # "Save as recipe" on a private result: a private recipe
    sweep = Sweep.objects.create(
        adapter=adapter,
        labels=["0.5"],
        cells=[{"adapter_id": adapter.pk, "name": adapter.name, "weight": 0.5}],
        prompt=SECRET,
        seed=7,
        requested_by=owner,
    )
    GenerationJob.objects.filter(pk=job.pk).update(sweep=sweep, sweep_cell=0)
    active = GenerationJob.objects.create(
        status=JobStatus.RUNNING, requested_by=owner, private=True, prompt=SECRET, live_preview=True, preview=PREVIEW
    )
    from archive import runs

    run = runs.start_export(owner, include_history=True)
    from archive.models import ArchiveRun

    export = settings.ARCHIVE_DIR / "owner.zip"
    export.parent.mkdir(parents=True, exist_ok=True)
    export.write_bytes(b"PK\x05\x06" + b"\0" * 18 + SECRET.encode())
    ArchiveRun.objects.filter(pk=run.pk).update(status=ArchiveRun.Status.SUCCEEDED, path=str(export))
    settings.BACKUP_DIR.mkdir(parents=True, exist_ok=True)
    backup = "lora-manager-backup-20260101-000000.zip"
    (settings.BACKUP_DIR / backup).write_bytes(b"PK\x05\x06" + b"\0" * 18 + SECRET.encode())
    values = {
        "job": job.pk,
        "active": active.pk,
        "image": image.pk,
        "sweep": sweep.pk,
        "adapter": adapter.pk,
        "run": run.pk,
        "backup": backup,
        "recipe": recipe.pk,
        "recipe_lora": recipe.loras.get().pk,
    }
    return owner, mallory, values


def _fill(text: str, values: dict) -> str:
    return text.format(**values)


def _call(client: Client, api_headers: dict, method: str, url: str, data: dict | None):
    if method == "get":
        return client.get(url)
    if method == "post":
        return client.post(url, data or {}, headers={"HX-Request": "true"})
    if method == "api-get":
        return client.get(url, headers=api_headers)
    return client.post(url, json.dumps(data or {}), content_type="application/json", headers=api_headers)


def _body(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def _exercise(user, values: dict) -> dict[str, list[tuple[int, str, bytes]]]:
    client = Client()
    client.force_login(user)
    headers = {"Authorization": f"Bearer {tokens.create(user, 'privacy test')[1]}"}
    seen = {}
    for route, calls in ROUTES.items():
        seen[route] = []
        for method, url, data in calls:
            filled = {k: _fill(v, values) for k, v in (data or {}).items()} if data is not None else None
            response = _call(client, headers, method, _fill(url, values), filled)
            seen[route].append((response.status_code, response.get("Content-Type", ""), _body(response)))
    return seen


def test_no_path_shows_another_users_private_job(world):
    _owner, mallory, values = world
    before = GenerationJob.objects.get(pk=values["job"])
    leaks = []
    for route, answers in _exercise(mallory, values).items():
        for status, content_type, body in answers:
            if status >= 500:
                leaks.append(f"{route}: {status}")
            if SECRET.encode() in body or NEGATIVE.encode() in body or b"UFJJVkFURVBSRVZJRVc" in body:
                leaks.append(f"{route}: shows the private prompt or preview ({status})")
            if status == 200 and content_type.startswith(("image/", "application/zip")):
                leaks.append(f"{route}: serves {content_type}")
    assert not leaks, leaks
    # ... and no action took effect on it.
    after = GenerationJob.objects.get(pk=values["job"])
    assert (after.pinned, after.images.count()) == (before.pinned, before.images.count())
    assert GenerationJob.objects.get(pk=values["active"]).cancel_requested is False
    assert GenerationJob.objects.filter(prompt=SECRET).count() == 2  # no re-run copied it
    assert not ResultRating.objects.filter(user=mallory).exists()
    assert list(Recipe.objects.values_list("owner__username", flat=True)) == ["olivia"]  # not deleted, not copied
    assert Adapter.objects.get(pk=values["adapter"]).preview_key == ""
    # Django admin and RQ dashboard: a non-staff user is sent to the login page.
    client = Client()
    client.force_login(mallory)
    for url in (f"/admin/generation/generationjob/{values['job']}/change/", "/admin/rq/"):
        assert client.get(url).status_code == 302, url


def test_the_owner_sees_it_on_the_same_paths(world):
    """The control: the same requests show the owner the prompt and the image, so the walk is real."""
    owner, _mallory, values = world
    seen = _exercise(owner, values)
    for route in ("generate/jobs/<int:pk>/", "api/v1/generation/jobs", "api/v1/generation/jobs/<int:job_id>"):
        assert any(SECRET.encode() in body for _, _, body in seen[route]), route
    assert any(b"lighthouse" in body and SECRET.encode() in body for _, _, body in seen["generate/"])
    assert seen["generate/jobs/<int:pk>/images/<int:index>/<str:kind>"][0][:2] == (200, "image/png")
    assert seen["archive/runs/<int:pk>/download/"][0][0] == 200
    assert any(SECRET.encode() in body for _, _, body in seen["generate/recipes/<int:pk>/"])


WS_ROUTES = {
    "ws/generation/jobs/": "the queue and recent results: initial render, then progress with a live preview",
    "ws/generation/queue/": "the composer's queue: the same as ws/generation/jobs/",
    "ws/generation/jobs/<int:pk>/": "one job: refused",
    "ws/generation/sweeps/<int:pk>/": "one sweep: refused",
}
WS_UNRELATED = {
    "ws/activity/": "running / queued counts only",
    "ws/civitai/<int:pk>/": "Civitai lookup run progress (catalog)",
    "ws/scans/<int:pk>/": "scan progress",
    "ws/archive/runs/<int:pk>/": "archive run progress (counts)",
    "ws/recommendations/embeddings/<int:pk>/": "embedding progress",
}


@pytest.mark.django_db(transaction=True)
def test_no_websocket_shows_another_users_private_job(world, client):
    owner, mallory, values = world
    routes = {str(p.pattern) for p in websocket_urlpatterns}
    unknown = routes - set(WS_ROUTES) - set(WS_UNRELATED)
    assert not unknown, f"new websocket route(s) this privacy test does not know: {unknown}"
    mallory_headers = session_headers(client, mallory)
    owner_headers = session_headers(Client(), owner)

    async def scenario():
        for path in (f"/ws/generation/jobs/{values['job']}/", f"/ws/generation/sweeps/{values['sweep']}/"):
            communicator = WebsocketCommunicator(application, path, headers=mallory_headers)
            connected, code = await communicator.connect()
            assert not connected and code == 4403, path
        for path in ("/ws/generation/jobs/", "/ws/generation/queue/"):
            watcher = WebsocketCommunicator(application, path, headers=mallory_headers)
            owner_ws = WebsocketCommunicator(application, path, headers=owner_headers)
            assert (await watcher.connect())[0] and (await owner_ws.connect())[0]
            initial = await watcher.receive_from(timeout=5)
            assert 'id="generation-queue"' in initial, path
            assert SECRET not in initial and "UFJJVkFURVBSRVZJRVc" not in initial, path
            assert f"#{values['active']}" in initial  # the job is listed (its number), without prompt or preview
            owner_initial = await owner_ws.receive_from(timeout=5)
            assert SECRET in owner_initial and "UFJJVkFURVBSRVZJRVc" in owner_initial  # the control
            snap = snapshot(values["active"], "running", "Inference", 3, 20, 0.15, 9.0, 1, 1, PREVIEW)
            await get_channel_layer().group_send(JOBS_GROUP, {"type": "job.progress", "job": snap})
            assert "UFJJVkFURVBSRVZJRVc" in await owner_ws.receive_from(timeout=5)
            assert await watcher.receive_nothing(timeout=0.5), path
            await watcher.disconnect()
            await owner_ws.disconnect()

    asyncio.run(scenario())
