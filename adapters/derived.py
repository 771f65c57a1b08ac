"""Small tables the database keeps current by itself, so the gallery stays fast at 100,000 adapters.

- ``adapters_duplicate`` (model ``Duplicate``): the ids of adapters that are duplicates (they share a
  tensor sha256 with another adapter, or have more than one present file). The "duplicates" filter
  and its count read this table instead of grouping the whole catalog on every request.
- ``adapters_catalog_version`` (``CatalogVersion``): one row whose random ``token`` changes whenever
  something a gallery facet counts changes (adapters' filterable columns, tag links, files, roots).
  Aggregates computed for one token can be reused until it changes (``adapters.facets``). A random
  token, not a counter: a rolled-back transaction restores the old value, and a counter would then
  hand out the same number again for different data.
- ``adapters_catalog_part`` (``CatalogPart``): one random token per table the version follows, changed
  with it, so ``adapters.facets`` re-reads only what a write touched (a favorite toggle: not the tag
  links, files and sort orders). ``adapters_catalog_change`` (``CatalogChange``) logs the ids of
  adapters whose facet columns were edited (the newest ``CHANGE_LOG_KEEP``), so those are updated in place.

Database triggers keep them, not Django signals, because the scanner writes with raw multi-row SQL
(issue 16's benchmark: ``bulk_create`` is ~3x slower on SQLite). On PostgreSQL the version changes once
per transaction, at commit: the row lock is held for an instant and readers never see a new token before
the data it stands for. The tables, triggers and functions are created by migration
``0010_derived_tables`` from SQL frozen there; this module only reads them and names the triggers that
must exist (SQLite drops a table's triggers when a later migration rebuilds it: ``missing_triggers``).
"""

from __future__ import annotations

from django.core import checks
from django.db import DatabaseError, connection, connections
from django.db.migrations.recorder import MigrationRecorder

from adapters.models import CatalogVersion

CHANGE_LOG_KEEP = 20_000  # rows of adapters_catalog_change kept; a reader further behind reads everything
CIVITAI_TABLE = "adapters_civitairecord"  # "update available" is a gallery filter with a count

# The triggers migration 0010_derived_tables creates, per engine (the search table's included).
EXPECTED_TRIGGERS: dict[str, frozenset[str]] = {
    "sqlite": frozenset(
        {
            *(f"adapters_derived_adapter_{event}" for event in ("insert", "update", "delete")),
            *(f"adapters_derived_file_{event}" for event in ("insert", "update", "change", "delete")),
            *(f"adapters_derived_link_{event}" for event in ("insert", "update", "delete")),
            "adapters_derived_tag_update",
            "adapters_derived_tag_delete",
            "adapters_derived_root_change",
            "adapters_derived_root_delete",
            *(f"adapters_derived_civitai_{event}" for event in ("insert", "update", "delete")),
            *(f"adapters_search_adapter_{event}" for event in ("insert", "update", "delete")),
        }
    ),
    "postgresql": frozenset(
        {
            *(f"adapters_{table}_{event}" for table in ("adapter", "file", "link") for event in ("insert", "delete")),
            "adapters_adapter_truncate",
            "adapters_duplicates_adapter_update",
            "adapters_duplicates_file_update",
            "adapters_search_adapter_update",
            "adapters_version_pending",
            "adapters_version_adapter_update",
            "adapters_version_file_update",
            "adapters_version_link_update",
            "adapters_version_tag",
            "adapters_version_root",
            "adapters_version_civitai",
        }
    ),
}
TRIGGER_FIX = (
    "the duplicates, search and facet counts go stale without them; re-create them with "
    "'manage.py migrate adapters 0009 && manage.py migrate adapters'"
)


def installed_triggers(conn=None) -> set[str]:
    """Names of the adapters_* triggers present in the database."""
    conn = conn or connection
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            cursor.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE 'adapters\\_%%'")
        else:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'adapters\\_%%' ESCAPE '\\'"
            )
        return {name for (name,) in cursor.fetchall()}


def missing_triggers(conn=None) -> list[str]:
    """Expected triggers that are absent (a table rebuilt on SQLite drops them); [] when unreadable."""
    conn = conn or connection
    expected = EXPECTED_TRIGGERS.get(conn.vendor)
    if not expected:
        return []
    try:
        return sorted(expected - installed_triggers(conn))
    except DatabaseError:
        return []


def catalog_token(conn=None) -> int:
    """The current catalog version token (changes whenever a facet count may have changed)."""
    conn = conn or connection
    token = CatalogVersion.objects.using(conn.alias).filter(pk=1).values_list("token", flat=True).first()
    return int(token or 0)


def catalog_parts(conn=None) -> dict[str, int]:
    """The catalog version token ("catalog"), each table's own token (for ``adapters_adapter``: rows added or
    removed; edits are logged instead) and the newest edit's ``seq`` ("change").

    One statement, not three queries through the models: it reads one snapshot, so the tokens agree."""
    conn = conn or connection
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT 'catalog', token FROM adapters_catalog_version WHERE id = 1 "
            "UNION ALL SELECT part, token FROM adapters_catalog_part "
            "UNION ALL SELECT 'change', MAX(seq) FROM adapters_catalog_change"
        )
        return {part: int(token or 0) for part, token in cursor.fetchall()}


def triggers_check(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    """System check (``manage.py check --database default``, and before ``migrate``): warns when triggers
    that migration 0010 created are gone, e.g. dropped by a later migration that rebuilt a table on SQLite."""
    found = []
    for alias in databases or ():
        conn = connections[alias]
        try:
            applied = MigrationRecorder(conn).applied_migrations()
        except DatabaseError:
            continue
        if ("adapters", "0010_derived_tables") not in applied:
            continue  # not created yet: nothing can be missing
        missing = missing_triggers(conn)
        if missing:
            found.append(
                checks.Warning(
                    f"{len(missing)} catalog trigger(s) missing on database '{alias}': {', '.join(missing)}",
                    hint=TRIGGER_FIX,
                    id="adapters.W001",
                )
            )
    return found
