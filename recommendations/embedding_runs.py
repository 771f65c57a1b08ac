"""Embedding as a tracked run: the row users watch, debounced requests, progress as it goes.

Scans, bulk edits, Civitai lookups and imports send ``adapters.signals.catalog_changed``; this app
receives it (``RecommendationsConfig.ready``) and calls ``request_embedding_safely``. While a run is
queued, further requests join it, so a bulk edit of 5,000 adapters (or 5,000 single edits) is one job;
a request that arrives while a run is already running queues exactly one follow-up run, which will
see the newer edits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import transaction

from lora_manager import realtime
from lora_manager.runs import tracked
from recommendations import sync
from recommendations.models import EmbeddingRun

log = logging.getLogger(__name__)

QUEUE = EmbeddingRun.queue_name


def latest_run() -> EmbeddingRun | None:
    return EmbeddingRun.objects.order_by("-created_at", "-id").first()


def request_embedding(reason: str = "", user=None, rebuild: bool = False) -> EmbeddingRun:
    """Ask for the library to be (re-)embedded soon: joins a queued run, else queues one (on commit).

    A queued run whose job died or vanished is settled first (``tracked.reconcile``), so it is never joined."""
    tracked.reconcile(EmbeddingRun, quietly=True)
    with transaction.atomic():
        queued = EmbeddingRun.objects.filter(status=EmbeddingRun.Status.QUEUED).order_by("created_at").first()
        if queued is not None:
            if rebuild and not queued.rebuild:
                queued.rebuild = True
                queued.save(update_fields=["rebuild"])
            return queued
        # A Redis failure marks the run failed instead of failing the edit that asked for it.
        return tracked.start(EmbeddingRun, fail_quietly=True, reason=reason[:100], requested_by=user, rebuild=rebuild)


def request_embedding_safely(reason: str) -> None:
    """What a catalog change leads to (through the signal): a recommendations problem never fails it."""
    try:
        request_embedding(reason=reason)
    except Exception as exc:  # noqa: BLE001 - recommendations are optional; the edit already happened
        log.warning("could not request an embedding run after %s: %s", reason, exc)


def execute(run: EmbeddingRun, echo: Callable[[str, int, int], None] | None = None) -> EmbeddingRun:
    """Run ``sync.sync_library`` as the row says; on error the row says what went wrong and the error re-raises."""

    def work(run: EmbeddingRun, reporter: realtime.RunReporter) -> None:
        result = sync.sync_library(rebuild=run.rebuild, progress=reporter)
        run.embedded, run.unchanged, run.indexed = result["embedded"], result["unchanged"], result["indexed"]
        run.index_kind, run.phase = result["index_kind"], "done"
        run.done = run.total = run.embedded + run.unchanged
        run.message = (
            f"{run.embedded} embedded, {run.unchanged} unchanged; index: {run.indexed} adapters "
            f"({run.index_kind}, {result['index_action']}) in {result['seconds']:.1f} s"
        )

    return tracked.execute(run, work, echo, phase="starting")
