"""Text search over the catalog that stays fast at 100,000 adapters, on SQLite and PostgreSQL.

One search document per adapter (name, alias, trigger words, description) lives in the table
``adapters_search``, kept current by database triggers, because the scanner writes adapters with raw
SQL that no Django signal sees. SQLite: an FTS5 table with the trigram tokenizer (case-insensitive
substring matching from an index). PostgreSQL: a plain table with a pg_trgm GIN index (``ILIKE
'%word%'`` from the index). Tags are not copied into the documents (rebuilding a document for every
tag link would slow scans): each word matches a document OR the name of one of the adapter's tags,
looked up in the small tag table. Words of one or two letters have no trigram: next to longer words
they are ignored; a search of only such words matches the start of names, through an index.

``install`` is idempotent and runs from a migration and after every ``migrate`` (``apps.py``):
SQLite drops a table's triggers when Django rebuilds that table for a later schema change.
"""

from __future__ import annotations

import logging
import re

from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.db.models.expressions import RawSQL

log = logging.getLogger(__name__)

TABLE = "adapters_search"
MIN_INDEXED_TERM = 3  # trigram: shorter terms cannot use the index
MAX_TERMS = 8
MAX_TERM_LENGTH = 100
_TERMS = re.compile(r'"([^"]+)"|(\S+)')
_HEX = re.compile(r"[0-9a-f]{8,64}")

# --- SQLite -------------------------------------------------------------------------------------

_SQLITE_DOCUMENT = """
    a.name || ' ' || a.alias || ' '
    || COALESCE((SELECT group_concat(j.value, ' ')
                 FROM json_each(CASE WHEN json_valid(a.trigger_words) THEN a.trigger_words ELSE '[]' END) j), '')
    || ' ' || a.description
"""


def _sqlite_upsert(where: str) -> str:
    # Delete then insert, never "INSERT OR REPLACE": an outer "INSERT OR IGNORE" (Django's ignore_conflicts)
    # overrides the conflict clause of statements inside a trigger, and FTS5 refuses a clashing rowid.
    return (
        f"DELETE FROM {TABLE} WHERE rowid IN (SELECT a.id FROM adapters_adapter a WHERE {where}); "  # noqa: S608
        f"INSERT INTO {TABLE}(rowid, document) SELECT a.id, {_SQLITE_DOCUMENT} FROM adapters_adapter a WHERE {where};"
    )


_SQLITE_CHANGED = (
    "old.name IS NOT new.name OR old.alias IS NOT new.alias "
    "OR old.trigger_words IS NOT new.trigger_words OR old.description IS NOT new.description"
)
_SQLITE_TRIGGERS = {
    "adapters_search_adapter_insert": (f"AFTER INSERT ON adapters_adapter BEGIN {_sqlite_upsert('a.id = new.id')} END"),
    "adapters_search_adapter_update": (
        "AFTER UPDATE OF name, alias, trigger_words, description ON adapters_adapter "
        f"WHEN {_SQLITE_CHANGED} BEGIN {_sqlite_upsert('a.id = new.id')} END"
    ),
    "adapters_search_adapter_delete": (
        f"AFTER DELETE ON adapters_adapter BEGIN DELETE FROM {TABLE} WHERE rowid = old.id; END"  # noqa: S608
    ),
}


def _install_sqlite(cursor) -> None:
    cursor.execute(f"SELECT sql FROM sqlite_master WHERE name = '{TABLE}'")  # noqa: S608
    if cursor.fetchone() is None:
        try:
            cursor.execute(f"CREATE VIRTUAL TABLE {TABLE} USING fts5(document, tokenize = 'trigram')")
        except DatabaseError:  # SQLite without FTS5 or older than 3.34: same table, searched by LIKE
            log.warning("SQLite lacks FTS5 trigram search: search will scan %s", TABLE)
            cursor.execute(f"CREATE TABLE {TABLE} (id INTEGER PRIMARY KEY, document TEXT NOT NULL)")
    for name in ("adapters_search_link_insert", "adapters_search_link_delete", "adapters_search_link_update"):
        cursor.execute(f"DROP TRIGGER IF EXISTS {name}")  # tags are no longer part of the documents
    cursor.execute("DROP TRIGGER IF EXISTS adapters_search_tag_rename")
    if sqlite_triggers(cursor, _SQLITE_TRIGGERS):  # new, changed, or dropped by a table rebuild
        cursor.execute(f"DELETE FROM {TABLE}")  # noqa: S608
        cursor.execute(f"INSERT INTO {TABLE}(rowid, document) SELECT a.id, {_SQLITE_DOCUMENT} FROM adapters_adapter a")  # noqa: S608


def sqlite_triggers(cursor, triggers: dict[str, str]) -> bool:
    """Create or update SQLite triggers; True if any was missing or different (then derived data may be stale)."""
    changed = False
    for name, body in triggers.items():
        wanted = f"CREATE TRIGGER {name} {body}"
        cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = %s", [name])
        row = cursor.fetchone()
        if row is None or row[0] != wanted:
            changed = True
            cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
            cursor.execute(wanted)
    return changed


def _sqlite_uses_fts(cursor) -> bool:
    cursor.execute(f"SELECT sql FROM sqlite_master WHERE name = '{TABLE}'")  # noqa: S608
    row = cursor.fetchone()
    return bool(row) and "fts5" in (row[0] or "").lower()


# --- PostgreSQL ----------------------------------------------------------------------------------

_PG_FUNCTIONS = """
CREATE OR REPLACE FUNCTION adapters_search_document(aid bigint) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT concat_ws(' ', a.name, a.alias,
    CASE WHEN jsonb_typeof(a.trigger_words) = 'array'
         THEN (SELECT string_agg(e, ' ') FROM jsonb_array_elements_text(a.trigger_words) e) END,
    a.description)
  FROM adapters_adapter a WHERE a.id = aid
$$;
CREATE OR REPLACE FUNCTION adapters_search_refresh(aid bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE doc text;
BEGIN
  doc := adapters_search_document(aid);
  IF doc IS NULL THEN
    DELETE FROM adapters_search WHERE adapter_id = aid;
  ELSE
    INSERT INTO adapters_search (adapter_id, document) VALUES (aid, doc)
      ON CONFLICT (adapter_id) DO UPDATE SET document = EXCLUDED.document;
  END IF;
END $$;
CREATE OR REPLACE FUNCTION adapters_search_adapter_trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM adapters_search WHERE adapter_id = OLD.id;
  ELSE
    PERFORM adapters_search_refresh(NEW.id);
  END IF;
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION adapters_search_truncate_trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE adapters_search;
  RETURN NULL;
END $$;
"""
_PG_TRIGGERS = {
    "adapters_search_adapter_insert": (
        "adapters_adapter",
        "AFTER INSERT OR DELETE ON adapters_adapter FOR EACH ROW EXECUTE FUNCTION adapters_search_adapter_trg()",
    ),
    "adapters_search_adapter_update": (
        "adapters_adapter",
        "AFTER UPDATE ON adapters_adapter FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name "
        "OR OLD.alias IS DISTINCT FROM NEW.alias OR OLD.trigger_words IS DISTINCT FROM NEW.trigger_words "
        "OR OLD.description IS DISTINCT FROM NEW.description) EXECUTE FUNCTION adapters_search_adapter_trg()",
    ),
    "adapters_search_adapter_truncate": (
        "adapters_adapter",
        "AFTER TRUNCATE ON adapters_adapter FOR EACH STATEMENT EXECUTE FUNCTION adapters_search_truncate_trg()",
    ),
}
# Sorts that put NULLs last in descending order need an index in that order on PostgreSQL; one- and
# two-letter searches match name prefixes through a byte-ordered index.
_PG_OBSOLETE_TRIGGERS = {"adapters_search_link": "adapters_adapter_tags", "adapters_search_tag_rename": "adapters_tag"}
_PG_DOCUMENT_VERSION = "search document v2: name, alias, trigger words, description"
_PG_INDEXES = {
    "adapter_last_used_desc": "adapters_adapter (last_used_at DESC NULLS LAST, id DESC)",
    "adapter_rank_desc": "adapters_adapter (rank DESC NULLS LAST, id DESC)",
    "adapter_name_prefix": 'adapters_adapter ((lower(name::text) COLLATE "C"))',
    # The gallery's folder filter is a byte-ordered range on the file paths (gallery_filter.path_range_sql).
    "adapterfile_path_bytes": 'adapters_adapterfile ((path COLLATE "C"))',
}


def _install_postgresql(cursor) -> None:
    cursor.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (adapter_id bigint PRIMARY KEY, document text NOT NULL)")
    try:
        with transaction.atomic():
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {TABLE}_trgm ON {TABLE} USING gin (document gin_trgm_ops)")
    except DatabaseError as exc:  # no permission to create the extension: search works, by scanning
        log.warning("pg_trgm unavailable (%s): search will scan %s", exc, TABLE)
    for name, definition in _PG_INDEXES.items():
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")
    cursor.execute(_PG_FUNCTIONS)
    for name, table in _PG_OBSOLETE_TRIGGERS.items():
        cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    cursor.execute("SELECT obj_description(%s::regclass, 'pg_class')", [TABLE])
    missing = cursor.fetchone()[0] != _PG_DOCUMENT_VERSION  # documents built by another definition
    for name, (table, body) in _PG_TRIGGERS.items():
        cursor.execute(
            "SELECT 1 FROM pg_trigger WHERE tgname = %s AND tgrelid = %s::regclass AND NOT tgisinternal", [name, table]
        )
        if cursor.fetchone() is None:
            missing = True
            cursor.execute(f"CREATE TRIGGER {name} {body}")
    if missing:
        cursor.execute(f"TRUNCATE {TABLE}")
        cursor.execute(
            f"INSERT INTO {TABLE} (adapter_id, document) "  # noqa: S608
            "SELECT id, adapters_search_document(id) FROM adapters_adapter"
        )
        cursor.execute(f"COMMENT ON TABLE {TABLE} IS '{_PG_DOCUMENT_VERSION}'")


# --- both -----------------------------------------------------------------------------------------


def install(conn=None) -> None:
    """Create the search table, its triggers (and PostgreSQL's extra indexes); fill it if triggers were missing."""
    conn = conn or connection
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            _install_postgresql(cursor)
        elif conn.vendor == "sqlite":
            _install_sqlite(cursor)


def uninstall(conn=None) -> None:
    conn = conn or connection
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            for name, (table, _) in _PG_TRIGGERS.items():
                cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            for name in _PG_INDEXES:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
            cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
        elif conn.vendor == "sqlite":
            for name in _SQLITE_TRIGGERS:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
            cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")


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
