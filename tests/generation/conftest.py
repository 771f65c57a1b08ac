"""Generation fixtures: a catalog of real LoRA files, the SD.Next stand-in serving the same folder as
backend "default", fast polling, media in tmp_path, and jobs queued without a worker."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import TestCase

from adapters.models import Adapter
from adapters.scanning import scan
from generation import composer, submitting
from generation.models import GenerationJob
from tests.adapters.civitai_fixtures import civitai  # noqa: F401 - the Civitai stand-in fixture
from tests.adapters.conftest import lora
from tests.standins.sdnext import SDNextStandIn

SMALL = {"steps": 3, "width": 64, "height": 64, "seed": 42}


class RecordingReporter:
    """Stands in for progress.JobReporter: remembers every reading and status change."""

    def __init__(self) -> None:
        self.updates = []
        self.statuses = 0
        self.cancelling = False

    def progress(self, update) -> bool:
        self.updates.append(update)
        return True

    def status(self) -> None:
        self.statuses += 1


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def lora_root(tmp_path: Path, settings) -> Path:
    root = tmp_path / "Lora"
    root.mkdir()
    settings.LIBRARY_DIRS = [root]
    settings.THUMBNAIL_DIR = tmp_path / "thumbs"
    settings.MEDIA_ROOT = tmp_path / "media"
    return root


@pytest.fixture
def catalog(lora_root: Path, db) -> dict[str, Adapter]:
    """Three adapters: pixel_xl (SDXL, range 0.5-1.0, trigger word), ink_sd15 (SD 1.x), blur_xl (SDXL)."""
    lora(lora_root, "pixel_xl.safetensors", "sdxl", seed=1)
    lora(lora_root, "style/ink_sd15.safetensors", "sd15", seed=2)
    lora(lora_root, "blur_xl.safetensors", "sdxl", seed=3)
    scan([str(lora_root)])
    adapters = {a.name: a for a in Adapter.objects.all()}
    pixel = adapters["pixel_xl"]
    pixel.trigger_words, pixel.weight_min, pixel.weight_max, pixel.preferred_weight = ["pixel art"], 0.5, 1.0, 0.8
    pixel.negative_text = "smooth shading"
    pixel.save()
    return adapters


@pytest.fixture
def standin(lora_root: Path):
    with SDNextStandIn(lora_dir=lora_root, step_delay=0.005) as server:
        yield server


@pytest.fixture
def sdnext(standin: SDNextStandIn, settings) -> SDNextStandIn:
    """The stand-in configured as backend "default", with fast polling and throttling."""
    settings.SDNEXT_BACKENDS = {"default": {"URL": standin.url, "USER": "", "PASSWORD": ""}}
    settings.GENERATION_POLL_SECONDS = 0.02
    settings.GENERATION_PROGRESS_INTERVAL = 0.0
    settings.GENERATION_PREVIEW_SECONDS = 0.0
    settings.SDNEXT_TIMEOUT = 10
    settings.GENERATION_RETRY_BACKOFF = 0.01
    return standin


def composition(**values) -> composer.Composition:
    return composer.Composition(**{"prompt": "a lighthouse at dusk", **SMALL, **values})


def queue_job(comp: composer.Composition | None = None, user=None) -> GenerationJob:
    """Submit without enqueueing (no worker involved): the row exists, QUEUED, as a worker would find it."""
    with TestCase.captureOnCommitCallbacks(execute=False):
        return submitting.submit(comp or composition(), user)
