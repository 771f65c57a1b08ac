"""Bulk actions from the library (ids or "all matching this filter"), confirmation, undo, stale pages, permissions."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client

from adapters import bulk_edit, gallery, search
from adapters.models import Adapter, AdapterFile, BulkAction, Tag
from tests.adapters.catalog_factory import make_adapter, sample_catalog

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture
def catalog():
    return sample_catalog()


def bulk(client, action: str, ids=(), **extra):
    return client.post("/library/bulk/", {"action": action, "ids": [str(i) for i in ids], **extra}, headers=HTMX)


def undo_last(client, user):
    action = BulkAction.objects.filter(user=user).first()
    return client.post(f"/library/bulk/{action.pk}/undo/", headers=HTMX)


def snapshot() -> dict:
    """Everything a bulk action may touch, per adapter."""
    return {
        a.pk: (a.active, a.favorite, a.base_model, dict(a.sources), sorted(t.name for t in a.tags.all()))
        for a in Adapter.objects.prefetch_related("tags")
    }


@pytest.mark.parametrize(
    ("action", "extra", "check"),
    [
        ("deactivate", {}, lambda a: not a.active),
        ("favorite", {}, lambda a: a.favorite and a.sources["favorite"] == "user"),
        ("unfavorite", {}, lambda a: not a.favorite),
        (
            "set_base_model",
            {"base_model": "Flux"},
            lambda a: a.base_model == "Flux" and a.sources["base_model"] == "user",
        ),
        ("add_tags", {"tags": "Pixel Art, retro"}, lambda a: {"pixel art", "retro"} <= {t.name for t in a.tags.all()}),
        ("remove_tags", {"tags": "anime"}, lambda a: "anime" not in {t.name for t in a.tags.all()}),
    ],
)
def test_each_action_then_undo_restores_exactly(editor_client, editor, catalog, action, extra, check):
    chosen = [catalog["alpha knight"].pk, catalog["beta witch"].pk, catalog["eta cat"].pk]
    before = snapshot()
    response = bulk(editor_client, action, chosen, **extra)
    assert response.status_code == 200
    assert response["HX-Trigger"] == "gallery-changed"
    html = response.content.decode()
    assert "Undo" in html
    for adapter in Adapter.objects.filter(pk__in=chosen).prefetch_related("tags"):
        assert check(adapter), adapter
    others = {pk: state for pk, state in snapshot().items() if pk not in chosen}
    assert others == {pk: state for pk, state in before.items() if pk not in chosen}
    undone = undo_last(editor_client, editor)
    assert undone.status_code == 200 and "Undone" in undone.content.decode()
    assert snapshot() == before
    if action == "add_tags":
        assert not Tag.objects.filter(name__in=["pixel art", "retro"]).exists()  # tags the action created go too


def test_activate_counts_only_real_changes(editor_client, catalog):
    response = bulk(editor_client, "activate", [a.pk for a in catalog.values()])
    assert "1 adapter activated" in response.content.decode()


def test_select_all_matching_a_filter_acts_on_every_page(editor_client, editor, db):
    for i in range(70):
        make_adapter(f"m{i}", base_model="SD1" if i % 2 else "SDXL")
    response = bulk(editor_client, "deactivate", scope="filter", filter="base=SD1")
    assert "35 adapters deactivated" in response.content.decode()
    assert set(Adapter.objects.filter(active=False).values_list("base_model", flat=True)) == {"SD1"}
    undo_last(editor_client, editor)
    assert not Adapter.objects.filter(active=False).exists()


def test_remove_asks_first_then_removes_and_undo_brings_everything_back(editor_client, editor, catalog):
    target = catalog["alpha knight"]
    files = list(AdapterFile.objects.filter(adapter=target).values_list("path", flat=True))
    before = snapshot()
    asked = bulk(editor_client, "remove", [target.pk])
    html = asked.content.decode()
    assert "Remove 1 adapter from the catalog?" in html and 'name="confirm" value="1"' in html
    assert Adapter.objects.filter(pk=target.pk).exists()
    done = bulk(editor_client, "remove", [target.pk], confirm="1")
    assert "1 adapter removed" in done.content.decode()
    assert not Adapter.objects.filter(pk=target.pk).exists()
    assert gallery.matching_ids("q=knight") == []
    undo_last(editor_client, editor)
    restored = Adapter.objects.get(pk=target.pk)
    assert restored.name == "alpha knight" and restored.trigger_words == ["knight armor"]
    assert list(restored.files.values_list("path", flat=True)) == files
    assert snapshot() == before
    assert "knight" in search.document(target.pk)


def test_undo_of_a_removal_skips_adapters_a_scan_found_again(editor_client, editor, catalog):
    target = catalog["beta witch"]
    path = target.files.get().path
    bulk(editor_client, "remove", [target.pk], confirm="1")
    make_adapter("beta witch again")
    AdapterFile.objects.filter(adapter__name="beta witch again").update(path=path)
    response = undo_last(editor_client, editor)
    assert "could not come back" in response.content.decode()
    assert not Adapter.objects.filter(pk=target.pk).exists()


def test_stale_page_acting_on_removed_adapters_gets_a_clear_message(editor_client, catalog):
    gone = catalog["gamma dragon"].pk
    Adapter.objects.filter(pk=gone).delete()
    response = bulk(editor_client, "favorite", [gone, catalog["theta ship"].pk])
    assert response.status_code == 200
    assert "Skipped 1 selected adapter that no longer exists" in response.content.decode()
    response = bulk(editor_client, "deactivate", [gone])
    assert response.status_code == 409
    assert "None of the selected adapters exist any more" in response.content.decode()
    assert response["HX-Retarget"] == "#feedback"


def test_bad_bulk_requests_are_refused_with_a_message(editor_client, catalog):
    pk = catalog["eta cat"].pk
    cases = [
        ({"action": "explode", "ids": [pk]}, "Unknown action"),
        ({"action": "deactivate"}, "Select at least one adapter"),
        ({"action": "deactivate", "ids": ["abc"]}, "not an adapter id"),
        ({"action": "add_tags", "ids": [pk], "tags": " , "}, "Type at least one tag"),
        ({"action": "add_tags", "ids": [pk], "tags": "x" * 150}, "at most 100 characters"),
        ({"action": "set_base_model", "ids": [pk]}, "Choose a base model"),
        ({"action": "set_base_model", "ids": [pk], "base_model": "SD9"}, "valid choice"),
    ]
    for data, message in cases:
        response = editor_client.post("/library/bulk/", data, headers=HTMX)
        assert response.status_code == 422, data
        assert message in response.content.decode(), (data, response.content)


def test_only_the_last_action_can_be_undone_and_only_once(editor_client, editor, catalog):
    pk = catalog["eta cat"].pk
    bulk(editor_client, "deactivate", [pk])
    first = BulkAction.objects.get(user=editor)
    bulk(editor_client, "favorite", [catalog["theta ship"].pk])
    response = editor_client.post(f"/library/bulk/{first.pk}/undo/", headers=HTMX)
    assert response.status_code == 409 and "Only your last bulk action" in response.content.decode()
    assert undo_last(editor_client, editor).status_code == 200
    assert undo_last(editor_client, editor).status_code == 409


def test_without_htmx_bulk_confirms_on_a_page_and_redirects_with_a_message(editor_client, catalog):
    pk = catalog["eta cat"].pk
    response = editor_client.post("/library/bulk/", {"action": "remove", "ids": [pk], "filter": "base=Unknown"})
    assert response.status_code == 200 and "Remove 1 adapter" in response.content.decode()
    response = editor_client.post(
        "/library/bulk/", {"action": "remove", "ids": [pk], "confirm": "1", "filter": "base=Unknown"}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/library/?base=Unknown"
    assert "1 adapter removed" in response.content.decode() and "Undo" in response.content.decode()


def test_viewers_cannot_reach_bulk_or_undo(viewer_client, viewer, catalog):
    pk = catalog["eta cat"].pk
    assert bulk(viewer_client, "deactivate", [pk]).status_code == 403
    assert viewer_client.post("/library/bulk/1/undo/").status_code == 403
    assert Adapter.objects.get(pk=pk).active
    page = viewer_client.get("/library/").content.decode()
    assert 'id="bulk-form"' not in page and "data-select" not in page


def test_bulk_post_needs_the_csrf_token(editor, catalog):
    client = Client(enforce_csrf_checks=True)
    client.force_login(editor)
    response = client.post("/library/bulk/", {"action": "deactivate", "ids": [catalog["eta cat"].pk]})
    assert response.status_code == 403
    token = client.get("/library/").cookies["csrftoken"].value
    response = client.post(
        "/library/bulk/",
        {"action": "deactivate", "ids": [catalog["eta cat"].pk]},
        headers={"X-CSRFToken": token, **HTMX},
    )
    assert response.status_code == 200


def test_admin_actions_are_the_same_functions_and_undoable_from_the_library(client, admin_user, catalog):
    client.force_login(admin_user)
    ids = [catalog["alpha knight"].pk, catalog["theta ship"].pk]
    client.post("/admin/adapters/adapter/", {"action": "deactivate", ACTION_CHECKBOX_NAME: ids}, follow=True)
    assert Adapter.objects.filter(active=False).count() == 3
    library = client.get("/library/").content.decode()
    assert "Last bulk action: 2 adapters deactivated" in library
    undo_last(client, admin_user)
    assert Adapter.objects.filter(active=False).count() == 1


def test_bulk_edit_functions_work_on_more_ids_than_sqlite_allows_in_one_statement(db):
    adapter = make_adapter("only one")
    ids = [adapter.pk, *range(10_000_000, 10_040_000)]
    assert bulk_edit.set_active(ids, False) == 1
    assert bulk_edit.add_tags(ids, ["big"]) == 1
    assert bulk_edit.existing_ids(ids) == [adapter.pk]


def test_large_removals_are_final_and_say_so(editor_client, editor, catalog, monkeypatch):
    monkeypatch.setattr(bulk_edit, "MAX_UNDOABLE_REMOVAL", 2)
    ids = [catalog["alpha knight"].pk, catalog["beta witch"].pk, catalog["eta cat"].pk]
    asked = bulk(editor_client, "remove", ids).content.decode()
    assert "too many to undo" in asked
    done = bulk(editor_client, "remove", ids, confirm="1").content.decode()
    assert "too large to undo" in done and "Undo" not in done
