"""Recommendations in a real browser: embed the library (live progress), ask for LoRAs for a prompt, vote,
add one to the composition, and see an adapter's similar LoRAs on its page."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from adapters.models import Adapter, Tag
from lora_manager.models import SuggestionAcceptance
from recommendations import index
from tests.conftest import make_user
from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LIBRARY = [
    ("pixelArtXL_v1", ["pixel art", "retro"], ["pixel art"], "Clean pixel art, 8-bit sprites and limited palettes."),
    ("snes_sprites-e12", ["pixel art", "sprites"], ["16bitsprite"], "Character sprites of 90s console RPGs."),
    ("pixel_landscapes", ["pixel art", "background"], ["pixel landscape"], "Parallax pixel art backgrounds."),
    ("watercolorWash", ["watercolor", "painting"], ["watercolor"], "Soft watercolor washes on paper."),
    ("botanical_watercolour", ["watercolor", "flowers"], ["botanical"], "Vintage botanical plates in watercolour."),
    ("ramen_bowls", ["food", "photography"], ["ramen bowl"], "Steaming bowls of ramen, food photography."),
    ("burger_commercial", ["food", "advertising"], ["burger ad"], "Burgers shot like a fast-food commercial."),
]


def seed() -> dict[str, Adapter]:
    adapters = {}
    through = Adapter.tags.through
    for name, tags, triggers, description in LIBRARY:
        adapter = Adapter.objects.create(name=name, trigger_words=triggers, description=description, base_model="SDXL")
        through.objects.bulk_create(
            [through(adapter=adapter, tag=Tag.objects.get_or_create(name=tag)[0]) for tag in tags]
        )
        adapters[name] = adapter
    return adapters


def test_editor_embeds_the_library_then_gets_loras_for_a_prompt_and_similar_ones(
    live_app, page, redis_conn, scanned_library
):
    index.remove()  # the live app shares this data directory: start without an index
    adapters = seed()
    make_user("eddie", "editor")
    login(page, live_app, "eddie", "pw-eddie-1234")

    page.goto(f"{live_app}/recommendations/")
    page.get_by_role("button", name="Embed library now").click()
    progress = page.locator("#embed-progress")
    expect(progress).to_contain_text("Embedding run #")
    expect(progress.locator(".embed-status")).to_have_attribute("data-status", "succeeded", timeout=180_000)
    expect(progress).to_contain_text(f"{Adapter.objects.usable().count()} embedded")  # its 7 and the library

    page.get_by_role("searchbox", name="Prompt").fill("a knight fighting a dragon, retro 16-bit video game, pixel art")
    suggestions = page.locator("#prompt-suggestions .suggestion")
    expect(suggestions.first).to_be_visible(timeout=60_000)  # the web process loads the model once
    # Among the library's 300 LoRAs (knights, dragons, pixel and retro styles among others) every suggestion is
    # about the prompt, none is one of the watercolor or food LoRAs, and a pixel-art sprite LoRA made the list.
    names = suggestions.locator(".suggestion-name").all_inner_texts()
    assert len(names) >= 5, names
    assert all(re.search(r"knight|dragon|pixel|retro|sprite", name, re.IGNORECASE) for name in names), names
    assert {"pixelArtXL_v1", "snes_sprites-e12", "pixel_landscapes"} & set(names), names
    expect(page).to_have_url(re.compile(r"/recommendations/for-prompt/\?q=a(\+|%20)knight"))

    up = suggestions.first.get_by_role("button", name="Good suggestion")
    up.click()
    expect(suggestions.first.get_by_role("button", name="Good suggestion")).to_have_attribute("aria-pressed", "true")

    # "Add to composition" hands the LoRA to whoever listens for the cancelable "lora:add" event.
    page.evaluate(
        "() => { window.added = []; document.addEventListener('lora:add', (e) => "
        "{ window.added.push(e.detail); e.preventDefault(); }); }"
    )
    suggestions.first.get_by_role("button", name="Add to composition").click()
    added = page.evaluate("() => window.added")
    assert len(added) == 1 and re.fullmatch(r"<lora:[\w.-]+:1>", added[0]["token"]) and added[0]["adapterId"]

    # The adapter page shows its similar LoRAs (loaded by htmx from /recommendations/similar/<id>/).
    source = adapters["watercolorWash"]
    page.goto(f"{live_app}/library/{source.pk}/")
    similar = page.locator(f"#similar-{source.pk}")
    expect(similar).to_contain_text("Similar LoRAs")
    expect(similar.locator(".suggestion-name").first).to_have_text("botanical_watercolour")
    expect(similar).to_contain_text("shared tags: watercolor")

    # In the composer the suggestions follow the prompt, and "Add to composition" adds a LoRA row.
    page.goto(f"{live_app}/generate/")
    page.locator("#prompt").fill("soft watercolor flowers on paper")
    composer_suggestions = page.locator("#composer-suggestions .suggestion")
    expect(composer_suggestions.first).to_be_visible(timeout=30_000)
    composer_suggestions.first.get_by_role("button", name="Add to composition").click()
    expect(page.locator("#composer-loras [data-lora-row]")).to_have_count(1)
    expect(page.locator("#composer-preview")).to_contain_text("<lora:", timeout=10_000)
    # Each "Add to composition" also counted as an accepted suggestion (the dashboard's figure).
    deadline = time.monotonic() + 10
    while SuggestionAcceptance.objects.count() < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert SuggestionAcceptance.objects.filter(kind="prompt").count() == 2
