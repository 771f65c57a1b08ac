"""The gallery's facet columns are updated in place after a write (only the parts whose tables changed are
read again), and every count then equals a from-scratch computation: after edits, bulk edits and scans."""

from __future__ import annotations

import numpy as np
import pytest
from django.http import QueryDict

from adapters import bulk_edit, facets, gallery, scanning
from adapters.models import Adapter, AdapterFile, LibraryRoot
from tests.adapters.catalog_factory import sample_catalog
from tests.adapters.conftest import age, lora

pytestmark = pytest.mark.django_db(transaction=True)  # the columns are kept only outside a transaction

QUERIES = [
    *("", "favorite=1", "base=SDXL&active=1", "tag=anime", "status=missing&status=issues", "dup=1", "q=witch"),
    *("unused=never&active=1", "unused=30"),
]


def summary(counts: facets.Counts) -> tuple:
    cube = {dim: dict(+values) for dim, values in counts.cube.items()}
    return (
        counts.total,
        cube,
        dict(+counts.tags),
        dict(+counts.roots),
        counts.duplicates,
        counts.updates,
        dict(counts.folders),
    )


def assert_counts_match_a_fresh_read() -> None:
    """Counts from the kept (updated) columns equal those from columns read from scratch, for every query,
    and so do the first pages in two sorts."""
    kept = facets.columns()
    fresh = facets._load_columns()
    assert kept.ids.tolist() == fresh.ids.tolist()
    for querystring in QUERIES:
        query = gallery.parse(QueryDict(querystring))
        tag_ids = gallery._tag_ids(query)
        side = facets.side_sql(query, tag_ids, with_folder=False)
        matched = None if side is None else sorted({row[0] for row in facets._rows(*side)})
        matched = None if matched is None else np.array(matched, dtype=np.int64)
        ours, theirs = facets._count(kept, query, matched), facets._count(fresh, query, matched)
        assert summary(ours) == summary(theirs), querystring
        for sort in ("name", "-added"):
            order = gallery.order_sql(sort)
            assert facets.page_ids(ours, sort, order, 0, 100) == facets.page_ids(theirs, sort, order, 0, 100)
        assert facets.counts(query, tag_ids).total == len(gallery.matching_ids(querystring))


def test_a_favorite_toggle_rereads_only_the_cube_and_counts_stay_exact():
    facets.clear_caches()
    catalog = sample_catalog()
    before = facets.columns()
    before.order("name", gallery.order_sql("name"))  # a sort order read once
    bulk_edit.set_favorite([catalog["theta ship"].pk], True)
    after = facets.columns()
    assert after is not before
    assert after.ids is before.ids  # the edited adapter was updated in place: the cube was not read again
    assert after.link_pos is before.link_pos and after.folder_pos is before.folder_pos  # kept, not re-read
    assert "name" in after.orders  # the order survived: the set of adapters is the same
    assert gallery.total("favorite=1") == 2
    assert_counts_match_a_fresh_read()


def test_bulk_edits_removals_and_file_moves_keep_counts_exact():
    facets.clear_caches()
    catalog = sample_catalog()
    facets.columns()
    ids = [catalog["alpha knight"].pk, catalog["beta witch"].pk]
    bulk_edit.add_tags(ids, ["fresh tag"])
    after_tags = facets.columns()
    assert gallery.total("tag=fresh+tag") == 2
    assert_counts_match_a_fresh_read()
    bulk_edit.set_active(ids, False)
    bulk_edit.set_base_model(ids, "Flux")
    assert_counts_match_a_fresh_read()
    assert facets.columns().link_pos is after_tags.link_pos  # cube-only changes kept the tag links
    other = LibraryRoot.objects.get_or_create(path="/lib/two")[0]
    AdapterFile.objects.filter(adapter_id=ids[0]).update(root=other, path="/lib/two/sub/moved.safetensors")
    assert_counts_match_a_fresh_read()
    bulk_edit.remove_tags(ids, ["fresh tag"])
    bulk_edit.remove_from_catalog([catalog["gamma dragon"].pk])
    assert_counts_match_a_fresh_read()
    Adapter.objects.filter(pk=ids[1]).update(status="missing", has_issues=True)
    assert_counts_match_a_fresh_read()


def test_scans_keep_counts_exact(library):
    facets.clear_caches()
    lora(library, "sdxl/knight.safetensors", seed=1)
    lora(library, "sdxl/witch.safetensors", seed=2)
    lora(library, "flux/ship.safetensors", kind="flux", seed=3)
    scanning.scan()
    assert_counts_match_a_fresh_read()
    (library / "sdxl" / "witch.safetensors").unlink()  # missing now
    lora(library, "flux/deep/dragon.safetensors", kind="flux", seed=4)
    age(*library.rglob("*"))
    scanning.scan()
    assert_counts_match_a_fresh_read()
    assert gallery.total("status=missing") == 1
