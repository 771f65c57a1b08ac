"""Small tables the database keeps current by itself, so the gallery stays fast at 100,000 adapters.

- ``adapters_duplicate``: the ids of adapters that are duplicates (they share a tensor sha256 with
  another adapter, or have more than one present file). The "duplicates" filter and its count read
  this table instead of grouping the whole catalog on every request.
- ``adapters_catalog_version``: one row whose random ``token`` changes whenever something a gallery
  facet counts changes (adapters' filterable columns, tag links, files, roots). Aggregates computed
  for one token can be reused until it changes (``adapters.facets``). A random token, not a
  counter: a rolled-back transaction restores the old value, and a counter would then hand out the
  same number again for different data.
- ``adapters_catalog_part``: one random token per table the version follows (``catalog_parts``), changed
  with it, so ``adapters.facets`` re-reads only what a write touched (a favorite toggle: not the tag
  links, files and sort orders). ``adapters_catalog_change`` logs the ids of adapters whose facet
  columns were edited (the newest ``CHANGE_LOG_KEEP``), so those are updated in place.

Triggers, not Django signals, because the scanner writes with raw multi-row SQL. On PostgreSQL the
version is bumped by a deferred constraint trigger, once per transaction, at commit: the row lock is
held for an instant and readers never see a new token before the data it stands for.
``install`` is idempotent and runs after every ``migrate`` (SQLite drops triggers with a rebuilt table).
"""

# ruff: noqa: S608 - every statement here is built from constants; values travel as parameters.
from __future__ import annotations

from django.db import connection

CUBE_COLUMNS = ("base_model", "network_type", "active", "favorite", "status", "has_issues", "tensor_sha256")
_DUP_CONDITION = """(
      (a.tensor_sha256 <> '' AND EXISTS (SELECT 1 FROM adapters_adapter b
                                         WHERE b.tensor_sha256 = a.tensor_sha256 AND b.id <> a.id))
   OR (SELECT COUNT(*) FROM adapters_adapterfile f WHERE f.adapter_id = a.id AND f.status = 'present') > 1)"""

# Extra indexes on tables Django creates for us: facet counts read these without touching wide rows.
_INDEXES = {
    "adapters_tags_tag_adapter": "adapters_adapter_tags (tag_id, adapter_id)",
    "adapters_file_adapter_root": "adapters_adapterfile (adapter_id, root_id, status)",
    "adapters_file_root_adapter": "adapters_adapterfile (root_id, adapter_id)",
}
# PostgreSQL indexes with INCLUDE (SQLite has no INCLUDE, and there every index carries the rowid anyway),
# so counting and paging over a set of ids are index-only scans.
_CUBE = "base_model, network_type, active, favorite, status, has_issues"
_PG_INDEXES = {
    "adapter_cube_by_id": f"adapters_adapter (id) INCLUDE ({_CUBE})",
    "adapter_facets_ids": f"adapters_adapter ({_CUBE}) INCLUDE (id)",
    "adapter_name_ios": "adapters_adapter (lower(name::text), id) INCLUDE (name)",
}

# --- SQLite ------------------------------------------------------------------------------------------


def _sqlite_refresh(ids_sql: str) -> str:
    return (
        f"DELETE FROM adapters_duplicate WHERE adapter_id IN ({ids_sql}); "
        "INSERT OR IGNORE INTO adapters_duplicate (adapter_id) "
        f"SELECT a.id FROM adapters_adapter a WHERE a.id IN ({ids_sql}) AND {_DUP_CONDITION};"
    )


_SQLITE_BUMP = "UPDATE adapters_catalog_version SET token = random() WHERE id = 1;"
PARTS = ("adapters_adapter", "adapters_adapter_tags", "adapters_tag", "adapters_adapterfile", "adapters_libraryroot")


CHANGE_LOG_KEEP = 20_000  # rows of adapters_catalog_change kept; a reader further behind reads everything


def _bump(table: str) -> str:
    return f"{_SQLITE_BUMP} UPDATE adapters_catalog_part SET token = random() WHERE part = '{table}';"


# An adapter's cube columns changed (an edit, not an insert or delete): logged by id, so readers update
# that adapter in place instead of re-reading every adapter (``adapters.facets``).
_SQLITE_LOG_CHANGE = (
    "INSERT INTO adapters_catalog_change (adapter_id) VALUES (new.id); "
    "DELETE FROM adapters_catalog_change "
    f"WHERE seq <= (SELECT MAX(seq) FROM adapters_catalog_change) - {CHANGE_LOG_KEEP};"
)


_SQLITE_CUBE_CHANGED = " OR ".join(f"old.{c} IS NOT new.{c}" for c in CUBE_COLUMNS)


# "tensor_sha256 IN (old, new) AND tensor_sha256 <> ''" walked every unhashed adapter in the index while old
# was '' (each file's first hash): quadratic, 20 s of a 10,000-file hash phase. "old.x <> ''" alone is a
# constant that SQLite tests once before the lookup, so a blank hash costs nothing.
def _same_hash_as(*refs: str) -> str:
    return " UNION ".join(
        f"SELECT id FROM adapters_adapter WHERE {ref}.tensor_sha256 <> '' AND tensor_sha256 = {ref}.tensor_sha256"
        for ref in refs
    )


_SAME_HASH_AS_NEW = f"{_same_hash_as('new')} UNION SELECT new.id"
_SAME_HASH_AS_OLD_OR_NEW = f"{_same_hash_as('old', 'new')} UNION SELECT new.id"
_SAME_HASH_AS_OLD = _same_hash_as("old")
_SQLITE_TRIGGERS = {
    "adapters_derived_adapter_insert": (
        f"AFTER INSERT ON adapters_adapter BEGIN {_sqlite_refresh(_SAME_HASH_AS_NEW)} {_bump('adapters_adapter')} END"
    ),
    "adapters_derived_adapter_update": (
        f"AFTER UPDATE ON adapters_adapter WHEN {_SQLITE_CUBE_CHANGED} BEGIN "
        f"{_sqlite_refresh(_SAME_HASH_AS_OLD_OR_NEW)} {_SQLITE_BUMP} {_SQLITE_LOG_CHANGE} END"
    ),
    "adapters_derived_adapter_delete": (
        "AFTER DELETE ON adapters_adapter BEGIN DELETE FROM adapters_duplicate WHERE adapter_id = old.id; "
        f"{_sqlite_refresh(_SAME_HASH_AS_OLD)} {_bump('adapters_adapter')} END"
    ),
    "adapters_derived_file_insert": (
        f"AFTER INSERT ON adapters_adapterfile BEGIN {_sqlite_refresh('SELECT new.adapter_id')} "
        f"{_bump('adapters_adapterfile')} END"
    ),
    "adapters_derived_file_update": (
        "AFTER UPDATE OF adapter_id, root_id, status ON adapters_adapterfile "
        "WHEN old.adapter_id IS NOT new.adapter_id OR old.root_id IS NOT new.root_id OR old.status IS NOT new.status "
        f"BEGIN {_sqlite_refresh('SELECT old.adapter_id UNION SELECT new.adapter_id')} "
        f"{_bump('adapters_adapterfile')} END"
    ),
    # A file moved or rewritten in place: the folder tree and the dashboard's storage figures follow it.
    "adapters_derived_file_change": (
        "AFTER UPDATE OF path, size ON adapters_adapterfile "
        "WHEN old.path IS NOT new.path OR old.size IS NOT new.size "
        f"BEGIN {_bump('adapters_adapterfile')} END"
    ),
    "adapters_derived_file_delete": (
        f"AFTER DELETE ON adapters_adapterfile BEGIN {_sqlite_refresh('SELECT old.adapter_id')} "
        f"{_bump('adapters_adapterfile')} END"
    ),
    "adapters_derived_link_insert": f"AFTER INSERT ON adapters_adapter_tags BEGIN {_bump('adapters_adapter_tags')} END",
    "adapters_derived_link_delete": f"AFTER DELETE ON adapters_adapter_tags BEGIN {_bump('adapters_adapter_tags')} END",
    "adapters_derived_link_update": f"AFTER UPDATE ON adapters_adapter_tags BEGIN {_bump('adapters_adapter_tags')} END",
    "adapters_derived_tag_update": f"AFTER UPDATE OF name ON adapters_tag BEGIN {_bump('adapters_tag')} END",
    "adapters_derived_tag_delete": f"AFTER DELETE ON adapters_tag BEGIN {_bump('adapters_tag')} END",
    "adapters_derived_root_change": (
        f"AFTER UPDATE OF path ON adapters_libraryroot BEGIN {_bump('adapters_libraryroot')} END"
    ),
    "adapters_derived_root_delete": f"AFTER DELETE ON adapters_libraryroot BEGIN {_bump('adapters_libraryroot')} END",
}
# "update available" (Civitai) is a gallery filter with a count. Its table arrives in a later migration than
# the one that first installs these, so they are added once it exists (``install`` runs after every migrate).
CIVITAI_TABLE = "adapters_civitairecord"
_SQLITE_CIVITAI_TRIGGERS = {
    "adapters_derived_civitai_insert": f"AFTER INSERT ON {CIVITAI_TABLE} BEGIN {_bump(CIVITAI_TABLE)} END",
    "adapters_derived_civitai_update": (
        f"AFTER UPDATE OF update_version_id ON {CIVITAI_TABLE} "
        f"WHEN old.update_version_id IS NOT new.update_version_id BEGIN {_bump(CIVITAI_TABLE)} END"
    ),
    "adapters_derived_civitai_delete": f"AFTER DELETE ON {CIVITAI_TABLE} BEGIN {_bump(CIVITAI_TABLE)} END",
}


def _install_sqlite(cursor) -> None:
    cursor.execute("CREATE TABLE IF NOT EXISTS adapters_duplicate (adapter_id INTEGER PRIMARY KEY)")
    cursor.execute(
        "CREATE TABLE IF NOT EXISTS adapters_catalog_version (id INTEGER PRIMARY KEY CHECK (id = 1), token INTEGER)"
    )
    cursor.execute("INSERT OR IGNORE INTO adapters_catalog_version (id, token) VALUES (1, random())")
    cursor.execute("CREATE TABLE IF NOT EXISTS adapters_catalog_part (part TEXT PRIMARY KEY, token INTEGER)")
    cursor.execute(
        "CREATE TABLE IF NOT EXISTS adapters_catalog_change (seq INTEGER PRIMARY KEY AUTOINCREMENT, adapter_id INTEGER)"
    )
    for part in (*PARTS, CIVITAI_TABLE):
        cursor.execute("INSERT OR IGNORE INTO adapters_catalog_part (part, token) VALUES (%s, random())", [part])
    from adapters.search import sqlite_triggers

    triggers = {**_SQLITE_TRIGGERS, **(_SQLITE_CIVITAI_TRIGGERS if _has_civitai_table(cursor) else {})}
    if sqlite_triggers(cursor, triggers):
        _rebuild(cursor)


# --- PostgreSQL --------------------------------------------------------------------------------------

_PG_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION adapters_duplicates_refresh(ids bigint[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM adapters_duplicate WHERE adapter_id = ANY(ids);
  INSERT INTO adapters_duplicate (adapter_id)
    SELECT a.id FROM adapters_adapter a WHERE a.id = ANY(ids) AND {_DUP_CONDITION}
    ON CONFLICT DO NOTHING;
END $$;
CREATE OR REPLACE FUNCTION adapters_duplicates_adapter_trg() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE hashes text[];
BEGIN
  IF TG_OP = 'DELETE' THEN
    DELETE FROM adapters_duplicate WHERE adapter_id = OLD.id;
    hashes := ARRAY[OLD.tensor_sha256];
  ELSIF TG_OP = 'UPDATE' THEN
    hashes := ARRAY[OLD.tensor_sha256, NEW.tensor_sha256];
  ELSE
    hashes := ARRAY[NEW.tensor_sha256];
  END IF;
  PERFORM adapters_duplicates_refresh(ARRAY(
    SELECT id FROM adapters_adapter WHERE tensor_sha256 = ANY(array_remove(hashes, ''))
    UNION SELECT NEW.id WHERE TG_OP <> 'DELETE'));
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION adapters_duplicates_file_trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP IN ('DELETE', 'UPDATE') THEN PERFORM adapters_duplicates_refresh(ARRAY[OLD.adapter_id]); END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN PERFORM adapters_duplicates_refresh(ARRAY[NEW.adapter_id]); END IF;
  RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION adapters_catalog_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' OR current_setting('adapters.catalog_bumped', true) IS DISTINCT FROM txid_current()::text THEN
    PERFORM set_config('adapters.catalog_bumped', txid_current()::text, true);
    UPDATE adapters_catalog_version SET token = (random() * 9e15)::bigint WHERE id = 1;
  END IF;
  IF TG_TABLE_NAME = 'adapters_adapter' AND TG_OP = 'UPDATE' THEN  -- an edit: logged, see _SQLITE_LOG_CHANGE
    INSERT INTO adapters_catalog_change (adapter_id) VALUES (NEW.id);
    DELETE FROM adapters_catalog_change
      WHERE seq <= (SELECT MAX(seq) FROM adapters_catalog_change) - {CHANGE_LOG_KEEP};
  ELSIF TG_OP = 'TRUNCATE' OR current_setting('adapters.bumped_' || TG_TABLE_NAME, true)
                            IS DISTINCT FROM txid_current()::text THEN
    PERFORM set_config('adapters.bumped_' || TG_TABLE_NAME, txid_current()::text, true);
    UPDATE adapters_catalog_part SET token = (random() * 9e15)::bigint WHERE part = TG_TABLE_NAME;
  END IF;
  RETURN NULL;
END $$;
"""
_PG_CUBE_CHANGED = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in CUBE_COLUMNS)
_DEFERRED = "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION adapters_catalog_bump()"
_PG_TRIGGERS = {  # name -> (table, is constraint trigger, definition)
    "adapters_duplicates_adapter_insdel": (
        "adapters_adapter",
        False,
        "AFTER INSERT OR DELETE ON adapters_adapter FOR EACH ROW EXECUTE FUNCTION adapters_duplicates_adapter_trg()",
    ),
    "adapters_duplicates_adapter_update": (
        "adapters_adapter",
        False,
        "AFTER UPDATE OF tensor_sha256 ON adapters_adapter FOR EACH ROW "
        "WHEN (OLD.tensor_sha256 IS DISTINCT FROM NEW.tensor_sha256) "
        "EXECUTE FUNCTION adapters_duplicates_adapter_trg()",
    ),
    "adapters_duplicates_file": (
        "adapters_adapterfile",
        False,
        "AFTER INSERT OR DELETE OR UPDATE OF adapter_id, status ON adapters_adapterfile FOR EACH ROW "
        "EXECUTE FUNCTION adapters_duplicates_file_trg()",
    ),
    "adapters_version_adapter_insdel": (
        "adapters_adapter",
        True,
        f"AFTER INSERT OR DELETE ON adapters_adapter {_DEFERRED}",
    ),
    "adapters_version_adapter_update": (
        "adapters_adapter",
        True,
        "AFTER UPDATE ON adapters_adapter DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
        f"WHEN ({_PG_CUBE_CHANGED}) EXECUTE FUNCTION adapters_catalog_bump()",
    ),
    "adapters_version_file": (
        "adapters_adapterfile",
        True,
        f"AFTER INSERT OR UPDATE OR DELETE ON adapters_adapterfile {_DEFERRED}",
    ),
    "adapters_version_link": (
        "adapters_adapter_tags",
        True,
        f"AFTER INSERT OR UPDATE OR DELETE ON adapters_adapter_tags {_DEFERRED}",
    ),
    "adapters_version_tag": ("adapters_tag", True, f"AFTER UPDATE OR DELETE ON adapters_tag {_DEFERRED}"),
    "adapters_version_root": (
        "adapters_libraryroot",
        True,
        f"AFTER UPDATE OR DELETE ON adapters_libraryroot {_DEFERRED}",
    ),
    "adapters_version_truncate": (
        "adapters_adapter",
        False,
        "AFTER TRUNCATE ON adapters_adapter FOR EACH STATEMENT EXECUTE FUNCTION adapters_catalog_bump()",
    ),
    "adapters_duplicates_truncate": (
        "adapters_adapter",
        False,
        "AFTER TRUNCATE ON adapters_adapter FOR EACH STATEMENT EXECUTE FUNCTION adapters_search_truncate_dup()",
    ),
}


_PG_CIVITAI_TRIGGERS = {
    "adapters_version_civitai": (
        CIVITAI_TABLE,
        True,
        f"AFTER INSERT OR UPDATE OR DELETE ON {CIVITAI_TABLE} {_DEFERRED}",
    ),
}


def _has_civitai_table(cursor) -> bool:
    return CIVITAI_TABLE in cursor.db.introspection.table_names(cursor)


def _install_postgresql(cursor) -> None:
    cursor.execute("CREATE TABLE IF NOT EXISTS adapters_duplicate (adapter_id bigint PRIMARY KEY)")
    cursor.execute(
        "CREATE TABLE IF NOT EXISTS adapters_catalog_version (id integer PRIMARY KEY CHECK (id = 1), token bigint)"
    )
    cursor.execute(
        "INSERT INTO adapters_catalog_version (id, token) VALUES (1, (random() * 9e15)::bigint) ON CONFLICT DO NOTHING"
    )
    cursor.execute("CREATE TABLE IF NOT EXISTS adapters_catalog_part (part text PRIMARY KEY, token bigint)")
    cursor.execute("CREATE TABLE IF NOT EXISTS adapters_catalog_change (seq bigserial PRIMARY KEY, adapter_id bigint)")
    for part in (*PARTS, CIVITAI_TABLE):
        cursor.execute(
            "INSERT INTO adapters_catalog_part VALUES (%s, (random() * 9e15)::bigint) ON CONFLICT DO NOTHING", [part]
        )
    cursor.execute(_PG_FUNCTIONS)
    cursor.execute(
        "CREATE OR REPLACE FUNCTION adapters_search_truncate_dup() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN TRUNCATE adapters_duplicate; RETURN NULL; END $$"
    )
    missing = False
    triggers = {**_PG_TRIGGERS, **(_PG_CIVITAI_TRIGGERS if _has_civitai_table(cursor) else {})}
    for name, (table, constraint, body) in triggers.items():
        cursor.execute(
            "SELECT 1 FROM pg_trigger WHERE tgname = %s AND tgrelid = %s::regclass AND NOT tgisinternal", [name, table]
        )
        if cursor.fetchone() is None:
            missing = True
            cursor.execute(f"CREATE {'CONSTRAINT ' if constraint else ''}TRIGGER {name} {body}")
    if missing:
        _rebuild(cursor)


def _rebuild(cursor) -> None:
    cursor.execute("DELETE FROM adapters_duplicate")
    cursor.execute(
        f"INSERT INTO adapters_duplicate (adapter_id) SELECT a.id FROM adapters_adapter a WHERE {_DUP_CONDITION}"
    )


# --- both --------------------------------------------------------------------------------------------


def install(conn=None) -> None:
    """Create the derived tables, their triggers and the extra indexes; fill the tables if triggers were missing."""
    conn = conn or connection
    if conn.vendor not in ("sqlite", "postgresql"):
        return
    with conn.cursor() as cursor:
        for name, definition in _INDEXES.items():
            cursor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")
        if conn.vendor == "postgresql":
            for name, definition in _PG_INDEXES.items():
                cursor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")
            _install_postgresql(cursor)
        else:
            _install_sqlite(cursor)


def uninstall(conn=None) -> None:
    conn = conn or connection
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            for name, (table, _, _) in {**_PG_TRIGGERS, **_PG_CIVITAI_TRIGGERS}.items():
                if table != CIVITAI_TABLE or _has_civitai_table(cursor):
                    cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            for name in _PG_INDEXES:
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
        elif conn.vendor == "sqlite":
            for name in {**_SQLITE_TRIGGERS, **_SQLITE_CIVITAI_TRIGGERS}:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
        for name in _INDEXES:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
        cursor.execute("DROP TABLE IF EXISTS adapters_duplicate")
        cursor.execute("DROP TABLE IF EXISTS adapters_catalog_version")
        cursor.execute("DROP TABLE IF EXISTS adapters_catalog_part")
        cursor.execute("DROP TABLE IF EXISTS adapters_catalog_change")


def catalog_token(conn=None) -> int:
    """The current catalog version token (changes whenever a facet count may have changed)."""
    conn = conn or connection
    with conn.cursor() as cursor:
        cursor.execute("SELECT token FROM adapters_catalog_version WHERE id = 1")
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def catalog_parts(conn=None) -> dict[str, int]:
    """The catalog version token ("catalog"), each table's own token (for ``adapters_adapter``: rows added or
    removed; edits are logged instead) and the newest edit's ``seq`` ("change"), in one statement (one snapshot)."""
    conn = conn or connection
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT 'catalog', token FROM adapters_catalog_version WHERE id = 1 "
            "UNION ALL SELECT part, token FROM adapters_catalog_part "
            "UNION ALL SELECT 'change', MAX(seq) FROM adapters_catalog_change"
        )
        return {part: int(token or 0) for part, token in cursor.fetchall()}
