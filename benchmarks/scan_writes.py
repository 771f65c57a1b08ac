"""One-off measurement for issue 16: how should a scan write new adapters?

Compares, for N new adapters (with one file each, realistic kohya SDXL values read from the benchmark
library):

- ``raw_sql_triggers``: today's ``bulk_sql.insert_returning_ids`` with the search/duplicates/version
  triggers of migration 0010 (per row on SQLite, per statement on PostgreSQL);
- ``bulk_create_triggers``: Django's ``bulk_create`` (primary keys come back on SQLite >= 3.35 and
  PostgreSQL), triggers still firing per row;
- ``bulk_create_explicit``: ``bulk_create`` with the insert triggers out of the way and the derived
  tables (search documents, duplicates, catalog version) updated by three set-based statements;
- ``raw_sql_explicit``: the raw INSERT with those set-based statements instead of the triggers.

Every variant runs in a transaction that is rolled back, so the catalog is left as it was (and deferred
triggers, which run at commit, are not counted). On PostgreSQL on this machine ``<variant>_server_cpu_s``
is the database backend's CPU time for the writes, steadier than wall time on a shared machine.
Run: ``python -m lora_manager.launcher bench scan_writes`` (10k and 100k), or on PostgreSQL with
``DATABASE_URL=postgres://postgres@127.0.0.1:5432/<db>`` set. ``LORA_MANAGER_BENCH_WRITE_COUNTS`` overrides
the sizes (comma-separated), ``LORA_MANAGER_BENCH_WRITE_VARIANTS`` the variants.
Not part of the default ``make bench`` run (100k takes minutes).
"""

from __future__ import annotations

import importlib
import os
import statistics
import time
from pathlib import Path

from django.db import connection, transaction

from adapters.models import Adapter, AdapterFile, LibraryRoot
from adapters.reading import read_file
from benchmarks.library import default_library, model_files
from lora_manager.bulk_sql import insert_returning_ids

FROZEN = importlib.import_module("adapters.migrations.0010_derived_tables")  # the triggers' own SQL
BATCH = 500
TABLES = ("adapters_adapter", "adapters_adapterfile")
VARIANTS = ("raw_sql_triggers", "bulk_create_triggers", "bulk_create_explicit", "raw_sql_explicit")


def _objects(count: int, template: dict, root: LibraryRoot) -> tuple[list[Adapter], list[AdapterFile]]:
    adapters = [Adapter(**{**template, "name": f"{template['name']}_{i}"}, size=130_000) for i in range(count)]
    files = [
        AdapterFile(root=root, path=f"/bench/{i}.safetensors", size=130_000, mtime_ns=i, data_offset=9000)
        for i in range(count)
    ]
    return adapters, files


def _link(adapters: list[Adapter], files: list[AdapterFile]) -> None:
    for adapter, file in zip(adapters, files, strict=True):
        file.adapter = adapter


def _raw(adapters, files) -> None:
    insert_returning_ids(Adapter, adapters)
    _link(adapters, files)
    insert_returning_ids(AdapterFile, files)


def _orm(adapters, files) -> None:
    Adapter.objects.bulk_create(adapters, batch_size=BATCH)
    _link(adapters, files)
    AdapterFile.objects.bulk_create(files, batch_size=BATCH)


def _drop_insert_triggers(cursor) -> None:
    if connection.vendor == "postgresql":
        for table in TABLES:
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        return
    cursor.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN (%s, %s) AND sql LIKE %s",
        [*TABLES, "%AFTER INSERT%"],
    )
    for (name,) in cursor.fetchall():
        cursor.execute(f"DROP TRIGGER {name}")


def _explicit(after_id: int) -> None:
    """What the insert triggers do, once per batch of new adapters instead of once per row."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO adapters_search (adapter_id, document) SELECT a.id, {FROZEN.pg_document('a')} "
                "FROM adapters_adapter a WHERE a.id > %s ON CONFLICT DO NOTHING",
                [after_id],
            )
            cursor.execute(
                "SELECT adapters_duplicates_refresh(ARRAY(SELECT id FROM adapters_adapter WHERE id > %s))", [after_id]
            )
            cursor.execute("UPDATE adapters_catalog_version SET token = (random() * 9e15)::bigint WHERE id = 1")
            return
        cursor.execute(
            f"INSERT INTO adapters_search(rowid, document) SELECT a.id, {FROZEN.SQLITE_DOCUMENT} "
            "FROM adapters_adapter a WHERE a.id > %s",
            [after_id],
        )
        cursor.execute(
            "INSERT OR IGNORE INTO adapters_duplicate (adapter_id) SELECT a.id FROM adapters_adapter a "
            f"WHERE a.id > %s AND {FROZEN.DUP_CONDITION}",
            [after_id],
        )
        cursor.execute("UPDATE adapters_catalog_version SET token = random() WHERE id = 1")


def _server_cpu() -> float | None:
    """CPU seconds the PostgreSQL backend of this connection has used, when the server runs on this machine:
    a figure the other work on a shared machine disturbs far less than wall time."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        stat = Path(f"/proc/{cursor.fetchone()[0]}/stat")
    if not stat.exists():
        return None
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _measure(variant: str, count: int, template: dict) -> tuple[float, float | None]:
    """Wall seconds of the writes, and the database server's CPU seconds for them (None when unknown)."""
    with transaction.atomic():
        root = LibraryRoot.objects.create(path=f"/bench-writes-{variant}-{count}")
        after_id = Adapter.objects.order_by("-id").values_list("id", flat=True).first() or 0
        adapters, files = _objects(count, template, root)
        with connection.cursor() as cursor:
            if variant.endswith("_explicit"):
                _drop_insert_triggers(cursor)
        started, cpu = time.perf_counter(), _server_cpu()
        (_raw if variant.startswith("raw_sql") else _orm)(adapters, files)
        if variant.endswith("_explicit"):
            _explicit(after_id)
        elapsed = time.perf_counter() - started
        cpu_after = _server_cpu()
        transaction.set_rollback(True)
    return elapsed, None if cpu is None or cpu_after is None else cpu_after - cpu


def run() -> list[dict]:
    counts = [int(c) for c in os.environ.get("LORA_MANAGER_BENCH_WRITE_COUNTS", "10000,100000").split(",")]
    path = model_files(default_library())[0]
    read = read_file(str(path), path.stat().st_size, {path.name})
    template = {key: value for key, value in read.values.items() if key != "size"}
    results = []
    for count in counts:
        rounds = int(os.environ.get("LORA_MANAGER_BENCH_WRITE_ROUNDS", "1"))
        figures, cpu = {}, {}
        chosen = os.environ.get("LORA_MANAGER_BENCH_WRITE_VARIANTS", ",".join(VARIANTS)).split(",")
        for variant in [v for v in VARIANTS if v in chosen]:
            measured = [_measure(variant, count, template) for _ in range(rounds)]
            figures[variant] = statistics.median(wall for wall, _ in measured)
            if all(seconds is not None for _, seconds in measured):
                cpu[variant] = statistics.median(seconds for _, seconds in measured)
        results.append(
            {
                "adapters": count,
                "db_engine": connection.vendor,
                "rounds": rounds,
                **{f"{variant}_s": round(s, 3) for variant, s in figures.items()},
                **{f"{variant}_rows_per_s": round(2 * count / s) for variant, s in figures.items()},
                **{f"{variant}_server_cpu_s": round(s, 3) for variant, s in cpu.items()},
            }
        )
    return results
