import pytest
from playwright.sync_api import expect

from adapters.models import Adapter, LibraryRoot
from tests.adapters.conftest import lora
from tests.conftest import make_user
from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_editor_scans_the_library_and_watches_it_finish(live_app, page, redis_conn, scanned_library, tmp_path):
    root = tmp_path / "Lora"
    for i in range(12):
        lora(root, f"style_{i:02d}/lora_{i:02d}.safetensors", seed=i)
    LibraryRoot.objects.create(path=str(root))  # a second folder next to the shared library's
    before, hashed = Adapter.objects.count(), Adapter.objects.exclude(sha256=None).count()
    unchanged = len(scanned_library.good) + len(scanned_library.broken)  # unchanged files are skipped
    make_user("eddie", "editor")
    login(page, live_app, "eddie", "pw-eddie-1234")
    page.get_by_role("button", name="Scan library").click()
    progress = page.locator("#scan-progress")
    expect(progress).to_contain_text("Scan #", timeout=10_000)
    expect(progress.locator(".scan-status")).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(progress).to_contain_text("12 added")
    expect(progress).to_contain_text(f"{unchanged} unchanged")  # the library was rescanned, not re-added
    assert Adapter.objects.count() == before + 12
    assert Adapter.objects.exclude(sha256=None).count() == hashed + 12


def test_viewer_sees_no_scan_button(live_app, page, scanned_library):
    make_user("vera", "viewer")
    login(page, live_app, "vera", "pw-vera-1234")
    expect(page.get_by_role("button", name="Scan library")).to_have_count(0)
