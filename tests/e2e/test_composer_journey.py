"""A real user's generation day on the shared 300+ adapter library (tests/factories/library.py):
search the composer, add two LoRAs with the keyboard only, see the final prompt follow, generate on the
SD.Next STAND-IN and watch the job page fill in seeds and the LoRAs' applied state without a reload.
Every console error or failed request fails the test (tests/e2e/conftest.py's page watcher)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from adapters.models import AdapterFile, Tag
from generation.models import GenerationJob, JobStatus
from tests.conftest import make_user
from tests.e2e.conftest import ARTIFACTS, login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def option_names(page) -> list[str]:
    return [
        text.removeprefix("+ ").strip() for text in page.locator("#lora-search-results button.pick").all_inner_texts()
    ]


def token_of(adapter_name: str) -> str:
    """The name in <lora:…>: SD.Next's list is not read for these yet, so the file's stem."""
    return Path(AdapterFile.objects.filter(adapter__name=adapter_name).values_list("path", flat=True)[0]).stem


def test_search_add_two_by_keyboard_generate_and_watch_the_job_live(
    live_app, page, scanned_library, sdnext_standin, idle_queues_after
):
    witches = sorted(p.stem for p in scanned_library.good if "witch" in p.stem)
    assert len(witches) > 20  # more than the 20 results the search shows: it must really filter
    robot = sorted(p for p in scanned_library.good if "robot" in p.stem)[0]
    tagged = AdapterFile.objects.select_related("adapter").get(path=str(robot)).adapter
    tagged.tags.add(Tag.objects.create(name="moonlit-harbour"))  # a tag no name contains
    make_user("eddie", "editor")
    login(page, live_app, "eddie", "pw-eddie-1234")

    page.goto(f"{live_app}/generate/")
    page.get_by_label("Prompt", exact=True).fill("a lighthouse at dusk")
    search = page.get_by_label("Add a LoRA")
    search.focus()
    page.keyboard.type("witch")
    results = page.locator("#lora-search-results")
    expect(results).to_have_attribute("data-query", "witch")
    shown = option_names(page)
    assert len(shown) == 20 and all("witch" in name.lower() for name in shown)

    # ↓ ↓ moves the highlight to the third result; Enter adds it; focus stays in the search.
    expect(results.locator("[role=option]").first).to_have_attribute("aria-selected", "true")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowDown")
    third = results.locator("[role=option]").nth(2)
    expect(third).to_have_attribute("aria-selected", "true")
    expect(search).to_have_attribute("aria-activedescendant", third.get_attribute("id"))
    first_name = shown[2]
    page.keyboard.press("Enter")
    rows = page.locator("#composer-loras .lora-row .lora-name")
    expect(rows).to_have_text([first_name])
    expect(search).to_be_focused()
    final = page.locator("#final-prompt")
    first_token = token_of(first_name)
    expect(final).to_contain_text(f"<lora:{first_token}:")  # no other edit needed (issue 15, item 3)

    # Search by a tag, typed and entered at once: Enter adds the best match of what was typed.
    search.fill("")
    page.keyboard.type("moonlit-harbour")
    page.keyboard.press("Enter")
    expect(rows).to_have_text([first_name, tagged.name])
    expect(final).to_contain_text(re.compile(rf"a lighthouse at dusk.*<lora:{first_token}:[\d.]+> <lora:{robot.stem}:"))
    expect(page.locator("#lint-issues")).not_to_contain_text("No problems found")  # SD.Next lacks them yet
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "composer.png"), full_page=True)

    # Removing one updates the final prompt and the checks at once, too.
    page.locator(".lora-row").nth(1).get_by_role("button", name=f"Remove {tagged.name}").click()
    expect(final).not_to_contain_text(f"<lora:{robot.stem}:")
    page.get_by_label("Add a LoRA").fill("moonlit-harbour")
    expect(results).to_have_attribute("data-query", "moonlit-harbour")
    page.get_by_label("Add a LoRA").press("Enter")
    expect(final).to_contain_text(f"<lora:{robot.stem}:")

    # SD.Next gets both files and rescans its folder itself (as after its restart); the list the composer
    # read earlier is stale, so the checks still say SD.Next would skip them.
    lora_dir = Path(sdnext_standin.engine.loras.root)
    for name in (first_name, tagged.name):
        source = Path(AdapterFile.objects.filter(adapter__name=name).values_list("path", flat=True).first())
        shutil.copy(source, lora_dir / source.name)
    sdnext_standin.engine.loras.scan()
    expect(page.locator("#lint-issues")).to_contain_text("would be skipped")
    for label, value in (("Steps", "60"), ("Width", "64"), ("Height", "64")):
        page.get_by_label(label, exact=True).fill(value)

    before = GenerationJob.objects.count()
    page.get_by_role("button", name="Generate").click()
    feedback = page.locator("#composer-feedback")
    expect(feedback).to_contain_text("queued on default")
    job = GenerationJob.objects.latest("id")
    assert GenerationJob.objects.count() == before + 1
    feedback.get_by_role("link", name=f"#{job.pk}").click()
    page.wait_for_url(f"{live_app}/generate/jobs/{job.pk}/")

    # The page as first drawn: the job is not done, nothing is known yet. Mark the document to prove
    # that what follows arrives without a reload.
    expect(page.locator(f"#job-{job.pk}-panel .job-status")).to_have_text(re.compile("Queued|Running"))
    page.evaluate("window.__sameDocument = true")
    seeds = page.locator('td[data-param="seeds-used"]')
    expect(seeds).to_have_text("–")
    expect(page.locator("td[data-applied]")).to_have_count(2)
    panel = page.locator(f"#job-{job.pk}-panel")
    expect(panel.locator(".job-warnings")).to_contain_text("would be skipped")

    # The one live worker may first finish the re-embedding the new tag asked for (a queue of higher priority).
    expect(page.locator(f"#job-{job.pk}-panel .job-status")).to_have_text("Succeeded", timeout=180_000)
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and len(job.seeds) == 1
    expect(seeds).to_have_text(str(job.seeds[0]))
    expect(page.locator('td[data-applied="yes"]')).to_have_count(2)
    expect(panel).not_to_contain_text("would be skipped")  # answered: SD.Next applied both
    expect(page.locator(f"#job-{job.pk}-results img")).to_have_count(1)  # the one image, shown once
    expect(page.locator("#job-live img")).to_have_count(1)
    assert page.evaluate("window.__sameDocument === true")
    ok = page.evaluate("getComputedStyle(document.body).color")
    for selector in ("#params-heading", "#loras-heading", f"#job-{job.pk}-panel .job-message"):
        assert page.evaluate(f"getComputedStyle(document.querySelector('{selector}')).color") == ok, selector
    page.screenshot(path=str(ARTIFACTS / "job-page.png"), full_page=True)
