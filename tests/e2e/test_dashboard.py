"""The dashboard in a real browser on the shared scanned library: charts render, figures refresh, the never-used
link opens the filtered gallery, and unreadable files count nowhere."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from adapters.models import Adapter
from generation.models import GenerationJob, JobStatus
from tests.adapters.catalog_factory import make_adapter
from tests.conftest import make_user
from tests.e2e.conftest import ARTIFACTS, login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_dashboard_charts_and_never_used_link(live_app, page, scanned_library):
    now = timezone.now()
    readable = Adapter.objects.usable().count()
    assert readable == len(scanned_library.good) and Adapter.objects.count() > readable  # broken files exist
    make_adapter("often used", base_model="SDXL", usage_count=9, last_used_at=now - timedelta(hours=2))
    for name in ("dusty one", "dusty two"):
        make_adapter(name, base_model="SD1")
    for status in (JobStatus.SUCCEEDED, JobStatus.SUCCEEDED, JobStatus.FAILED):
        GenerationJob.objects.create(status=status, started_at=now, finished_at=now)
    make_user("eddie", "editor")
    login(page, live_app, "eddie", "pw-eddie-1234")

    page.goto(f"{live_app}/")
    chart = page.locator("#chart-generations")
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 80  # drawn at size, not collapsed
    expect(page.locator("#chart-generations rect.chart-succeeded")).to_have_count(1)
    expect(page.locator("#chart-generations rect.chart-failed")).to_have_count(1)
    families = Adapter.objects.usable().values("base_model").distinct().count()
    expect(page.locator("#chart-base-models rect")).to_have_count(families)
    # The bars take their colours from the theme (CSS variables), so they are visible in light and dark.
    fill = page.locator("#chart-generations rect.chart-succeeded").evaluate("el => getComputedStyle(el).fill")
    assert fill not in ("", "none", "rgb(0, 0, 0)")
    # Never used: the scanned library and the two dusty ones, not the broken files nor the used one.
    expect(page.locator("#fig-never-used")).to_have_text(str(readable + 2))
    expect(page.locator("#fig-total")).to_have_text(str(readable + 3))

    # Live refresh: a new adapter shows up without reloading the page (htmx polling).
    make_adapter("fresh arrival", base_model="Flux")
    expect(page.locator("#fig-total")).to_have_text(str(readable + 4), timeout=25_000)

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    page.locator("#never-used-link").click()
    page.wait_for_url("**/library/?unused=never&active=1")
    # the scanned library, two dusty ones and the fresh one
    expect(page.locator(".result-count")).to_contain_text(f"{readable + 3} adapters")
    page.get_by_label("Search", exact=True).fill("often used")
    expect(page.locator(".result-count")).to_contain_text("0 adapters")
    expect(page.locator("#f-unused-never")).to_be_checked()


def test_dark_theme_charts_stay_readable(live_app, new_page):
    make_adapter("a dark one", base_model="SDXL")
    make_user("vera", "viewer")
    page = new_page(color_scheme="dark")
    login(page, live_app, "vera", "pw-vera-1234")
    page.goto(f"{live_app}/")
    label = page.locator("#chart-base-models .chart-label").first
    expect(label).to_be_visible()
    color = label.evaluate("el => getComputedStyle(el).fill")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert color != background and color not in ("rgb(0, 0, 0)", "")  # light text on the dark page
