"""Shared pieces of the Civitai tests: the stand-in, pointed at by the settings, and adapters it knows."""

from __future__ import annotations

import hashlib

import pytest

from adapters import civitai_lookup
from adapters.civitai import CivitaiClient
from tests.adapters.catalog_factory import make_adapter
from tests.standins.civitai import CivitaiStandIn, StandInLora


@pytest.fixture
def civitai(settings, tmp_path, monkeypatch):
    """The Civitai STAND-IN, with the app pointed at it, no pacing and short timeouts."""
    standin = CivitaiStandIn().start()
    settings.CIVITAI_URL = standin.url
    settings.CIVITAI_MIN_INTERVAL = 0.0
    settings.CIVITAI_TIMEOUT = 1.0
    settings.THUMBNAIL_DIR = tmp_path / "thumbs"
    monkeypatch.setattr(civitai_lookup, "RETRY_BACKOFF", 0.01)
    yield standin
    standin.stop()


def fast_client(standin: CivitaiStandIn, **options) -> CivitaiClient:
    options.setdefault("min_interval", 0.0)
    options.setdefault("timeout", 1.0)
    options.setdefault("backoff", 0.01)
    return CivitaiClient(standin.url, **options)


def published(standin: CivitaiStandIn, name: str, **options):
    """An adapter in the catalog whose file the stand-in knows; returns (adapter, StandInLora)."""
    sha = hashlib.sha256(f"file {name}".encode()).hexdigest()
    tensor = hashlib.sha256(f"tensors {name}".encode()).hexdigest()
    lora = standin.add_lora(StandInLora(sha, tensor, name=name.title(), **options))
    return make_adapter(name, sha256=sha, tensor_sha256=tensor), lora
