"""Every action of the one bulk-action table, started from the library, the API and the admin: the same rows
change, the same message (the API has none), the same people are refused, and undo works where declared."""

from __future__ import annotations

import html
import re
from contextlib import contextmanager

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.db import transaction
from django.test import Client

from adapters import bulk_actions, bulk_edit, selection
from adapters.models import Adapter, AdapterFile, CivitaiRun, ScanRun
from api import tokens
from lora_manager.roles import VIEWER
from tests.adapters.catalog_factory import make_adapter, sample_catalog
from tests.api.conftest import ApiClient
from tests.conftest import make_user

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}
SURFACES = ("view", "api", "admin")
CHOSEN = ("alpha knight", "beta witch", "delta dragon copy")  # each action changes one of them
# What each action needs, as each surface sends it.
PARAMS = {
    "add_tags": {"view": {"tags": "Pixel Art, retro"}, "api": {"tags": ["Pixel Art", "retro"]}},
    "remove_tags": {"view": {"tags": "anime"}, "api": {"tags": ["anime"]}},
    "set_base_model": {"view": {"base_model": "Flux"}, "api": {"base_model": "Flux"}},
}


class Rollback(Exception):
    pass


@contextmanager
def rolled_back():
    """Run one surface's attempt, then put the database back as it was for the next surface."""
    try:
        with transaction.atomic():
            yield
            raise Rollback
    except Rollback:
        pass


@pytest.fixture
def catalog(settings, redis_conn):
    settings.CIVITAI_URL = "http://127.0.0.1:9/"  # switched on; the queued run never executes (rolled back)
    adapters = sample_catalog()
    AdapterFile.objects.update(sha256="f" * 64)  # hashed, so a re-hash visibly forgets it
    return adapters


def state() -> dict:
    """Everything any bulk action may change, keyed by names (ids differ between databases)."""
    adapters = {
        a.name: (
            a.active,
            a.favorite,
            a.base_model,
            dict(a.sources),
            sorted(t.name for t in a.tags.all()),
            sorted((f.path, f.mtime_ns, f.sidecar_signature, f.sha256) for f in a.files.all()),
        )
        for a in Adapter.objects.prefetch_related("tags", "files")
    }
    names = dict(Adapter.objects.values_list("pk", "name"))
    civitai = [(r.mode, sorted(names.get(pk, "?") for pk in r.adapter_ids)) for r in CivitaiRun.objects.all()]
    return {"adapters": adapters, "civitai runs": civitai, "scans": ScanRun.objects.count()}


def ids_of(names) -> list[int]:
    return list(Adapter.objects.filter(name__in=names).values_list("pk", flat=True))


def start(surface: str, name: str, user, ids: list[int]) -> tuple[int, str]:
    """Start action ``name`` over ``ids`` from one surface as ``user``; returns (status, message)."""
    client = Client()
    client.force_login(user)
    params = PARAMS.get(name, {})
    if surface == "view":
        data = {"action": name, "ids": [str(i) for i in ids], "confirm": "1", **params.get("view", {})}
        response = client.post("/library/bulk/", data, headers=HTMX)
        return response.status_code, html.unescape(response.content.decode())
    if surface == "api":
        api = ApiClient(tokens.create(user, "bulk agreement")[1])
        response = api.post("/api/v1/adapters/bulk", {"action": name, "ids": ids, **params.get("api", {})})
        return response.status_code, response.json().get("detail", "")
    data = {"action": name, ACTION_CHECKBOX_NAME: ids, "apply": "1", **params.get("view", {})}
    response = client.post("/admin/adapters/adapter/", data, follow=True)
    messages = [str(m) for m in response.context["messages"]] if response.context else []
    return response.status_code, " ".join(messages)


def reference(name: str, user, ids: list[int]) -> str:
    """The table's own answer: the action run directly (what every surface must agree with)."""
    extra = PARAMS.get(name, {}).get("api", {})
    params = bulk_actions.Params(tags=tuple(extra.get("tags", ())), base_model=extra.get("base_model", ""))
    return bulk_actions.perform(name, ids, params, user).message


def numbered(message: str) -> str:
    return re.sub(r"#\d+", "#N", message)  # run numbers differ between attempts


@pytest.mark.parametrize("name", list(bulk_actions.ACTIONS))
def test_every_action_changes_the_same_rows_says_the_same_and_undoes_from_each_surface(name, catalog, admin_user):
    action = bulk_actions.ACTIONS[name]
    before = state()
    with rolled_back():
        expected_message = numbered(reference(name, admin_user, ids_of(CHOSEN)))
        expected = state()
    assert expected != before, "the action changed nothing here: the test would prove nothing"
    for surface in SURFACES:
        with rolled_back():
            status, message = start(surface, name, admin_user, ids_of(CHOSEN))
            assert status == 200, (surface, message)
            assert state() == expected, f"{surface} changed other rows than the table's action"
            if surface != "api":  # the API answers with counts; the library and the admin say it in words
                assert expected_message in numbered(message), (surface, message)
            latest = bulk_edit.latest_undoable(admin_user)
            assert (latest is not None) == (action.undo is not None), f"{surface}: undo availability differs"
            if latest is not None:
                client = Client()
                client.force_login(admin_user)
                undone = client.post(f"/library/bulk/{latest.pk}/undo/", headers=HTMX)
                assert undone.status_code == 200 and "Undone" in undone.content.decode(), surface
                assert state()["adapters"] == before["adapters"], f"{surface}: undo did not restore everything"


def test_the_api_says_whether_its_action_can_be_undone(catalog, admin_user):
    api = ApiClient(tokens.create(admin_user, "undoable")[1])
    for name, action in bulk_actions.ACTIONS.items():
        with rolled_back():
            body = {"action": name, "ids": ids_of(CHOSEN), **PARAMS.get(name, {}).get("api", {})}
            answer = api.post("/api/v1/adapters/bulk", body).json()
            assert answer["undoable"] == (action.undo is not None), (name, answer)
            assert answer["matched"] == 3 and answer["changed"] > 0, (name, answer)


def lacking(action: bulk_actions.Action):
    """A staff member who may see the admin and the library, with every permission the action needs but its last."""
    user = make_user("almost", VIEWER)
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    for permission in action.permissions[:-1]:
        app_label, codename = permission.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return type(user).objects.get(pk=user.pk)  # fresh permission cache


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("name", list(bulk_actions.ACTIONS))
def test_someone_lacking_the_permission_is_refused_everywhere(name, surface, catalog):
    action = bulk_actions.ACTIONS[name]
    user = lacking(action)
    before = state()
    status, message = start(surface, name, user, ids_of(CHOSEN))
    assert state() == before
    client = Client()
    client.force_login(user)
    if surface == "admin":  # the action is not offered to them, so the POST does nothing
        assert status == 200
        assert f'<option value="{name}"' not in client.get("/admin/adapters/adapter/").content.decode()
    else:
        assert status == 403, (status, message)
    assert f'value="{name}"' not in client.get("/library/").content.decode()  # nor shown in the library


def test_the_api_accepts_exactly_the_tables_actions(catalog, admin_user):
    api = ApiClient(tokens.create(admin_user, "schema")[1])
    schema = Client().get("/api/v1/openapi.json").json()
    bulk_in = schema["components"]["schemas"]["BulkIn"]["properties"]["action"]
    assert set(bulk_in["enum"]) == set(bulk_actions.ACTIONS)
    answer = api.post("/api/v1/adapters/bulk", {"action": "explode", "ids": ids_of(CHOSEN)})
    assert answer.status_code == 422


def test_a_busy_civitai_lookup_is_refused_the_same_way(catalog, admin_user):
    running = CivitaiRun.objects.create(mode=CivitaiRun.Mode.DUE, status=CivitaiRun.Status.RUNNING)
    for surface in SURFACES:
        status, message = start(surface, "civitai", admin_user, ids_of(CHOSEN))
        assert f"#{running.pk} is already running" in message, surface
        assert status == (200 if surface == "admin" else 409), surface
    assert CivitaiRun.objects.count() == 1


# --- the one "ids or filter" resolver ------------------------------------------------------------------


def test_selection_by_ids_skips_removed_ones_and_by_filter_takes_every_match(db):
    kept = [make_adapter(f"s{i}", base_model="SD1" if i % 2 else "SDXL").pk for i in range(7)]
    chosen = selection.resolve(ids=[kept[0], kept[0], 10_000_000])
    assert chosen.ids == [kept[0]] and chosen.missing == 1 and not chosen.by_filter
    by_filter = selection.resolve(filter="base=SD1")
    assert sorted(by_filter.ids) == kept[1::2] and by_filter.by_filter and by_filter.missing == 0
    for ids, filter_ in [(None, None), ([1], "base=SD1")]:
        with pytest.raises(selection.InvalidSelection, match="either"):
            selection.resolve(ids=ids, filter=filter_)
    with pytest.raises(selection.InvalidSelection, match="Invalid filter"):
        selection.resolve(filter="base=SD9")  # refused, never widened to "everything"


def test_library_and_api_refuse_a_filter_the_gallery_cannot_read(editor_client, editor, db):
    make_adapter("still active")
    view = editor_client.post(
        "/library/bulk/", {"action": "deactivate", "scope": "filter", "filter": "base=SD9"}, headers=HTMX
    )
    api = ApiClient(tokens.create(editor, "filter")[1]).post(
        "/api/v1/adapters/bulk", {"action": "deactivate", "filter": "base=SD9"}
    )
    assert view.status_code == api.status_code == 422
    assert "Invalid filter" in view.content.decode() and "Invalid filter" in api.json()["detail"]
    assert Adapter.objects.get().active and AdapterFile.objects.count() == 1
