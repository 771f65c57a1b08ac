"""adapters.signals.catalog_changed: scans, bulk edits and imports send it, recommendations receive it and
queue an embedding run; a failing receiver never fails the catalog work."""

from __future__ import annotations

import pytest

from adapters import bulk_edit, scan_runs, signals
from adapters.models import Adapter, ScanRun
from recommendations.models import EmbeddingRun
from tests.adapters.conftest import lora

pytestmark = pytest.mark.django_db


def test_the_signal_queues_one_embedding_run_that_later_changes_join(redis_conn):
    signals.send_catalog_changed("test: first")
    signals.send_catalog_changed("test: second")  # joins the queued run (debounced)
    run = EmbeddingRun.objects.get()
    assert run.status == EmbeddingRun.Status.QUEUED and run.reason == "test: first"


def test_a_scan_that_changes_the_catalog_queues_an_embedding_run(lora_root, redis_conn):
    lora(lora_root, "pixel_xl.safetensors")
    run = scan_runs.execute(scan_runs.start_scan())
    assert run.status == ScanRun.Status.SUCCEEDED and run.added == 1
    assert EmbeddingRun.objects.get().reason == "scan"


def test_a_bulk_edit_that_changes_something_queues_an_embedding_run(redis_conn):
    adapter = Adapter.objects.create(name="pixel_xl")
    assert bulk_edit.set_active([adapter.pk], True) == 0  # already active: nothing changed, nothing sent
    assert not EmbeddingRun.objects.exists()
    assert bulk_edit.set_active([adapter.pk], False) == 1
    assert EmbeddingRun.objects.get().reason == "edit: set_active"


def test_a_failing_receiver_does_not_fail_the_scan(lora_root, redis_conn):
    def broken(sender, reason, **kwargs):
        raise RuntimeError("receiver bug")

    lora(lora_root, "pixel_xl.safetensors")
    signals.catalog_changed.connect(broken, dispatch_uid="test.broken")
    try:
        run = scan_runs.execute(scan_runs.start_scan())
    finally:
        signals.catalog_changed.disconnect(dispatch_uid="test.broken")
    assert run.status == ScanRun.Status.SUCCEEDED
    assert EmbeddingRun.objects.get().reason == "scan"  # the other receiver still ran
