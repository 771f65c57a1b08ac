# ruff: noqa: S608 - SQL here is built from constants and placeholders; values travel as parameters.
"""A gallery filter, defined once: which adapters a ``GalleryQuery`` matches, both as a Python test over
combinations of cube columns (``adapters.facets`` counts with it) and as SQL (``filter_sql``: "select all
matching", bulk actions, exports). If the two drifted, the count shown and the set selected would
differ; ``tests/adapters/test_gallery_filter.py`` checks they agree on random filters and catalogs.

Cube filters (base model, type, active, favorite, status) are ``Condition`` values that write both
forms; the filters that need other tables (search, tags, folders, duplicates, updates, usage) are SQL
over side tables only (``side_sql``), which the counts resolve to ids and intersect in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from adapters.models import Duplicate

UPDATES_SQL = "FROM adapters_civitairecord WHERE update_version_id IS NOT NULL"  # "update available"
COLUMNS = ("base_model", "network_type", "active", "favorite", "status", "has_issues")
Combo = tuple  # (base_model, network_type, active, favorite, status, has_issues)


def _rows(sql: str, params: list | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


# --- the cube filter, defined once ----------------------------------------------------------------
#
# Each cube filter of a query is a ``Condition`` that can both test a combination in Python (facet
# counts, over a few hundred combinations) and write itself as SQL ("select all matching", bulk
# actions): the count shown and the set selected come from the same definition.

# AdapterStatus.ERROR: a file whose header cannot be read is not an adapter (see Adapter.objects.usable).
UNREADABLE = "error"
_COMBO_INDEX = {column: i for i, column in enumerate(COLUMNS)}


@dataclass(frozen=True)
class Condition:
    """``column IN values`` (``negate``: NOT IN), OR'd with ``or_flag`` (a boolean column) when set."""

    column: str
    values: tuple
    negate: bool = False
    or_flag: str = ""

    def test(self, combo: Combo) -> bool:
        found = combo[_COMBO_INDEX[self.column]] in self.values
        if self.negate:
            found = not found
        return found or bool(self.or_flag and combo[_COMBO_INDEX[self.or_flag]])

    def sql(self, alias: str) -> tuple[str, list]:
        parts = []
        if self.values:
            marks = ", ".join(["%s"] * len(self.values))
            parts.append(f"{alias}.{self.column} {'NOT IN' if self.negate else 'IN'} ({marks})")
        if self.or_flag:
            parts.append(f"{alias}.{self.or_flag}")
        return ("(" + " OR ".join(parts) + ")" if len(parts) > 1 else parts[0]), list(self.values)


def cube_filters(query) -> list[tuple[str | None, Condition]]:
    """(facet dimension, condition) for each cube filter of ``query``. The dimension lets a facet ignore
    its own selection (disjunctive counts); None: a rule no facet ignores."""
    found: list[tuple[str | None, Condition]] = []
    if UNREADABLE not in query.status:  # only an explicit status=error shows unreadable files
        found.append((None, Condition("status", (UNREADABLE,), negate=True)))
    if query.base:
        found.append(("base", Condition("base_model", tuple(query.base))))
    if query.type:
        found.append(("type", Condition("network_type", tuple(query.type))))
    if query.active is not None:
        found.append(("active", Condition("active", (query.active,))))
    if query.favorite is not None:
        found.append(("favorite", Condition("favorite", (query.favorite,))))
    if query.status:
        statuses = tuple(s for s in query.status if s != "issues")
        issues = "has_issues" if "issues" in query.status else ""
        found.append(("status", Condition("status", statuses, or_flag=issues)))
    return found


def matches(combo: Combo, query, skip: str | None = None, filters: list | None = None) -> bool:
    """Whether a combination passes the query's cube filters (those of dimension ``skip`` ignored)."""
    filters = cube_filters(query) if filters is None else filters
    return all(condition.test(combo) for dim, condition in filters if dim is None or dim != skip)


def cube_condition(query, alias: str = "a") -> tuple[str, list]:
    """WHERE text (or "") and params for the query's cube filters: the same ``cube_filters`` as the counts."""
    conditions, params = [], []
    for _, condition in cube_filters(query):
        sql, values = condition.sql(alias)
        conditions.append(sql)
        params += values
    return " AND ".join(conditions), params


# --- SQL pieces ---------------------------------------------------------------------------------------


def filter_sql(query, tag_ids: list[int] | None, alias: str = "a") -> tuple[str, list]:
    """The SQL condition (or "") over ``adapters_adapter <alias>`` for everything ``query`` filters on, with
    its params: what "select all matching" and bulk actions on a filter select. ``tag_ids``: the ids of the
    query's tags (``gallery.tag_ids``; None without a tag filter)."""
    where, params = cube_condition(query, alias)
    conditions = [where] if where else []
    side = side_sql(query, tag_ids)
    if side is not None:
        conditions.append(f"{alias}.id IN ({side[0]})")
        params = [*params, *side[1]]
    return " AND ".join(conditions), params


def unused_cutoff(unused: str) -> datetime | None:
    """For ``unused=<days>``: the start of the day that many days ago (whole days, so counts can be cached)."""
    if not unused.isdigit():
        return None
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=int(unused))


def folder_sql(query) -> tuple[str, list] | None:
    """``SELECT adapter_id`` of files in the query's folder and its subfolders (None: no folder filter)."""
    if query.folder is None:
        return None
    root_id, folder = query.folder
    root_path = _rows("SELECT path FROM adapters_libraryroot WHERE id = %s", [root_id])
    if not root_path:
        return "SELECT adapter_id FROM adapters_adapterfile WHERE 1 = 0", []
    lo, hi = folder_bounds(root_path[0][0], folder)
    return f"SELECT adapter_id FROM adapters_adapterfile WHERE root_id = %s AND {path_range_sql()}", [root_id, lo, hi]


def side_sql(
    query, tag_ids: list[int] | None, with_folder: bool = True, with_unused: bool = True
) -> tuple[str, list] | None:
    """``SELECT id ...`` for the filters that need other tables (search, tags, folders, duplicates), or None.

    Built from side tables only (search index, tag links, files, duplicates), intersected, so
    resolving it never reads an adapter row. ``tag_ids`` are the ids of the query's tags (None: no tag filter).
    """
    from adapters import search

    parts: list[str] = []
    params: list = []
    if query.q:
        found = search.matching_sql(query.q)
        if found:
            parts.append(found[0])
            params += found[1]
    if tag_ids is not None:
        if not tag_ids or (query.tag_mode == "all" and len(tag_ids) < len(query.tags)):
            parts.append("SELECT adapter_id FROM adapters_adapter_tags WHERE 1 = 0")
        else:
            marks = ", ".join(["%s"] * len(tag_ids))
            sql = f"SELECT adapter_id FROM adapters_adapter_tags WHERE tag_id IN ({marks})"
            if query.tag_mode == "all" and len(tag_ids) > 1:
                sql += f" GROUP BY adapter_id HAVING COUNT(*) = {len(tag_ids)}"
            parts.append(sql)
            params += tag_ids
    if query.roots:
        marks = ", ".join(["%s"] * len(query.roots))
        parts.append(f"SELECT adapter_id FROM adapters_adapterfile WHERE root_id IN ({marks})")
        params += query.roots
    if query.duplicates:
        sql, values = Duplicate.objects.values_list("adapter_id").query.sql_with_params()
        parts.append(sql)
        params += values
    folder = folder_sql(query) if with_folder else None
    if folder is not None:
        parts.append(folder[0])
        params += folder[1]
    if query.update:
        parts.append(f"SELECT adapter_id {UPDATES_SQL}")
    if query.unused and with_unused:
        # Served by the (last_used_at, id) index: never reads a wide adapter row.
        sql = "SELECT id FROM adapters_adapter WHERE last_used_at IS NULL"
        cutoff = unused_cutoff(query.unused)
        if cutoff is not None:
            sql += " OR last_used_at < %s"
            params.append(cutoff)
        parts.append(sql)
    if not parts:
        return None
    return " INTERSECT ".join(parts), params


def folder_of_path(root_path: str, path: str) -> str:
    """The folder of ``path`` relative to ``root_path`` ("" directly in the root), with "/" separators."""
    root = root_path.rstrip("/") + "/"
    relative = path[len(root) :] if path.startswith(root) else path.lstrip("/")
    return relative.rpartition("/")[0]


def folder_bounds(root_path: str, folder: str) -> tuple[str, str]:
    """Paths in ``folder`` and below are ``lo <= path < hi`` ("/" + 1 = "0"): a range on the path index."""
    prefix = root_path.rstrip("/") + "/" + (folder.strip("/") + "/" if folder.strip("/") else "")
    return prefix, prefix[:-1] + "0"


def path_range_sql(column: str = "path") -> str:
    """``column`` within a folder_bounds range; byte order on PostgreSQL (its index is COLLATE "C")."""
    if connection.vendor == "postgresql":
        return f'{column} COLLATE "C" >= %s AND {column} COLLATE "C" < %s'
    return f"{column} >= %s AND {column} < %s"
