"""A card before and after a Civitai lookup, in a real browser against the live app and the Civitai STAND-IN:
a letter placeholder first; after the detail page's button, the Civitai preview, trigger words and base model.
Saves test-artifacts/civitai-before.png and civitai-after.png; then a preview rated above the person's NSFW
setting, blurred until clicked (civitai-nsfw-blurred.png)."""

from __future__ import annotations

import hashlib
import re

import pytest
from playwright.sync_api import expect

from adapters.models import Adapter, CivitaiRecord
from tests.adapters.catalog_factory import make_adapter
from tests.conftest import make_user
from tests.e2e.conftest import ARTIFACTS, login
from tests.standins.civitai import StandInLora

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The shared library holds 50 "inkwash_*" adapters (more than a page): the user finds this one by its whole
# name as a quoted phrase (a bare "zz" next to a longer word is ignored by the search: it has no trigram).
BY_NAME = "%22zz+inkwash%22"


def test_card_before_and_after_a_civitai_lookup(live_app, civitai_standin, page, scanned_library, idle_queues_after):
    sha = hashlib.sha256(b"e2e inkwash").hexdigest()
    tensor = hashlib.sha256(b"e2e inkwash tensors").hexdigest()
    adapter = make_adapter("zz inkwash", sha256=sha, tensor_sha256=tensor)
    civitai_standin.add_lora(
        StandInLora(sha, tensor, name="Inkwash Dreams", trained_words=["inkwash style"], base_model="Illustrious")
    )
    make_user("eddie", "editor")
    console_errors: list[str] = []
    page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    login(page, live_app, "eddie", "pw-eddie-1234")

    page.goto(f"{live_app}/library/?q={BY_NAME}")
    card = page.locator(f"#adapter-{adapter.pk}-card")
    expect(card.locator(".no-preview")).to_have_text("Z")  # a letter placeholder
    expect(card).not_to_contain_text("inkwash style")
    ARTIFACTS.mkdir(exist_ok=True)
    card.screenshot(path=str(ARTIFACTS / "civitai-before.png"))

    page.goto(f"{live_app}/library/{adapter.pk}/")
    expect(page.locator(f"#adapter-{adapter.pk}-civitai")).to_contain_text("Never looked up")
    page.get_by_role("button", name="Look up on Civitai").click()
    expect(page.locator("#civitai-progress .civitai-status")).to_have_attribute(
        "data-status", "succeeded", timeout=30_000
    )
    expect(page.locator("#civitai-progress")).to_contain_text("1 found")
    page.locator("#civitai-reload").click()
    section = page.locator(f"#adapter-{adapter.pk}-civitai")
    expect(section).to_contain_text("Inkwash Dreams")
    expect(section).to_contain_text("Illustrious")
    large = page.locator("img.large-preview")
    page.wait_for_function("(el) => el.complete && el.naturalWidth > 0", arg=large.element_handle(), timeout=10_000)
    page.screenshot(path=str(ARTIFACTS / "civitai-detail.png"), full_page=True)

    page.goto(f"{live_app}/library/?q={BY_NAME}")
    card = page.locator(f"#adapter-{adapter.pk}-card")
    image = card.locator(".thumb img")
    expect(image).to_be_visible()
    page.wait_for_function(
        "(el) => el.complete && el.naturalWidth > 0", arg=image.element_handle(), timeout=10_000
    )  # the Civitai preview, thumbnailed here and served by this app
    expect(card).to_contain_text("inkwash style")
    expect(card.locator(".badge.base")).to_have_text(re.compile("SDXL"))
    card.screenshot(path=str(ARTIFACTS / "civitai-after.png"))

    adapter = Adapter.objects.get(pk=adapter.pk)
    assert adapter.preview_source == "civitai" and adapter.sources["trigger_words"] == "civitai"
    assert adapter.base_model_detail == "Illustrious" and CivitaiRecord.objects.get(adapter=adapter).found
    assert not console_errors, console_errors


def test_a_civitai_preview_above_the_persons_nsfw_setting_is_blurred_until_clicked(
    live_app, civitai_standin, page, new_page, scanned_library, idle_queues_after
):
    sha = hashlib.sha256(b"e2e nightshade").hexdigest()
    adapter = make_adapter("zz nightshade", sha256=sha, tensor_sha256="")
    civitai_standin.add_lora(StandInLora(sha, name="Nightshade", image_nsfw=[8]))  # its picture is rated X
    make_user("eddie", "editor")
    login(page, live_app, "eddie", "pw-eddie-1234")
    page.goto(f"{live_app}/library/{adapter.pk}/")
    page.get_by_role("button", name="Look up on Civitai").click()
    expect(page.locator("#civitai-progress .civitai-status")).to_have_attribute(
        "data-status", "succeeded", timeout=30_000
    )

    page.goto(f"{live_app}/library/?q=nightshade")
    image = page.locator(f"#adapter-{adapter.pk}-card .thumb img")
    expect(image).to_have_class(re.compile(r"\bnsfw-blur\b"))  # above the default setting (PG-13)
    ARTIFACTS.mkdir(exist_ok=True)
    page.locator(f"#adapter-{adapter.pk}-card").screenshot(path=str(ARTIFACTS / "civitai-nsfw-blurred.png"))
    image.click()  # the first click shows it, and stays on the library
    expect(image).not_to_have_class(re.compile(r"\bnsfw-blur\b"))
    assert page.url.endswith("/library/?q=nightshade")

    page.select_option("#nsfw-threshold", label="Never blur")  # one setting per person
    page.get_by_role("button", name="Save NSFW setting").click()
    expect(page.locator(".messages")).to_contain_text("Saved")
    page.goto(f"{live_app}/library/?q=nightshade")
    expect(page.locator(f"#adapter-{adapter.pk}-card .thumb img")).not_to_have_class(re.compile(r"\bnsfw-blur\b"))
    make_user("vera", "viewer")  # another person still has the default
    other = new_page()
    login(other, live_app, "vera", "pw-vera-1234")
    other.goto(f"{live_app}/library/?q=nightshade")
    expect(other.locator(f"#adapter-{adapter.pk}-card .thumb img")).to_have_class(re.compile(r"\bnsfw-blur\b"))
