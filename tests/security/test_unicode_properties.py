"""Property tests (issue 14): arbitrary Unicode, lone surrogates and NUL included, through every text field
of the API, the forms and the sidecar readers; afterwards the gallery, detail page, composer (and its
preview), dashboard and admin still render. A value is either refused (422 / form error / per-file issue)
or stored in a form every page can show: never a 500. Example counts are kept small (the suite's time)."""

from __future__ import annotations

import json

import pytest
from django.http import QueryDict
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import sanitize, scanning
from adapters.forms import DescriptionForm, NameForm, NotesForm, TagsForm, TextsForm, TriggerWordsForm
from adapters.models import Adapter, Tag
from api import tokens
from generation import forms as generation_forms
from tests.adapters.conftest import lora
from tests.conftest import make_user
from tests.factories.sidecars import write_sidecar_raw

pytestmark = pytest.mark.django_db

HOSTILE = st.sampled_from(["\ud800", "\udfff", "\x00", "\ufffe", "\u202e", "\U0010ffff", "<script>", "{{", "%", "\\"])
# Every code point, surrogates included (hypothesis leaves category Cs out unless told), mixed with known trouble.
ANY_TEXT = st.lists(st.one_of(st.characters(exclude_categories=()), HOSTILE), max_size=30).map("".join)
EXAMPLES = settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def pages_render(client: Client, adapter: Adapter) -> None:
    urls = [
        "/library/",
        "/library/?q=a",
        f"/library/{adapter.pk}/",
        f"/generate/?adapter={adapter.pk}",
        "/",
        "/admin/adapters/adapter/",
        f"/admin/adapters/adapter/{adapter.pk}/change/",
        "/admin/adapters/tag/",
        "/library/tags/",
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    preview = client.post("/generate/preview/", {"adapter": adapter.pk, "lora": "k1", "lora-k1-adapter": adapter.pk})
    assert preview.status_code < 500


def stored_text_is_storable(adapter: Adapter) -> None:
    adapter.refresh_from_db()
    found: list[str] = []
    sanitize.storable_data(
        [adapter.name, adapter.alias, adapter.trigger_words, adapter.notes, adapter.description, adapter.issues], found
    )
    sanitize.storable_data(list(Tag.objects.values_list("name", flat=True)), found)
    assert not found, found


@pytest.fixture
def admin_client(db):
    client = Client()
    client.force_login(make_user("root", "admin"))
    return client


@pytest.fixture
def api_headers(db):
    return {"Authorization": f"Bearer {tokens.create(make_user('scripter', 'editor'), 'hypothesis')[1]}"}


FIELDS = ("name", "alias", "activation_text", "negative_text", "notes", "description")


@EXAMPLES
@given(field=st.sampled_from((*FIELDS, "trigger_words", "tags")), text=ANY_TEXT)
def test_api_text_fields(admin_client, api_headers, field, text):
    adapter = Adapter.objects.get_or_create(name="target")[0]
    value = [text] if field in ("trigger_words", "tags") else text
    body = json.dumps({field: value}, ensure_ascii=True)  # lone surrogates travel as JSON escapes
    response = admin_client.patch(
        f"/api/v1/adapters/{adapter.pk}", body, content_type="application/json", headers=api_headers
    )
    assert response.status_code in (200, 422), response.content
    bulk = json.dumps({"action": "add_tags", "ids": [adapter.pk], "tags": [text]}, ensure_ascii=True)
    answer = admin_client.post("/api/v1/adapters/bulk", bulk, content_type="application/json", headers=api_headers)
    assert answer.status_code in (200, 422), answer.content
    job = json.dumps({"prompt": text, "negative": text, "checkpoint": text}, ensure_ascii=True)
    answer = admin_client.post("/api/v1/generation/jobs", job, content_type="application/json", headers=api_headers)
    assert answer.status_code in (201, 422), answer.content
    listing = admin_client.get("/api/v1/adapters", {"q": text.replace("\x00", "")[:50].encode("utf-8", "replace")})
    assert listing.status_code < 500
    stored_text_is_storable(adapter)
    pages_render(admin_client, adapter)


@EXAMPLES
@given(text=ANY_TEXT)
def test_forms(admin_client, text):
    adapter = Adapter.objects.get_or_create(name="target")[0]
    for form in (
        NameForm({"name": text or "x", "alias": text}, instance=adapter),
        TriggerWordsForm({"trigger_words": text}, instance=adapter),
        TextsForm({"activation_text": text, "negative_text": text}, instance=adapter),
        NotesForm({"notes": text}, instance=adapter),
        DescriptionForm({"description": text}, instance=adapter),
        TagsForm({"tags": text}, instance=adapter),
    ):
        if form.is_valid():
            form.save()
        else:
            assert form.errors
        adapter.refresh_from_db()
    data = QueryDict(mutable=True)
    data.update({"prompt": text, "negative": text, "checkpoint": text, "sampler": text, "preset_name": text or "p"})
    composition, errors = generation_forms.parse(data)
    preset = generation_forms.PresetForm(data)
    if not errors and preset.is_valid():
        found: list[str] = []
        sanitize.storable_data([composition.to_dict(), preset.cleaned_data], found)
        assert not found, found
    stored_text_is_storable(adapter)
    pages_render(admin_client, adapter)


@EXAMPLES
@given(text=ANY_TEXT, tag=ANY_TEXT)
def test_sidecar_readers(admin_client, tmp_path_factory, settings, text, tag):
    root = tmp_path_factory.mktemp("Lora")
    settings.LIBRARY_DIRS = [root]
    settings.THUMBNAIL_DIR = root / ".thumbs"
    path = lora(root, "hostile.safetensors", seed=3)
    sidecar = {"activation text": text, "notes": text, "description": text, "negative text": text}
    write_sidecar_raw(path, ".json", json.dumps(sidecar, ensure_ascii=True))
    info = {"trainedWords": [text], "model": {"name": text, "tags": [tag]}, "description": text}
    write_sidecar_raw(path, ".civitai.info", json.dumps(info, ensure_ascii=True))
    write_sidecar_raw(path, ".txt", text.encode("utf-8", "surrogatepass"))
    summary = scanning.scan([str(root)])  # never raises: bad text is replaced and named in an issue
    assert summary.found == 1
    adapter = Adapter.objects.get(files__path=str(path))
    stored_text_is_storable(adapter)
    pages_render(admin_client, adapter)
    Adapter.objects.all().delete()
