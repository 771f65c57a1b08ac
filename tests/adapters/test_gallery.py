"""The library gallery: every filter, sort and facet, the htmx fragment vs the full page, and bad input."""

from __future__ import annotations

import re

import pytest
from django.http import QueryDict

from adapters import bulk_edit, facets, gallery, search
from adapters.models import Adapter, LibraryRoot, Tag
from tests.adapters.catalog_factory import make_adapter, sample_catalog

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true", "HX-Target": "adapter-results"}


@pytest.fixture
def catalog():
    return sample_catalog()


def names(response) -> list[str]:
    """Adapter names in page order, from card or row ids."""
    html = response.content.decode()
    ids = [int(pk) for pk in re.findall(r'id="adapter-(\d+)-(?:card|row)"', html)]
    by_id = dict(Adapter.objects.filter(pk__in=ids).values_list("pk", "name"))
    return [by_id[pk] for pk in ids]


def fragment(client, querystring: str):
    response = client.get(f"/library/?{querystring}", headers=HTMX)
    assert response.status_code == 200
    return response


def test_full_page_has_chrome_facets_and_results(viewer_client, catalog):
    response = viewer_client.get("/library/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and 'id="adapter-results"' in html and 'id="facets"' in html
    assert "data-search" in html and 'href="/library/tags/"' in html
    assert 'id="scan-panel"' in html  # the scan panel stays
    assert len(names(response)) == 7  # not "eta cat": its file cannot be read (see the test below)


def test_htmx_request_gets_the_fragment_and_facets_out_of_band(viewer_client, catalog):
    response = fragment(viewer_client, "q=knight")
    html = response.content.decode()
    assert "<html" not in html and "<header" not in html
    assert html.lstrip().startswith('<section id="adapter-results"')
    assert 'id="facets" class="facets" hx-swap-oob="true"' in html
    assert names(response) == ["alpha knight"]
    assert "HX-Request" in response.headers["Vary"]


@pytest.mark.parametrize(
    ("querystring", "expected"),
    [
        ("base=SDXL", {"alpha knight", "beta witch", "theta ship"}),
        ("base=SD1&base=Flux", {"gamma dragon", "delta dragon copy", "epsilon city", "zeta robot"}),
        ("type=LoCon", {"beta witch"}),
        ("type=LoRA&base=SD1", {"gamma dragon", "delta dragon copy"}),
        ("tag=anime", {"alpha knight", "beta witch"}),
        ("tag=anime&tag=city", {"alpha knight", "beta witch", "epsilon city"}),
        ("tag=anime&tag=armor&tag_mode=all", {"alpha knight"}),
        ("active=0", {"delta dragon copy"}),
        ("favorite=1", {"beta witch"}),  # eta cat is a favorite, but unreadable
        ("favorite=0&base=Unknown", set()),
        ("status=missing", {"epsilon city"}),
        ("status=offline&status=error", {"zeta robot", "eta cat"}),
        ("status=issues", {"zeta robot"}),
        ("dup=1", {"gamma dragon", "delta dragon copy", "zeta robot"}),
        ("q=dragon", {"gamma dragon", "delta dragon copy"}),
        ("q=xylo", {"alpha knight"}),  # alias
        ("q=armor", {"alpha knight", "epsilon city"}),  # trigger word / tag
        ("q=gothic", {"beta witch"}),  # description
        ("q=ANIME+witch", {"beta witch"}),  # every word, any case
        ('q="dragon copy"', {"delta dragon copy"}),
        ("q=nothing-like-this", set()),
        ("q=al", {"alpha knight"}),  # one or two letters: start of a name
    ],
)
def test_each_filter(viewer_client, catalog, querystring, expected):
    assert set(names(fragment(viewer_client, querystring))) == expected


def test_root_filter_and_hash_prefix_search(viewer_client, catalog):
    two = LibraryRoot.objects.get(path="/lib/two")
    assert set(names(fragment(viewer_client, f"root={two.pk}"))) == {"gamma dragon", "delta dragon copy"}
    sha = catalog["theta ship"].sha256
    assert names(fragment(viewer_client, f"q={sha[:10]}")) == ["theta ship"]
    assert set(names(fragment(viewer_client, "q=" + "a" * 12))) == {"gamma dragon", "delta dragon copy"}


@pytest.mark.parametrize(
    ("sort", "first", "last"),
    [
        ("name", "alpha knight", "zeta robot"),
        ("-name", "zeta robot", "alpha knight"),
        ("-added", "theta ship", "alpha knight"),
        ("added", "alpha knight", "theta ship"),
        ("-updated", "alpha knight", "theta ship"),
        ("-size", "delta dragon copy", "zeta robot"),
        ("size", "zeta robot", "delta dragon copy"),
        ("-rank", "theta ship", None),
        ("-rating", "alpha knight", None),
        ("-used", "theta ship", None),
        ("-last_used", "beta witch", None),
    ],
)
def test_each_sort(viewer_client, catalog, sort, first, last):
    order = names(fragment(viewer_client, f"sort={sort}"))
    assert len(order) == 7
    assert order[0] == first
    if last:
        assert order[-1] == last


def test_nulls_sort_last(viewer_client, catalog):
    assert names(fragment(viewer_client, "sort=-rank"))[-1] in {"gamma dragon", "eta cat"}  # rank unknown
    used = names(fragment(viewer_client, "sort=-last_used"))
    assert used[:3] == ["beta witch", "alpha knight", "theta ship"]  # most recently used first


def test_the_address_bar_gets_the_canonical_query(viewer_client, catalog):
    raw = "q=&sort=name&view=grid&tag_mode=any&active=&favorite=1&tag=&base=SDXL&page=1"
    response = viewer_client.get(f"/library/?{raw}", headers={**HTMX, "HX-Trigger": "gallery-filters"})
    assert response["HX-Push-Url"] == "/library/?base=SDXL&favorite=1"
    refresh = viewer_client.get(f"/library/?{raw}", headers={**HTMX, "HX-Trigger": "adapter-results"})
    assert "HX-Push-Url" not in refresh


def test_list_view_is_remembered(viewer_client, catalog):
    response = viewer_client.get("/library/?view=list")
    assert 'class="adapter-table"' in response.content.decode()
    assert response.cookies["gallery_view"].value == "list"
    again = viewer_client.get("/library/")
    assert 'class="adapter-table"' in again.content.decode() and "card-grid" not in again.content.decode()
    viewer_client.get("/library/?view=grid")
    assert "card-grid" in viewer_client.get("/library/").content.decode()


def test_cards_show_what_a_user_scans_for(viewer_client, catalog):
    html = viewer_client.get("/library/?q=knight").content.decode()
    card = html[html.index(f'id="adapter-{catalog["alpha knight"].pk}-card"') :]
    card = card[: card.index("</article>")]
    assert "alpha knight" in card and "SDXL" in card and "LoRA" in card and "r32" in card
    assert "<code>knight armor</code>" in card and "anime" in card and "armor" in card
    inactive = viewer_client.get("/library/?active=0").content.decode()
    assert "Inactive" in inactive


def test_facet_counts_are_disjunctive_for_columns_and_within_results_for_tags(viewer_client, catalog):
    query = gallery.parse(QueryDict("base=SDXL"))
    result = gallery.results(query)
    base = {value: count for value, _, count in result.facets.base}
    assert base["SDXL"] == 3 and base["SD1"] == 2 and base["Flux"] == 2  # other bases still counted
    assert result.facets.total == 3
    assert {name: count for _, name, count in result.facets.tags} == {"anime": 2, "armor": 1}
    kinds = {value: count for value, _, count in result.facets.type}
    assert kinds == {"LoRA": 2, "LoCon": 1}
    assert result.facets.favorite == {"1": 1, "0": 2}
    everything = gallery.results(gallery.parse(QueryDict(""))).facets
    assert everything.duplicates == 3 and everything.total == 7
    assert {path: count for _, path, count in everything.roots} == {"/lib/one": 5, "/lib/two": 2}
    status = {value: count for value, _, count in everything.status}
    assert status == {"ok": 5, "missing": 1, "offline": 1, "issues": 1}  # unreadable files are not counted


def test_facets_with_a_search_count_within_the_matches(viewer_client, catalog):
    result = gallery.results(gallery.parse(QueryDict("q=dragon&active=1")))
    assert result.facets.total == 1
    assert {value: count for value, _, count in result.facets.base} == {"SD1": 1}
    assert result.facets.active == {"1": 1, "0": 1}  # disjunctive: the inactive copy is still counted
    assert result.facets.duplicates == 1


def test_pagination_keeps_the_filter_and_bad_pages_say_so(viewer_client, db):
    for i in range(60):
        make_adapter(f"model {i:02d}", base_model="SDXL")
    first = fragment(viewer_client, "base=SDXL")
    assert names(first)[0] == "model 00" and len(names(first)) == gallery.PAGE_SIZE
    html = first.content.decode()
    assert "base=SDXL&amp;page=2" in html
    assert names(fragment(viewer_client, "base=SDXL&page=2")) == [f"model {i}" for i in range(48, 60)]
    beyond = fragment(viewer_client, "base=SDXL&page=99")
    assert "There is no page 99" in beyond.content.decode() and len(names(beyond)) == 12
    assert len(names(fragment(viewer_client, "page=last"))) == 12


@pytest.mark.parametrize(
    ("querystring", "message"),
    [
        ("sort=popularity", "Unknown sort"),
        ("page=abc", "not a page number"),
        ("page=-3", "not a page number"),
        ("page=99999999999999999999", "not a page number"),
        ("base=SDXXL", "Unknown base model"),
        ("type=lora", "Unknown network type"),
        ("status=broken", "Unknown status"),
        ("active=yes", "takes 1 or 0"),
        ("favorite=2", "takes 1 or 0"),
        ("root=abc", "Unknown library folder"),
        ("dup=maybe", "duplicates filter takes 1"),
        ("tag_mode=some", "Tag matching"),
        ("tag=" + "x" * 10_000, "at most 100 characters"),
        ("tag=unheard+of", "No tag named"),
        ("q=" + "long " * 100, "cut to its first 200"),
    ],
)
def test_bad_parameters_are_ignored_with_a_message(viewer_client, catalog, querystring, message):
    for headers in ({}, HTMX):
        response = viewer_client.get(f"/library/?{querystring}", headers=headers)
        assert response.status_code == 200
        assert message in response.content.decode()


def test_unknown_parameters_and_odd_values_never_fail(viewer_client, catalog):
    for querystring in ("utm_source=x", "q=%00%ff", "q=%22", "q=%25_%5C", "root=999", "tag=%20", "q=*"):
        assert viewer_client.get(f"/library/?{querystring}").status_code == 200


def test_search_follows_tags_names_and_descriptions(db):
    adapter = make_adapter("plain", tags=("old name",))
    assert gallery.matching_ids("q=old+name") == [adapter.pk]
    Tag.objects.filter(name="old name").update(name="new name")
    assert gallery.matching_ids("q=old") == [] and gallery.matching_ids("q=new+name") == [adapter.pk]
    bulk_edit.remove_tags([adapter.pk], ["new name"])
    assert gallery.matching_ids("q=new") == []
    Adapter.objects.filter(pk=adapter.pk).update(description="glowing mushrooms", trigger_words=["shroom"])
    assert "glowing mushrooms" in search.document(adapter.pk)
    assert gallery.matching_ids("q=mushrooms") == [adapter.pk]
    assert gallery.matching_ids("q=shroom+plain") == [adapter.pk]
    Adapter.objects.filter(pk=adapter.pk).delete()
    assert search.document(adapter.pk) is None


def test_duplicates_table_follows_hashes_and_files(db):
    one = make_adapter("one", tensor_sha256="b" * 64)
    assert gallery.matching_ids("dup=1") == []
    two = make_adapter("two", tensor_sha256="b" * 64)
    assert gallery.matching_ids("dup=1") == [one.pk, two.pk]
    Adapter.objects.filter(pk=two.pk).update(tensor_sha256="c" * 64)
    assert gallery.matching_ids("dup=1") == []
    one.files.update(status="missing")
    three = make_adapter("three", files=2)
    assert gallery.matching_ids("dup=1") == [three.pk]
    three.files.filter(path__endswith="-1.safetensors").update(status="missing")
    assert gallery.matching_ids("dup=1") == []


def test_select_all_matching_resolves_the_same_set_as_the_count(db, catalog):
    for querystring in ("", "base=SDXL", "q=dragon&active=1", "tag=anime&favorite=1", "status=issues&dup=1"):
        ids = gallery.matching_ids(querystring)
        assert len(ids) == gallery.total(querystring)


def test_tag_suggestions_are_a_datalist(viewer_client, catalog):
    html = viewer_client.get("/library/tags/suggest/?q=an").content.decode()
    assert html.startswith('<datalist id="tag-suggestions">') and 'value="anime"' in html
    html = viewer_client.get("/library/tags/suggest/?tags=armor,+an").content.decode()
    assert 'value="armor, anime"' in html
    assert "<option" not in viewer_client.get("/library/tags/suggest/?q=").content.decode()


@pytest.mark.django_db(transaction=True)
def test_counts_are_reused_per_catalog_version_and_refreshed_after_a_write(viewer):
    from django.test import Client

    client = Client()
    client.force_login(viewer)
    facets.clear_caches()
    sample_catalog()
    assert gallery.total("favorite=1") == 1
    assert facets._COUNTS and facets._COLUMNS  # kept: no transaction is open here
    bulk_edit.set_favorite([Adapter.objects.get(name="theta ship").pk], True)
    assert gallery.total("favorite=1") == 2
    Adapter.objects.filter(name="beta witch").update(favorite=False)
    assert gallery.total("favorite=1") == 1
    Adapter.objects.filter(name="beta witch").update(favorite=True)
    assert gallery.total("favorite=1") == 2
    html = client.get("/library/?favorite=1", headers=HTMX).content.decode()
    assert "<strong>2</strong> adapters" in html


def test_unreadable_files_are_not_adapters_anywhere_in_the_gallery(viewer_client, catalog):
    """ "eta cat" has status error (its header could not be read): no default view, count or facet shows it;
    only an explicit status=error does (the "Files with problems" page lists it with its reason)."""
    everything = gallery.results(gallery.parse(QueryDict(""))).facets
    assert "eta cat" not in names(fragment(viewer_client, ""))
    assert {value for value, _, _ in everything.base} == {"SDXL", "SD1", "Flux"}  # no "Unknown" from it
    assert "error" not in {value for value, _, _ in everything.status}
    assert gallery.total("q=cat") == 0 and gallery.total("base=Unknown") == 0
    assert catalog["eta cat"].pk not in gallery.matching_ids("")  # "select all matching" never takes it
    assert names(fragment(viewer_client, "status=error")) == ["eta cat"]
    assert gallery.matching_ids("status=error") == [catalog["eta cat"].pk]
    page = viewer_client.get("/library/problems/")
    assert page.status_code == 200
