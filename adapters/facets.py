# ruff: noqa: S608 - SQL here is built from constants and placeholders; values travel as parameters.
"""Facet counts for the gallery, exact and cheap at 100,000 adapters.

Counting tags or folders over half the catalog with SQL means joining hundreds of thousands of rows
on every click. Instead, once per catalog version (``derived.catalog_parts``), each process reads a
compact picture of what facets count: every adapter id with its combination of low-cardinality
columns (base model, type, active, favorite, status, has issues: a few hundred combinations), every
tag link and folder membership, and the duplicates, as numpy arrays (a few MB for 100,000 adapters,
read in well under a second). Every count for any filter is then a handful of vectorised operations,
and so is a page at any depth in any sort: each sort's order is read once per version from its index.
Filters that need other tables (search, tags, folders, duplicates) resolve the ids they match from
side tables only; the arrays do the rest. Counts per filter are also kept until the version changes.
After a write, only the parts whose tables changed are read again (``columns``); the filter itself,
as a Python test and as SQL, is defined once in ``adapters.gallery_filter``.

Cube facets are disjunctive (a facet ignores its own selection, so choosing "SDXL" still shows how
many "Flux" there are); tag, folder and duplicate counts are within the current results.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import numpy as np
from django.db import connection

from adapters import derived
from adapters.gallery_filter import (  # noqa: F401 - cube_condition, filter_sql: older callers name them here
    COLUMNS,
    UPDATES_SQL,
    Combo,
    cube_condition,
    cube_filters,
    filter_sql,
    folder_of_path,
    side_sql,
    unused_cutoff,
)
from adapters.models import CatalogChange

CUBE_DIMS = ("base", "type", "active", "favorite", "status")
TAG_FACET_LIMIT = 30
_SELECT_COMBO = ", ".join(f"a.{c}" for c in COLUMNS)


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
_LATEST: dict[tuple, tuple[dict[str, int], Columns]] = {}  # per database: the newest columns and their part tokens
_COUNTS = _LRU(32)  # entries hold the matching ids: at most ~1 MB each at 100k adapters


def clear_caches(keep_columns: bool = False) -> None:
    _COUNTS.clear()
    if not keep_columns:
        _USED.clear()
        _COLUMNS.clear()
        _LATEST.clear()


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
    return np.fromstring(sql_value, dtype=np.int64, sep=",")  # text mode: ~6x faster than split()


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


# Which tables each part of the columns is read from (their ``derived.catalog_parts`` tokens).
ADAPTER_PART = ("adapters_adapter",)
LINK_PART = ("adapters_adapter_tags", "adapters_tag")
FILE_PART = ("adapters_adapterfile", "adapters_libraryroot")
UPDATE_PART = (derived.CIVITAI_TABLE,)


def _load_cube() -> tuple[np.ndarray, np.ndarray, list[Combo]]:
    """Every adapter id (sorted) with the index of its combination of cube columns."""
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
    return ids[order], combo[order], combos


def _load_links(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keys, positions, indexes = [], [], []
    for key, members in _rows(f"SELECT tag_id, {_concat('adapter_id')} FROM adapters_adapter_tags GROUP BY tag_id"):
        pos = _positions(ids, _id_list(members))
        pos = pos[pos >= 0]
        positions.append(pos)
        indexes.append(np.full(len(pos), len(keys), dtype=np.int32))
        keys.append(key)
    if not keys:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
    return np.concatenate(positions), np.concatenate(indexes), np.array(keys, dtype=np.int64)


def _flags(ids: np.ndarray, sql: str) -> np.ndarray:
    flag = np.zeros(len(ids), dtype=bool)
    pos = _positions(ids, _id_list(_rows(sql)[0][0]))
    flag[pos[pos >= 0]] = True
    return flag


CHANGE_WINDOW = 256  # logged edits re-read before the last one seen: PostgreSQL may commit them out of order
PATCH_LIMIT = 5_000  # more edited adapters than this since the last read: read the cube whole


def _patched_cube(previous: Columns, since: int, newest: int) -> tuple[np.ndarray, np.ndarray, list[Combo]] | None:
    """``previous``'s cube with the adapters edited after log entry ``since`` re-read (they are in the log,
    ``derived.CHANGE_LOG_KEEP`` entries deep); None when too many, or when the log no longer reaches back."""
    if newest - since >= derived.CHANGE_LOG_KEEP - CHANGE_WINDOW:
        return None
    logged = CatalogChange.objects.filter(seq__gt=since - CHANGE_WINDOW).values_list("adapter_id", flat=True)
    edited = list(logged.distinct().order_by()[: PATCH_LIMIT + 1])
    if len(edited) > PATCH_LIMIT:
        return None
    combo, combos = previous.combo.copy(), list(previous.combos)
    index = {key: i for i, key in enumerate(combos)}
    if edited:
        marks = ", ".join(["%s"] * len(edited))
        for pk, base, kind, active, favorite, status, issues in _rows(
            f"SELECT a.id, {_SELECT_COMBO} FROM adapters_adapter a WHERE a.id IN ({marks})", edited
        ):
            key = (base, kind, bool(active), bool(favorite), status, bool(issues))
            if key not in index:
                index[key] = len(combos)
                combos.append(key)
            pos = int(np.searchsorted(previous.ids, pk))
            if pos < len(previous.ids) and previous.ids[pos] == pk:
                combo[pos] = index[key]
    return previous.ids, combo, combos


def _load_columns(
    previous: Columns | None = None, changed: set[str] | frozenset = frozenset(), since: int = 0, newest: int = 0
) -> Columns:
    """Read the columns; with ``previous`` (an older version), re-read only the parts whose tables are in
    ``changed`` and keep the rest (and the sort orders) while the set of adapter ids is the same. Adapters
    whose facet columns were edited (the change log, entries ``since`` < seq <= ``newest``) are updated in
    place; only adapters added or removed make the cube be read whole."""
    patched = None
    if previous is not None and "change" in changed and not changed & set(ADAPTER_PART):
        patched = _patched_cube(previous, since, newest)
    if patched is not None:
        ids, combo, combos = patched
    elif previous is not None and changed & {*ADAPTER_PART, "change"}:
        ids, combo, combos = _load_cube()
        if not np.array_equal(ids, previous.ids):
            previous = None  # adapters added or removed: every position moved
    elif previous is not None:
        ids, combo, combos = previous.ids, previous.combo, previous.combos
    else:
        ids, combo, combos = _load_cube()
    if previous is None or changed & set(LINK_PART):
        link_pos, link_tag, tag_ids = _load_links(ids)
    else:
        link_pos, link_tag, tag_ids = previous.link_pos, previous.link_tag, previous.tag_ids
    if previous is None or changed & set(FILE_PART):
        folder_pos, folder_idx, folders = _folder_columns(ids)
        root_pos, root_idx, root_ids = _root_columns(folder_pos, folder_idx, folders)
    else:
        folder_pos, folder_idx, folders = previous.folder_pos, previous.folder_idx, previous.folders
        root_pos, root_idx, root_ids = previous.root_pos, previous.root_idx, previous.root_ids
    if previous is None or changed & {*ADAPTER_PART, *FILE_PART, "change"}:  # the duplicates table follows both
        duplicate = _flags(ids, f"SELECT {_concat('adapter_id')} FROM adapters_duplicate")
    else:
        duplicate = previous.duplicate
    if previous is None or changed & set(UPDATE_PART):
        update = _flags(ids, f"SELECT {_concat('adapter_id')} {UPDATES_SQL}")
    else:
        update = previous.update
    return Columns(
        ids, combo, combos, link_pos, link_tag, tag_ids, root_pos, root_idx, root_ids, duplicate,
        update, folder_pos, folder_idx, folders, orders=dict(previous.orders) if previous is not None else {},
    )  # fmt: skip


def _root_columns(
    folder_pos: np.ndarray, folder_idx: np.ndarray, folders: list[tuple[int, str]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(adapter, library root) pairs, once each, from the files' folders: no second pass over the files."""
    folder_root = np.array([root_id for root_id, _ in folders], dtype=np.int64)
    root_ids = np.unique(folder_root)
    if not len(root_ids):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32), root_ids
    pair = np.unique(folder_pos.astype(np.int64) * len(root_ids) + np.searchsorted(root_ids, folder_root[folder_idx]))
    return pair // len(root_ids), (pair % len(root_ids)).astype(np.int32), root_ids


def _folder_columns(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Each file's folder (relative to its root), from the stored paths: no filesystem walk, one narrow read.
    Paths are grouped by their directory first, so each distinct directory is interpreted once."""
    roots = dict(_rows("SELECT id, path FROM adapters_libraryroot"))
    rows = _rows("SELECT adapter_id, root_id, path FROM adapters_adapterfile")
    directories: dict[tuple[int, str], int] = {}
    raw = [
        directories.setdefault((root_id, path[: path.rfind("/") + 1]), len(directories)) for _, root_id, path in rows
    ]
    index: dict[tuple[int, str], int] = {}
    to_folder = np.array(
        [
            index.setdefault((root_id, folder_of_path(roots.get(root_id, ""), directory + "x")), len(index))
            for root_id, directory in directories
        ],
        dtype=np.int32,
    )
    pos = _positions(ids, np.array([row[0] for row in rows], dtype=np.int64))
    keep = pos >= 0
    folder_idx = to_folder[np.array(raw, dtype=np.int64)] if rows else np.zeros(0, dtype=np.int32)
    return pos[keep], folder_idx[keep], list(index)


def _cache_key(*parts) -> tuple:
    return (connection.vendor, connection.settings_dict["NAME"], *parts)


def columns() -> Columns:
    """The catalog's facet columns at its current version, read at most once per version and process.

    After a write only the parts whose tables changed are read again (``derived.catalog_parts``): an edit
    of adapters' facet columns (a favorite toggle, a bulk edit) re-reads just those adapters, from the
    change log; tag links, files, sort orders are kept unless their own tables changed.
    Inside a transaction (tests, or a caller mid-edit) the token may not reflect uncommitted changes
    yet (PostgreSQL bumps it at commit), so there they are read fresh and not kept; a version that
    changes while being read is not kept either.
    """
    if connection.in_atomic_block:
        return _load_columns()
    parts = derived.catalog_parts()
    key = _cache_key(parts.get("catalog", 0))
    found = _COLUMNS.get(key)
    if found is None:
        latest = _LATEST.get(_cache_key())
        if latest is not None:
            changed = {part for part, token in parts.items() if latest[0].get(part) != token}
            found = _load_columns(latest[1], changed, latest[0].get("change", 0), parts.get("change", 0))
        else:
            found = _load_columns()
        if derived.catalog_parts() == parts:
            _COLUMNS.put(key, found)
            _LATEST[_cache_key()] = (parts, found)
            _COUNTS.clear()  # counts of older versions hold their columns: let them go
    return found


def _passes(combos: list[Combo], filters: list) -> np.ndarray:
    """Per filter, per combination: does it pass (``Condition.test``, the one definition)? Shape (filters, combos)."""
    return np.array([[condition.test(combo) for combo in combos] for _, condition in filters], dtype=bool).reshape(
        len(filters), len(combos)
    )


def _cube_counts(combos: list[Combo], per_combo: np.ndarray, filters: list, passes: np.ndarray):
    """Total and disjunctive counts per cube dimension: a dimension's counts ignore its own filter."""
    counts = {dim: Counter() for dim in CUBE_DIMS}
    dims = [dim for dim, _ in filters]
    present = np.flatnonzero(per_combo)
    total = int(per_combo[passes.all(axis=0)].sum()) if len(combos) else 0
    for dim in CUBE_DIMS:
        others = [i for i, other in enumerate(dims) if other is None or other != dim]
        ok = passes[others].all(axis=0) if others else np.ones(len(combos), dtype=bool)
        index = CUBE_DIMS.index(dim)  # the dimensions are the first columns of a combination, in order
        for position in present[ok[present]].tolist():
            combo, n = combos[position], int(per_combo[position])
            counts[dim][combo[index]] += n
            if dim == "status" and combo[5]:  # has issues: also counted under "issues"
                counts[dim]["issues"] += n
    return total, counts


# --- facet counts ---------------------------------------------------------------------------------


_USED: dict[tuple, tuple[tuple, np.ndarray]] = {}  # per database: (usage key, ids of used adapters by last use)


def _used_by_last_use() -> tuple[tuple, np.ndarray]:
    """Ids of every adapter ever used, oldest use first, from the (last_used_at, id) index; re-read only when
    the newest or oldest use changes (use does not change the catalog version)."""
    # Both ends of the (last_used_at, id) index: O(1). A use moves the newest; clearing a use is not a feature.
    key = tuple(
        _rows(  # one aggregate per SELECT: SQLite reads a lone MIN or MAX from the end of the index
            "SELECT (SELECT MAX(last_used_at) FROM adapters_adapter), (SELECT MIN(last_used_at) FROM adapters_adapter)"
        )[0]
    )
    slot = _cache_key()
    found = _USED.get(slot)
    if found is None or found[0] != key or connection.in_atomic_block:
        sql = "SELECT id FROM adapters_adapter WHERE last_used_at IS NOT NULL ORDER BY last_used_at, id"
        found = (key, np.array([row[0] for row in _rows(sql)], dtype=np.int64))
        if not connection.in_atomic_block:
            _USED[slot] = found
    return found


def _used_since(query, used: np.ndarray) -> np.ndarray:
    """The adapters the usage filter leaves out: every used one ("never"), or those used since the cutoff."""
    cutoff = unused_cutoff(query.unused)
    if cutoff is None:
        return used
    before = _rows("SELECT COUNT(*) FROM adapters_adapter WHERE last_used_at < %s", [cutoff])[0][0]
    return used[before:]


def counts(query, tag_ids: list[int] | None) -> Counts:
    """Every facet count for ``query``; reused while the catalog version and the filter stay the same."""
    token = None if connection.in_atomic_block else derived.catalog_token()
    excluded = None
    if query.unused:  # the usage filter is applied on the arrays, from the used adapters in order of last use
        usage_key, used = _used_by_last_use()
        excluded = _used_since(query, used)
        token = None if token is None else (token, usage_key)
    key = _cache_key(token, repr(query.filter_key()))
    if token is not None and key in _COUNTS:
        return _COUNTS[key]
    side = side_sql(query, tag_ids, with_folder=False, with_unused=False)  # folder and usage: on the arrays
    matched = None if side is None else np.unique(np.array([row[0] for row in _rows(*side)], dtype=np.int64))
    result = _count(columns(), query, matched, excluded)
    if token is not None:
        _COUNTS.put(key, result)
    return result


def _count(cols: Columns, query, matched: np.ndarray | None, excluded: np.ndarray | None = None) -> Counts:
    """All counts from the columns: ``matched`` are the ids the side tables allowed (None: all), minus
    ``excluded`` (the usage filter's used adapters)."""
    if matched is None:
        within = np.ones(len(cols.ids), dtype=bool)
    else:
        within = np.zeros(len(cols.ids), dtype=bool)
        pos = _positions(cols.ids, matched)
        within[pos[pos >= 0]] = True
    if excluded is not None:
        pos = _positions(cols.ids, excluded)
        within[pos[pos >= 0]] = False
    filters = cube_filters(query)
    passes = _passes(cols.combos, filters)
    combo_ok = passes.all(axis=0)
    # Folder counts ignore the folder filter itself, so the tree still shows where else to go.
    outside_folder = within & combo_ok[cols.combo] if len(cols.combos) else within
    folder_counts = np.bincount(cols.folder_idx[outside_folder[cols.folder_pos]], minlength=len(cols.folders))
    filtered = matched is not None or excluded is not None
    if query.folder is not None:
        within = within & _in_folder(cols, *query.folder)
        filtered = True
    per_combo = np.bincount(cols.combo[within], minlength=len(cols.combos))
    total, cube = _cube_counts(cols.combos, per_combo, filters, passes)
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
