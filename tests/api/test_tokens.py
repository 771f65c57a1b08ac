"""Token lifecycle: create (page and command), hashed storage, use, revoke; wrong and revoked tokens."""

from __future__ import annotations

import hashlib
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from api import tokens
from api.models import ApiToken
from tests.api.conftest import ApiClient

pytestmark = pytest.mark.django_db


def test_token_is_stored_hashed_and_shown_once(editor):
    _, plaintext = tokens.create(editor, "  my   script ")
    assert plaintext.startswith("lm_") and len(plaintext) > 40
    row = ApiToken.objects.get()
    assert row.name == "my script"
    assert row.digest == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext not in {row.digest, row.prefix, row.name} and row.prefix == plaintext[:10]
    assert tokens.authenticate(plaintext) == editor
    assert ApiToken.objects.get().last_used_at is not None


def test_bad_names_are_refused(editor):
    with pytest.raises(ValueError, match="name"):
        tokens.create(editor, "   ")
    with pytest.raises(ValueError, match="100"):
        tokens.create(editor, "x" * 101)


def test_revoked_and_wrong_tokens_get_a_401_naming_the_problem(editor):
    token, plaintext = tokens.create(editor, "ci")
    assert ApiClient(plaintext).get("/api/v1/me").json()["username"] == "eddie"
    tokens.revoke(editor, token.pk)
    revoked = ApiClient(plaintext).get("/api/v1/me")
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
    wrong = ApiClient("lm_" + "x" * 43).get("/api/v1/me")
    assert wrong.status_code == 401 and "Unknown API token" in wrong.json()["detail"]
    alien = ApiClient("abc").get("/api/v1/me")
    assert alien.status_code == 401 and "lm_" in alien.json()["detail"]
    basic = ApiClient().get("/api/v1/me", Authorization="Basic Zm9vOmJhcg==")
    assert basic.status_code == 401 and "Bearer" in basic.json()["detail"]
    anonymous = ApiClient().get("/api/v1/me")
    assert anonymous.status_code == 401 and anonymous["Content-Type"].startswith("application/json")


def test_disabled_user_token_stops_working(editor):
    _, plaintext = tokens.create(editor, "ci")
    editor.is_active = False
    editor.save()
    assert ApiClient(plaintext).get("/api/v1/me").status_code == 401


def test_users_cannot_revoke_each_others_tokens(editor, viewer):
    token, _ = tokens.create(editor, "mine")
    with pytest.raises(ValueError):
        tokens.revoke(viewer, token.pk)
    assert ApiToken.objects.get().revoked_at is None


def test_create_api_token_command_prints_a_working_token(editor):
    out = StringIO()
    call_command("create_api_token", "eddie", "--name", "nightly", stdout=out)
    plaintext = out.getvalue().strip()
    assert ApiToken.objects.get().name == "nightly"
    assert tokens.authenticate(plaintext) == editor
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("create_api_token", "nobody")


def test_tokens_page_creates_lists_and_revokes(editor_client, editor):
    page = editor_client.get("/api/tokens/")
    assert page.status_code == 200 and "No tokens yet" in page.content.decode()
    created = editor_client.post("/api/tokens/", {"name": "laptop"}, headers={"HX-Request": "true"})
    body = created.content.decode()
    plaintext = body.split('<code id="new-token">')[1].split("</code>")[0]
    assert tokens.authenticate(plaintext) == editor
    token = ApiToken.objects.get()
    revoked = editor_client.post(f"/api/tokens/{token.pk}/revoke", headers={"HX-Request": "true"})
    assert "revoked" in revoked.content.decode() and plaintext not in revoked.content.decode()
    with pytest.raises(tokens.TokenError):
        tokens.authenticate(plaintext)
    empty = editor_client.post("/api/tokens/", {"name": ""})
    assert empty.status_code == 422 and "Give the token a name" in empty.content.decode()
