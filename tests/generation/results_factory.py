"""A seeded generation history: finished jobs with real image files on disk and their LoRAs."""

from __future__ import annotations

import io
from datetime import timedelta

from django.utils import timezone
from PIL import Image

from generation import storage
from generation.models import GenerationImage, GenerationJob, JobLora, JobStatus


def png(seed: int = 0, side: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), ((seed * 40) % 256, 90, 160)).save(buffer, "PNG")
    return buffer.getvalue()


def finished_job(loras=(), user=None, images: int = 1, status=JobStatus.SUCCEEDED, age_days: float = 0, **fields):
    """A job as the pipeline leaves it: row, JobLora rows (adapter, weight), images written to MEDIA_ROOT."""
    job = GenerationJob.objects.create(
        status=status,
        requested_by=user,
        prompt=fields.pop("prompt", "a lighthouse at dusk"),
        finished_at=timezone.now(),
        **fields,
    )
    if age_days:
        GenerationJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(days=age_days))
        job.refresh_from_db()
    for position, (adapter, weight) in enumerate(loras):
        JobLora.objects.create(
            job=job, adapter=adapter, name=adapter.name, weight=weight, position=position, applied=True
        )
    storage.store_images(job, [png(job.pk + i) for i in range(images)], [1234] * images, [""] * images)
    return job


def image_of(job: GenerationJob, index: int = 0) -> GenerationImage:
    return GenerationImage.objects.get(job=job, index=index)
