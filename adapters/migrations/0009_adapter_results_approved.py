"""Adapter.results_approved / results_disapproved, filled from the ratings stored so far.

The backfill uses the historical models and repeats the rule of generation.learning.verdict at the
time of writing (a migration never imports live code): a rating approves when thumbs up, or 4-5
stars without a thumb; disapproves when thumbs down, or 1-2 stars without a thumb. Each rating
counts once per adapter, and LoRAs SD.Next reported as not applied do not count.

SQLite adds a NOT NULL column by rebuilding the table, which fails while triggers on other tables
(the derived tables of adapters/derived.py) name it; they are dropped first and re-created by the
next migration, 0010_derived_tables (until then a post_migrate handler re-installed them).
"""

from collections import defaultdict

from django.db import migrations, models


def drop_sqlite_triggers(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND sql LIKE '%adapters_adapter%'")
        for (name,) in cursor.fetchall():
            cursor.execute(f'DROP TRIGGER IF EXISTS "{name}"')


def backfill(apps, schema_editor):
    Adapter = apps.get_model("adapters", "Adapter")
    RatedLora = apps.get_model("generation", "RatedLora")
    counts = defaultdict(lambda: [0, 0])
    seen = set()
    uses = (
        RatedLora.objects.filter(adapter__isnull=False)
        .exclude(applied=False)
        .values_list("adapter_id", "rating_id", "rating__thumb", "rating__stars")
        .iterator()
    )
    for adapter_id, rating_id, thumb, stars in uses:
        if (adapter_id, rating_id) in seen:
            continue
        seen.add((adapter_id, rating_id))
        vote = thumb if thumb is not None else (1 if stars and stars >= 4 else -1 if stars and stars <= 2 else 0)
        if vote:
            counts[adapter_id][0 if vote == 1 else 1] += 1
    for adapter_id, (up, down) in counts.items():
        Adapter.objects.filter(pk=adapter_id).update(results_approved=up, results_disapproved=down)


class Migration(migrations.Migration):
    dependencies = [
        ("adapters", "0008_tracked_run_fields"),
        ("generation", "0002_results_sweeps_deliveries"),
    ]

    operations = [
        migrations.RunPython(drop_sqlite_triggers, migrations.RunPython.noop),
        migrations.AddField(
            model_name="adapter",
            name="results_approved",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="adapter",
            name="results_disapproved",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.RunPython(migrations.RunPython.noop, drop_sqlite_triggers),  # unapplying rebuilds the table too
    ]
