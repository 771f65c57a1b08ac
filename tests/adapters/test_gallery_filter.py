"""One gallery filter, two forms: the Python test the facet counts use and the SQL that "select all matching"
and bulk actions use select the same adapters, for random filters over random catalogs in the real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.http import QueryDict
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import facets, gallery, gallery_filter
from adapters.models import Adapter, AdapterFile, AdapterStatus, LibraryRoot
from tests.adapters.catalog_factory import make_adapter

pytestmark = pytest.mark.django_db

BASES = ["SDXL", "SD1", "Flux", "Unknown"]
TYPES = ["LoRA", "LoCon", "LoHa"]
STATUSES = [AdapterStatus.OK, AdapterStatus.MISSING, AdapterStatus.OFFLINE, AdapterStatus.ERROR]
TAGS = ["anime", "armor", "night"]
FOLDERS = ["", "sdxl", "sdxl/pony", "flux"]

adapter_rows = st.fixed_dictionaries(
    {
        "base_model": st.sampled_from(BASES),
        "network_type": st.sampled_from(TYPES),
        "active": st.booleans(),
        "favorite": st.booleans(),
        "status": st.sampled_from(STATUSES),
        "has_issues": st.booleans(),
        "tags": st.lists(st.sampled_from(TAGS), max_size=3, unique=True),
        "folder": st.sampled_from(FOLDERS),
        "root": st.integers(0, 1),
        "files": st.integers(1, 2),
        "used_days_ago": st.none() | st.integers(0, 200),
    }
)


def _pick(values: list[str]):
    return st.lists(st.sampled_from(values), max_size=2, unique=True)


filters = st.fixed_dictionaries(
    {
        "base": _pick(BASES),
        "type": _pick(TYPES),
        "status": _pick([*STATUSES, "issues"]),
        "active": st.sampled_from(["", "0", "1"]),
        "favorite": st.sampled_from(["", "0", "1"]),
        "tag": _pick(TAGS),
        "tag_mode": st.sampled_from(["any", "all"]),
        "folder": st.none() | st.tuples(st.integers(0, 1), st.sampled_from(FOLDERS)),
        "dup": st.sampled_from(["", "1"]),
        "unused": st.sampled_from(["", "never", "30", "120"]),
    }
)


def _write(rows: list[dict]) -> list[LibraryRoot]:
    Adapter.objects.all().delete()
    AdapterFile.objects.all().delete()
    roots = [LibraryRoot.objects.get_or_create(path=path)[0] for path in ("/lib/one", "/lib/two")]
    now = timezone.now()
    for index, row in enumerate(rows):
        row = dict(row)
        tags, folder, root, files = row.pop("tags"), row.pop("folder"), row.pop("root"), row.pop("files")
        days = row.pop("used_days_ago")
        adapter = make_adapter(
            f"a{index}",
            tags=tuple(tags),
            root=roots[root],
            files=0,
            last_used_at=None if days is None else now - timedelta(days=days, hours=1),
            **row,
        )
        for copy in range(files):
            path = "/".join(p for p in (roots[root].path, folder, f"a{index}-{copy}.safetensors") if p)
            AdapterFile.objects.create(adapter=adapter, root=roots[root], path=path, size=1, mtime_ns=1)
    return roots


def _querystring(chosen: dict, roots: list[LibraryRoot]) -> str:
    pairs = [(key, value) for key in ("base", "type", "status", "tag") for value in chosen[key]]
    pairs += [(key, chosen[key]) for key in ("active", "favorite", "tag_mode", "dup", "unused") if chosen[key]]
    if chosen["folder"] is not None:
        pairs.append(("folder", f"{roots[chosen['folder'][0]].pk}:{chosen['folder'][1]}"))
    return "&".join(f"{key}={value}" for key, value in pairs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(adapter_rows, min_size=0, max_size=12), chosen=filters)
def test_counts_and_selection_agree(rows, chosen):
    facets.clear_caches()
    roots = _write(rows)
    querystring = _querystring(chosen, roots)
    query = gallery.parse(QueryDict(querystring))
    selected = gallery.matching_ids(querystring)  # the SQL form
    raw = facets.counts(query, gallery._tag_ids(query))  # the Python form, over the facet columns
    counted = sorted(facets.page_ids(raw, "name", gallery.order_sql("name"), 0, 1000)) if raw.total else []
    assert raw.total == len(selected), querystring
    assert counted == selected, querystring


def test_every_cube_condition_tests_and_writes_the_same_rule():
    """Each cube filter's Python test against its SQL, row by row over every combination of values."""
    for base in BASES[:2]:
        for status in STATUSES:
            for issues in (False, True):
                make_adapter(f"{base}-{status}-{issues}", base_model=base, status=status, has_issues=issues)
    rows = list(Adapter.objects.values_list("id", *gallery_filter.COLUMNS))
    for querystring in ("", "status=issues", "status=error&status=issues", "base=SD1&status=missing", "active=0"):
        query = gallery.parse(QueryDict(querystring))
        where, params = gallery_filter.cube_condition(query)
        sql = "SELECT a.id FROM adapters_adapter a" + (f" WHERE {where}" if where else "")
        by_sql = {row[0] for row in gallery_filter._rows(sql, params)}
        by_python = {row[0] for row in rows if gallery_filter.matches(tuple(row[1:]), query)}
        assert by_sql == by_python, querystring
