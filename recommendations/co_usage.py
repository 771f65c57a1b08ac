"""Co-usage ("often used together") from generation history, found at run time.

The generation app owns its history; we do not copy it. ``relation()`` looks for a model in the
``generation`` app with a foreign key to ``adapters.Adapter`` and one to another generation model
(today ``JobLora``: job -> adapter). Until such a model and its table exist, every count is zero and
the co-usage term is a no-op. The term (docs/recommendations.md) is C = n / (n + 2), where n is the
number of distinct jobs that used the candidate together with an anchor adapter (the source of
"similar", or the LoRAs already in the composition for "for this prompt").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from django.apps import apps
from django.db import DatabaseError, models, transaction
from django.db.models import Count

from adapters.models import Adapter

log = logging.getLogger(__name__)

BETA = 0.1


@lru_cache(maxsize=1)
def relation() -> tuple[Any, str, str] | None:
    """(model, job field name, adapter field name) of the generation app's job-to-adapter link, if any."""
    try:
        app = apps.get_app_config("generation")
    except LookupError:
        return None
    for model in app.get_models():
        adapter_fields = [
            f.name for f in model._meta.fields if isinstance(f, models.ForeignKey) and f.related_model is Adapter
        ]
        job_fields = [
            f.name
            for f in model._meta.fields
            if isinstance(f, models.ForeignKey)
            and f.related_model is not Adapter
            and f.related_model._meta.app_label == "generation"
        ]
        if len(adapter_fields) == 1 and len(job_fields) == 1:
            return model, job_fields[0], adapter_fields[0]
    return None


def counts(anchor_ids: Iterable[int], candidate_ids: Iterable[int]) -> dict[int, int]:
    """candidate id -> number of distinct jobs that used it together with any anchor."""
    link = relation()
    anchors, candidates = list(anchor_ids), list(candidate_ids)
    if link is None or not anchors or not candidates:
        return {}
    model, job, adapter = link
    jobs = model.objects.filter(**{f"{adapter}_id__in": anchors}).values(job)
    rows = (
        model.objects.filter(**{f"{adapter}_id__in": candidates, f"{job}__in": jobs})
        .exclude(**{f"{adapter}_id__in": anchors})
        .values_list(f"{adapter}_id")
        .annotate(n=Count(job, distinct=True))
    )
    try:
        with transaction.atomic():  # a savepoint: a missing table must not poison the caller's transaction
            return {adapter_id: n for adapter_id, n in rows if adapter_id is not None}
    except DatabaseError as exc:  # the generation app's migration has not been applied yet
        log.debug("no co-usage yet: %s", exc)
        return {}


def term(n: int) -> float:
    return n / (n + 2) if n > 0 else 0.0
