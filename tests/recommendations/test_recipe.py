"""The embedding text ("recipe"): what goes in, in which order, and that the pipeline uses the same text."""

from __future__ import annotations

import pytest

from recommendations import recipe
from tests.recommendations.conftest import make_adapter, training


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("pixelArt_XL-v2.1-000010", "pixel Art"),
        ("WatercolorStyle_SDXL", "Watercolor Style"),
        ("16bit_SNES_sprites-e12", "16bit SNES sprites"),
        ("frieren_sousou_no_frieren-v2", "frieren sousou no frieren"),
        ("v2", "v2"),  # nothing but noise: keep the name rather than nothing
    ],
)
def test_names_become_words_without_version_noise(raw, words):
    assert recipe.humanize_name(raw) == words


def test_recipe_puts_name_tags_triggers_training_base_then_short_plain_description():
    fields = {
        "id": 1,
        "name": "inkWash_v3",
        "alias": "ink wash style",
        "description": "<p>Loose <b>ink</b> &amp; wash.</p><script>alert(1)</script>" + " word" * 200,
        "trigger_words": ["inkwash", " InkWash ", "sumi"],
        "training_tags": [["monochrome", 40], ["ink", 55], ["inkwash", 30], ["brush_strokes", 12]],
        "base_model": "SDXL",
        "base_model_detail": "Pony",
    }
    text = recipe.build_text(fields, ["watercolor", "ink"])
    assert text.startswith("ink Wash. Also called ink wash style. Tags: ink, watercolor. Trigger words: inkwash, sumi.")
    # training tags: most frequent first, minus what tags and trigger words already said, underscores as spaces
    assert "Trained on: monochrome, brush strokes." in text
    assert "For SDXL (Pony)." in text
    assert "Loose ink & wash." in text and "<" not in text and "alert" not in text
    assert len(text) < 700 and text.endswith("…")
    assert text.index("Tags:") < text.index("Trigger words:") < text.index("Trained on:") < text.index("For SDXL")


def test_unknown_base_model_and_empty_fields_are_left_out():
    fields = dict.fromkeys(recipe.FIELDS, "") | {"name": "mystery", "base_model": "Unknown", "trigger_words": []}
    assert recipe.build_text(fields, []) == "mystery."


@pytest.mark.parametrize(
    "stored",
    [
        [["a", 1], ["b", 9]],
        {"a": 1, "b": 9},
        [["b", 9], "a"],
    ],
)
def test_training_tags_in_every_stored_shape(stored):
    assert recipe.top_training_tags(stored) == ["b", "a"]


def test_trigger_words_stored_as_one_string_are_split():
    assert recipe.clean_list("foo, bar ,foo") == ["foo", "bar"]


@pytest.mark.django_db
def test_adapter_text_is_the_text_the_pipeline_hashes(st_model):
    from recommendations import sync
    from recommendations.models import Embedding

    adapter = make_adapter(
        "cyberCity", tags=["neon", "city"], trigger_words=["cyb3r"], training_tags=training("night", "rain")
    )
    sync.sync_library()
    embedding = Embedding.objects.get(adapter=adapter)
    assert embedding.text_sha256 == recipe.text_sha256(recipe.adapter_text(adapter))
    assert embedding.recipe_version == recipe.RECIPE_VERSION and embedding.dim == 384
