"""Adapter.results_approved / results_disapproved: kept by learning.refresh when ratings change, and filled
for ratings stored before the fields existed by migration adapters 0009 (which imports no live code)."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from adapters.models import Adapter
from generation import ratings
from generation.models import RatedLora
from tests.generation.results_factory import finished_job, image_of

pytestmark = pytest.mark.django_db
migration = importlib.import_module("adapters.migrations.0009_adapter_results_approved")


def counts() -> dict[str, tuple[int, int]]:
    return {a.name: (a.results_approved, a.results_disapproved) for a in Adapter.objects.order_by("name")}


def test_ratings_keep_the_counts_and_the_backfill_computes_the_same(catalog, editor):
    pixel, blur, ink = catalog["pixel_xl"], catalog["blur_xl"], catalog["ink_sd15"]
    both = finished_job([(pixel, 0.8), (blur, 0.5)], user=editor)
    ratings.rate(editor, image_of(both), ratings.Verdict(1, None))  # approves both
    ratings.rate(editor, image_of(finished_job([(pixel, 0.6)], user=editor)), ratings.Verdict(None, 2))  # 2 stars: no
    ratings.rate(editor, image_of(finished_job([(blur, 1.0)], user=editor)), ratings.Verdict(None, 3))  # neither
    twice = finished_job([(ink, 0.4), (ink, 0.9)], user=editor)  # the same LoRA twice counts once
    ratings.rate(editor, image_of(twice), ratings.Verdict(-1, 5))  # the thumb decides
    skipped = finished_job([(blur, 0.5)], user=editor)
    skipped.loras.update(applied=False)  # SD.Next did not apply it: the rating teaches nothing about it
    ratings.rate(editor, image_of(skipped), ratings.Verdict(1, None))
    kept = counts()
    assert kept == {"blur_xl": (1, 0), "ink_sd15": (0, 1), "pixel_xl": (1, 1)}
    assert RatedLora.objects.count() == 7

    Adapter.objects.update(results_approved=0, results_disapproved=0)
    migration.backfill(apps, None)
    assert counts() == kept
