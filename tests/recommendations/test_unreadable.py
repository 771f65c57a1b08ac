"""Files the scanner could not read are not LoRAs (issue 15, item 4): never embedded, never offered as a
similar LoRA or for a prompt, even when they were embedded while still readable."""

from __future__ import annotations

import pytest

from adapters.models import Adapter, AdapterStatus
from recommendations import sync
from recommendations.models import Embedding
from tests.recommendations.conftest import make_adapter

pytestmark = pytest.mark.django_db


def names(body: dict) -> list[str]:
    return [row["name"] for row in body["results"]]


def test_unreadable_files_are_not_embedded_or_suggested(viewer_client, st_model):
    pixel = make_adapter("pixelArtXL", tags=["pixel art"], trigger_words=["pixel art"])
    make_adapter("snesSprites", tags=["pixel art", "sprites"])
    broken = make_adapter("pixelBroken", tags=["pixel art"], trigger_words=["pixel art"], status=AdapterStatus.ERROR)
    sync.sync_library()
    assert not Embedding.objects.filter(adapter=broken).exists()
    assert "2 of 2 adapters" in viewer_client.get("/recommendations/").content.decode()  # not counted either
    assert names(viewer_client.get(f"/recommendations/similar/{pixel.pk}.json").json()) == ["snesSprites"]
    assert "pixelBroken" not in names(viewer_client.get("/recommendations/for-prompt.json", {"q": "pixel art"}).json())

    # Embedded while readable, then a rescan found the file broken: the stale vector is not offered.
    Adapter.objects.filter(pk=broken.pk).update(status=AdapterStatus.OK)
    sync.sync_library()
    assert Embedding.objects.filter(adapter=broken).exists()
    assert "pixelBroken" in names(viewer_client.get(f"/recommendations/similar/{pixel.pk}.json").json())
    Adapter.objects.filter(pk=broken.pk).update(status=AdapterStatus.ERROR)
    assert names(viewer_client.get(f"/recommendations/similar/{pixel.pk}.json").json()) == ["snesSprites"]
    prompt = viewer_client.get("/recommendations/for-prompt.json", {"q": "pixel art"}).json()
    assert prompt["available"] and "pixelBroken" not in names(prompt) and "pixelArtXL" in names(prompt)
