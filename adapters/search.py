"""Text search over the catalog that stays fast at 100,000 adapters, on SQLite and PostgreSQL.

One search document per adapter (name, alias, trigger words, description) lives in the table
``adapters_search``, kept current by database triggers (created by migration ``0010_derived_tables``,
listed in ``adapters.derived.EXPECTED_TRIGGERS``), because the scanner writes adapters with raw SQL
that no Django signal sees. SQLite: an FTS5 table with the trigram tokenizer (case-insensitive
substring matching from an index). PostgreSQL: a plain table with a pg_trgm GIN index (``ILIKE
'%word%'`` from the index). Tags are not copied into the documents (rebuilding a document for every
tag link would slow scans): each word matches a document OR the name of one of the adapter's tags,
looked up in the small tag table. Words of one or two letters have no trigram: next to longer words
they are ignored; a search of only such words matches the start of names, through an index.

No model maps the table: SQLite's FTS5 table is keyed by ``rowid``, PostgreSQL's by ``adapter_id``, and
every read is a set of ids intersected with other filters in SQL (``matching_sql``).
"""

from __future__ import annotations

import re

from django.db import connection
from django.db.models import Q
from django.db.models.expressions import RawSQL

TABLE = "adapters_search"
MIN_INDEXED_TERM = 3  # trigram: shorter terms cannot use the index
MAX_TERMS = 8
MAX_TERM_LENGTH = 100
_TERMS = re.compile(r'"([^"]+)"|(\S+)')
_HEX = re.compile(r"[0-9a-f]{8,64}")


def _sqlite_uses_fts(cursor) -> bool:
    cursor.execute(f"SELECT sql FROM sqlite_master WHERE name = '{TABLE}'")  # noqa: S608
    row = cursor.fetchone()
    return bool(row) and "fts5" in (row[0] or "").lower()


def document(adapter_id: int) -> str | None:
    """The stored search document of one adapter (for tests and debugging)."""
    column = "adapter_id" if connection.vendor == "postgresql" else "rowid"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT document FROM {TABLE} WHERE {column} = %s", [adapter_id])  # noqa: S608
        row = cursor.fetchone()
    return row[0] if row else None


def terms(query: str) -> list[str]:
    """Words of a search, or "quoted phrases", lowercased; at most MAX_TERMS of at most MAX_TERM_LENGTH chars."""
    found = [(quoted or word).strip().lower()[:MAX_TERM_LENGTH] for quoted, word in _TERMS.findall(query)]
    return list(dict.fromkeys(t for t in found if t))[:MAX_TERMS]


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _word_sql(word: str, fts: bool) -> tuple[str, list]:
    """Ids of adapters whose document contains ``word``, or that carry a tag whose name contains it."""
    like = _like(word)
    tags = (
        "SELECT l.adapter_id FROM adapters_adapter_tags l WHERE l.tag_id IN "
        "(SELECT t.id FROM adapters_tag t WHERE t.name LIKE %s ESCAPE '\\')"
    )
    if connection.vendor == "postgresql":
        return f"SELECT adapter_id FROM {TABLE} WHERE document ILIKE %s UNION {tags}", [like, like]  # noqa: S608
    if fts:
        phrase = '"' + word.replace('"', '""') + '"'
        return f"SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH %s UNION {tags}", [phrase, like]  # noqa: S608
    return f"SELECT rowid FROM {TABLE} WHERE document LIKE %s ESCAPE '\\' UNION {tags}", [like, like]  # noqa: S608


def matching_sql(query: str) -> tuple[str, list] | None:
    """``SELECT <adapter id> ...`` for adapters matching every word of ``query``; None if blank.

    A single run of 8+ hex digits also matches a sha256 or tensor sha256 prefix (AutoV2 / AutoV3).
    """
    words = terms(query)
    if not words:
        return None
    long = [w for w in words if len(w) >= MIN_INDEXED_TERM]
    if not long:
        # One or two letters say little and have no trigram: match the start of names, from an index.
        prefix = " ".join(words)
        column = 'lower(name::text) COLLATE "C"' if connection.vendor == "postgresql" else "lower(name)"
        sql = f"SELECT id FROM adapters_adapter WHERE {column} >= %s AND {column} < %s"  # noqa: S608
        return sql, [prefix, prefix + "\U0010ffff"]
    fts = False
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            fts = _sqlite_uses_fts(cursor)
    pieces = [_word_sql(word, fts) for word in long]
    if len(pieces) == 1:
        sql, params = pieces[0]
    else:  # every word must match
        sql = " INTERSECT ".join(f"SELECT * FROM ({piece}) AS w{i}" for i, (piece, _) in enumerate(pieces))  # noqa: S608
        params = [value for _, values in pieces for value in values]
    if len(words) == 1 and _HEX.fullmatch(words[0]):
        prefix = words[0]
        sql += (
            " UNION SELECT id FROM adapters_adapter WHERE (sha256 >= %s AND sha256 < %s)"
            " OR (tensor_sha256 >= %s AND tensor_sha256 < %s)"
        )
        params += [prefix, prefix + "g", prefix, prefix + "g"]
    return sql, params


def search_q(query: str) -> Q | None:
    """The same match as a Django filter (for querysets); None for a blank query."""
    found = matching_sql(query)
    if found is None:
        return None
    return Q(pk__in=RawSQL(*found))  # noqa: S611 - placeholders only
