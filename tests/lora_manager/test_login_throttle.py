"""Defect 7 of issue 14: failed logins are throttled (django-axes); admins can unlock; API tokens too."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client

from api import tokens

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def attempt(client: Client, username: str, password: str, address: str = "203.0.113.7"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(client: Client) -> bool:
    return client.get("/library/").status_code == 200


def test_defect7_ten_failures_lock_the_account_even_for_the_right_password(viewer):
    """Before: 30 wrong passwords in 10 s, then the right one worked."""
    client = Client()
    answers = [attempt(client, "vera", "wrong").status_code for _ in range(10)]
    assert answers == [200] * 9 + [429]  # the form again with its error; the 10th failure locks
    refused = attempt(client, "vera", "pw-vera-1234")
    assert refused.status_code == 429
    assert "Too many failed logins" in refused.content.decode() and not logged_in(client)
    # ... from another address too (the username is locked), until an admin unlocks it:
    assert attempt(Client(), "vera", "pw-vera-1234", address="198.51.100.9").status_code == 429
    call_command("axes_reset_username", "vera")
    assert attempt(client, "vera", "pw-vera-1234").status_code == 302 and logged_in(client)


def test_one_address_guessing_many_usernames_is_locked(viewer, editor):
    client = Client()
    for n in range(10):
        attempt(client, f"nobody{n}", "wrong", address="192.0.2.50")
    assert attempt(client, "eddie", "pw-eddie-1234", address="192.0.2.50").status_code == 429
    assert attempt(Client(), "eddie", "pw-eddie-1234", address="192.0.2.51").status_code == 302
    call_command("axes_reset_ip", "192.0.2.50")
    assert attempt(Client(), "eddie", "pw-eddie-1234", address="192.0.2.50").status_code == 302


def test_fewer_failures_and_a_success_reset_the_count(viewer):
    client = Client()
    for _ in range(9):
        attempt(client, "vera", "wrong")
    assert attempt(client, "vera", "pw-vera-1234").status_code == 302
    for _ in range(9):
        attempt(Client(), "vera", "wrong")
    assert attempt(Client(), "vera", "pw-vera-1234").status_code == 302


def test_admins_unlock_in_the_admin(viewer, admin_user):
    for _ in range(10):
        attempt(Client(), "vera", "wrong")
    row = AccessAttempt.objects.get(username="vera")
    admin = Client()
    admin.force_login(admin_user)
    assert admin.get("/admin/axes/accessattempt/").status_code == 200
    assert admin.post(f"/admin/axes/accessattempt/{row.pk}/delete/", {"post": "yes"}).status_code == 302
    assert attempt(Client(), "vera", "pw-vera-1234").status_code == 302


def api(token: str, address: str):
    return Client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}, REMOTE_ADDR=address)


def test_api_token_failures_are_throttled(viewer):
    good = tokens.create(viewer, "script")[1]
    for n in range(10):
        answer = api(f"lm_wrong{n:04d}xxxxxxxxxxxxxxxx", "203.0.113.80")
        assert answer.status_code in (401, 429) and answer.json()["detail"]
    locked = api(good, "203.0.113.80")
    assert locked.status_code == 429 and "Too many failed logins or API token attempts" in locked.json()["detail"]
    assert api(good, "203.0.113.81").status_code == 200
    call_command("axes_reset_ip", "203.0.113.80")
    assert api(good, "203.0.113.80").status_code == 200
