"""The library gallery's query: filters, search, sort and page from the URL's query string, and one page of results.

Everything a view shows lives in the query string, so a filtered view can be bookmarked, shared and
reloaded; ``parse`` never raises on bad input, it ignores it and says why in ``notices``.

A page is fetched in two steps: the ids of the page, from ``adapters.facets`` (each sort's order is
read once per catalog version from its index, then filtered and sliced in numpy), then those 48 rows.
Counts come from ``adapters.facets`` too. No catalog row is loaded into Python to be filtered or sorted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.core.paginator import Page, Paginator
from django.db import connection
from django.http import QueryDict
from django.urls import reverse

from adapters import facets
from adapters.bulk_edit import normalize_tag
from adapters.gallery_filter import filter_sql, unused_cutoff
from adapters.models import Adapter, AdapterStatus, BaseModel, LibraryRoot, NetworkType, Tag

PAGE_SIZE = 48
MAX_PAGE = 100_000
MAX_QUERY_LENGTH = 200
MAX_TAG_FILTERS = 20
ROOT_FACET_LIMIT = 50
MAX_UNUSED_DAYS = 36_500
MAX_FOLDER_LENGTH = 1024
FOLDER_CHILDREN_LIMIT = 200

# key -> (label, ORDER BY). Each has an index that yields it in order (see models.Adapter.Meta and
# derived/search for PostgreSQL's NULLS LAST ones); NULLs sort last in both engines.
SORTS: dict[str, tuple[str, str]] = {
    "name": ("Name A–Z", "lower(a.name), a.id"),
    "-name": ("Name Z–A", "lower(a.name) DESC, a.id DESC"),
    "-added": ("Newest first", "a.created_at DESC, a.id DESC"),
    "added": ("Oldest first", "a.created_at, a.id"),
    "-updated": ("Recently updated", "a.updated_at DESC, a.id DESC"),
    "-size": ("Largest first", "a.size DESC, a.id DESC"),
    "size": ("Smallest first", "a.size, a.id"),
    "-rank": ("Highest rank", "a.rank DESC{nulls}, a.id DESC"),
    "-rating": ("Best rated", "a.rating DESC, a.id DESC"),
    "-used": ("Most used", "a.usage_count DESC, a.id DESC"),
    "-last_used": ("Last used", "a.last_used_at DESC{nulls}, a.id DESC"),
}
DEFAULT_SORT = "name"
STATUS_CHOICES = [*AdapterStatus.choices, ("issues", "Has issues")]
YES_NO = {"1": True, "0": False}
CARD_FIELDS = (
    "id",
    "name",
    "alias",
    "base_model",
    "base_model_detail",
    "network_type",
    "rank",
    "size",
    "trigger_words",
    "preferred_weight",
    "active",
    "favorite",
    "status",
    "has_issues",
    "preview_source",
    "preview_key",
    "rating",
    "usage_count",
    "last_used_at",
    "created_at",
    "updated_at",
)


@dataclass
class GalleryQuery:
    """A validated gallery request. ``notices`` says what was ignored and why."""

    q: str = ""
    base: list[str] = field(default_factory=list)
    type: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    tag_mode: str = "any"
    active: bool | None = None
    favorite: bool | None = None
    status: list[str] = field(default_factory=list)
    roots: list[int] = field(default_factory=list)
    folder: tuple[int, str] | None = None  # (library root id, folder relative to it; "" = the whole root)
    duplicates: bool = False
    update: bool = False  # a newer version is on Civitai
    unused: str = ""  # "never" (never generated with) or a number of days without use (never used included)
    sort: str = DEFAULT_SORT
    page: int = 1
    notices: list[str] = field(default_factory=list)

    def params(self, **changes) -> list[tuple[str, str]]:
        """The canonical query string pairs (no page unless asked), with ``changes`` applied."""
        values = {
            "q": self.q,
            "base": self.base,
            "type": self.type,
            "tag": self.tags,
            "tag_mode": self.tag_mode if self.tags and self.tag_mode != "any" else "",
            "active": "" if self.active is None else str(int(self.active)),
            "favorite": "" if self.favorite is None else str(int(self.favorite)),
            "status": self.status,
            "root": [str(r) for r in self.roots],
            "folder": "" if self.folder is None else f"{self.folder[0]}:{self.folder[1]}",
            "dup": "1" if self.duplicates else "",
            "update": "1" if self.update else "",
            "unused": self.unused,
            "sort": "" if self.sort == DEFAULT_SORT else self.sort,
            "page": "",
        }
        values.update(changes)
        pairs: list[tuple[str, str]] = []
        for key, value in values.items():
            for item in value if isinstance(value, list) else [value]:
                if item not in ("", None):
                    pairs.append((key, str(item)))
        return pairs

    def querystring(self, **changes) -> str:
        return urlencode(self.params(**changes))

    @property
    def is_filtered(self) -> bool:
        return bool(self.params(sort="", tag_mode=""))

    def filter_key(self) -> tuple:
        """What the set of matches depends on (not sort, page or notices; "unused for N days" also on the date)."""
        cutoff = unused_cutoff(self.unused)
        return (*self.params(sort="", tag_mode=self.tag_mode), cutoff.isoformat() if cutoff else "")


def printable(value: str) -> str:
    """Drop control characters (NUL among them: PostgreSQL text cannot hold it) from user input."""
    return "".join(ch for ch in value if ch >= " " or ch == "\t")


def _choices(params: QueryDict, key: str, allowed: list[str], label: str, notices: list[str]) -> list[str]:
    chosen = []
    for value in params.getlist(key):
        if value in allowed:
            if value not in chosen:
                chosen.append(value)
        elif value:
            notices.append(f"Unknown {label} “{value[:40]}” ignored.")
    return chosen


def _yes_no(params: QueryDict, key: str, label: str, notices: list[str]) -> bool | None:
    value = params.get(key, "")
    if value in YES_NO:
        return YES_NO[value]
    if value:
        notices.append(f"The {label} filter takes 1 or 0, not “{value[:40]}”; ignored.")
    return None


def parse(params: QueryDict) -> GalleryQuery:
    """A GalleryQuery from request parameters; bad values are dropped with a notice, never an error."""
    notices: list[str] = []
    query = GalleryQuery(notices=notices)
    q = " ".join(printable(params.get("q", "")).split())
    if len(q) > MAX_QUERY_LENGTH:
        notices.append(f"The search was cut to its first {MAX_QUERY_LENGTH} characters.")
        q = q[:MAX_QUERY_LENGTH]
    query.q = q
    query.base = _choices(params, "base", BaseModel.values, "base model", notices)
    query.type = _choices(params, "type", NetworkType.values, "network type", notices)
    query.status = _choices(params, "status", [value for value, _ in STATUS_CHOICES], "status", notices)
    for raw in params.getlist("tag")[: MAX_TAG_FILTERS + 1]:
        raw = printable(raw)
        try:
            tag = normalize_tag(raw)
        except ValueError as exc:
            if raw.strip():
                notices.append(f"Tag filter ignored: {exc}.")
            continue
        if tag not in query.tags:
            query.tags.append(tag)
    if len(query.tags) > MAX_TAG_FILTERS:
        query.tags = query.tags[:MAX_TAG_FILTERS]
        notices.append(f"Only the first {MAX_TAG_FILTERS} tag filters are used.")
    mode = params.get("tag_mode", "any")
    if mode in ("any", "all"):
        query.tag_mode = mode
    elif mode:
        notices.append(f"Tag matching is “any” or “all”, not “{mode[:40]}”; using “any”.")
    query.active = _yes_no(params, "active", "active", notices)
    query.favorite = _yes_no(params, "favorite", "favorite", notices)
    for raw in params.getlist("root"):
        if raw.isdigit() and len(raw) < 19:
            query.roots.append(int(raw))
        elif raw:
            notices.append(f"Unknown library folder “{raw[:40]}” ignored.")
    query.folder = parse_folder(params.get("folder", ""), notices)
    dup = params.get("dup", "")
    query.duplicates = dup == "1"
    if dup not in ("", "0", "1"):
        notices.append(f"The duplicates filter takes 1, not “{dup[:40]}”; ignored.")
    update = params.get("update", "")
    query.update = update == "1"
    if update not in ("", "0", "1"):
        notices.append(f"The update-available filter takes 1, not “{update[:40]}”; ignored.")
    unused = params.get("unused", "")
    if unused == "never" or (unused.isdigit() and 1 <= int(unused) <= MAX_UNUSED_DAYS):
        query.unused = unused if unused == "never" else str(int(unused))
    elif unused:
        notices.append(f"The unused filter takes “never” or a number of days, not “{unused[:40]}”; ignored.")
    sort = params.get("sort", "") or DEFAULT_SORT
    if sort in SORTS:
        query.sort = sort
    else:
        notices.append(f"Unknown sort “{sort[:40]}”; sorted by name.")
    page = params.get("page", "1") or "1"
    if page.isdigit() and 1 <= int(page) <= MAX_PAGE:
        query.page = int(page)
    elif page == "last":
        query.page = MAX_PAGE
    else:
        notices.append(f"“{page[:40]}” is not a page number; showing page 1.")
    return query


def parse_folder(raw: str, notices: list[str]) -> tuple[int, str] | None:
    """``<root id>:<folder/relative/to/it>`` -> (root id, folder); anything else is ignored with a notice."""
    raw = printable(raw).strip()
    if not raw:
        return None
    root, sep, folder = raw.partition(":")
    folder = "/".join(part for part in folder.replace("\\", "/").split("/") if part and part != ".")
    if not sep or not root.isdigit() or len(root) > 18 or ".." in folder.split("/") or len(folder) > MAX_FOLDER_LENGTH:
        notices.append(f"Unknown folder “{raw[:60]}” ignored.")
        return None
    return int(root), folder


def order_sql(sort: str) -> str:
    order = SORTS.get(sort, SORTS[DEFAULT_SORT])[1]
    return order.format(nulls=" NULLS LAST" if connection.vendor == "postgresql" else "")


@dataclass
class Facets:
    """Counts shown next to every filter value, with labels."""

    total: int
    base: list[tuple[str, str, int]]  # (value, label, count)
    type: list[tuple[str, str, int]]
    active: dict[str, int]  # "1" / "0" -> count, as the URL spells them
    favorite: dict[str, int]
    status: list[tuple[str, str, int]]
    tags: list[tuple[int, str, int]]  # (tag id, name, count)
    roots: list[tuple[int, str, int]]
    duplicates: int
    updates: int
    folder_tree: list[dict] = field(default_factory=list)  # see folder_tree()


def _tag_ids(query: GalleryQuery) -> list[int] | None:
    """Ids of the query's tags (None without a tag filter); names no tag has are reported once."""
    if not query.tags:
        return None
    ids = dict(Tag.objects.filter(name__in=query.tags).values_list("name", "id"))
    unknown = [t for t in query.tags if t not in ids]
    notice = f"No tag named {', '.join(f'“{t}”' for t in unknown)}."
    if unknown and notice not in query.notices:
        query.notices.append(notice)
    return [ids[t] for t in query.tags if t in ids]


def labelled(query: GalleryQuery, raw: facets.Counts) -> Facets:
    cube = raw.cube
    top = [(pk, n) for pk, n in raw.tags.most_common(facets.TAG_FACET_LIMIT)]
    names = dict(Tag.objects.filter(pk__in=[pk for pk, _ in top]).values_list("pk", "name"))
    tags = [(pk, names[pk], n) for pk, n in top if pk in names]
    shown = {name for _, name, _ in tags}
    for pk, name in Tag.objects.filter(name__in=[t for t in query.tags if t not in shown]).values_list("pk", "name"):
        tags.append((pk, name, raw.tags[pk]))
    roots = list(LibraryRoot.objects.order_by("path").values_list("pk", "path")[:ROOT_FACET_LIMIT])
    return Facets(
        total=raw.total,
        base=[(v, label, cube["base"][v]) for v, label in BaseModel.choices if cube["base"][v] or v in query.base],
        type=[(v, v, cube["type"][v]) for v in NetworkType.values if cube["type"][v] or v in query.type],
        active={"1": cube["active"][True], "0": cube["active"][False]},
        favorite={"1": cube["favorite"][True], "0": cube["favorite"][False]},
        status=[(v, label, cube["status"][v]) for v, label in STATUS_CHOICES if cube["status"][v] or v in query.status],
        tags=tags,
        roots=[(pk, path, raw.roots[pk]) for pk, path in roots] if len(roots) > 1 or query.roots else [],
        duplicates=raw.duplicates,
        updates=raw.updates,
        folder_tree=folder_tree(query, raw.folders),
    )


def folder_tree(query: GalleryQuery, direct: dict[tuple[int, str], int]) -> list[dict]:
    """The folder tree as rows to show, like a file browser: every root, its top folders, and the children
    of each folder on the way to the chosen one. Counts include subfolders. Rows are flat with a depth
    (the CSP forbids inline styles: indentation comes from a class per depth)."""
    totals: dict[tuple[int, str], int] = {}
    children: dict[tuple[int, str], set[str]] = {}
    for (root_id, folder), n in direct.items():
        parts = folder.split("/") if folder else []
        for depth in range(len(parts) + 1):
            key = (root_id, "/".join(parts[:depth]))
            totals[key] = totals.get(key, 0) + n
            if depth < len(parts):
                children.setdefault(key, set()).add("/".join(parts[: depth + 1]))
    chosen = query.folder
    open_keys = {(chosen[0], "")} if chosen else set()
    if chosen and chosen[1]:
        parts = chosen[1].split("/")
        open_keys |= {(chosen[0], "/".join(parts[:i])) for i in range(1, len(parts) + 1)}
    rows: list[dict] = []

    def add(root_id: int, folder: str, label: str, depth: int) -> None:
        key = (root_id, folder)
        kids = sorted(children.get(key, ()), key=str.lower)
        rows.append(
            {
                "label": label,
                "count": totals.get(key, 0),
                "depth": min(depth, 8),
                "value": f"{root_id}:{folder}",
                "querystring": query.querystring(folder=f"{root_id}:{folder}"),
                "current": chosen == key,
                "has_children": bool(kids),
                "open": key in open_keys or depth == 0,
            }
        )
        if key in open_keys or depth == 0:
            for child in kids[:FOLDER_CHILDREN_LIMIT]:
                add(root_id, child, child.rpartition("/")[2], depth + 1)
            if len(kids) > FOLDER_CHILDREN_LIMIT:
                rows.append(
                    {"label": f"… {len(kids) - FOLDER_CHILDREN_LIMIT} more folders", "more": True, "depth": depth + 1}
                )

    for root_id, path in LibraryRoot.objects.order_by("path").values_list("pk", "path")[:ROOT_FACET_LIMIT]:
        if (root_id, "") in totals or (chosen and chosen[0] == root_id):
            add(root_id, "", path, 0)
    return rows


_URL_PATTERNS: dict[str, str] = {}


def _pattern(name: str, *args: str) -> str:
    """A URL with "{}" where the adapter id goes: one reverse() per process instead of several per card."""
    key = f"{name}:{':'.join(args)}"
    if key not in _URL_PATTERNS:
        _URL_PATTERNS[key] = reverse(name, args=[987654321, *args]).replace("987654321", "{}")
    return _URL_PATTERNS[key]


def with_urls(adapter: Adapter) -> Adapter:
    """Attach the URLs a card or row links to (detail, card thumbnail, favorite toggle)."""
    adapter.detail_url = _pattern("adapters:detail").format(adapter.pk)
    adapter.thumb_url = _pattern("adapters:preview", "card").format(adapter.pk)
    adapter.favorite_url = _pattern("adapters:toggle", "favorite").format(adapter.pk)
    return adapter


class CountedPaginator(Paginator):
    """A Paginator told its count (from the facet counts) instead of running COUNT(*) again."""

    def __init__(self, count: int, per_page: int) -> None:
        super().__init__([], per_page)
        self.__dict__["count"] = count


@dataclass
class Results:
    query: GalleryQuery
    page: Page
    facets: Facets
    sort_choices: list[tuple[str, str]]


def results(query: GalleryQuery) -> Results:
    """One page of adapters (card fields only, tags prefetched) plus every facet count."""
    raw = facets.counts(query, _tag_ids(query))
    paginator = CountedPaginator(raw.total, PAGE_SIZE)
    if query.page > paginator.num_pages:
        if query.page != MAX_PAGE and raw.total:
            query.notices.append(f"There is no page {query.page}; showing the last page.")
        query.page = paginator.num_pages
    offset = (query.page - 1) * PAGE_SIZE
    ids = facets.page_ids(raw, query.sort, order_sql(query.sort), offset, PAGE_SIZE) if raw.total else []
    rows = Adapter.objects.filter(pk__in=ids).only(*CARD_FIELDS).prefetch_related("tags").in_bulk()
    page = Page([with_urls(rows[pk]) for pk in ids if pk in rows], query.page, paginator)
    return Results(query, page, labelled(query, raw), [(key, label) for key, (label, _) in SORTS.items()])


def total(querystring: str) -> int:
    """How many adapters a gallery query string matches."""
    query = parse(QueryDict(querystring))
    return facets.counts(query, _tag_ids(query)).total


def matching_ids(querystring: str) -> list[int]:
    """Ids of every adapter a gallery query string matches ("select all N matching this filter"), fresh."""
    query = parse(QueryDict(querystring))
    where, params = filter_sql(query, _tag_ids(query))
    sql = f"SELECT a.id FROM adapters_adapter a {'WHERE ' + where if where else ''}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql + " ORDER BY a.id", params)
        return [row[0] for row in cursor.fetchall()]
