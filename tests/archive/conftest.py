"""A curated library for archive tests: real LoRA files and sidecars, scanned and hashed by the real
scanner, then edited the way a user would (tags, trigger words, weights, notes, favorites, inactive,
ratings, an uploaded-style preview), with presets and recommendation feedback beside it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from adapters import bulk_edit, identity, scanning, thumbnails
from adapters.models import USER_SOURCE, Adapter, AdapterFile, LibraryRoot, Tag
from generation.models import Preset
from recommendations import feedback
from recommendations.models import Feedback
from tests.adapters.conftest import age, lora
from tests.factories.sidecars import write_civitai_info, write_description_txt, write_preview


@pytest.fixture
def places(tmp_path, settings):
    """Library, thumbnails, media, exports and backups in tmp_path (never the real data dir)."""
    root = tmp_path / "Lora"
    root.mkdir()
    settings.LIBRARY_DIRS = [root]
    settings.THUMBNAIL_DIR = tmp_path / "thumbs"
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ARCHIVE_DIR = tmp_path / "archive"
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.ARCHIVE_MIN_FREE_BYTES = 0
    return root


def build_library(root: Path, user=None) -> dict[str, Adapter]:
    """Four adapters with every kind of field filled, through the real scan + hash + thumbnail code."""
    a = lora(root, "characters/zelda.safetensors", kind="sd15", seed=1)
    write_civitai_info(a, trained_words=["zelda", "hylian"])
    write_preview(a, "preview.png", size=(64, 96))
    b = lora(root, "styles/pixel_xl.safetensors", kind="sdxl", seed=2)
    write_description_txt(b, text="Pixel art style for SDXL.\nTrigger: pixel art")
    write_preview(b, "png", size=(48, 48))
    c = lora(root, "styles/ink.safetensors", kind="sdxl", seed=3)
    lora(root, "misc/old_flux.safetensors", kind="flux", seed=4)
    age(*(path for path in root.rglob("*") if path.is_file()))
    scanning.scan()
    identity.hash_pending(workers=1)
    thumbnails.make_missing_thumbnails()
    by_name = {Path(f.path).name: f.adapter for f in AdapterFile.objects.select_related("adapter")}
    zelda, pixel, ink, flux = (
        by_name[n] for n in ("zelda.safetensors", "pixel_xl.safetensors", "ink.safetensors", "old_flux.safetensors")
    )
    bulk_edit.add_tags([zelda.pk, pixel.pk], ["character", "favourites"])
    bulk_edit.add_tags([ink.pk], ["style"])
    Tag.objects.create(name="unused-tag")
    bulk_edit.set_favorite([zelda.pk], True)
    bulk_edit.set_active([flux.pk], False)
    zelda.refresh_from_db()
    zelda.trigger_words = [*zelda.trigger_words, "master sword"]
    zelda.preferred_weight, zelda.weight_min, zelda.weight_max = 0.8, 0.4, 1.1
    zelda.notes = "Best with hyrule backgrounds."
    zelda.rating, zelda.usage_count = 4, 7
    for name in ("trigger_words", "preferred_weight", "weight_min", "weight_max", "notes"):
        zelda.sources[name] = USER_SOURCE
    zelda.save()
    ink.refresh_from_db()
    ink.alias, ink.sources["alias"] = "ink wash", USER_SOURCE
    ink.save()
    thumbnails.store_preview_bytes(ink, write_preview(Path(c), "thumb.jpg", size=(40, 40)).read_bytes(), "upload")
    Path(c).with_name("ink.thumb.jpg").unlink()  # uploaded previews live only as thumbnails
    Adapter.objects.filter(pk=ink.pk).update(sources={**ink.sources, "preview": USER_SOURCE})
    user = user or get_user_model().objects.create_user("curator", password="pw-curator-1234")
    Preset.objects.create(name="portrait", data={"prompt": "a portrait <lora:zelda:0.8>", "steps": 30}, owner=user)
    Preset.objects.create(name="pixel scene", data={"prompt": "pixel art", "steps": 20})
    feedback.record(user, zelda.pk, Feedback.Kind.PROMPT, "Princess in a forest", 1)
    feedback.record(user, pixel.pk, Feedback.Kind.ADAPTER, str(zelda.pk), -1)
    return {"zelda": zelda, "pixel": pixel, "ink": ink, "flux": flux}


def file_hashes(*folders: Path) -> dict[str, str]:
    out = {}
    for folder in folders:
        if folder.exists():
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def snapshot() -> dict:
    """Everything a user curated, keyed by content (sha256) instead of database ids."""
    from archive.manifest import ADAPTER_FIELDS, FILE_FIELDS

    sha_of = dict(Adapter.objects.values_list("pk", "sha256"))
    adapters = {}
    for adapter in Adapter.objects.prefetch_related("tags", "files__root"):
        adapters[adapter.sha256] = {
            "fields": {name: getattr(adapter, name) for name in ADAPTER_FIELDS},
            "tags": sorted(t.name for t in adapter.tags.all()),
            "files": sorted(
                (f.path, f.root.path, *(getattr(f, n) for n in FILE_FIELDS if n != "last_seen_at"))
                for f in adapter.files.all()
            ),
        }
    votes = sorted(
        (
            f.user.username,
            sha_of[f.adapter_id],
            f.kind,
            sha_of[int(f.context)] if f.kind == "adapter" else f.context,
            f.value,
            f.created_at,
        )
        for f in Feedback.objects.select_related("user")
    )
    return {
        "adapters": adapters,
        "tags": sorted(Tag.objects.values_list("name", "created_at")),
        "presets": sorted(
            (p.name, str(p.data), p.owner.username if p.owner else None, p.created_at) for p in Preset.objects.all()
        ),
        "feedback": votes,
        "roots": sorted(LibraryRoot.objects.values_list("path", flat=True)),
    }


def wipe(root: Path, settings) -> None:
    """An empty database and an empty library (the users stay: accounts are not part of an archive)."""
    Feedback.objects.all().delete()
    Preset.objects.all().delete()
    Adapter.objects.all().delete()
    Tag.objects.all().delete()
    LibraryRoot.objects.all().delete()
    for folder in (root, Path(settings.THUMBNAIL_DIR)):
        shutil.rmtree(folder, ignore_errors=True)
    root.mkdir()
