"""The pipeline with the real model: only changed adapters are re-embedded, the index follows the catalog."""

from __future__ import annotations

import pytest

from adapters import bulk_edit
from adapters.models import Adapter
from recommendations import embeddings, index, recipe, sync
from recommendations.models import Embedding
from tests.recommendations.conftest import make_adapter, training

pytestmark = pytest.mark.django_db


@pytest.fixture
def encoded(monkeypatch, st_model):
    """Every text the pipeline sends to the model (the real model still encodes them)."""
    texts: list[str] = []
    real = embeddings.encode

    def spy(batch, *args, **kwargs):
        texts.extend(batch)
        return real(batch, *args, **kwargs)

    monkeypatch.setattr(embeddings, "encode", spy)
    return texts


@pytest.fixture
def small_library():
    return [
        make_adapter("pixelArt", tags=["pixel art"], trigger_words=["pixel"], training_tags=training("sprite")),
        make_adapter("watercolorWash", tags=["watercolor"], trigger_words=["wc"]),
        make_adapter("neonCity", tags=["cyberpunk"], base_model="SD1"),
        make_adapter("gothicChurch", tags=["architecture"], base_model="Unknown"),
    ]


def test_first_run_embeds_all_and_a_second_run_nothing(small_library, encoded):
    first = sync.sync_library()
    assert (first["embedded"], first["unchanged"], first["index_action"]) == (4, 0, "built")
    assert len(encoded) == 4 and Embedding.objects.count() == 4
    encoded.clear()
    again = sync.sync_library()
    assert (again["embedded"], again["unchanged"], again["index_action"]) == (0, 4, "unchanged")
    assert encoded == []


def test_only_changed_adapters_are_re_embedded(small_library, encoded):
    sync.sync_library()
    encoded.clear()
    pixel, water, *_ = small_library
    bulk_edit.add_tags([pixel.pk], ["retro"])
    Adapter.objects.filter(pk=water.pk).update(description="<p>Soft washes on <b>paper</b></p>")
    result = sync.sync_library(progress=lambda *a: None)
    assert result["embedded"] == 2 and result["unchanged"] == 2 and result["index_action"] == "built"
    assert len(encoded) == 2 and "Tags: pixel art, retro." in encoded[0] and "Soft washes on paper" in encoded[1]
    # Fields outside the recipe (favorite, notes, usage) change nothing.
    encoded.clear()
    Adapter.objects.filter(pk=pixel.pk).update(favorite=True, notes="my favourite", usage_count=9)
    assert sync.sync_library()["embedded"] == 0 and encoded == []


def test_a_new_model_or_recipe_re_embeds_everything(small_library, encoded, monkeypatch):
    sync.sync_library()
    encoded.clear()
    monkeypatch.setattr(recipe, "RECIPE_VERSION", recipe.RECIPE_VERSION + 1)
    assert sync.sync_library()["embedded"] == 4
    assert set(Embedding.objects.values_list("recipe_version", flat=True)) == {recipe.RECIPE_VERSION}
    monkeypatch.setattr(embeddings, "model_identity", lambda: "another-model@0000")
    assert sync.sync_library()["embedded"] == 4
    assert index.read_stamp()["model"] == "another-model@0000"
    assert sync.sync_library(rebuild=True)["embedded"] == 4


def test_activation_changes_only_the_filter_columns(small_library, encoded):
    sync.sync_library()
    before = index.read_stamp()
    encoded.clear()
    bulk_edit.set_active([small_library[0].pk], False)
    result = sync.sync_library()
    after = index.read_stamp()
    assert result["embedded"] == 0 and result["index_action"] == "meta" and encoded == []
    assert after["version"] == before["version"] and after["meta"] != before["meta"]
    snapshot = index.current()
    assert not snapshot.active[snapshot.row(small_library[0].pk)]


def test_removed_adapters_leave_the_index(small_library, encoded):
    sync.sync_library()
    bulk_edit.remove_from_catalog([small_library[1].pk])
    result = sync.sync_library()
    assert result["indexed"] == 3 and index.current().row(small_library[1].pk) is None


def test_above_the_threshold_the_index_is_hnsw(small_library, settings, encoded):
    settings.ANN_THRESHOLD = 2
    result = sync.sync_library()
    assert result["index_kind"] == index.HNSW
    snapshot = index.current()
    hits = snapshot.search(snapshot.vector(small_library[0].pk), 2)
    assert hits[0][0] == small_library[0].pk and hits[0][1] == pytest.approx(1.0, abs=1e-4)
    settings.ANN_THRESHOLD = 100  # crossing back: rebuilt exact although no vector changed
    assert sync.sync_library()["index_kind"] == index.EXACT


def test_progress_is_reported_per_chunk(small_library, st_model):
    seen = []
    sync.embed_changed(progress=lambda phase, done, total: seen.append((phase, done, total)), chunk=3)
    assert seen == [("embedding", 0, 4), ("embedding", 3, 4), ("embedding", 4, 4)]
