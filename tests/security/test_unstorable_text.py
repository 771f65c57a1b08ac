"""Defects 1 and 2 of issue 14: text that cannot be encoded (lone surrogates, NUL) from a sidecar or the
API must never be stored as is; a scan goes on with a per-file issue, a person gets a 422 / form error."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from adapters import civitai_runs, sanitize
from adapters.models import Adapter, CivitaiRecord
from api import tokens
from api.models import ApiToken
from recommendations.models import Feedback
from tests.adapters import civitai_fixtures
from tests.adapters.civitai_fixtures import fast_client, published
from tests.adapters.conftest import lora
from tests.api.conftest import ApiClient
from tests.factories.sidecars import write_sidecar_raw

pytestmark = pytest.mark.django_db
civitai = civitai_fixtures.civitai  # the Civitai stand-in fixture


@pytest.fixture
def library(tmp_path, settings):
    root = tmp_path / "Lora"
    root.mkdir()
    settings.LIBRARY_DIRS = [root]
    settings.THUMBNAIL_DIR = tmp_path / "thumbs"
    return root


def test_gate_names_the_problem_and_replaces_for_files():
    assert sanitize.storable_problem("plain ünïcode ✓ 😀") is None
    assert "lone surrogate (U+D800" in sanitize.storable_problem("act \ud800 x")
    assert "NUL" in sanitize.storable_problem("a\x00b")
    with pytest.raises(sanitize.UnstorableText, match="notes contains a lone surrogate"):
        sanitize.check_storable("\udfff", "notes")
    found: list[str] = []
    cleaned = sanitize.storable_data({"k\ud800": ["ok", "x\x00"], "n": 1}, found)
    assert cleaned == {"k\ufffd": ["ok", "x\ufffd"], "n": 1}
    assert found == ["k\ufffd", "k\ufffd[1]"]
    json.dumps(cleaned).encode("utf-8")  # storable


def test_defect1_a_sidecar_with_a_lone_surrogate_does_not_fail_the_scan(library, client, admin_user):
    """Before: CommandError "scan failed: 'utf-8' codec can't encode character '\\ud800'"; nothing catalogued."""
    bad = lora(library, "bad.safetensors", seed=1)
    lora(library, "good.safetensors", seed=2)
    write_sidecar_raw(bad, ".json", '{"activation text": "act \\ud800 x", "notes": "n\\u0000b"}')
    call_command("scan_library", "--no-hash")
    assert set(Adapter.objects.values_list("name", flat=True)) == {"bad", "good"}
    adapter = Adapter.objects.get(name="bad")
    assert adapter.activation_text == "act \ufffd x"
    assert adapter.notes == "n\ufffdb"
    assert any("cannot be stored" in issue for issue in adapter.issues), adapter.issues
    client.force_login(admin_user)
    for url in ("/library/", f"/library/{adapter.pk}/", f"/generate/?adapter={adapter.pk}", "/"):
        assert client.get(url).status_code == 200, url


def test_defect1_a_file_name_that_is_not_utf8_is_an_issue_not_a_failure(library):
    lora(library, "good.safetensors", seed=2)
    raw = bytes(library) + b"/caf\xe9.safetensors"  # Latin-1 on a UTF-8 file system
    with open(raw, "wb") as fh, open(library / "good.safetensors", "rb") as src:
        fh.write(src.read())
    call_command("scan_library", "--no-hash")
    assert list(Adapter.objects.values_list("name", flat=True)) == ["good"]


@pytest.mark.parametrize("field,value", [("trigger_words", ["\ud800"]), ("tags", ["x\udfff"]), ("notes", "a\ud800")])
def test_defect2_the_api_refuses_unencodable_text(editor, viewer_client, field, value):
    """Before: PATCH trigger_words ["\\ud800"] answered 200 and /library/ answered 500 for everyone."""
    adapter = Adapter.objects.create(name="victim")
    api = ApiClient(tokens.create(editor, "script")[1])
    body = json.dumps({field: value}, ensure_ascii=True)  # "\ud800" as a JSON escape, as an attacker sends it
    response = api.patch(f"/api/v1/adapters/{adapter.pk}", raw=body)
    assert response.status_code == 422, response.content
    assert "surrogate" in response.json()["detail"]
    adapter.refresh_from_db()
    assert adapter.trigger_words == [] and adapter.notes == ""
    for url in ("/library/", f"/library/{adapter.pk}/", f"/generate/?adapter={adapter.pk}"):
        assert viewer_client.get(url).status_code == 200, url


@pytest.mark.parametrize(
    "url",
    [
        "/generate/loras/search/?q=a%00b",  # was a 500 on PostgreSQL ("text fields cannot contain NUL")
        "/library/?q=a%00b",
        "/library/tags/suggest/?q=%00",
        "/generate/history/?q=a%00b",
        "/api/v1/adapters?q=a%00b",
    ],
)
def test_nul_in_a_query_string_is_replaced(admin_user, client, url):
    """Run on PostgreSQL (CI), the first URL answered 500 before the query-string gate."""
    client.force_login(admin_user)
    response = client.get(url)
    assert response.status_code == 200, url


def test_the_admin_refuses_it_in_json_fields(admin_user, client):
    adapter = Adapter.objects.create(name="victim")
    client.force_login(admin_user)
    page = client.get(f"/admin/adapters/adapter/{adapter.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form[name].value() if form[name].value() is not None else "" for name in form.fields}
    for name, value in list(data.items()):
        if (isinstance(value, bool) and not value) or name == "tags":  # unchecked boxes, the M2M
            data.pop(name)
        elif isinstance(value, list | dict):
            data[name] = json.dumps(value)
    data["trigger_words"] = '["\\ud800"]'  # the JSON text ["\ud800"], as an admin could type it
    data["files-TOTAL_FORMS"], data["files-INITIAL_FORMS"] = "0", "0"
    response = client.post(f"/admin/adapters/adapter/{adapter.pk}/change/", data)
    errors = response.context["adminform"].form.errors
    assert response.status_code == 200 and "lone surrogate" in str(errors.get("trigger_words")), errors
    adapter.refresh_from_db()
    assert adapter.trigger_words == []
    assert client.get("/library/").status_code == 200


def test_form_posts_outside_django_forms_refuse_nul(editor, client):
    """A token name or a feedback context with a NUL (a hand-made form post) was stored on SQLite and a 500
    on PostgreSQL ("PostgreSQL text fields cannot contain NUL"); now each is a clear refusal, nothing stored."""
    adapter = Adapter.objects.create(name="victim")
    client.force_login(editor)
    answer = client.post("/api/tokens/", {"name": "my\x00script"})
    assert answer.status_code == 422 and "token name contains a NUL character" in answer.content.decode()
    assert not ApiToken.objects.exists()
    vote = {"kind": "prompt", "context": "a castle\x00", "adapter": adapter.pk, "value": "1"}
    answer = client.post("/recommendations/feedback/", vote)
    assert answer.status_code == 400 and "context contains a NUL character" in answer.content.decode()
    assert not Feedback.objects.exists()


def test_a_civitai_answer_with_a_lone_surrogate_does_not_fail_the_lookup_run(civitai, admin_user, client):
    """Civitai's JSON is written by model authors: a description or name with a lone surrogate (a valid JSON
    escape, as JSON.stringify writes one) made the whole lookup run end "Failed: 'utf-8' codec can't
    encode character '\\ud800'" and stored nothing for any adapter. Now it is replaced like a sidecar's."""
    hostile, lora_info = published(
        civitai, "hostile", description="<p>d \ud800 x\x00</p>", trained_words=["w\ud800"], tags=["t\udfff"]
    )
    civitai.models[lora_info.model_id]["name"] = "N\ud800"
    fine, _ = published(civitai, "fine")
    run = civitai_runs.execute(civitai_runs.start_run("all"), client=fast_client(civitai))
    assert run.status == "succeeded" and run.found == 2, (run.status, run.message)
    hostile.refresh_from_db()
    assert "d \ufffd x\ufffd" in hostile.description and hostile.trigger_words == ["w\ufffd"]
    assert list(hostile.tags.values_list("name", flat=True)) == ["t\ufffd"]
    assert CivitaiRecord.objects.filter(adapter=fine, found=True).exists()
    client.force_login(admin_user)
    for url in ("/library/", f"/library/{hostile.pk}/", f"/generate/?adapter={hostile.pk}"):
        assert client.get(url).status_code == 200, url
