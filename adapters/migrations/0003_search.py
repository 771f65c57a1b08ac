"""Formerly installed the search table, the derived tables and their triggers by calling live code.

A migration must not import live code (the code changes, the migration must not), so this one now does
nothing: migration 0010_derived_tables creates those tables, triggers and indexes from SQL frozen in its
own file, on a new database and on one that had them from this migration's former version alike.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("adapters", "0002_gallery")]

    operations = []
