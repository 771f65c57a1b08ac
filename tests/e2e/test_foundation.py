import re

import django_rq
import pytest
from playwright.sync_api import expect

from lora_manager.runs.tasks import heartbeat
from tests.conftest import make_user
from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_login_sees_the_activity_indicator_follow_a_job_and_logs_out(live_app, page, redis_conn, scanned_library):
    make_user("vera", "viewer")
    login(page, live_app, "vera", "pw-vera-1234")
    indicator = page.locator("#activity-indicator")
    expect(indicator).to_contain_text("Idle")  # pushed over the websocket on connect
    django_rq.get_queue("default").enqueue(heartbeat, 3.0, "e2e")
    expect(indicator).to_contain_text(re.compile(r"1 (running|queued)"), timeout=10_000)
    expect(indicator).to_contain_text("1 running", timeout=10_000)
    expect(indicator).to_contain_text("Idle", timeout=15_000)
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r".*/accounts/login/.*"))
    page.goto(f"{live_app}/library/")
    expect(page).to_have_url(re.compile(r".*/accounts/login/\?next=/library/"))
