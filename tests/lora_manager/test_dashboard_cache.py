"""The dashboard's catalog figures are kept between polls and are still right on the first request after a
write (real database, no transaction around the test: the catalog version is what a running server sees)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from adapters import bulk_edit, facets
from adapters.models import Adapter
from lora_manager.dashboard import figures as dashboard
from tests.adapters.catalog_factory import make_adapter

pytestmark = pytest.mark.django_db(transaction=True)


def queries(func) -> tuple[object, int]:
    with CaptureQueriesContext(connection) as captured:
        result = func()
    return result, len(captured.captured_queries)


def test_figures_are_kept_between_polls_and_follow_every_write():
    facets.clear_caches()
    dashboard.clear_cache()
    knight = make_adapter("knight", base_model="SDXL")
    make_adapter("witch", base_model="SD1")
    first, cold = queries(dashboard.collect)
    assert first["library"]["total"] == 2 and first["usage"]["never_used_count"] == 2
    again, warm = queries(dashboard.collect)
    assert again["library"] == first["library"] and warm < cold - 5  # the catalog figures were not recomputed

    make_adapter("ship", base_model="Flux")  # a scan adds one
    assert dashboard.collect()["library"]["total"] == 3
    bulk_edit.set_active([knight.pk], False)  # a bulk edit
    fresh = dashboard.collect()
    assert fresh["library"]["active"] == 2 and fresh["usage"]["never_used_count"] == 2
    assert {row["value"]: row["count"] for row in fresh["library"]["by_base_model"]} == {"SDXL": 1, "SD1": 1, "Flux": 1}

    # Being used changes no catalog column, but the never-used and long-unused figures must follow it.
    witch = Adapter.objects.get(name="witch")
    Adapter.objects.filter(pk=witch.pk).update(last_used_at=timezone.now(), usage_count=1)
    used = dashboard.collect()["usage"]
    assert used["never_used_count"] == 1 and [row["name"] for row in used["most_used"]] == ["witch"]
    Adapter.objects.filter(pk=witch.pk).update(last_used_at=timezone.now() - timedelta(days=200))
    assert dashboard.collect()["usage"]["long_unused_count"] == 1
    Adapter.objects.filter(pk=knight.pk).delete()
    assert dashboard.collect()["library"]["total"] == 2
