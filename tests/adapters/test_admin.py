import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from adapters import scanning
from adapters.models import Adapter, Tag
from tests.adapters.conftest import lora

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(library):
    for i in range(3):
        lora(library, f"m{i}.safetensors", seed=i)
    scanning.scan()
    return list(Adapter.objects.order_by("pk").values_list("pk", flat=True))


def act(client, action, ids, **extra):
    return client.post("/admin/adapters/adapter/", {"action": action, ACTION_CHECKBOX_NAME: ids, **extra}, follow=True)


@pytest.fixture
def admin_client_logged(client, admin_user):
    client.force_login(admin_user)
    return client


def test_changelist_with_filters_and_search(admin_client_logged, catalog):
    response = admin_client_logged.get("/admin/adapters/adapter/?base_model__exact=SDXL&q=m1")
    assert response.status_code == 200
    assert response.context["cl"].result_count == 1
    sha_prefix = "zz"
    assert admin_client_logged.get(f"/admin/adapters/adapter/?q={sha_prefix}").context["cl"].result_count == 0


def test_activate_deactivate_favorite_remove(admin_client_logged, catalog):
    response = act(admin_client_logged, "deactivate", catalog[:2])
    assert "2 adapters deactivated" in response.content.decode()
    assert Adapter.objects.filter(active=False).count() == 2
    act(admin_client_logged, "activate", catalog[:1])
    assert Adapter.objects.filter(active=False).count() == 1
    act(admin_client_logged, "favorite", catalog)
    assert Adapter.objects.filter(favorite=True).count() == 3
    act(admin_client_logged, "remove", catalog[2:])
    assert Adapter.objects.count() == 2


def test_tags_and_base_model_actions_ask_then_apply(admin_client_logged, catalog):
    form = act(admin_client_logged, "add_tags", catalog)
    assert b'name="tags"' in form.content
    response = act(admin_client_logged, "add_tags", catalog, apply="1", tags="Anime, pixel art")
    assert "6 tag links added (anime, pixel art)" in response.content.decode()
    assert set(Tag.objects.values_list("name", flat=True)) >= {"anime", "pixel art"}
    act(admin_client_logged, "remove_tags", catalog[:1], apply="1", tags="anime")
    assert Adapter.objects.filter(tags__name="anime").count() == 2
    act(admin_client_logged, "set_base_model", catalog[:1], apply="1", base_model="SD1")
    adapter = Adapter.objects.get(pk=catalog[0])
    assert adapter.base_model == "SD1" and adapter.sources["base_model"] == "user"
    scanning.scan()  # a rescan keeps the user's choice
    assert Adapter.objects.get(pk=catalog[0]).base_model == "SD1"


def test_tag_merge(admin_client_logged, catalog):
    from adapters import bulk_edit

    bulk_edit.add_tags(catalog[:2], ["anime style"])
    bulk_edit.add_tags(catalog[1:], ["anime"])
    ids = list(Tag.objects.filter(name__in=["anime style", "anime"]).values_list("pk", flat=True))
    response = admin_client_logged.post(
        "/admin/adapters/tag/",
        {"action": "merge", ACTION_CHECKBOX_NAME: ids, "apply": "1", "target": "anime"},
        follow=True,
    )
    assert "merged into" in response.content.decode()
    assert list(Tag.objects.values_list("name", flat=True)) == ["anime"]
    assert Adapter.objects.filter(tags__name="anime").count() == 3


def test_viewer_and_editor_cannot_use_admin_actions(client, viewer, catalog):
    client.force_login(viewer)
    response = act(client, "deactivate", catalog)
    assert Adapter.objects.filter(active=False).count() == 0
    assert response.status_code == 200  # the admin login page
