"""Pages, htmx fragments and JSON endpoints; who may do what; bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from recommendations import sync
from recommendations.models import EmbeddingRun, Feedback
from tests.conftest import make_user
from tests.recommendations.conftest import make_adapter

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def embedded(st_model):
    adapters = {
        "pixel": make_adapter("pixelArtXL", tags=["pixel art"], trigger_words=["pixel art"], preferred_weight=0.8),
        "sprites": make_adapter("snesSprites", tags=["pixel art", "sprites"]),
        "water": make_adapter("watercolorWash", tags=["watercolor"]),
        "sd1": make_adapter("nesPixel", tags=["pixel art"], base_model="SD1"),
    }
    sync.sync_library()
    return adapters


def test_page_has_the_prompt_box_and_status(viewer_client, embedded):
    html = viewer_client.get("/recommendations/").content.decode()
    assert 'id="prompt-q"' in html and 'id="prompt-suggestions"' in html and 'id="recommendations-status"' in html
    assert "Recommendations are ready." in html and "4 of 4 adapters" in html
    assert 'id="embed-button"' not in html  # viewers cannot start a run


def test_editor_sees_the_embed_button_and_can_start_a_run(
    editor_client, redis_conn, django_capture_on_commit_callbacks
):
    assert 'id="embed-button"' in editor_client.get("/recommendations/").content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = editor_client.post("/recommendations/embed/", {"rebuild": "1"}, **HX)
    run = EmbeddingRun.objects.get()
    assert response.status_code == 200 and 'id="embed-progress"' in response.content.decode()
    assert f'ws-connect="/ws/recommendations/embeddings/{run.pk}/"' in response.content.decode()
    assert run.rebuild and run.requested_by.username == "eddie"
    status = editor_client.get(f"/recommendations/embed/{run.pk}/").content.decode()
    assert "Queued" in status and "<progress" in status


def test_viewer_cannot_start_a_run(viewer_client):
    assert viewer_client.post("/recommendations/embed/").status_code == 403
    assert not EmbeddingRun.objects.exists()


def test_similar_fragment_for_htmx_and_a_page_without(viewer_client, embedded):
    pixel = embedded["pixel"]
    fragment = viewer_client.get(f"/recommendations/similar/{pixel.pk}/", **HX).content.decode()
    assert fragment.lstrip().startswith(f'<section id="similar-{pixel.pk}"') and "<header" not in fragment
    assert fragment.index("snesSprites") < fragment.index("watercolorWash") < fragment.index("nesPixel")
    assert (
        "shared tags: pixel art" in fragment
        and f'id="feedback-adapter-{pixel.pk}-{embedded["sprites"].pk}"' in fragment
    )
    page = viewer_client.get(f"/recommendations/similar/{pixel.pk}/").content.decode()
    assert "<header" in page and f'id="similar-{pixel.pk}"' in page
    assert viewer_client.get("/recommendations/similar/999999/").status_code == 404


def test_similar_json(viewer_client, embedded):
    pixel = embedded["pixel"]
    body = viewer_client.get(f"/recommendations/similar/{pixel.pk}.json?k=2").json()
    assert body["available"] is True and body["adapter"] == {"id": pixel.pk, "name": "pixelArtXL", "base_model": "SDXL"}
    assert [r["name"] for r in body["results"]] == ["snesSprites", "watercolorWash"]
    first = body["results"][0]
    assert set(first) >= {"id", "score", "cosine", "compatible", "reasons", "feedback", "lora_token", "base_model"}
    assert body["feedback_context"] == {"kind": "adapter", "context": str(pixel.pk)}


def test_prompt_fragment_has_add_buttons_and_feedback(viewer_client, embedded):
    response = viewer_client.get("/recommendations/for-prompt/", {"q": "pixel art knight", "base_model": "SDXL"}, **HX)
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="prompt-suggestions"') and "<header" not in html
    pixel = embedded["pixel"]
    assert f'data-adapter-id="{pixel.pk}" data-lora-token="&lt;lora:pixelArtXL:0.8&gt;"' in html
    assert "Add to composition" in html and "nesPixel" not in html  # SD1: filtered out for SDXL
    full = viewer_client.get("/recommendations/for-prompt/", {"q": "pixel art knight"}).content.decode()
    assert "<header" in full and 'value="pixel art knight"' in full and "Add to composition" in full


def test_prompt_json_and_bad_input(viewer_client, embedded):
    body = viewer_client.get("/recommendations/for-prompt.json", {"q": "watercolor painting", "k": "1"}).json()
    assert body["available"] and [r["name"] for r in body["results"]] == ["watercolorWash"]
    assert body["query"] == {"q": "watercolor painting", "base_model": ""}
    assert viewer_client.get("/recommendations/for-prompt.json", {"q": "x", "base_model": "SD9"}).status_code == 400
    assert viewer_client.get("/recommendations/for-prompt.json", {"q": "x" * 1001}).status_code == 400
    assert viewer_client.get("/recommendations/for-prompt.json", {"q": "x", "k": "lots"}).status_code == 200
    empty = viewer_client.get("/recommendations/for-prompt.json", {"q": "  "}).json()
    assert empty["results"] == [] and "Type a prompt" in empty["note"]
    bad = viewer_client.get("/recommendations/for-prompt/", {"q": "x", "base_model": "SD9"}, **HX)
    assert bad.status_code == 400 and b"unknown base model" in bad.content


def test_viewers_give_feedback_which_toggles(viewer_client, viewer, embedded):
    pixel, sprites = embedded["pixel"], embedded["sprites"]
    data = {"adapter": sprites.pk, "kind": "adapter", "context": str(pixel.pk), "value": "1"}
    response = viewer_client.post("/recommendations/feedback/", data, **HX)
    html = response.content.decode()
    assert response.status_code == 200 and f'id="feedback-adapter-{pixel.pk}-{sprites.pk}"' in html
    assert 'aria-pressed="true"' in html and 'value="0"' in html  # pressing again clears it
    assert Feedback.objects.get().value == 1 and Feedback.objects.get().user == viewer
    viewer_client.post("/recommendations/feedback/", {**data, "value": "0"}, **HX)
    assert not Feedback.objects.exists()
    # Without htmx: back to the page the form came from (never another site).
    back = viewer_client.post("/recommendations/feedback/", {**data, "value": "-1", "next": "/recommendations/?q=a"})
    assert back.status_code == 302 and back.headers["Location"] == "/recommendations/?q=a"
    evil = viewer_client.post("/recommendations/feedback/", {**data, "next": "https://evil.example/"})
    assert evil.headers["Location"] == "/recommendations/"


def test_bad_feedback_is_refused(viewer_client, embedded):
    pixel = embedded["pixel"]
    base = {"adapter": pixel.pk, "kind": "prompt", "context": "pixel art", "value": "1"}
    assert viewer_client.post("/recommendations/feedback/", {**base, "value": "5"}).status_code == 400
    assert viewer_client.post("/recommendations/feedback/", {**base, "kind": "mood"}).status_code == 400
    assert viewer_client.post("/recommendations/feedback/", {**base, "context": " "}).status_code == 400
    assert viewer_client.post("/recommendations/feedback/", {**base, "adapter": "999999"}).status_code == 404
    assert viewer_client.post("/recommendations/feedback/", {**base, "adapter": "x"}).status_code == 400
    assert viewer_client.get("/recommendations/feedback/").status_code == 405
    assert not Feedback.objects.exists()


def test_feedback_post_needs_the_csrf_token(viewer, embedded):
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    data = {"adapter": embedded["pixel"].pk, "kind": "prompt", "context": "pixel", "value": "1"}
    assert client.post("/recommendations/feedback/", data).status_code == 403
    client.get("/recommendations/")  # sets the CSRF cookie, as a browser would
    token = client.cookies["csrftoken"].value
    assert client.post("/recommendations/feedback/", data, HTTP_X_CSRFTOKEN=token, **HX).status_code == 200


def test_users_without_a_role_get_nothing(client, embedded):
    client.force_login(make_user("nobody", "viewer"))
    assert client.get("/recommendations/").status_code == 200
    nobody = make_user("norole", "viewer")
    nobody.groups.clear()
    client.force_login(nobody)
    for url in (
        "/recommendations/",
        f"/recommendations/similar/{embedded['pixel'].pk}.json",
        "/recommendations/status/",
    ):
        assert client.get(url).status_code == 403
    assert client.post("/recommendations/feedback/", {}).status_code == 403


def test_status_fragment_and_json(viewer_client, embedded):
    from recommendations import embeddings

    html = viewer_client.get("/recommendations/status/").content.decode()
    assert html.lstrip().startswith('<div id="recommendations-status"') and "exact" in html
    path = embeddings.status()["path"]
    assert f'<dd id="recommendations-model">{Path(path).name}' in html and path not in html  # a name, no path
    built = html.split("built ", 1)[1].split("</dd>", 1)[0]
    assert re.match(r"(today|yesterday) \d\d:\d\d", built) and not re.search(r"\d{4}-\d\d-\d\dT", built)
    body = viewer_client.get("/recommendations/status.json").json()
    assert body["ready"] and body["index"]["count"] == 4 and body["embedded"] == 4 and body["unavailable"] is None


def test_the_prompt_box_tag_renders_on_any_page(rf, viewer):
    from django.template import Context, Template

    request = rf.get("/library/")
    request.user = viewer
    html = Template("{% load recommendations %}{% prompt_box base_model='SD1' %}").render(Context({"request": request}))
    assert 'id="prompt-q"' in html and 'id="prompt-suggestions"' in html and "hx-push-url" not in html
    assert '<option value="SD1" selected>' in html


def test_recommendations_are_in_the_navigation_and_votes_say_what_they_mean(viewer_client):
    """Issue 15, item 9: the page was reachable only by URL, and the vote buttons showed a bare ▲ and ▼."""
    html = viewer_client.get("/library/").content.decode()
    nav = html.split('<nav class="main-nav"', 1)[1].split("</nav>", 1)[0]
    assert re.search(r'<a href="/recommendations/"[^>]*>Recommendations</a>', nav)
    assert 'aria-current="page">Recommendations' in viewer_client.get("/recommendations/").content.decode()
    adapter = make_adapter("pixelArtXL")
    data = {"adapter": adapter.pk, "kind": "prompt", "context": "a castle", "value": "1"}
    buttons = re.findall(
        r"<button[^>]*>([^<]+)</button>", viewer_client.post("/recommendations/feedback/", data, **HX).content.decode()
    )
    assert buttons == ["▲ Good", "▼ Bad"]
