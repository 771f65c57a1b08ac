"""The tags page: counts, search, rename (and rename-onto-existing merges), merge, delete, permissions."""

from __future__ import annotations

import pytest

from adapters import gallery
from adapters.models import Adapter, Tag
from tests.adapters.catalog_factory import make_adapter

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture
def tagged(db):
    a = make_adapter("a", tags=("anime", "anime style", "pixel"))
    b = make_adapter("b", tags=("anime style",))
    c = make_adapter("c", tags=("anime", "retro"))
    return a, b, c


def tag(name: str) -> Tag:
    return Tag.objects.get(name=name)


def test_tags_page_lists_counts_and_finds(viewer_client, tagged):
    html = viewer_client.get("/library/tags/").content.decode()
    assert "4 tags" in html
    row = html[html.index(f'id="tag-{tag("anime").pk}-row"') :]
    assert "<td>2</td>" in row[: row.index("</tr>")]
    assert 'href="/library/?tag=anime"' in html
    found = viewer_client.get("/library/tags/?q=ANIME", headers={**HTMX, "HX-Target": "tag-list"}).content.decode()
    assert "<html" not in found and "2 tags" in found and "retro" not in found
    by_count = viewer_client.get("/library/tags/?sort=-count").content.decode()
    assert by_count.index(">anime<") < by_count.index(">retro<")
    odd = viewer_client.get("/library/tags/?sort=weird&page=zz&q=%00")
    assert odd.status_code == 200 and "Unknown sort" in odd.content.decode()


def test_library_page_links_to_tags(viewer_client, tagged):
    assert 'href="/library/tags/"' in viewer_client.get("/library/").content.decode()


def test_rename_and_rename_onto_an_existing_tag_merges(editor_client, tagged):
    response = editor_client.post(f"/library/tags/{tag('pixel').pk}/rename/", {"name": "Pixel Art"}, headers=HTMX)
    assert response.status_code == 200 and "renamed to “pixel art”" in response.content.decode()
    assert gallery.matching_ids("q=pixel+art") == [tagged[0].pk]  # the search document follows
    response = editor_client.post(f"/library/tags/{tag('anime style').pk}/rename/", {"name": "anime"}, headers=HTMX)
    assert "merged into the existing tag “anime”" in response.content.decode()
    assert not Tag.objects.filter(name="anime style").exists()
    assert set(Adapter.objects.filter(tags__name="anime").values_list("name", flat=True)) == {"a", "b", "c"}


def test_merge_moves_every_association_and_deletes_the_sources(editor_client, tagged):
    ids = [tag("anime style").pk, tag("retro").pk]
    response = editor_client.post("/library/tags/merge/", {"tag": ids, "target": "Anime"}, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and "2 tags" in html and "merged into “anime”" in html
    assert 'id="feedback"' in html and 'hx-swap-oob="true"' in html
    assert sorted(Tag.objects.values_list("name", flat=True)) == ["anime", "pixel"]
    assert Adapter.objects.filter(tags__name="anime").count() == 3


def test_merge_into_a_new_tag_creates_it(editor_client, tagged):
    editor_client.post("/library/tags/merge/", {"tag": [tag("pixel").pk, tag("retro").pk], "target": "old school"})
    assert sorted(Adapter.objects.filter(tags__name="old school").values_list("name", flat=True)) == ["a", "c"]


def test_delete_removes_links_but_not_adapters(editor_client, tagged):
    response = editor_client.post(f"/library/tags/{tag('anime').pk}/delete/", headers=HTMX)
    assert "deleted (it was on 2 adapters)" in response.content.decode()
    assert Adapter.objects.count() == 3 and not Tag.objects.filter(name="anime").exists()


@pytest.mark.parametrize(
    ("url", "data", "message"),
    [
        ("rename", {"name": ""}, "cannot be empty"),
        ("rename", {"name": "x" * 200}, "at most 100 characters"),
        ("merge", {"target": "keep"}, "tick the tags"),
        ("merge", {"target": "", "tag": ["1"]}, "name the one tag"),
        ("merge", {"target": "a, b", "tag": ["1"]}, "name the one tag"),
    ],
)
def test_bad_tag_edits_are_refused_with_a_message(editor_client, tagged, url, data, message):
    path = f"/library/tags/{tag('pixel').pk}/rename/" if url == "rename" else "/library/tags/merge/"
    response = editor_client.post(path, data, headers=HTMX)
    assert response.status_code == 422 and message in response.content.decode()
    assert Tag.objects.count() == 4


def test_a_tag_removed_meanwhile_gets_a_clear_message(editor_client, tagged):
    pk = tag("retro").pk
    Tag.objects.filter(pk=pk).delete()
    for path in (f"/library/tags/{pk}/rename/", f"/library/tags/{pk}/delete/"):
        response = editor_client.post(path, {"name": "x"}, headers=HTMX)
        assert response.status_code == 422 and "no longer exists" in response.content.decode()


def test_without_htmx_tag_edits_redirect_back_with_a_message(editor_client, tagged):
    response = editor_client.post(f"/library/tags/{tag('pixel').pk}/delete/", {"back": "q=pi"}, follow=True)
    assert response.redirect_chain[-1][0] == "/library/tags/?q=pi"
    assert "Tag “pixel” deleted" in response.content.decode()


def test_viewers_see_tags_but_cannot_change_them(viewer_client, tagged):
    html = viewer_client.get("/library/tags/").content.decode()
    assert "Rename" not in html and "merge-form" not in html
    pk = tag("pixel").pk
    assert viewer_client.post(f"/library/tags/{pk}/rename/", {"name": "x"}).status_code == 403
    assert viewer_client.post("/library/tags/merge/", {"tag": [pk], "target": "x"}).status_code == 403
    assert viewer_client.post(f"/library/tags/{pk}/delete/").status_code == 403
    assert Tag.objects.count() == 4
