"""Defect 4 of issue 14: uploads are refused before their body is read, and nothing abandoned stays on disk."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import django_rq
import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from adapters.models import Adapter
from archive import uploads
from archive.models import ArchiveRun
from lora_manager.asgi import application
from lora_manager.runs import periodic
from tests.conftest import make_user


@pytest.fixture
def places(tmp_path, settings):
    settings.ARCHIVE_DIR = tmp_path / "archive"
    settings.THUMBNAIL_DIR = tmp_path / "thumbs"
    return tmp_path


def upload_files() -> list[Path]:
    folder = Path(django_settings.ARCHIVE_DIR) / "uploads"
    return sorted(folder.glob("*")) if folder.exists() else []


@pytest.mark.django_db
def test_defect4_a_viewers_upload_is_refused_and_leaves_nothing(viewer, places):
    """Before: the body was spooled to data/archive/uploads/<uuid>.zip, then 403, and the file stayed."""
    client = Client(enforce_csrf_checks=True)  # as a browser: the CSRF check reads the form first
    client.force_login(viewer)
    client.get("/archive/")
    token = client.cookies[django_settings.CSRF_COOKIE_NAME].value
    archive = SimpleUploadedFile("a.zip", b"PK" + b"x" * 5000)
    response = client.post("/archive/upload/", {"archive": archive, "csrfmiddlewaretoken": token})
    assert response.status_code == 403
    assert upload_files() == []
    assert ArchiveRun.objects.count() == 0


@pytest.mark.django_db
def test_an_upload_refused_after_it_was_read_leaves_nothing(editor, places):
    """An editor's upload without a CSRF token is read (the check needs the form), refused, and removed."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(editor)
    client.get("/archive/")  # the CSRF cookie is set; the form below lacks the token
    response = client.post("/archive/upload/", {"archive": SimpleUploadedFile("a.zip", b"PK" + b"x" * 5000)})
    assert response.status_code == 403
    assert upload_files() == []


def _asgi_post(path: str, cookie: str, length: int, body: bytes | None = None) -> list[dict]:
    """POST through the real ASGI application; without ``body``, one that must never be read."""
    sent: list[dict] = []
    given = []

    async def receive():
        if body is None:
            raise AssertionError("the body was read although the user may not upload")
        if given:  # Django then listens for a disconnect: none comes (cancelled once the response is sent)
            await asyncio.sleep(3600)
        given.append(True)
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"cookie", cookie.encode()),
            (b"content-type", b"multipart/form-data; boundary=x"),
            (b"content-length", str(length).encode()),
        ],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(application(scope, receive, send))
    return sent


def _cookie(client, user) -> str:
    client.force_login(user)
    return f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}"


@pytest.mark.django_db(transaction=True)
def test_permission_is_checked_before_the_body_is_read(client, places):
    viewer = make_user("vic", "viewer")
    adapter = Adapter.objects.create(name="x")
    cookie = _cookie(client, viewer)
    for path in ("/archive/upload/", f"/library/{adapter.pk}/section/image/edit/"):
        sent = _asgi_post(path, cookie, 50 * 2**20)
        assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 403, (path, sent[:1])
        assert b"permission" in b"".join(m.get("body", b"") for m in sent[1:]).lower()
    anonymous = _asgi_post("/archive/upload/", "", 50 * 2**20)
    assert anonymous[0]["status"] == 403
    assert upload_files() == []
    # The control: an editor passes the gate (then Django's CSRF check refuses this bare request: 403 CSRF).
    editor = make_user("eda", "editor")
    body = b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--x--\r\n'
    passed = _asgi_post(f"/library/{adapter.pk}/section/image/edit/", _cookie(client, editor), len(body), body)
    assert b"CSRF" in b"".join(m.get("body", b"") for m in passed[1:])


@pytest.mark.django_db
def test_abandoned_uploads_are_removed_periodically(places, settings, redis_conn):
    folder = uploads.upload_dir()
    old = time.time() - 3 * 24 * 3600

    def make(name: str, age: float) -> Path:
        path = folder / name
        path.write_bytes(b"PK")
        os.utime(path, (age, age))
        return path

    orphan = make("orphan.zip", time.time() - 2 * 3600)  # no run refers to it (a refused or broken request)
    fresh = make("fresh.zip", time.time())  # maybe still being written
    checked = make("checked.zip", old)  # a dry-run plan nobody confirmed for days
    in_use = make("in-use.zip", old)  # a queued import
    ArchiveRun.objects.create(kind="check", status="succeeded", path=str(checked))
    ArchiveRun.objects.create(kind="import", status="queued", path=str(in_use))
    removed = uploads.remove_abandoned()
    assert sorted(p.name for p in removed) == ["checked.zip", "orphan.zip"]
    assert not orphan.exists() and not checked.exists() and fresh.exists() and in_use.exists()
    job = periodic.find("upload-cleanup")  # declared by the archive app, scheduled by run_worker / the janitor
    assert periodic.schedule(job) is True
    assert periodic.schedule(job) is False  # once
    scheduled = django_rq.get_queue("default").scheduled_job_registry.get_job_ids()
    assert any(job_id.startswith(job.job_prefix) for job_id in scheduled)
    periodic.run("upload-cleanup")  # runs it (and keeps the chain: no duplicate)
    assert fresh.exists() and len(periodic.scheduled_ids(job)) == 1
