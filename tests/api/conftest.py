"""API fixtures: a token per role, and a client that sends it."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from api import tokens


class ApiClient:
    """Django's test client speaking JSON with a Bearer token (or none)."""

    def __init__(self, token: str | None = None) -> None:
        self.client = Client()
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def _send(self, method: str, path: str, body=None, raw: str | None = None, **extra):
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        kwargs = {"content_type": "application/json"} if data is not None else {}
        call = getattr(self.client, method)
        return (
            call(path, data, headers={**self.headers, **extra}, **kwargs)
            if data is not None
            else call(path, headers={**self.headers, **extra})
        )

    def get(self, path, **extra):
        return self._send("get", path, **extra)

    def post(self, path, body=None, raw=None, **extra):
        return self._send("post", path, body, raw, **extra)

    def patch(self, path, body=None, raw=None, **extra):
        return self._send("patch", path, body, raw, **extra)


@pytest.fixture
def viewer_api(viewer):
    return ApiClient(tokens.create(viewer, "viewer script")[1])


@pytest.fixture
def editor_api(editor):
    return ApiClient(tokens.create(editor, "editor script")[1])


@pytest.fixture
def admin_api(admin_user):
    return ApiClient(tokens.create(admin_user, "admin script")[1])


from tests.adapters.civitai_fixtures import civitai  # noqa: E402, F401 - the Civitai stand-in fixture
