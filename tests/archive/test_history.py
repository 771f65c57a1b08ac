"""Generation history travels with --include-history: jobs, their LoRAs (re-linked by hash) and images."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from django.utils import timezone

from archive import exporting, importing
from generation import storage
from generation.models import GenerationImage, GenerationJob, JobLora
from tests.archive.conftest import build_library, wipe
from tests.factories.sidecars import image_bytes


def _history(lib) -> GenerationJob:
    job = GenerationJob.objects.create(
        status="succeeded",
        prompt="a knight <lora:zelda:0.8>",
        seed=1234,
        steps=25,
        composition={"loras": [{"adapter_id": lib["zelda"].pk, "weight": 0.8}]},
        info={"LoRA networks": "zelda"},
        finished_at=timezone.now(),
    )
    JobLora.objects.create(job=job, adapter=lib["zelda"], name="zelda", weight=0.8, applied=True)
    folder = storage.job_folder(job.pk)
    for kind, name in (("path", "0.png"), ("thumbnail", "0-thumb.webp")):
        target = storage.absolute(f"{folder}/{name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(image_bytes("png" if kind == "path" else "webp", (32, 32)))
    GenerationImage.objects.create(
        job=job,
        index=0,
        path=f"{folder}/0.png",
        thumbnail=f"{folder}/0-thumb.webp",
        format="PNG",
        width=32,
        height=32,
        size=100,
        seed=1234,
        infotext="Steps: 25",
    )
    return job


def _history_snapshot() -> list:
    rows = []
    for job in GenerationJob.objects.prefetch_related("loras__adapter", "images"):
        images = [
            (i.index, Path(i.path).name, hashlib.sha256(storage.absolute(i.path).read_bytes()).hexdigest(), i.seed)
            for i in job.images.all()
        ]
        loras = [(lo.name, lo.weight, lo.applied, lo.adapter.sha256 if lo.adapter else None) for lo in job.loras.all()]
        rows.append((job.prompt, job.seed, job.steps, job.created_at, job.info, job.status, loras, images))
    return rows


@pytest.mark.django_db
def test_history_round_trip_and_reimport_adds_nothing(places, settings, tmp_path):
    lib = build_library(places)
    _history(lib)
    before = _history_snapshot()
    plain = exporting.export_library(tmp_path / "plain.zip")
    assert "history" not in plain.counts
    archive = exporting.export_library(tmp_path / "h.zip", include_history=True)
    assert archive.counts["history"] == 1
    GenerationJob.objects.all().delete()
    shutil.rmtree(settings.MEDIA_ROOT)
    wipe(places, settings)
    result = importing.import_archive(archive.path)
    assert result.plan.sections["history"] == {"new": 1}
    assert _history_snapshot() == before
    again = importing.import_archive(archive.path)
    assert again.plan.sections["history"] == {"identical": 1} and GenerationJob.objects.count() == 1


@pytest.mark.django_db
def test_history_carries_pins_and_ratings_and_what_they_taught(places, settings, tmp_path, editor, viewer):
    from adapters.models import Adapter
    from generation import learning, ratings
    from generation.models import ResultRating

    lib = build_library(places)
    job = _history(lib)
    GenerationJob.objects.filter(pk=job.pk).update(pinned=True)
    ratings.rate(editor, job.images.get(), ratings.Verdict(1, 5))
    ratings.rate(viewer, job.images.get(), ratings.Verdict(-1, None))
    archive = exporting.export_library(tmp_path / "h.zip", include_history=True)
    GenerationJob.objects.all().delete()
    ResultRating.objects.all().delete()
    shutil.rmtree(settings.MEDIA_ROOT)
    wipe(places, settings)
    viewer.delete()  # a voter with no account here is left out

    importing.import_archive(archive.path)
    restored = GenerationJob.objects.get()
    assert restored.pinned is True
    rating = ResultRating.objects.get()
    assert (rating.user, rating.thumb, rating.stars, rating.image.job) == (editor, 1, 5, restored)
    zelda = Adapter.objects.get(sha256=lib["zelda"].sha256)
    learned = learning.learn(zelda)
    assert (learned.rated, learned.approvals, learned.suggested_weight) == (1, 1, 0.8)
    again = importing.import_archive(archive.path)
    assert again.plan.sections["history"] == {"identical": 1} and ResultRating.objects.count() == 1


def test_a_malformed_rating_refuses_the_archive():
    from archive import manifest

    history = {"version": 1, "items": [{"images": [{"path": "0.png", "thumbnail": "t.webp"}]}]}
    base = {
        "format": manifest.FORMAT,
        "format_version": manifest.FORMAT_VERSION,
        "created_at": "2026-11-23T12:00:00+00:00",
        "app_version": "test",
        "roots": [],
        "tags": [],
        "adapters": [],
        "files": [],
        "sections": {"history": history},
    }
    image = history["items"][0]["images"][0]
    assert manifest.validate(base) == []
    for bad in ({"user": "eddie", "thumb": 2}, {"user": "eddie", "stars": 9}, {"thumb": 1}, {"user": "eddie"}, "x"):
        image["ratings"] = [bad]
        assert any("a rating needs" in p for p in manifest.validate(base)), bad
    image["ratings"] = [{"user": "eddie", "thumb": -1, "stars": None}]
    assert not any("a rating needs" in p for p in manifest.validate(base))
