"""Where generated images live: MEDIA_ROOT/generations/<job id>/, originals as SD.Next sent them plus
WEBP thumbnails. Files are served by a login-checked view, never as public static files."""

from __future__ import annotations

import io
import logging
import os
import shutil
from pathlib import Path

from django.conf import settings
from PIL import Image, UnidentifiedImageError

from generation.models import GenerationImage, GenerationJob
from generation.sdnext import image_format

logger = logging.getLogger(__name__)

THUMBNAIL_SIDE = 384
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


def job_folder(job_id: int) -> str:
    return f"generations/{job_id}"


def absolute(relative: str) -> Path:
    """The file for a stored relative path; refuses anything that would leave MEDIA_ROOT."""
    root = Path(settings.MEDIA_ROOT).resolve()
    path = (root / relative).resolve()
    if root not in path.parents:
        raise ValueError(f"{relative!r} is outside the media folder")
    return path


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".part")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def store_images(
    job: GenerationJob,
    images: list[bytes],
    seeds: list[int],
    infotexts: list[str],
    partial: bool = False,
) -> tuple[list[GenerationImage], list[str]]:
    """Write originals and thumbnails and create their rows; returns (rows, warnings)."""
    rows, warnings = [], []
    folder = job_folder(job.pk)
    for index, data in enumerate(images):
        fmt = image_format(data) or "JPEG"
        name = f"{index + 1:02d}"
        original = f"{folder}/{name}.{EXTENSIONS.get(fmt, 'bin')}"
        write_atomically(absolute(original), data)
        width = height = 0
        thumbnail = ""
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
                buffer = io.BytesIO()
                image.convert("RGB").save(buffer, "WEBP", quality=80)
            thumbnail = f"{folder}/{name}.thumb.webp"
            write_atomically(absolute(thumbnail), buffer.getvalue())
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
            warnings.append(f"Image {index + 1} could not be read for a thumbnail ({exc}); the original is kept.")
        rows.append(
            GenerationImage(
                job=job,
                index=index,
                path=original,
                thumbnail=thumbnail,
                format=fmt,
                width=width,
                height=height,
                size=len(data),
                seed=seeds[index] if index < len(seeds) else None,
                infotext=infotexts[index] if index < len(infotexts) else "",
                partial=partial,
            )
        )
    GenerationImage.objects.bulk_create(rows)
    return rows, warnings


def delete_job_files(job_id: int) -> None:
    shutil.rmtree(absolute(job_folder(job_id)), ignore_errors=True)
