"""Browser: an editor exports the library with a live progress bar, then imports it through the plan."""

import pytest
from playwright.sync_api import expect

from adapters import identity, scanning
from adapters.models import Adapter, LibraryRoot
from archive.models import ArchiveRun
from tests.adapters.conftest import lora
from tests.conftest import make_user
from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_export_with_progress_then_import_with_plan(live_app, page, redis_conn, scanned_library, tmp_path):
    root = tmp_path / "Lora"
    for i in range(6):
        lora(root, f"set_{i % 2}/lora_{i:02d}.safetensors", seed=100 + i)
    LibraryRoot.objects.create(path=str(root))
    scanning.scan([str(root)])
    identity.hash_pending(workers=1)
    total = Adapter.objects.count()  # its 6 and the shared library (broken files included: they are rows too)
    assert total > 300
    make_user("eddie", "editor")
    login(page, live_app, "eddie", "pw-eddie-1234")

    page.goto(f"{live_app}/archive/")
    page.get_by_role("button", name="Export").click()
    run = page.locator("#archive-run")
    expect(run).to_contain_text("Export #", timeout=10_000)
    expect(run.locator(".archive-status")).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(run).to_contain_text(f"{total:,} adapters")
    download = page.locator("#archive-download")
    expect(download).to_be_visible()
    response = page.request.get(live_app + download.get_attribute("href"))
    assert response.ok and response.body()[:2] == b"PK"
    archive = ArchiveRun.objects.get(kind="export").path

    Adapter.objects.all().delete()  # an empty catalog; the files stay and are reused
    page.goto(f"{live_app}/archive/")
    page.set_input_files("#archive-file", archive)
    page.get_by_role("button", name="Upload and check").click()
    run = page.locator("#archive-run")
    expect(run.locator(".archive-status")).to_have_attribute("data-status", "ready", timeout=30_000)
    expect(run.locator(".plan-new")).to_have_text(f"{total:,}")
    expect(run.locator("[data-outcome='new']")).to_have_count(total)  # listed by name in the plan's 'new' group
    assert Adapter.objects.count() == 0  # the plan changed nothing
    page.select_option("#confirm-on-conflict", "keep-both")
    page.get_by_role("button", name="Import").click()
    expect(page.locator("h1")).to_contain_text("Import #", timeout=10_000)
    expect(page.locator("#archive-run .archive-status")).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(page.locator("#import-result")).to_contain_text(f"Adapters: {total:,} new")
    assert Adapter.objects.count() == total
