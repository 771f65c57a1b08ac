"""`|when`: every page's one way of showing a moment (no raw ISO timestamps)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils import timezone

from lora_manager.templatetags.human_dates import as_datetime, when


def test_iso_strings_and_datetimes_read_as_relative_times_with_the_exact_date_on_hover():
    moment = timezone.now() - timedelta(hours=3)
    html = when(moment.isoformat())
    assert html.startswith(f'<time datetime="{moment.isoformat()}" title="') and "3\xa0hours ago</time>" in html
    assert when(moment) == html
    soon = when((timezone.now() + timedelta(minutes=30, seconds=5)).isoformat())
    assert "30\xa0minutes from now" in soon


def test_naive_and_missing_values():
    assert as_datetime("2026-07-23T11:45:01") == datetime(2026, 7, 23, 11, 45, 1, tzinfo=UTC)
    assert when(None, "never") == "never" and when("", "never") == "never" and when(None) == "–"
    assert when("not a date") == "not a date"
