"""The generation journey in a real browser against daphne, an RQ worker and the SD.Next stand-in."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from adapters.models import Adapter
from adapters.scanning import scan
from generation.models import GenerationJob, JobStatus
from tests.adapters.conftest import lora
from tests.conftest import make_user
from tests.e2e.conftest import ARTIFACTS, login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def add_lora(page, query: str, name: str) -> None:
    page.get_by_label("Add a LoRA").fill(query)
    page.get_by_role("button", name=f"Add {name}", exact=True).click()
    expect(page.locator(".lora-row .lora-name", has_text=name)).to_have_count(1)


def generate(page) -> GenerationJob:
    """Click Generate and wait for the new job's confirmation."""
    before = GenerationJob.objects.count()
    page.get_by_role("button", name="Generate").click()
    deadline = time.monotonic() + 10
    while GenerationJob.objects.count() == before:
        assert time.monotonic() < deadline, "no job was created"
        time.sleep(0.05)
    job = GenerationJob.objects.latest("id")
    expect(page.locator("#composer-feedback")).to_contain_text(f"#{job.pk} queued on default")
    return job


def fill_parameters(page, steps: int) -> None:
    page.get_by_label("Steps", exact=True).fill(str(steps))
    page.get_by_label("Width", exact=True).fill("64")
    page.get_by_label("Height", exact=True).fill("64")


def test_compose_two_loras_watch_it_run_find_it_in_history_and_cancel_others(
    live_app, page, redis_conn, sdnext_standin, scanned_library
):
    root = Path(sdnext_standin.engine.loras.root)
    lora(root, "pixel_xl.safetensors", "sdxl", seed=1)
    lora(root, "ink_xl.safetensors", "sdxl", seed=2)
    scan([str(root)])
    Adapter.objects.filter(name="pixel_xl").update(trigger_words=["pixel art"], preferred_weight=0.8)
    make_user("eddie", "editor")
    login(page, live_app, "eddie", "pw-eddie-1234")

    page.goto(f"{live_app}/generate/")
    backend = page.locator("#composer-backend")
    expect(backend).to_contain_text("stand-in, not a real SD.Next")
    backend.get_by_role("button", name="Refresh LoRAs").click()  # SD.Next rescans its folder: both are new
    expect(backend).to_contain_text("SD.Next lists 2 LoRAs; 2 matched to the catalog.")
    page.get_by_label("Prompt", exact=True).fill("a lighthouse at dusk")
    add_lora(page, "pixel_xl", "pixel_xl")  # "pixel" alone: 50 pixel_* LoRAs of the library first
    search = page.get_by_label("Add a LoRA")
    search.fill("ink")
    expect(page.locator("#lora-search-results button.pick").first).to_have_text("+ ink_xl")
    search.press("Enter")  # adds the first match; never submits the form
    expect(page.locator(".lora-row .lora-name", has_text="ink_xl")).to_have_count(1)
    page.locator(".lora-row").nth(1).locator("input[type=range]").fill("0.6")
    expect(page.locator(".lora-row").nth(1).locator("output")).to_have_text("0.6")
    final = page.locator("#final-prompt")
    expect(final).to_contain_text("a lighthouse at dusk, pixel art <lora:pixel_xl:0.8> <lora:ink_xl:0.6>")
    fill_parameters(page, steps=30)
    job = generate(page)
    assert [lora.name for lora in job.loras.all()] == ["pixel_xl", "ink_xl"]

    progress = page.locator(f"#job-{job.pk}-progress")
    expect(progress).to_have_attribute("data-status", "running", timeout=15_000)
    expect(progress).to_have_attribute("data-percent", re.compile(r"^([1-9]|[1-8]\d)$"), timeout=10_000)
    first = int(progress.get_attribute("data-percent"))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "generation-progress.png"), full_page=True)
    deadline = time.monotonic() + 10
    while (status := progress.get_attribute("data-status")) == "running" and int(
        progress.get_attribute("data-percent") or 0
    ) <= first:
        assert time.monotonic() < deadline, "the progress bar did not advance"
        time.sleep(0.1)
    assert status is None or status == "running" or progress.count() == 0
    expect(page.locator(f"#job-{job.pk}-row")).to_have_count(0, timeout=20_000)  # left the queue when done
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.loras_applied == ["pixel_xl", "ink_xl"]

    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="History").click()
    card = page.locator(f"#history-job-{job.pk}")
    expect(card.locator("img")).to_be_visible()
    expect(card).to_contain_text("pixel_xl 0.8")
    card.get_by_role("link", name="Open in composer").click()
    expect(page.locator("#final-prompt")).to_contain_text("<lora:ink_xl:0.6>")

    sdnext_standin.engine.step_delay = 0.3  # 45 s per job: time enough to cancel both
    fill_parameters(page, steps=150)
    running, waiting = generate(page), generate(page)
    nav.get_by_role("link", name="Jobs").click()
    expect(page.locator(f"#job-{running.pk}-progress")).to_have_attribute("data-status", "running", timeout=15_000)
    expect(page.locator(f"#job-{waiting.pk}-row")).to_contain_text("position 1")
    page.get_by_role("button", name=f"Cancel job {waiting.pk}").click()
    expect(page.locator(f"#job-{waiting.pk}-row")).to_have_count(0)
    page.get_by_role("button", name=f"Cancel job {running.pk}").click()
    expect(page.locator(f"#recent-job-{running.pk}")).to_contain_text("Cancelled", timeout=15_000)
    running.refresh_from_db(), waiting.refresh_from_db()
    assert running.status == waiting.status == JobStatus.CANCELLED
    assert running.images.get().partial and not waiting.images.exists()
    txt2img = [r for r in sdnext_standin.requests if r["path"] == "/sdapi/v1/txt2img"]
    assert len(txt2img) == 2  # the waiting job never reached SD.Next


def test_viewer_can_watch_but_not_generate(live_app, page, scanned_library):
    make_user("vera", "viewer")
    login(page, live_app, "vera", "pw-vera-1234")
    page.goto(f"{live_app}/generate/jobs/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Compose").click()
    expect(page.get_by_role("button", name="Generate")).to_have_count(0)
    expect(page.locator("#composer-form")).to_contain_text("can look but not generate")
