"""First run: library folders are configured, the catalog is empty, the app starts (``make run`` starts
``manage.py run_worker``), and the gallery fills by itself while the user watches, without a reload."""

from __future__ import annotations

import subprocess
import sys

import pytest
from playwright.sync_api import expect

from adapters import scan_runs
from adapters.models import Adapter, ScanRun
from tests.conftest import make_user
from tests.e2e.conftest import ARTIFACTS, BASE_DIR, live_env, login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def live_app_env(library_files) -> dict[str, str]:
    return {"LORA_MANAGER_LIBRARY_DIRS": str(library_files.root)}


@pytest.fixture(scope="module")
def live_app_starts_worker() -> bool:
    return False  # the test starts the worker the way `make run` does


@pytest.fixture
def run_worker_process(sdnext_standin, library_files, tmp_path):
    """``manage.py run_worker --no-generation`` as the launcher starts it, stopped after the test."""
    processes = []

    def start() -> subprocess.Popen:
        env = live_env(sdnext_standin.url, {"LORA_MANAGER_LIBRARY_DIRS": str(library_files.root)})
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_worker", "--no-generation"],
            cwd=BASE_DIR,
            env=env,
            stdout=(tmp_path / "worker.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def test_first_start_with_library_folders_fills_the_gallery_live(
    live_app, page, library_files, run_worker_process, redis_conn, settings
):
    settings.LIBRARY_DIRS = [library_files.root]
    assert not Adapter.objects.exists() and not ScanRun.objects.exists()
    # What the worker does at start-up (run_worker calls it before it takes jobs). It is called here first
    # so the page below opens on a queued scan however fast this machine scans; the worker's own call
    # then finds that scan and does not queue a second one.
    first = scan_runs.start_first_scan()
    assert first is not None and first.status == ScanRun.Status.QUEUED

    make_user("eddie", "editor")
    login(page, live_app, "eddie", "pw-eddie-1234")
    expect(page.locator("#scan-progress")).to_have_attribute("data-active", "1")
    expect(page.locator("#adapter-results")).to_contain_text("The library is being scanned")
    page.evaluate(
        """() => {
            window.__notReloaded = true;
            window.__percents = [];
            const panel = document.getElementById("scan-panel");
            new MutationObserver(() => {
                const bar = panel.querySelector("progress");
                if (bar) window.__percents.push(Number(bar.value));
            }).observe(panel, {childList: true, subtree: true, attributes: true});
        }"""
    )

    worker = run_worker_process()
    readable = len(library_files.good)
    expect(page.locator(".result-count")).to_contain_text(f"{readable} adapters", timeout=120_000)
    expect(page.locator("#scan-progress .scan-status")).to_have_attribute("data-status", "succeeded")
    assert page.evaluate("window.__notReloaded") is True  # filled live, not by a reload
    assert worker.poll() is None
    assert ScanRun.objects.count() == 1  # the worker's start-up call reused the queued scan
    # The filters filled too, and the unreadable files are not adapters.
    expect(page.locator("#facets")).to_contain_text("SDXL")
    expect(page.locator("#folder-tree")).to_contain_text(str(library_files.root))
    expect(page.locator("#scan-progress")).to_contain_text("Files with problems")
    assert Adapter.objects.usable().count() == readable
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "first-run-gallery.png"), full_page=False)

    # The bar moved through the run: values between 0 and 100 were shown, not 0 until "Succeeded".
    seen = page.evaluate("window.__percents")
    assert any(0 < value < 100 for value in seen), seen

    # A second start-up does not scan again: the library has been scanned.
    assert scan_runs.start_first_scan() is None
    assert ScanRun.objects.count() == 1
