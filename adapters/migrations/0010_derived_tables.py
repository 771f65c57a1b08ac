"""The derived tables, their triggers and the extra indexes, frozen here (this file imports no live code).

Tables: ``adapters_duplicate`` (ids of duplicate adapters), ``adapters_catalog_version`` (one random
token that changes with anything a facet counts), ``adapters_catalog_part`` (one token per table it
follows), ``adapters_catalog_change`` (ids of edited adapters, the newest 20,000), ``adapters_search``
(one search document per adapter: FTS5 trigram on SQLite, pg_trgm on PostgreSQL) and, on PostgreSQL,
``adapters_catalog_pending`` (rows that live only inside a transaction, see below). What they are for:
adapters/derived.py and adapters/search.py, which only read them (models ``Duplicate``, ``Catalog*``).

Every run drops and re-creates each trigger and function (DROP ... IF EXISTS, then CREATE), so a
database migrated from zero and one that had them from the old 0003 + post_migrate reinstall end with
exactly these; the derived data is then rebuilt from the catalog. Unapplying drops all of it.

SQLite: row triggers (cheap there: issue 16's benchmark found no gain in set-based updates).
PostgreSQL: inserts and deletes are handled once per statement (``REFERENCING NEW/OLD TABLE``), since
per-row plpgsql made the scan's inserts 2.6x slower. The catalog version must still change once per
transaction, at commit (readers never see a new token before the data; its row lock is held only at
commit). Constraint triggers can only be deferred per row, so a statement trigger records the part it
touched once per transaction as a row of ``adapters_catalog_pending``, and a deferred constraint
trigger on that table bumps the tokens at commit and deletes the row. Updates stay per row (edits).

A LATER MIGRATION THAT REBUILDS ``adapters_adapter`` (or another table named here) ON SQLITE: SQLite
drops a table's triggers when Django rebuilds it (AddField NOT NULL, AlterField, RemoveField...), and it
refuses the rebuild while triggers on other tables name the table (see 0009). Such a migration must
drop the triggers first (``RunPython(drop_sqlite_triggers)`` as in 0009) and end with
``RunPython(install)`` imported from this module (frozen SQL, not live code), or with a copy of the
SQL it needs changed. ``tests/adapters/test_derived_triggers.py`` fails when a trigger is missing after
``migrate``, and the status page and /readyz report missing triggers (``adapters.derived.missing_triggers``).
"""

# ruff: noqa: S608, E501 - frozen SQL built from this file's constants only.
import logging

from django.db import DatabaseError, migrations, models, transaction

log = logging.getLogger(__name__)

CHANGE_LOG_KEEP = 20_000
CUBE_COLUMNS = ("base_model", "network_type", "active", "favorite", "status", "has_issues", "tensor_sha256")
PARTS = (
    "adapters_adapter",
    "adapters_adapter_tags",
    "adapters_tag",
    "adapters_adapterfile",
    "adapters_libraryroot",
    "adapters_civitairecord",
)
DUP_CONDITION = """(
      (a.tensor_sha256 <> '' AND EXISTS (SELECT 1 FROM adapters_adapter b
                                         WHERE b.tensor_sha256 = a.tensor_sha256 AND b.id <> a.id))
   OR (SELECT COUNT(*) FROM adapters_adapterfile f WHERE f.adapter_id = a.id AND f.status = 'present') > 1)"""
INDEXES = {  # facet counts read these without touching wide rows
    "adapters_tags_tag_adapter": "adapters_adapter_tags (tag_id, adapter_id)",
    "adapters_file_adapter_root": "adapters_adapterfile (adapter_id, root_id, status)",
    "adapters_file_root_adapter": "adapters_adapterfile (root_id, adapter_id)",
}
_CUBE = "base_model, network_type, active, favorite, status, has_issues"
PG_INDEXES = {  # INCLUDE: index-only counting and paging; NULLS LAST sorts; byte-ordered prefixes and folders
    "adapter_cube_by_id": f"adapters_adapter (id) INCLUDE ({_CUBE})",
    "adapter_facets_ids": f"adapters_adapter ({_CUBE}) INCLUDE (id)",
    "adapter_name_ios": "adapters_adapter (lower(name::text), id) INCLUDE (name)",
    "adapter_last_used_desc": "adapters_adapter (last_used_at DESC NULLS LAST, id DESC)",
    "adapter_rank_desc": "adapters_adapter (rank DESC NULLS LAST, id DESC)",
    "adapter_name_prefix": 'adapters_adapter ((lower(name::text) COLLATE "C"))',
    "adapterfile_path_bytes": 'adapters_adapterfile ((path COLLATE "C"))',
}

# --- SQLite ------------------------------------------------------------------------------------------

SQLITE_TABLES = (
    "CREATE TABLE IF NOT EXISTS adapters_duplicate (adapter_id INTEGER PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS adapters_catalog_version (id INTEGER PRIMARY KEY CHECK (id = 1), token INTEGER)",
    "INSERT OR IGNORE INTO adapters_catalog_version (id, token) VALUES (1, random())",
    "CREATE TABLE IF NOT EXISTS adapters_catalog_part (part TEXT PRIMARY KEY, token INTEGER)",
    "CREATE TABLE IF NOT EXISTS adapters_catalog_change (seq INTEGER PRIMARY KEY AUTOINCREMENT, adapter_id INTEGER)",
    *(f"INSERT OR IGNORE INTO adapters_catalog_part (part, token) VALUES ('{part}', random())" for part in PARTS),
)
SQLITE_SEARCH_FTS = "CREATE VIRTUAL TABLE adapters_search USING fts5(document, tokenize = 'trigram')"
SQLITE_SEARCH_PLAIN = "CREATE TABLE adapters_search (id INTEGER PRIMARY KEY, document TEXT NOT NULL)"
SQLITE_DOCUMENT = """
    a.name || ' ' || a.alias || ' '
    || COALESCE((SELECT group_concat(j.value, ' ')
                 FROM json_each(CASE WHEN json_valid(a.trigger_words) THEN a.trigger_words ELSE '[]' END) j), '')
    || ' ' || a.description
"""


def _sqlite_refresh(ids_sql: str) -> str:
    return (
        f"DELETE FROM adapters_duplicate WHERE adapter_id IN ({ids_sql}); "
        "INSERT OR IGNORE INTO adapters_duplicate (adapter_id) "
        f"SELECT a.id FROM adapters_adapter a WHERE a.id IN ({ids_sql}) AND {DUP_CONDITION};"
    )


def _bump(table: str) -> str:
    return (
        "UPDATE adapters_catalog_version SET token = random() WHERE id = 1; "
        f"UPDATE adapters_catalog_part SET token = random() WHERE part = '{table}';"
    )


def _search_upsert(where: str) -> str:
    # Delete then insert, never "INSERT OR REPLACE": an outer "INSERT OR IGNORE" overrides the conflict
    # clause of statements inside a trigger, and FTS5 refuses a clashing rowid.
    return (
        f"DELETE FROM adapters_search WHERE rowid IN (SELECT a.id FROM adapters_adapter a WHERE {where}); "
        f"INSERT INTO adapters_search(rowid, document) SELECT a.id, {SQLITE_DOCUMENT} FROM adapters_adapter a WHERE {where};"
    )


# "old.x <> ''" is a constant SQLite tests once before the lookup, so a blank hash costs nothing.
def _same_hash_as(*refs: str) -> str:
    return " UNION ".join(
        f"SELECT id FROM adapters_adapter WHERE {ref}.tensor_sha256 <> '' AND tensor_sha256 = {ref}.tensor_sha256"
        for ref in refs
    )


_LOG_CHANGE = (
    "INSERT INTO adapters_catalog_change (adapter_id) VALUES (new.id); DELETE FROM adapters_catalog_change "
    f"WHERE seq <= (SELECT MAX(seq) FROM adapters_catalog_change) - {CHANGE_LOG_KEEP};"
)
_CUBE_CHANGED = " OR ".join(f"old.{c} IS NOT new.{c}" for c in CUBE_COLUMNS)
_TEXT_CHANGED = " OR ".join(f"old.{c} IS NOT new.{c}" for c in ("name", "alias", "trigger_words", "description"))
_VERSION = "UPDATE adapters_catalog_version SET token = random() WHERE id = 1;"
_CIVITAI = "adapters_civitairecord"
SQLITE_TRIGGERS = {
    "adapters_derived_adapter_insert": f"AFTER INSERT ON adapters_adapter BEGIN {_sqlite_refresh(_same_hash_as('new') + ' UNION SELECT new.id')} {_bump('adapters_adapter')} END",
    "adapters_derived_adapter_update": (
        f"AFTER UPDATE ON adapters_adapter WHEN {_CUBE_CHANGED} BEGIN "
        f"{_sqlite_refresh(_same_hash_as('old', 'new') + ' UNION SELECT new.id')} {_VERSION} {_LOG_CHANGE} END"
    ),
    "adapters_derived_adapter_delete": (
        "AFTER DELETE ON adapters_adapter BEGIN DELETE FROM adapters_duplicate WHERE adapter_id = old.id; "
        f"{_sqlite_refresh(_same_hash_as('old'))} {_bump('adapters_adapter')} END"
    ),
    "adapters_derived_file_insert": f"AFTER INSERT ON adapters_adapterfile BEGIN {_sqlite_refresh('SELECT new.adapter_id')} {_bump('adapters_adapterfile')} END",
    "adapters_derived_file_update": (
        "AFTER UPDATE OF adapter_id, root_id, status ON adapters_adapterfile "
        "WHEN old.adapter_id IS NOT new.adapter_id OR old.root_id IS NOT new.root_id OR old.status IS NOT new.status "
        f"BEGIN {_sqlite_refresh('SELECT old.adapter_id UNION SELECT new.adapter_id')} {_bump('adapters_adapterfile')} END"
    ),
    "adapters_derived_file_change": (  # a file moved or rewritten: the folder tree and storage figures follow it
        "AFTER UPDATE OF path, size ON adapters_adapterfile WHEN old.path IS NOT new.path OR old.size IS NOT new.size "
        f"BEGIN {_bump('adapters_adapterfile')} END"
    ),
    "adapters_derived_file_delete": f"AFTER DELETE ON adapters_adapterfile BEGIN {_sqlite_refresh('SELECT old.adapter_id')} {_bump('adapters_adapterfile')} END",
    "adapters_derived_link_insert": f"AFTER INSERT ON adapters_adapter_tags BEGIN {_bump('adapters_adapter_tags')} END",
    "adapters_derived_link_delete": f"AFTER DELETE ON adapters_adapter_tags BEGIN {_bump('adapters_adapter_tags')} END",
    "adapters_derived_link_update": f"AFTER UPDATE ON adapters_adapter_tags BEGIN {_bump('adapters_adapter_tags')} END",
    "adapters_derived_tag_update": f"AFTER UPDATE OF name ON adapters_tag BEGIN {_bump('adapters_tag')} END",
    "adapters_derived_tag_delete": f"AFTER DELETE ON adapters_tag BEGIN {_bump('adapters_tag')} END",
    "adapters_derived_root_change": f"AFTER UPDATE OF path ON adapters_libraryroot BEGIN {_bump('adapters_libraryroot')} END",
    "adapters_derived_root_delete": f"AFTER DELETE ON adapters_libraryroot BEGIN {_bump('adapters_libraryroot')} END",
    "adapters_derived_civitai_insert": f"AFTER INSERT ON {_CIVITAI} BEGIN {_bump(_CIVITAI)} END",
    "adapters_derived_civitai_update": (
        f"AFTER UPDATE OF update_version_id ON {_CIVITAI} "
        f"WHEN old.update_version_id IS NOT new.update_version_id BEGIN {_bump(_CIVITAI)} END"
    ),
    "adapters_derived_civitai_delete": f"AFTER DELETE ON {_CIVITAI} BEGIN {_bump(_CIVITAI)} END",
    "adapters_search_adapter_insert": f"AFTER INSERT ON adapters_adapter BEGIN {_search_upsert('a.id = new.id')} END",
    "adapters_search_adapter_update": (
        "AFTER UPDATE OF name, alias, trigger_words, description ON adapters_adapter "
        f"WHEN {_TEXT_CHANGED} BEGIN {_search_upsert('a.id = new.id')} END"
    ),
    "adapters_search_adapter_delete": "AFTER DELETE ON adapters_adapter BEGIN DELETE FROM adapters_search WHERE rowid = old.id; END",
}
# Triggers of earlier designs (tags were once part of the search documents).
SQLITE_OBSOLETE_TRIGGERS = (
    "adapters_search_link_insert",
    "adapters_search_link_delete",
    "adapters_search_link_update",
    "adapters_search_tag_rename",
)
SQLITE_REBUILD = (
    "DELETE FROM adapters_duplicate",
    f"INSERT INTO adapters_duplicate (adapter_id) SELECT a.id FROM adapters_adapter a WHERE {DUP_CONDITION}",
    "DELETE FROM adapters_search",
    f"INSERT INTO adapters_search(rowid, document) SELECT a.id, {SQLITE_DOCUMENT} FROM adapters_adapter a",
)


def install_sqlite(cursor) -> None:
    for statement in SQLITE_TABLES:
        cursor.execute(statement)
    cursor.execute("SELECT 1 FROM sqlite_master WHERE name = 'adapters_search'")
    if cursor.fetchone() is None:
        try:
            cursor.execute(SQLITE_SEARCH_FTS)
        except DatabaseError:  # SQLite without FTS5 or older than 3.34: a plain table, searched by LIKE
            log.warning("SQLite lacks FTS5 trigram search: search will scan adapters_search")
            cursor.execute(SQLITE_SEARCH_PLAIN)
    for name, definition in INDEXES.items():
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")
    for name in (*SQLITE_OBSOLETE_TRIGGERS, *SQLITE_TRIGGERS):
        cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
    for name, body in SQLITE_TRIGGERS.items():
        cursor.execute(f"CREATE TRIGGER {name} {body}")
    for statement in SQLITE_REBUILD:
        cursor.execute(statement)


def uninstall_sqlite(cursor) -> None:
    for name in SQLITE_TRIGGERS:
        cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
    for name in INDEXES:
        cursor.execute(f"DROP INDEX IF EXISTS {name}")
    for table in DERIVED_TABLES:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


# --- PostgreSQL --------------------------------------------------------------------------------------

PG_TABLES = (
    "CREATE TABLE IF NOT EXISTS adapters_duplicate (adapter_id bigint PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS adapters_catalog_version (id integer PRIMARY KEY CHECK (id = 1), token bigint)",
    "INSERT INTO adapters_catalog_version (id, token) VALUES (1, (random() * 9e15)::bigint) ON CONFLICT DO NOTHING",
    "CREATE TABLE IF NOT EXISTS adapters_catalog_part (part text PRIMARY KEY, token bigint)",
    "CREATE TABLE IF NOT EXISTS adapters_catalog_change (seq bigserial PRIMARY KEY, adapter_id bigint)",
    "CREATE TABLE IF NOT EXISTS adapters_catalog_pending (part text NOT NULL, txid bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS adapters_search (adapter_id bigint PRIMARY KEY, document text NOT NULL)",
    "COMMENT ON TABLE adapters_search IS NULL",  # the old install marked its document version here
    *(
        f"INSERT INTO adapters_catalog_part VALUES ('{part}', (random() * 9e15)::bigint) ON CONFLICT DO NOTHING"
        for part in PARTS
    ),
)
PG_TRIGRAM = (
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX IF NOT EXISTS adapters_search_trgm ON adapters_search USING gin (document gin_trgm_ops)",
)


def pg_document(row: str) -> str:
    return (
        f"concat_ws(' ', {row}.name, {row}.alias, CASE WHEN jsonb_typeof({row}.trigger_words) = 'array' "
        f"THEN (SELECT string_agg(e, ' ') FROM jsonb_array_elements_text({row}.trigger_words) e) END, {row}.description)"
    )


_PG_BUMP_ONCE = """
  IF current_setting('adapters.catalog_bumped', true) IS DISTINCT FROM txid_current()::text THEN
    PERFORM set_config('adapters.catalog_bumped', txid_current()::text, true);
    UPDATE adapters_catalog_version SET token = (random() * 9e15)::bigint WHERE id = 1;
  END IF;"""
_PG_SAME_HASH = (
    "SELECT a.id FROM adapters_adapter a JOIN {rows} r ON a.tensor_sha256 = r.tensor_sha256 WHERE r.tensor_sha256 <> ''"
)
PG_FUNCTIONS = f"""
CREATE FUNCTION adapters_duplicates_refresh(ids bigint[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM adapters_duplicate WHERE adapter_id = ANY(ids);
  INSERT INTO adapters_duplicate (adapter_id)
    SELECT a.id FROM adapters_adapter a WHERE a.id = ANY(ids) AND {DUP_CONDITION}
    ON CONFLICT DO NOTHING;
END $$;
-- Once per transaction and part, at statement time: a row whose deferred trigger bumps the tokens at commit.
CREATE FUNCTION adapters_catalog_touch(touched text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF current_setting('adapters.touched_' || touched, true) IS DISTINCT FROM txid_current()::text THEN
    PERFORM set_config('adapters.touched_' || touched, txid_current()::text, true);
    INSERT INTO adapters_catalog_pending (part, txid) VALUES (touched, txid_current());
  END IF;
END $$;
CREATE FUNCTION adapters_catalog_pending_trg() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{_PG_BUMP_ONCE}
  UPDATE adapters_catalog_part SET token = (random() * 9e15)::bigint WHERE part = NEW.part;
  DELETE FROM adapters_catalog_pending WHERE part = NEW.part AND txid = NEW.txid;
  RETURN NULL;
END $$;
CREATE FUNCTION adapters_adapter_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO adapters_search (adapter_id, document) SELECT r.id, {pg_document("r")} FROM changed_rows r
    ON CONFLICT (adapter_id) DO UPDATE SET document = EXCLUDED.document;
  PERFORM adapters_duplicates_refresh(ARRAY(SELECT id FROM changed_rows UNION {_PG_SAME_HASH.format(rows="changed_rows")}));
  IF EXISTS (SELECT 1 FROM changed_rows) THEN PERFORM adapters_catalog_touch('adapters_adapter'); END IF;
  RETURN NULL;
END $$;
CREATE FUNCTION adapters_adapter_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM adapters_search WHERE adapter_id IN (SELECT id FROM changed_rows);
  DELETE FROM adapters_duplicate WHERE adapter_id IN (SELECT id FROM changed_rows);
  PERFORM adapters_duplicates_refresh(ARRAY({_PG_SAME_HASH.format(rows="changed_rows")}));
  IF EXISTS (SELECT 1 FROM changed_rows) THEN PERFORM adapters_catalog_touch('adapters_adapter'); END IF;
  RETURN NULL;
END $$;
CREATE FUNCTION adapters_file_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM adapters_duplicates_refresh(ARRAY(SELECT DISTINCT adapter_id FROM changed_rows));
  IF EXISTS (SELECT 1 FROM changed_rows) THEN PERFORM adapters_catalog_touch(TG_TABLE_NAME); END IF;
  RETURN NULL;
END $$;
CREATE FUNCTION adapters_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM changed_rows) THEN PERFORM adapters_catalog_touch(TG_TABLE_NAME); END IF;
  RETURN NULL;
END $$;
CREATE FUNCTION adapters_adapter_hash_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM adapters_duplicates_refresh(ARRAY(
    SELECT id FROM adapters_adapter WHERE tensor_sha256 = ANY(array_remove(ARRAY[OLD.tensor_sha256, NEW.tensor_sha256], ''))
    UNION SELECT NEW.id));
  RETURN NULL;
END $$;
CREATE FUNCTION adapters_file_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM adapters_duplicates_refresh(ARRAY[OLD.adapter_id, NEW.adapter_id]);
  RETURN NULL;
END $$;
CREATE FUNCTION adapters_search_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO adapters_search (adapter_id, document) VALUES (NEW.id, {pg_document("NEW")})
    ON CONFLICT (adapter_id) DO UPDATE SET document = EXCLUDED.document;
  RETURN NULL;
END $$;
-- Deferred, per row (edits): the version once per transaction, the part (or, for an adapter, the change log).
CREATE FUNCTION adapters_catalog_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{_PG_BUMP_ONCE}
  IF TG_TABLE_NAME = 'adapters_adapter' THEN
    INSERT INTO adapters_catalog_change (adapter_id) VALUES (NEW.id);
    DELETE FROM adapters_catalog_change WHERE seq <= (SELECT MAX(seq) FROM adapters_catalog_change) - {CHANGE_LOG_KEEP};
  ELSIF current_setting('adapters.bumped_' || TG_TABLE_NAME, true) IS DISTINCT FROM txid_current()::text THEN
    PERFORM set_config('adapters.bumped_' || TG_TABLE_NAME, txid_current()::text, true);
    UPDATE adapters_catalog_part SET token = (random() * 9e15)::bigint WHERE part = TG_TABLE_NAME;
  END IF;
  RETURN NULL;
END $$;
CREATE FUNCTION adapters_adapter_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  TRUNCATE adapters_duplicate, adapters_search;
  UPDATE adapters_catalog_version SET token = (random() * 9e15)::bigint WHERE id = 1;
  UPDATE adapters_catalog_part SET token = (random() * 9e15)::bigint WHERE part = 'adapters_adapter';
  RETURN NULL;
END $$;
"""
PG_FUNCTION_NAMES = (
    "adapters_duplicates_refresh(bigint[])",
    "adapters_catalog_touch(text)",
    "adapters_catalog_pending_trg()",
    "adapters_adapter_inserted()",
    "adapters_adapter_deleted()",
    "adapters_file_changed()",
    "adapters_rows_changed()",
    "adapters_adapter_hash_changed()",
    "adapters_file_updated()",
    "adapters_search_updated()",
    "adapters_catalog_bump()",
    "adapters_adapter_truncated()",
)
# Functions of the install this replaces (old 0003 + post_migrate): dropped with their triggers.
PG_OBSOLETE_FUNCTIONS = (
    "adapters_duplicates_adapter_trg()",
    "adapters_duplicates_file_trg()",
    "adapters_search_truncate_dup()",
    "adapters_search_document(bigint)",
    "adapters_search_refresh(bigint)",
    "adapters_search_adapter_trg()",
    "adapters_search_truncate_trg()",
)


def _statement(event: str, table: str, function: str) -> tuple[str, str]:
    rows = "NEW" if event == "INSERT" else "OLD"
    return (
        table,
        f"AFTER {event} ON {table} REFERENCING {rows} TABLE AS changed_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
    )


def _deferred(events: str, table: str, when: str = "") -> tuple[str, str]:
    condition = f" WHEN ({when})" if when else ""
    return table, (
        f"AFTER {events} ON {table} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW{condition} EXECUTE FUNCTION adapters_catalog_bump()"
    )


_PG_CUBE_CHANGED = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in CUBE_COLUMNS)
_PG_TEXT_CHANGED = " OR ".join(
    f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in ("name", "alias", "trigger_words", "description")
)
PG_TRIGGERS = {  # name -> (table, definition after "CREATE TRIGGER name")
    "adapters_adapter_insert": _statement("INSERT", "adapters_adapter", "adapters_adapter_inserted"),
    "adapters_adapter_delete": _statement("DELETE", "adapters_adapter", "adapters_adapter_deleted"),
    "adapters_file_insert": _statement("INSERT", "adapters_adapterfile", "adapters_file_changed"),
    "adapters_file_delete": _statement("DELETE", "adapters_adapterfile", "adapters_file_changed"),
    "adapters_link_insert": _statement("INSERT", "adapters_adapter_tags", "adapters_rows_changed"),
    "adapters_link_delete": _statement("DELETE", "adapters_adapter_tags", "adapters_rows_changed"),
    "adapters_duplicates_adapter_update": (
        "adapters_adapter",
        "AFTER UPDATE OF tensor_sha256 ON adapters_adapter FOR EACH ROW "
        "WHEN (OLD.tensor_sha256 IS DISTINCT FROM NEW.tensor_sha256) EXECUTE FUNCTION adapters_adapter_hash_changed()",
    ),
    "adapters_duplicates_file_update": (
        "adapters_adapterfile",
        "AFTER UPDATE OF adapter_id, status ON adapters_adapterfile FOR EACH ROW "
        "WHEN (OLD.adapter_id IS DISTINCT FROM NEW.adapter_id OR OLD.status IS DISTINCT FROM NEW.status) "
        "EXECUTE FUNCTION adapters_file_updated()",
    ),
    "adapters_search_adapter_update": (
        "adapters_adapter",
        f"AFTER UPDATE ON adapters_adapter FOR EACH ROW WHEN ({_PG_TEXT_CHANGED}) EXECUTE FUNCTION adapters_search_updated()",
    ),
    "adapters_adapter_truncate": (
        "adapters_adapter",
        "AFTER TRUNCATE ON adapters_adapter FOR EACH STATEMENT EXECUTE FUNCTION adapters_adapter_truncated()",
    ),
    "adapters_version_pending": (
        "adapters_catalog_pending",
        "AFTER INSERT ON adapters_catalog_pending DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
        "EXECUTE FUNCTION adapters_catalog_pending_trg()",
    ),
    "adapters_version_adapter_update": _deferred("UPDATE", "adapters_adapter", _PG_CUBE_CHANGED),
    "adapters_version_file_update": _deferred("UPDATE", "adapters_adapterfile"),
    "adapters_version_link_update": _deferred("UPDATE", "adapters_adapter_tags"),
    "adapters_version_tag": _deferred("UPDATE OR DELETE", "adapters_tag"),
    "adapters_version_root": _deferred("UPDATE OR DELETE", "adapters_libraryroot"),
    "adapters_version_civitai": _deferred("INSERT OR UPDATE OR DELETE", _CIVITAI),
}
PG_CONSTRAINT_TRIGGERS = {name for name, (_, body) in PG_TRIGGERS.items() if "DEFERRABLE" in body}
PG_OBSOLETE_TRIGGERS = {
    "adapters_duplicates_adapter_insdel": "adapters_adapter",
    "adapters_duplicates_file": "adapters_adapterfile",
    "adapters_version_adapter_insdel": "adapters_adapter",
    "adapters_version_file": "adapters_adapterfile",
    "adapters_version_link": "adapters_adapter_tags",
    "adapters_version_truncate": "adapters_adapter",
    "adapters_duplicates_truncate": "adapters_adapter",
    "adapters_search_adapter_insert": "adapters_adapter",
    "adapters_search_adapter_truncate": "adapters_adapter",
    "adapters_search_link": "adapters_adapter_tags",
    "adapters_search_tag_rename": "adapters_tag",
}
PG_REBUILD = (
    "TRUNCATE adapters_duplicate, adapters_search, adapters_catalog_pending",
    f"INSERT INTO adapters_duplicate (adapter_id) SELECT a.id FROM adapters_adapter a WHERE {DUP_CONDITION}",
    f"INSERT INTO adapters_search (adapter_id, document) SELECT a.id, {pg_document('a')} FROM adapters_adapter a",
)
DERIVED_TABLES = (
    "adapters_duplicate",
    "adapters_catalog_version",
    "adapters_catalog_part",
    "adapters_catalog_change",
    "adapters_catalog_pending",
    "adapters_search",
)


def _drop_pg_triggers(cursor, triggers: dict[str, str]) -> None:
    for name, table in triggers.items():
        cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")


def install_postgresql(cursor) -> None:
    for statement in PG_TABLES:
        cursor.execute(statement)
    try:
        with transaction.atomic(using=cursor.db.alias):
            for statement in PG_TRIGRAM:
                cursor.execute(statement)
    except DatabaseError as exc:  # no permission to create the extension: search works, by scanning
        log.warning("pg_trgm unavailable (%s): search will scan adapters_search", exc)
    for name, definition in {**INDEXES, **PG_INDEXES}.items():
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")
    _drop_pg_triggers(cursor, {**PG_OBSOLETE_TRIGGERS, **{name: table for name, (table, _) in PG_TRIGGERS.items()}})
    for signature in (*PG_OBSOLETE_FUNCTIONS, *PG_FUNCTION_NAMES):
        cursor.execute(f"DROP FUNCTION IF EXISTS {signature}")
    cursor.execute(PG_FUNCTIONS)
    for name, (_, body) in PG_TRIGGERS.items():
        cursor.execute(f"CREATE {'CONSTRAINT ' if name in PG_CONSTRAINT_TRIGGERS else ''}TRIGGER {name} {body}")
    for statement in PG_REBUILD:
        cursor.execute(statement)


def uninstall_postgresql(cursor) -> None:
    _drop_pg_triggers(cursor, {name: table for name, (table, _) in PG_TRIGGERS.items()})
    for signature in PG_FUNCTION_NAMES:
        cursor.execute(f"DROP FUNCTION IF EXISTS {signature}")
    for name in {**INDEXES, **PG_INDEXES}:
        cursor.execute(f"DROP INDEX IF EXISTS {name}")
    for table in DERIVED_TABLES:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def install(apps, schema_editor) -> None:
    """Create what is missing, replace every trigger and function, rebuild the derived data."""
    connection = schema_editor.connection
    installer = {"sqlite": install_sqlite, "postgresql": install_postgresql}.get(connection.vendor)
    if installer is not None:
        with connection.cursor() as cursor:
            installer(cursor)


def uninstall(apps, schema_editor) -> None:
    connection = schema_editor.connection
    remover = {"sqlite": uninstall_sqlite, "postgresql": uninstall_postgresql}.get(connection.vendor)
    if remover is not None:
        with connection.cursor() as cursor:
            remover(cursor)


def _unmanaged(name: str, table: str, fields: list) -> migrations.CreateModel:
    return migrations.CreateModel(name=name, fields=fields, options={"db_table": table, "managed": False})


class Migration(migrations.Migration):
    dependencies = [("adapters", "0009_adapter_results_approved")]

    operations = [
        migrations.RunPython(install, uninstall, elidable=False),
        _unmanaged(
            "Duplicate",
            "adapters_duplicate",
            [
                (
                    "adapter",
                    models.OneToOneField(
                        db_constraint=False,
                        on_delete=models.DO_NOTHING,
                        primary_key=True,
                        related_name="duplicate_entry",
                        serialize=False,
                        to="adapters.adapter",
                    ),
                )
            ],
        ),
        _unmanaged(
            "CatalogVersion",
            "adapters_catalog_version",
            [("id", models.IntegerField(primary_key=True, serialize=False)), ("token", models.BigIntegerField())],
        ),
        _unmanaged(
            "CatalogPart",
            "adapters_catalog_part",
            [("part", models.TextField(primary_key=True, serialize=False)), ("token", models.BigIntegerField())],
        ),
        _unmanaged(
            "CatalogChange",
            "adapters_catalog_change",
            [("seq", models.BigAutoField(primary_key=True, serialize=False)), ("adapter_id", models.BigIntegerField())],
        ),
    ]
