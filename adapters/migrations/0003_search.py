"""Search table, duplicates table, catalog version and their triggers: see adapters/search.py and adapters/derived.py.

The same install runs after every ``migrate`` (apps.py), because SQLite drops a table's triggers when
Django rebuilds the table for a later schema change.
"""

from django.db import migrations


def install(apps, schema_editor):
    from adapters import derived, search

    search.install(schema_editor.connection)
    derived.install(schema_editor.connection)


def uninstall(apps, schema_editor):
    from adapters import derived, search

    derived.uninstall(schema_editor.connection)
    search.uninstall(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("adapters", "0002_gallery")]

    operations = [migrations.RunPython(install, uninstall, elidable=False)]
