# ruff: noqa: S608 - SQL here is built from constants and placeholders; values travel as parameters.
"""Facet counts for the gallery, exact and cheap at 100,000 adapters.

Counting tags or folders over half the catalog with SQL means joining hundreds of thousands of rows
on every click. Instead, once per catalog version (``derived.catalog_token``), each process reads a
compact picture of what facets count: every adapter id with its combination of low-cardinality
columns (base model, type, active, favorite, status, has issues: a few hundred combinations), every
tag link and folder membership, and the duplicates, as numpy arrays (a few MB for 100,000 adapters,
read in well under a second). Every count for any filter is then a handful of vectorised operations,
and so is a page at any depth in any sort: each sort's order is read once per version from its index.
Filters that need other tables (search, tags, folders, duplicates) resolve the ids they match from
side tables only; the arrays do the rest. Counts per filter are also kept until the version changes.

Cube facets are disjunctive (a facet ignores its own selection, so choosing "SDXL" still shows how
many "Flux" there are); tag, folder and duplicate counts are within the current results.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from django.db import connection
from django.utils import timezone

from adapters import derived

CUBE_DIMS = ("base", "type", "active", "favorite", "status")
COLUMNS = ("base_model", "network_type", "active", "favorite", "status", "has_issues")
TAG_FACET_LIMIT = 30
UPDATES_SQL = "FROM adapters_civitairecord WHERE update_version_id IS NOT NULL"  # "update available"
_SELECT_COMBO = ", ".join(f"a.{c}" for c in COLUMNS)

Combo = tuple  # (base_model, network_type, active, favorite, status, has_issues)


@dataclass
class Columns:
    """What facets count, for the whole catalog at one version, as parallel arrays."""

    ids: np.ndarray  # adapter ids, sorted
    combo: np.ndarray  # per adapter: index into ``combos``
    combos: list[Combo]
    link_pos: np.ndarray  # per tag link: position of its adapter in ``ids``
    link_tag: np.ndarray  # per tag link: index into ``tag_ids``
    tag_ids: np.ndarray
    root_pos: np.ndarray  # per (adapter, folder) pair
    root_idx: np.ndarray  # index into ``root_ids``
    root_ids: np.ndarray
    duplicate: np.ndarray  # per adapter: bool
    update: np.ndarray  # per adapter: bool, a newer version is on Civitai
    folder_pos: np.ndarray  # per file: position of its adapter in ``ids``
    folder_idx: np.ndarray  # per file: index into ``folders``
    folders: list[tuple[int, str]]  # (root id, folder relative to the root, "" for the root itself)
    orders: dict[str, np.ndarray] = field(default_factory=dict)  # sort -> positions in that order (lazy)

    def order(self, sort: str, order_by: str) -> np.ndarray:
        """Positions of all adapters in ``sort`` order, read once per version from the sort's index."""
        if sort not in self.orders:
            found = _positions(
                self.ids,
                np.array(
                    [r[0] for r in _rows(f"SELECT a.id FROM adapters_adapter a ORDER BY {order_by}")], dtype=np.int64
                ),
            )
            self.orders[sort] = found[found >= 0]
        return self.orders[sort]


@dataclass
class Counts:
    """Raw facet counts before labels: what the gallery shows next to each filter value."""

    total: int
    cube: dict[str, Counter]  # dimension -> value -> count (disjunctive)
    tags: Counter  # tag id -> count
    roots: Counter  # root id -> count
    duplicates: int
    updates: int = 0  # with a newer version on Civitai
    folders: Counter = field(default_factory=Counter)  # (root id, relative folder) -> adapters directly in it
    columns: Columns | None = field(default=None, repr=False)  # what the counts were made from
    positions: np.ndarray | None = field(default=None, repr=False)  # of the matches in ``columns``; None: all


class _LRU(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


_COLUMNS = _LRU(1)
_COUNTS = _LRU(32)  # entries hold the matching ids: at most ~1 MB each at 100k adapters


def clear_caches(keep_columns: bool = False) -> None:
    _COUNTS.clear()
    if not keep_columns:
        _COLUMNS.clear()


def _rows(sql: str, params: list | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


def scan_hint() -> str:
    """SQLite: read the cube columns from the narrow facet index, never from the wide table rows."""
    return "INDEXED BY adapter_facets" if connection.vendor == "sqlite" else ""


def _id_list(sql_value: str | None) -> np.ndarray:
    """Parse a comma-separated id list made by group_concat / string_agg."""
    if not sql_value:
        return np.zeros(0, dtype=np.int64)
    return np.array(sql_value.split(","), dtype=np.int64)


def _concat(column: str, distinct: bool = False) -> str:
    if connection.vendor == "postgresql":
        return f"string_agg({'DISTINCT ' if distinct else ''}{column}::text, ',')"
    return f"group_concat({'DISTINCT ' if distinct else ''}{column})"


def _positions(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions of ``wanted`` ids in the sorted ``ids``; -1 for ids not there (written meanwhile)."""
    if not len(ids):
        return np.full(len(wanted), -1, dtype=np.int64)
    pos = np.searchsorted(ids, wanted)
    pos[pos >= len(ids)] = 0
    return np.where(ids[pos] == wanted, pos, -1)


def _load_columns() -> Columns:
    group = ", ".join(str(i) for i in range(1, len(COLUMNS) + 1))
    sql = f"SELECT {_SELECT_COMBO}, {_concat('a.id')} FROM adapters_adapter a {scan_hint()} GROUP BY {group}"
    combos: list[Combo] = []
    id_parts, combo_parts = [], []
    for row in _rows(sql):
        base, kind, active, favorite, status, issues = row[:6]
        combos.append((base, kind, bool(active), bool(favorite), status, bool(issues)))
        ids = _id_list(row[-1])
        id_parts.append(ids)
        combo_parts.append(np.full(len(ids), len(combos) - 1, dtype=np.int32))
    ids = np.concatenate(id_parts) if id_parts else np.zeros(0, dtype=np.int64)
    combo = np.concatenate(combo_parts) if combo_parts else np.zeros(0, dtype=np.int32)
    order = np.argsort(ids, kind="stable")
    ids, combo = ids[order], combo[order]

    def pairs(sql: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keys, positions, indexes = [], [], []
        for key, members in _rows(sql):
            pos = _positions(ids, _id_list(members))
            pos = pos[pos >= 0]
            positions.append(pos)
            indexes.append(np.full(len(pos), len(keys), dtype=np.int32))
            keys.append(key)
        if not keys:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
        return np.concatenate(positions), np.concatenate(indexes), np.array(keys, dtype=np.int64)

    link_pos, link_tag, tag_ids = pairs(
        f"SELECT tag_id, {_concat('adapter_id')} FROM adapters_adapter_tags GROUP BY tag_id"
    )
    root_pos, root_idx, root_ids = pairs(
        f"SELECT root_id, {_concat('adapter_id', distinct=True)} FROM adapters_adapterfile GROUP BY root_id"
    )
    duplicate = np.zeros(len(ids), dtype=bool)
    pos = _positions(ids, _id_list(_rows(f"SELECT {_concat('adapter_id')} FROM adapters_duplicate")[0][0]))
    duplicate[pos[pos >= 0]] = True
    update = np.zeros(len(ids), dtype=bool)
    pos = _positions(ids, _id_list(_rows(f"SELECT {_concat('adapter_id')} {UPDATES_SQL}")[0][0]))
    update[pos[pos >= 0]] = True
    folder_pos, folder_idx, folders = _folder_columns(ids)
    return Columns(
        ids, combo, combos, link_pos, link_tag, tag_ids, root_pos, root_idx, root_ids, duplicate,
        update, folder_pos, folder_idx, folders,
    )  # fmt: skip


def _folder_columns(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Each file's folder (relative to its root), from the stored paths: no filesystem walk, one narrow read."""
    roots = dict(_rows("SELECT id, path FROM adapters_libraryroot"))
    index: dict[tuple[int, str], int] = {}
    adapter_ids, folder_of = [], []
    for adapter_id, root_id, path in _rows("SELECT adapter_id, root_id, path FROM adapters_adapterfile"):
        folder = folder_of_path(roots.get(root_id, ""), path)
        adapter_ids.append(adapter_id)
        folder_of.append(index.setdefault((root_id, folder), len(index)))
    pos = _positions(ids, np.array(adapter_ids, dtype=np.int64))
    keep = pos >= 0
    return pos[keep], np.array(folder_of, dtype=np.int32)[keep], list(index)


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


def _cache_key(*parts) -> tuple:
    return (connection.vendor, connection.settings_dict["NAME"], *parts)


def columns() -> Columns:
    """The catalog's facet columns at its current version, read at most once per version and process.

    Inside a transaction (tests, or a caller mid-edit) the token may not reflect uncommitted changes
    yet (PostgreSQL bumps it at commit), so there they are read fresh and not kept; a version that
    changes while being read is not kept either.
    """
    if connection.in_atomic_block:
        return _load_columns()
    token = derived.catalog_token()
    key = _cache_key(token)
    found = _COLUMNS.get(key)
    if found is None:
        found = _load_columns()
        if derived.catalog_token() == token:
            _COLUMNS.put(key, found)
            _COUNTS.clear()  # counts of older versions hold their columns: let them go
    return found


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


def _matches(combo: Combo, query, skip: str | None = None, filters: list | None = None) -> bool:
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


def _cube_counts(cube: dict[Combo, int], query) -> tuple[int, dict[str, Counter]]:
    counts = {dim: Counter() for dim in CUBE_DIMS}
    filters = cube_filters(query)
    total = 0
    for combo, n in cube.items():
        if not n:
            continue
        base, kind, active, favorite, status, issues = combo
        values = {"base": [base], "type": [kind], "active": [active], "favorite": [favorite]}
        values["status"] = [status, "issues"] if issues else [status]
        for dim in CUBE_DIMS:
            if _matches(combo, query, skip=dim, filters=filters):
                for value in values[dim]:
                    counts[dim][value] += n
        if _matches(combo, query, filters=filters):
            total += n
    return total, counts


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


def side_sql(query, tag_ids: list[int] | None, with_folder: bool = True) -> tuple[str, list] | None:
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
        parts.append("SELECT adapter_id FROM adapters_duplicate")
    folder = folder_sql(query) if with_folder else None
    if folder is not None:
        parts.append(folder[0])
        params += folder[1]
    if query.update:
        parts.append(f"SELECT adapter_id {UPDATES_SQL}")
    if query.unused:
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


# --- facet counts ---------------------------------------------------------------------------------


def counts(query, tag_ids: list[int] | None) -> Counts:
    """Every facet count for ``query``; reused while the catalog version and the filter stay the same."""
    token = None if connection.in_atomic_block else derived.catalog_token()
    key = _cache_key(token, repr(query.filter_key()))
    if token is not None and key in _COUNTS:
        return _COUNTS[key]
    side = side_sql(query, tag_ids, with_folder=False)  # the folder is applied on the arrays (see _count)
    matched = None if side is None else np.array(sorted({row[0] for row in _rows(*side)}), dtype=np.int64)
    result = _count(columns(), query, matched)
    if token is not None:
        _COUNTS.put(key, result)
    return result


def _count(cols: Columns, query, matched: np.ndarray | None) -> Counts:
    """All counts from the columns: ``matched`` are the ids the side tables allowed (None: all)."""
    if matched is None:
        within = np.ones(len(cols.ids), dtype=bool)
    else:
        within = np.zeros(len(cols.ids), dtype=bool)
        pos = _positions(cols.ids, matched)
        within[pos[pos >= 0]] = True
    filters = cube_filters(query)
    combo_ok = np.array([_matches(c, query, filters=filters) for c in cols.combos], dtype=bool)
    # Folder counts ignore the folder filter itself, so the tree still shows where else to go.
    outside_folder = within & combo_ok[cols.combo] if len(cols.combos) else within
    folder_counts = np.bincount(cols.folder_idx[outside_folder[cols.folder_pos]], minlength=len(cols.folders))
    filtered = matched is not None
    if query.folder is not None:
        within = within & _in_folder(cols, *query.folder)
        filtered = True
    per_combo = np.bincount(cols.combo[within], minlength=len(cols.combos))
    total, cube = _cube_counts(dict(zip(cols.combos, per_combo.tolist(), strict=True)), query)
    final = within & combo_ok[cols.combo] if len(cols.combos) else within
    tag_counts = np.bincount(cols.link_tag[final[cols.link_pos]], minlength=len(cols.tag_ids))
    root_counts = np.bincount(cols.root_idx[final[cols.root_pos]], minlength=len(cols.root_ids))
    nonzero = np.nonzero(tag_counts)[0]
    return Counts(
        total=total,
        cube=cube,
        tags=Counter(dict(zip(cols.tag_ids[nonzero].tolist(), tag_counts[nonzero].tolist(), strict=True))),
        roots=Counter(dict(zip(cols.root_ids.tolist(), root_counts.tolist(), strict=True))),
        duplicates=int(np.count_nonzero(final & cols.duplicate)),
        folders=Counter({cols.folders[i]: n for i, n in enumerate(folder_counts.tolist()) if n}),
        updates=int(np.count_nonzero(final & cols.update)),
        columns=cols,
        positions=None if not filtered and combo_ok.all() else np.flatnonzero(final).astype(np.int32),
    )


def _in_folder(cols: Columns, root_id: int, folder: str) -> np.ndarray:
    """Per adapter: has a file in ``folder`` of root ``root_id`` or below it."""
    wanted = np.array(
        [r == root_id and (not folder or f == folder or f.startswith(folder + "/")) for r, f in cols.folders],
        dtype=bool,
    )
    inside = np.zeros(len(cols.ids), dtype=bool)
    if len(cols.folders):
        inside[cols.folder_pos[wanted[cols.folder_idx]]] = True
    return inside


def page_ids(raw: Counts, sort: str, order_by: str, offset: int, limit: int) -> list[int]:
    """Ids of one page of the matches in ``sort`` order: the sort's order, read once per version, filtered by
    the matches (a vectorised pass over at most the whole catalog), then sliced. No query per page."""
    cols = raw.columns
    order = cols.order(sort, order_by)
    if raw.positions is not None:
        wanted = np.zeros(len(cols.ids), dtype=bool)
        wanted[raw.positions] = True
        order = order[wanted[order]]
    return cols.ids[order[offset : offset + limit]].tolist()
