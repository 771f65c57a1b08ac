"""Every URL needs a login (walks the resolver, so a new view cannot forget it), and roles hold."""

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

PUBLIC = {"/healthz", "/readyz", "/accounts/login/", "/admin/login/", "/favicon.ico"}


def all_paths(resolver=None, prefix=""):
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        pattern = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from all_paths(entry, pattern)
        elif isinstance(entry, URLPattern):
            path = re.sub(r"<(?:\w+:)?\w+>", "1", pattern)
            path = re.sub(r"\(\?P<\w+>[^)]+\)", "1", path).replace("^", "").replace("$", "").replace("\\", "")
            yield "/" + path


@pytest.mark.django_db
def test_every_url_redirects_anonymous_users_to_login(client):
    checked = 0
    for path in sorted(set(all_paths())):
        if path in PUBLIC or path.startswith("/static/"):
            continue
        response = client.get(path)
        if path.startswith("/api/v1/"):  # scripts get a JSON 401, not a login page; the schema and docs are public
            public_docs = path.endswith(("/openapi.json", "/docs"))
            assert response.status_code in ((200,) if public_docs else (401, 404, 405)), (
                f"{path}: {response.status_code}"
            )
            assert response["Content-Type"].startswith("application/json") or public_docs
            continue
        assert response.status_code in (302, 301), f"{path} answered {response.status_code} to an anonymous user"
        location = response.headers["Location"]
        assert "/login/" in location, f"{path} redirected to {location}"
        checked += 1
    assert checked > 20  # the admin, the library, the rq dashboard ...


@pytest.mark.django_db
def test_htmx_request_after_the_session_expired_sends_the_window_to_login(client):
    """Not a login page swapped into the dashboard's figures: HX-Redirect back to the page being shown."""
    response = client.get(
        "/library/",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/library/?q=ink&page=2"},
    )
    assert response.status_code == 200 and response.content == b""
    assert response["HX-Redirect"] == "/accounts/login/?next=%2Flibrary%2F%3Fq%3Dink%26page%3D2"
    plain = client.get("/library/")
    assert plain.status_code == 302 and "HX-Redirect" not in plain


@pytest.mark.django_db
def test_public_endpoints_need_no_login(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/accounts/login/").status_code == 200


def test_viewer_browses_but_cannot_scan(viewer_client):
    assert viewer_client.get("/library/").status_code == 200
    assert viewer_client.post("/library/scans/").status_code == 403
    assert viewer_client.get("/admin/").status_code == 302  # not staff: sent to the admin login


def test_editor_can_scan_but_not_administer(editor_client, redis_conn, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = editor_client.post("/library/scans/")
    assert response.status_code == 200
    assert b'id="scan-progress"' in response.content
    assert editor_client.get("/admin/").status_code == 302


def test_admin_reaches_the_django_admin_and_rq_dashboard(client, admin_user):
    client.force_login(admin_user)
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/rq/").status_code == 200


@pytest.mark.django_db
def test_login_and_logout(client, viewer):
    response = client.post("/accounts/login/", {"username": "vera", "password": "pw-vera-1234"})
    assert response.status_code == 302
    assert client.get("/library/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/library/").status_code == 302


def test_security_headers(viewer_client):
    response = viewer_client.get("/library/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_carry_csrf_header_for_htmx_and_the_manifest(viewer_client):
    html = viewer_client.get("/library/").content.decode()
    assert 'hx-headers=\'{"X-CSRFToken": "' in html
    assert 'rel="manifest"' in html
    assert 'ws-connect="/ws/activity/"' in html
