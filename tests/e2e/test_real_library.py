"""Journeys on the shared 300-adapter library (scanned by the scanner): browsing by folder, the files that
could not be read, and every top-level page at phone width without sideways scrolling."""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from adapters.models import Adapter, LibraryRoot
from generation.models import GenerationJob, JobStatus
from tests.conftest import make_user
from tests.e2e.conftest import ARTIFACTS, login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


PHONE_WIDTH = 390


def adapters_text(n: int) -> str:
    return f"{n} adapter{'s' * (n != 1)}"


def test_browse_the_library_by_folder(live_app, page, scanned_library):
    make_user("vera", "viewer")
    login(page, live_app, "vera", "pw-vera-1234")
    root = LibraryRoot.objects.get()
    count = page.locator(".result-count")
    tree = page.locator("#folder-tree")
    total = len(scanned_library.good)
    expect(count).to_contain_text(adapters_text(total))

    # The root with everything readable, and its top folders with their counts (subfolders included).
    expect(tree.locator(f'[data-folder="{root.pk}:"]')).to_contain_text(str(scanned_library.root))
    expect(tree.locator(f'li:has([data-folder="{root.pk}:"]) .count')).to_have_text(str(total))
    sdxl = scanned_library.count_under("sdxl")
    sdxl_row = tree.locator(f'li:has([data-folder="{root.pk}:sdxl"])')
    expect(sdxl_row.locator(".count")).to_have_text(str(sdxl))
    expect(tree.locator(f'[data-folder="{root.pk}:sdxl/pony"]')).to_have_count(0)  # closed until opened

    # Into sdxl: the gallery shows it and its subfolders, the URL says so, the tree opens one level.
    tree.locator(f'[data-folder="{root.pk}:sdxl"]').click()
    expect(count).to_contain_text(adapters_text(sdxl))
    expect(page).to_have_url(re.compile(rf"folder={root.pk}%3Asdxl($|&)"))
    pony = scanned_library.count_under("sdxl/pony")
    expect(tree.locator(f'li:has([data-folder="{root.pk}:sdxl/pony"]) .count')).to_have_text(str(pony))
    expect(tree.locator(f'[data-folder="{root.pk}:sdxl/concepts"]')).to_be_visible()
    expect(tree.locator(f'[data-folder="{root.pk}:sd15"]')).to_be_visible()  # siblings stay reachable
    # A long root path is cut with an ellipsis: the filter column never scrolls sideways (its fieldsets once
    # grew to the path's width, and opening a folder scrolled the search box half out of view).
    sideways = "(el) => [el.scrollWidth, el.clientWidth, el.scrollLeft]"
    assert len(str(scanned_library.root)) > 30  # pytest's temporary path: long enough to overflow the column
    scroll_width, client_width, scrolled = page.locator("#gallery-filters").evaluate(sideways)
    assert scroll_width <= client_width and scrolled == 0, (scroll_width, client_width, scrolled)

    # Deeper, then combined with a search: both filters apply, both stay in the URL.
    tree.locator(f'[data-folder="{root.pk}:sdxl/pony"]').click()
    expect(count).to_contain_text(adapters_text(pony))
    expect(tree.locator("li.current")).to_contain_text("pony")
    assert page.locator("#gallery-filters").evaluate(sideways)[2] == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "library-folder-view.png"), full_page=False)
    witches = sum(
        1
        for p in scanned_library.good
        if p.relative_to(scanned_library.root).as_posix().startswith("sdxl/pony/") and "witch" in p.stem
    )
    page.get_by_label("Search", exact=True).fill("witch")
    expect(count).to_contain_text(adapters_text(witches))
    expect(page).to_have_url(re.compile(r"q=witch"))
    expect(page).to_have_url(re.compile(rf"folder={root.pk}%3Asdxl%2Fpony"))

    # A bookmarked folder view opens as it was.
    page.reload()
    expect(count).to_contain_text(adapters_text(witches))
    expect(page.get_by_label("Search", exact=True)).to_have_value("witch")

    # "All folders" goes back to the whole library (the search stays).
    page.get_by_role("link", name="All folders").click()
    everywhere = sum(1 for p in scanned_library.good if "witch" in p.stem)
    expect(count).to_contain_text(adapters_text(everywhere))
    expect(page).not_to_have_url(re.compile(r"folder="))


def test_files_that_cannot_be_read_are_listed_with_their_reason_and_nowhere_else(live_app, page, scanned_library):
    make_user("vera", "viewer")
    login(page, live_app, "vera", "pw-vera-1234")
    total = len(scanned_library.good)
    broken = scanned_library.broken

    # Not in the gallery: not counted, not found by name.
    expect(page.locator(".result-count")).to_contain_text(adapters_text(total))
    page.get_by_label("Search", exact=True).fill("zero")
    expect(page.locator(".result-count")).to_contain_text("0 adapters")
    page.get_by_label("Search", exact=True).fill("")
    expect(page.locator(".result-count")).to_contain_text(adapters_text(total))

    # The dashboard counts them apart and links to them.
    page.goto(f"{live_app}/")
    expect(page.locator("#fig-total")).to_have_text(str(total))
    expect(page.locator("#fig-unreadable")).to_have_text(str(len(broken)))
    page.locator("#fig-unreadable a").click()
    page.wait_for_url("**/library/problems/")
    expect(page.get_by_role("heading", name="Files with problems")).to_be_visible()
    rows = page.locator(".problems-table tbody tr")
    expect(rows).to_have_count(len(broken))
    for path in broken.values():
        expect(page.locator(".problems-table")).to_contain_text(path.name)
    expect(rows.filter(has_text="zero.safetensors")).to_contain_text(re.compile("empty|too small|header", re.I))
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "files-with-problems.png"), full_page=True)

    # A readable model whose preview file is text: an adapter without a preview, with the reason as an issue.
    text_preview = Adapter.objects.get(files__path=str(scanned_library.bad_preview))
    assert text_preview.preview_source == "" and text_preview.has_issues
    assert any("not an image" in issue for issue in text_preview.issues)
    page.goto(f"{live_app}/library/{text_preview.pk}/")
    expect(page.locator("main")).to_contain_text("not an image")
    expect(page.locator(f'img[src*="/library/{text_preview.pk}/preview/"]')).to_have_count(0)
    # ... and its readable neighbours' previews load (the page watcher fails the test on any 404).
    page.goto(f"{live_app}/library/?q=textpreview")
    expect(page.locator(f"#adapter-{text_preview.pk}-card .no-preview")).to_be_visible()
    page.goto(f"{live_app}/library/?q=knight")
    expect(page.locator("#adapter-results img").first).to_be_visible()


def _top_level_pages(live_app: str, adapter: Adapter, job: GenerationJob) -> dict[str, str]:
    return {
        "dashboard": f"{live_app}/",
        "library-grid": f"{live_app}/library/?view=grid",
        "library-list": f"{live_app}/library/?view=list",
        "library-folder": f"{live_app}/library/?folder={adapter.files.get().root_id}%3Asdxl",
        "adapter-detail": f"{live_app}/library/{adapter.pk}/",
        "tags": f"{live_app}/library/tags/",
        "files-with-problems": f"{live_app}/library/problems/",
        "recommendations": f"{live_app}/recommendations/",
        "composer": f"{live_app}/generate/",
        "jobs": f"{live_app}/generate/jobs/",
        "job": f"{live_app}/generate/jobs/{job.pk}/",
        "history": f"{live_app}/generate/history/",
        "recipes": f"{live_app}/generate/recipes/",
        "archive": f"{live_app}/archive/",
        "status": f"{live_app}/status/",
        "admin-adapters": f"{live_app}/admin/adapters/adapter/",
    }


def test_every_top_level_page_fits_a_phone(live_app, new_page, scanned_library):
    make_user("ada", "admin")
    now = timezone.now()
    adapter = Adapter.objects.usable().filter(files__path__contains="/sdxl/").order_by("name").first()
    job = GenerationJob.objects.create(
        status=JobStatus.SUCCEEDED, prompt="a very long prompt " * 20, started_at=now, finished_at=now
    )
    page = new_page(viewport={"width": PHONE_WIDTH, "height": 844}, is_mobile=True, has_touch=True)
    login(page, live_app, "ada", "pw-ada-1234")
    ARTIFACTS.mkdir(exist_ok=True)
    too_wide = {}
    for name, url in _top_level_pages(live_app, adapter, job).items():
        page.goto(url)  # waits for "load": styles and images are in; websockets keep the network busy
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        # A phone widens its layout viewport (innerWidth) to content that overflows, so scrollWidth <= innerWidth
        # alone holds on every page: both are held to the phone's 390 px.
        if max(widths) > PHONE_WIDTH:
            too_wide[name] = widths
        page.screenshot(path=str(ARTIFACTS / f"phone-{name}.png"), full_page=False)
    assert not too_wide, f"pages wider than the phone (scrollWidth, innerWidth): {too_wide}"

    # Results first: the first card is on the first screen; filters and bulk actions are one tap away.
    page.goto(f"{live_app}/library/?view=grid")
    first_card = page.locator("#adapter-results .adapter-card").first
    expect(first_card).to_be_visible()
    assert first_card.bounding_box()["y"] < 844
    filters = page.locator("#filter-panel")
    expect(filters).not_to_have_attribute("open", "")
    expect(page.locator("#facets")).to_be_hidden()
    filters.locator("summary").click()
    expect(page.locator("#facets")).to_be_visible()
    page.locator("#facets").get_by_label("SDXL", exact=True).check()
    sdxl = Adapter.objects.usable().filter(base_model="SDXL").count()
    expect(page.locator(".result-count")).to_contain_text(adapters_text(sdxl))
    page.screenshot(path=str(ARTIFACTS / "phone-library-filters-open.png"), full_page=False)
