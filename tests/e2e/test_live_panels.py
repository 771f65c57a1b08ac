"""A run's progress panel keeps one websocket while the run is active (updates never re-create it) and
lets it go for good once the run has finished."""

import threading

import pytest
from playwright.sync_api import expect

from adapters.models import ScanRun
from tests.conftest import make_user
from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def announce(run: ScanRun) -> None:
    """Tell the pages watching ``run`` that its row changed, as the scan job's reporter does (from another
    thread: Playwright's sync API keeps an event loop running in this one)."""
    try:  # the tracked-run machinery (one notify for every kind of run)
        from lora_manager.realtime import notify_run
    except ImportError:  # before it: the scan's own reporter
        from adapters.scan_runs import ScanReporter

        def notify_run(run: ScanRun) -> None:
            ScanReporter(run).notify()

    sender = threading.Thread(target=notify_run, args=(run,))
    sender.start()
    sender.join(10)


def test_a_scan_panel_keeps_one_websocket_and_never_reconnects_to_a_finished_run(
    live_app, page, redis_conn, scanned_library
):
    # A running scan that no worker holds: only this test moves it along (row + channel event).
    run = ScanRun.objects.create(status=ScanRun.Status.RUNNING, phase="reading", done=1, total=10, rq_job_id="e2e")
    make_user("vera", "viewer")
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    opened = []
    page.on("websocket", lambda ws: opened.append(ws) if f"/ws/scans/{run.pk}/" in ws.url else None)
    with page.expect_websocket(lambda ws: f"/ws/scans/{run.pk}/" in ws.url) as socket_info:
        login(page, live_app, "vera", "pw-vera-1234")
    socket = socket_info.value
    progress = page.locator("#scan-progress")
    expect(progress).to_contain_text("reading 1 / 10")

    for done in (4, 7):  # two updates: each used to replace the socket's own element, i.e. reconnect
        ScanRun.objects.filter(pk=run.pk).update(done=done)
        with socket.expect_event("framereceived"):
            announce(run)
        expect(progress).to_contain_text(f"reading {done} / 10")
    assert len(opened) == 1 and not socket.is_closed()
    expect(page.locator("#scan-panel #scan-panel")).to_have_count(0)  # the refresh did not nest the panel

    ScanRun.objects.filter(pk=run.pk).update(status=ScanRun.Status.SUCCEEDED, message="finished by the test")
    with socket.expect_event("close"):
        announce(run)
    expect(progress.locator(".scan-status")).to_have_attribute("data-status", "succeeded")
    page.reload()  # a finished run's page opens no socket for it
    expect(page.locator("#scan-progress")).to_contain_text("finished by the test")
    assert len(opened) == 1 and not errors, errors
