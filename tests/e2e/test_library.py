"""The library journey in a real browser on the shared 300-adapter library (scanned by the scanner): search,
filter by tag, page, grid/list, select three, deactivate, undo, open one, edit its trigger words and see them
on its card. Saves a screenshot of the grid."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from adapters.models import Adapter
from adapters.views.detail import lora_prompt
from tests.conftest import make_user
from tests.e2e.conftest import ARTIFACTS, login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def shown() -> int:
    """Adapters the gallery lists by default: every readable file the scanner catalogued."""
    return Adapter.objects.usable().count()


def adapters_text(n: int) -> str:
    return f"{n} adapter{'s' * (n != 1)}"


def test_library_journey(live_app, page, scanned_library, idle_queues_after):
    make_user("eddie", "editor")
    login(page, live_app, "eddie", "pw-eddie-1234")
    total = shown()
    assert total == len(scanned_library.good) >= 300

    count = page.locator(".result-count")
    expect(count).to_contain_text(adapters_text(total))
    expect(page.locator("#adapter-results .adapter-card")).to_have_count(48)  # the first page of many

    # Live search (debounced) narrows the grid and lands in the URL.
    dragons = sum(1 for path in scanned_library.good if "dragon" in path.stem)
    page.get_by_label("Search", exact=True).fill("dragon")
    expect(count).to_contain_text(adapters_text(dragons))
    expect(page).to_have_url(re.compile(r"q=dragon"))
    page.get_by_label("Search", exact=True).fill("")
    expect(count).to_contain_text(adapters_text(total))

    # Page 2 of the whole library.
    page.locator(".pagination").first.get_by_role("link", name="Page 2", exact=True).click()
    expect(page).to_have_url(re.compile(r"page=2"))
    expect(page.locator("#adapter-results .adapter-card")).to_have_count(48)

    # Filter by tag, from its facet (the count is next to it).
    facets = page.locator("#facets")
    characters = Adapter.objects.usable().filter(tags__name="character").count()
    assert 0 < characters < total
    expect(facets.locator("label", has_text="character")).to_be_visible()
    facets.get_by_label("character", exact=True).check()
    expect(count).to_contain_text(adapters_text(characters))
    expect(page).to_have_url(re.compile(r"tag=character"))

    # Grid and list.
    page.get_by_label("List", exact=True).check()
    expect(page.locator("table.adapter-table")).to_be_visible()
    page.get_by_label("Grid", exact=True).check()
    expect(page.locator(".card-grid")).to_be_visible()

    # Select three (one click, then a shift-click range), deactivate, undo.
    boxes = page.locator("#adapter-results [data-select]")
    boxes.nth(0).click()
    boxes.nth(2).click(modifiers=["Shift"])
    expect(page.locator("#selection-count")).to_have_text("3 selected on this page")
    chosen = [int(boxes.nth(i).get_attribute("value")) for i in range(3)]
    page.get_by_role("button", name="Deactivate", exact=True).click()
    expect(page.locator("#feedback")).to_contain_text("3 adapters deactivated")
    expect(page.locator("#adapter-results .badge.off")).to_have_count(3)
    assert Adapter.objects.filter(pk__in=chosen, active=False).count() == 3
    page.locator("#feedback").get_by_role("button", name="Undo").click()
    expect(page.locator("#feedback")).to_contain_text("Undone: 3 adapters restored")
    expect(page.locator("#adapter-results .badge.off")).to_have_count(0)
    assert Adapter.objects.filter(pk__in=chosen, active=True).count() == 3

    # Open one, edit its trigger words inline, and see them on its card.
    first = Adapter.objects.get(pk=chosen[0])
    page.locator(f"#adapter-{first.pk}-name a").click()
    expect(page.locator(f"#adapter-{first.pk}-title")).to_contain_text(first.name)
    section = page.locator(f"#adapter-{first.pk}-triggers")
    section.get_by_role("link", name=re.compile("Edit")).click()
    textarea = section.get_by_label("Trigger words")
    textarea.fill("moonlit armor\nsilver visor")
    section.get_by_role("button", name="Save").click()
    expect(section.locator("code", has_text="moonlit armor")).to_be_visible()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "library-detail.png"), full_page=True)
    page.get_by_role("link", name="Library", exact=True).first.click()
    page.get_by_label("Search", exact=True).fill(first.name)
    card = page.locator(f"#adapter-{first.pk}-card")
    expect(card).to_contain_text("moonlit armor")
    expect(card).to_contain_text("silver visor")

    page.get_by_label("Search", exact=True).fill("")
    expect(count).to_contain_text(adapters_text(total))
    # The scan and Civitai cards come first on a desktop screen: the screenshot shows the grid itself.
    page.locator(".result-count").scroll_into_view_if_needed()
    expect(page.locator("#adapter-results .adapter-card").first).to_be_in_viewport()
    page.screenshot(path=str(ARTIFACTS / "library-grid.png"), full_page=False)


def test_select_all_matching_remove_with_confirmation_undo_and_copy(
    live_app, new_page, scanned_library, idle_queues_after
):
    make_user("eddie", "editor")
    page = new_page()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_app)
    n = sum(1 for path in scanned_library.good if "witch" in path.stem)
    everything = Adapter.objects.count()
    assert n > 48  # more than one page: "all matching" must reach past what is shown
    login(page, live_app, "eddie", "pw-eddie-1234")
    page.get_by_label("Search", exact=True).fill("witch")
    count = page.locator(".result-count")
    expect(count).to_contain_text(adapters_text(n))
    # Leaving the search box fires "change", which re-queries the gallery (and re-renders the results,
    # clearing any selection): let that happen before selecting.
    page.get_by_label("Search", exact=True).blur()
    page.wait_for_load_state("networkidle")

    # Every match of the filter, not just the visible page.
    page.get_by_label(re.compile(rf"Select all {n} matching")).check()
    expect(page.locator("#selection-count")).to_have_text(f"All {n} matching adapters selected")
    page.get_by_label("Tags to add or remove").fill("spooky")
    page.get_by_role("button", name="Add tags").click()
    expect(page.locator("#feedback")).to_contain_text(f"{n} tag links added (spooky)")
    assert Adapter.objects.filter(tags__name="spooky").count() == n
    expect(page.locator("#adapter-results .tag-list").first).to_contain_text("spooky")  # the list refreshed

    # Removing asks first; Cancel closes the question, Remove removes, Undo brings them back.
    page.get_by_label(re.compile(rf"Select all {n} matching")).check()
    page.get_by_role("button", name="Remove from catalog…").click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_contain_text(f"Remove {n} adapters from the catalog?")
    dialog.get_by_role("link", name="Cancel").click()
    expect(dialog).to_have_count(0)
    assert Adapter.objects.count() == everything
    page.get_by_label(re.compile(rf"Select all {n} matching")).check()
    page.get_by_role("button", name="Remove from catalog…").click()
    page.get_by_role("alertdialog").get_by_role("button", name=f"Remove {n} adapters").click()
    expect(page.locator("#feedback")).to_contain_text(f"{n} adapters removed from the catalog")
    expect(count).to_contain_text("0 adapters")
    assert Adapter.objects.count() == everything - n
    page.locator("#feedback").get_by_role("button", name="Undo").click()
    expect(count).to_contain_text(adapters_text(n))
    assert Adapter.objects.filter(tags__name="spooky").count() == n

    # The detail page's copy button puts the prompt tag on the clipboard.
    adapter = Adapter.objects.filter(files__path__contains="witch").order_by("name").first()
    page.goto(f"{live_app}/library/{adapter.pk}/")
    page.locator(f"#adapter-{adapter.pk}-prompt").get_by_role("button").click()
    expect(page.locator(f"#adapter-{adapter.pk}-prompt button")).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == lora_prompt(adapter)
