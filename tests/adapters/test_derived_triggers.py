"""The catalog's triggers exist after ``migrate``, and their absence is reported where a person looks.

SQLite drops a table's triggers when a migration rebuilds that table; nothing re-installs them after
``migrate`` any more (migration 0010 creates them from frozen SQL), so these tests are what notices a
later migration that forgets to re-create them.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks
from django.db import connection

from adapters import derived, search
from adapters.models import Adapter, AdapterFile, CatalogChange, Duplicate, LibraryRoot
from lora_manager import system_status
from lora_manager.bulk_sql import insert_returning_ids

BASE_DIR = Path(__file__).resolve().parents[2]


def _manage(data_dir: Path, *args: str) -> None:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env["LORA_MANAGER_DATA_DIR"] = str(data_dir)
    done = subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _sqlite_triggers(path: Path) -> set[str]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'adapters%'")
        return {name for (name,) in rows}


def test_a_fresh_sqlite_database_migrated_from_zero_has_every_trigger(tmp_path):
    """``manage.py migrate`` on an empty SQLite database, in its own process: exactly the expected triggers.
    Then the fix the status page suggests (unapply 0010, apply it again) brings them back."""
    database = tmp_path / "lora_manager.sqlite3"
    _manage(tmp_path, "migrate", "--noinput", "-v", "0")
    assert database.exists()
    assert _sqlite_triggers(database) == derived.EXPECTED_TRIGGERS["sqlite"]
    with sqlite3.connect(database) as db:
        db.execute("DROP TRIGGER adapters_derived_file_insert")  # as a table rebuild would
    _manage(tmp_path, "migrate", "adapters", "0009", "--noinput", "-v", "0")
    _manage(tmp_path, "migrate", "adapters", "--noinput", "-v", "0")
    assert _sqlite_triggers(database) == derived.EXPECTED_TRIGGERS["sqlite"]


@pytest.mark.django_db
def test_the_test_database_has_every_trigger():
    """The suite's own database (PostgreSQL in CI) was migrated like any other: the same list holds there."""
    assert derived.installed_triggers() == derived.EXPECTED_TRIGGERS[connection.vendor]
    assert derived.missing_triggers() == []


@pytest.mark.django_db
def test_a_missing_trigger_shows_on_status_readyz_and_the_system_check(client, admin_user):
    with connection.cursor() as cursor:  # rolled back with the test's transaction
        if connection.vendor == "postgresql":
            cursor.execute("DROP TRIGGER adapters_file_insert ON adapters_adapterfile")
        else:
            cursor.execute("DROP TRIGGER adapters_derived_file_insert")
    missing = derived.missing_triggers()
    assert len(missing) == 1 and "file_insert" in missing[0]
    database = system_status.database_status()
    assert database["ok"] is True and database["missing_triggers"] == missing
    assert "manage.py migrate adapters 0009" in database["warning"]
    assert client.get("/readyz").json()["database"]["missing_triggers"] == missing
    client.force_login(admin_user)
    page = client.get("/status/").content.decode()
    assert 'id="status-database-triggers"' in page and missing[0] in page
    warnings = checks.run_checks(tags=[checks.Tags.database], databases=["default"])
    assert [w.id for w in warnings if w.id == "adapters.W001"] == ["adapters.W001"]


@pytest.mark.django_db
def test_no_warning_when_every_trigger_is_there(client):
    assert "warning" not in system_status.database_status()
    assert "missing_triggers" not in client.get("/readyz").json()["database"]
    assert not [
        w for w in checks.run_checks(tags=[checks.Tags.database], databases=["default"]) if w.id.startswith("adapters")
    ]


@pytest.mark.django_db
def test_multi_row_inserts_and_deletes_keep_the_derived_tables(tmp_path):
    """What the scanner does (raw multi-row INSERTs), on both engines: per row on SQLite, per statement on
    PostgreSQL. Duplicates by shared tensor hash and by two present files, search documents, deletes."""
    root = LibraryRoot.objects.create(path=str(tmp_path))
    adapters = [
        Adapter(name="twin one", tensor_sha256="cd" * 32, trigger_words=["moonlit"]),
        Adapter(name="twin two", tensor_sha256="cd" * 32),
        Adapter(name="copied", tensor_sha256=""),
        Adapter(name="alone", tensor_sha256="ef" * 32),
    ]
    before = derived.catalog_parts()
    insert_returning_ids(Adapter, adapters)
    twin_one, twin_two, copied, alone = adapters
    files = [
        AdapterFile(adapter=adapter, root=root, path=f"{tmp_path}/{i}.safetensors", size=1, mtime_ns=1)
        for i, adapter in enumerate([twin_one, twin_two, copied, copied, alone])
    ]
    insert_returning_ids(AdapterFile, files)
    assert set(Duplicate.objects.values_list("adapter_id", flat=True)) == {twin_one.pk, twin_two.pk, copied.pk}
    assert "moonlit" in search.document(twin_one.pk) and search.document(alone.pk).strip() == "alone"
    AdapterFile.objects.filter(adapter=copied).delete()
    Adapter.objects.filter(pk=twin_two.pk).delete()  # one statement: the twin left behind is no duplicate
    assert not Duplicate.objects.exists()
    assert search.document(twin_two.pk) is None
    if connection.vendor == "sqlite":  # PostgreSQL changes the tokens at commit (see the facets tests)
        after = derived.catalog_parts()
        assert after["catalog"] != before["catalog"] and after["adapters_adapterfile"] != before["adapters_adapterfile"]
    Adapter.objects.filter(pk=alone.pk).update(favorite=True)
    if connection.vendor == "sqlite":
        assert CatalogChange.objects.filter(adapter_id=alone.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_the_catalog_version_follows_committed_writes_only():
    """PostgreSQL records a touched table once per transaction and bumps at commit: a first write inside a
    rolled-back savepoint must not hide a later write, and a statement that changes no row bumps nothing."""
    from django.db import transaction

    token = derived.catalog_token()
    with transaction.atomic():
        savepoint = transaction.savepoint()
        Adapter.objects.create(name="rolled back")
        transaction.savepoint_rollback(savepoint)
        Adapter.objects.create(name="kept")
    assert derived.catalog_token() != token
    token = derived.catalog_token()
    with connection.cursor() as cursor:  # the ORM would not send a DELETE that matches nothing
        for table in ("adapters_adapter", "adapters_adapterfile", "adapters_adapter_tags"):
            cursor.execute(f"DELETE FROM {table} WHERE id = -1")
    assert derived.catalog_token() == token
    assert search.document(Adapter.objects.get().pk).startswith("kept")
