"""A weight sweep from an adapter's page in a real browser: daphne, an RQ worker, the SD.Next stand-in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from adapters.models import Adapter
from adapters.scanning import scan
from generation.models import ResultRating, Sweep
from tests.adapters.conftest import lora
from tests.conftest import make_user
from tests.e2e.conftest import ARTIFACTS, allow_problem, login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_run_a_sweep_from_the_adapter_page_watch_it_and_rate_the_grid(
    live_app, page, redis_conn, sdnext_standin, scanned_library
):
    root = Path(sdnext_standin.engine.loras.root)
    lora(root, "sweep_xl.safetensors", "sdxl", seed=5)
    scan([str(root)])
    adapter = Adapter.objects.get(name="sweep_xl")
    Adapter.objects.filter(pk=adapter.pk).update(trigger_words=["sweepy"])
    make_user("eddie", "editor")
    login(page, live_app, "eddie", "pw-eddie-1234")

    page.goto(f"{live_app}/library/{adapter.pk}/")
    results = page.locator(f"#adapter-{adapter.pk}-results")
    expect(results).to_contain_text("No rated results yet")
    results.get_by_text("Run a weight sweep or compare LoRAs").click()
    expect(results.get_by_label("Weights")).to_have_value("0, 0.25, 0.5, 0.75, 1")
    allow_problem(
        page,
        r"422.*/generate/adapters/\d+/sweep/",
        "a sweep with a weight that is not a number is refused with 422 and its form errors, shown in place",
    )
    results.get_by_label("Weights").fill("0, 0.5, abc")
    results.get_by_label("Steps").fill("4")
    results.get_by_label("Width").fill("64")
    results.get_by_label("Height").fill("64")
    results.get_by_role("button", name="Start sweep").click()
    expect(page.locator(f"#adapter-{adapter.pk}-results")).to_contain_text("“abc” is not a number")
    assert not Sweep.objects.exists()

    results = page.locator(f"#adapter-{adapter.pk}-results")
    results.get_by_label("Weights").fill("0, 0.5, 1")
    results.get_by_label("Steps").fill("4")
    results.get_by_label("Width").fill("64")
    results.get_by_label("Height").fill("64")
    results.get_by_role("button", name="Start sweep").click()
    page.wait_for_url(f"{live_app}/generate/sweeps/*/")
    sweep = Sweep.objects.get()
    panel = page.locator(f"#sweep-{sweep.pk}-panel[data-source=live]")  # as the websocket pushed it
    expect(panel).to_have_attribute("data-grid", "ready", timeout=30_000)
    expect(panel).to_have_attribute("data-done", "3")
    grid = page.locator(f"#sweep-{sweep.pk}-grid")
    expect(grid).to_be_visible()
    assert page.evaluate(f"document.getElementById('sweep-{sweep.pk}-grid').naturalWidth") > 900
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sweep-grid.png"), full_page=True)

    page.get_by_role("button", name="Thumbs up for sweep_xl @ 0.5").click()
    expect(page.get_by_role("button", name="Thumbs up for sweep_xl @ 0.5")).to_have_attribute("aria-pressed", "true")
    assert ResultRating.objects.get().thumb == 1

    page.goto(f"{live_app}/library/{adapter.pk}/")
    results = page.locator(f"#adapter-{adapter.pk}-results")
    expect(results).to_contain_text("Rated results")
    expect(page.locator(f"#adapter-{adapter.pk}-best-range")).to_have_text("0.5")
    expect(results.get_by_role("link", name="grid")).to_have_attribute("href", f"/generate/sweeps/{sweep.pk}/grid.png")
    page.screenshot(path=str(ARTIFACTS / "adapter-results.png"), full_page=True)
    page.goto(f"{live_app}/generate/jobs/{sweep.jobs.order_by('sweep_cell')[1].pk}/")
    results = page.locator(".job-results")
    expect(results.get_by_role("button", name=re.compile("Thumbs up for image 1"))).to_have_attribute(
        "aria-pressed", "true"
    )
    page.screenshot(path=str(ARTIFACTS / "job-results.png"), full_page=True)
