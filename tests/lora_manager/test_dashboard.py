"""Every dashboard figure against seeded data, the page, its htmx refresh and the never-used gallery link."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.template.loader import render_to_string
from django.utils import timezone

from adapters.models import AdapterFile, FileStatus, LibraryRoot, ScanRun
from generation.models import GenerationImage, GenerationJob, JobLora, JobStatus
from lora_manager.dashboard import charts
from lora_manager.dashboard import figures as dashboard
from lora_manager.models import SuggestionAcceptance
from recommendations.models import Feedback
from tests.adapters.catalog_factory import make_adapter

pytestmark = pytest.mark.django_db


def job(status: str, days_ago: int = 0, seconds: float = 10.0, images: int = 1, loras=()) -> GenerationJob:
    now = timezone.now() - timedelta(days=days_ago)
    row = GenerationJob.objects.create(status=status, message="boom" if status == JobStatus.FAILED else "")
    GenerationJob.objects.filter(pk=row.pk).update(
        created_at=now, started_at=now, finished_at=now + timedelta(seconds=seconds)
    )
    for i in range(images if status == JobStatus.SUCCEEDED else 0):
        GenerationImage.objects.create(
            job=row, index=i, path=f"x/{row.pk}-{i}.png", thumbnail="t.webp", format="png", width=8, height=8, size=1
        )
    for position, adapter in enumerate(loras):
        JobLora.objects.create(job=row, adapter=adapter, name=adapter.name, weight=1.0, position=position)
    return row


@pytest.fixture
def seeded(editor):
    now = timezone.now()
    one = LibraryRoot.objects.create(path="/lib/one")
    two = LibraryRoot.objects.create(path="/lib/two", online=False)
    used = make_adapter("used a lot", root=one, base_model="SDXL", usage_count=7, last_used_at=now - timedelta(days=1))
    stale = make_adapter("stale", root=one, base_model="SDXL", usage_count=2, last_used_at=now - timedelta(days=200))
    never = make_adapter("never touched", root=two, base_model="SD1", network_type="LoHa")
    make_adapter("inactive never", root=two, base_model="SD1", active=False)
    make_adapter("broken", root=one, base_model="Flux", issues=["header unreadable"])
    AdapterFile.objects.filter(adapter=never).update(status=FileStatus.MISSING, size=5)
    AdapterFile.objects.filter(adapter=used).update(size=1000)
    AdapterFile.objects.filter(adapter=stale).update(size=24)
    job(JobStatus.SUCCEEDED, 0, seconds=10, images=2, loras=[used])  # 5 s per image
    job(JobStatus.SUCCEEDED, 1, seconds=30, images=1, loras=[used])  # 30 s per image
    job(JobStatus.SUCCEEDED, 3, seconds=12, images=1)  # 12 s per image
    job(JobStatus.FAILED, 1)
    job(JobStatus.CANCELLED, 2)
    job(JobStatus.SUCCEEDED, 45)  # outside the 30 days
    Feedback.objects.create(user=editor, adapter=used, kind="prompt", context="x", context_key="a", value=1)
    Feedback.objects.create(user=editor, adapter=stale, kind="prompt", context="x", context_key="a", value=1)
    Feedback.objects.create(user=editor, adapter=never, kind="prompt", context="x", context_key="a", value=-1)
    return {"used": used, "stale": stale, "never": never, "editor": editor}


def test_library_figures(seeded):
    lib = dashboard.library()
    assert (lib["total"], lib["active"], lib["inactive"]) == (5, 4, 1)
    assert {row["value"]: row["count"] for row in lib["by_base_model"]} == {"SDXL": 2, "SD1": 2, "Flux": 1}
    assert {row["value"]: row["count"] for row in lib["by_network_type"]} == {"LoRA": 4, "LoHa": 1}
    roots = {root["path"]: root for root in lib["roots"]}
    assert roots["/lib/one"]["bytes"] == 1000 + 24 + 1 and roots["/lib/one"]["files"] == 3
    assert roots["/lib/two"]["bytes"] == 1 and roots["/lib/two"]["online"] is False  # the missing file not counted
    assert lib["storage_bytes"] == 1026
    assert (lib["missing_files"], lib["offline_files"], lib["with_issues"]) == (1, 0, 1)
    assert lib["recently_added"][0]["name"] == "broken"


def test_duplicates_counted(db):
    root = LibraryRoot.objects.create(path="/lib/d")
    make_adapter("twice", root=root, files=2)
    make_adapter("once", root=root)
    assert dashboard.library()["duplicates"] == 1


def test_usage_figures(seeded):
    usage = dashboard.usage()
    per_day = usage["per_day"]
    assert len(per_day) == 30 and per_day[-1]["date"] == timezone.localdate().isoformat()
    assert per_day[-1]["succeeded"] == 1
    assert per_day[-2]["succeeded"] == 1 and per_day[-2]["failed"] == 1
    assert per_day[-3]["cancelled"] == 1
    assert usage["outcomes"] == {"succeeded": 3, "failed": 1, "cancelled": 1}
    assert usage["generations"] == 5
    assert usage["success_rate"] == 0.75  # cancelled is the user's choice, not a failure
    assert usage["median_seconds_per_image"] == 12.0  # median of 5, 30, 12
    assert [a["name"] for a in usage["most_used"]] == ["used a lot", "stale"]
    assert usage["best_rated"] == []  # nothing rated yet: the page says "No ratings yet"


def test_best_rated_from_result_ratings(seeded, editor, viewer):
    """Ordered by the smoothed mean score; LoRAs SD.Next did not apply don't count."""
    from generation import ratings

    used, stale, never = seeded["used"], seeded["stale"], seeded["never"]
    steady = [job(JobStatus.SUCCEEDED, images=1, loras=[used]) for _ in range(4)]
    lucky = job(JobStatus.SUCCEEDED, images=1, loras=[stale, never])
    JobLora.objects.filter(job=lucky, adapter=never).update(applied=False)
    for row in steady:
        ratings.rate(editor, row.images.get(), ratings.Verdict(1, 5))
    ratings.rate(editor, lucky.images.get(), ratings.Verdict(None, 4))
    ratings.rate(viewer, steady[0].images.get(), ratings.Verdict(-1, None))

    best = dashboard.usage()["best_rated"]
    assert [row["name"] for row in best] == ["used a lot", "stale"]
    assert (best[0]["rated"], best[0]["approval_percent"], best[0]["stars"]) == (5, 80, 4.2)
    assert (best[1]["rated"], best[1]["stars"], best[1]["approval_percent"]) == (1, 4.0, 100)


def test_rating_a_result_up_shows_as_a_rated_result_not_as_suggestion_feedback(client, seeded, editor):
    from generation import ratings

    client.force_login(editor)
    rated = job(JobStatus.SUCCEEDED, images=1, loras=[seeded["used"]])
    ratings.rate(editor, rated.images.get(), ratings.Verdict(1, None))
    body = client.get("/").content.decode()
    assert 'id="fig-results-up">1<' in body and 'id="fig-results-down">0<' in body
    assert "Suggestions rated up" in body and ">Thumbs up<" not in body


def test_most_used_is_not_a_numbered_empty_list(client, db, editor):
    client.force_login(editor)
    body = client.get("/").content.decode()
    assert '<p class="muted" id="dash-most-used">No generations yet.</p>' in body
    assert '<ol class="dash-list" id="dash-most-used">' not in body


def test_never_and_long_unused_lists(seeded):
    usage = dashboard.usage()
    # Active adapters never generated with; the inactive one is already dealt with.
    assert usage["never_used_count"] == 2
    assert {a["name"] for a in usage["never_used"]} == {"never touched", "broken"}
    assert usage["long_unused_count"] == 1 and usage["long_unused"][0]["name"] == "stale"
    assert usage["never_used_query"] == "unused=never&active=1"


def test_empty_library_has_no_rates(db):
    usage = dashboard.usage()
    assert usage["success_rate"] is None and usage["median_seconds_per_image"] is None
    assert usage["never_used_count"] == 0 and sum(row["total"] for row in usage["per_day"]) == 0


def test_recommendation_figures(seeded):
    editor, used, never = seeded["editor"], seeded["used"], seeded["never"]
    accepted = SuggestionAcceptance.objects.create(user=editor, adapter=used, kind="prompt")
    SuggestionAcceptance.objects.filter(pk=accepted.pk).update(created_at=timezone.now() - timedelta(days=5))
    SuggestionAcceptance.objects.create(user=editor, adapter=never, kind="prompt")
    for j in GenerationJob.objects.all():
        j.requested_by = editor
        j.save(update_fields=["requested_by"])
    recs = dashboard.recommendations()
    assert (recs["thumbs_up"], recs["thumbs_down"]) == (2, 1)
    assert recs["accepted"] == 2 and recs["accepted_by_kind"] == {"prompt": 2}
    assert recs["accepted_then_generated"] == 1  # "used" was generated with after it was accepted
    assert recs["generated_rate"] == 0.5


def test_activity_feed_lists_scans_and_failed_jobs(seeded):
    ScanRun.objects.create(status=ScanRun.Status.SUCCEEDED, found=5, added=5, finished_at=timezone.now())
    events = dashboard.collect()["activity"]
    kinds = {e["kind"] for e in events}
    assert {"scan", "generation"} <= kinds
    failed = next(e for e in events if e["kind"] == "generation")
    assert failed["status"] == "failed" and failed["detail"] == "boom" and failed["url"].startswith("/generate/")


def test_activity_feed_lists_exports_backups_and_failed_imports(seeded):
    from archive.models import ArchiveRun

    done = timezone.now()
    ArchiveRun.objects.create(kind="export", status="succeeded", path="/d/archive/exports/lib.zip", finished_at=done)
    ArchiveRun.objects.create(kind="backup", status="succeeded", path="/d/backups/backup-1.zip", finished_at=done)
    failed = ArchiveRun.objects.create(
        kind="check",
        status="failed",
        original_name="evil.zip",
        message="entry ../x leaves the archive",
        finished_at=done,
    )
    events = {e["kind"]: e for e in dashboard.collect()["activity"]}
    assert events["export"]["title"] == f"Export #{failed.pk - 2}" and events["export"]["detail"] == "lib.zip"
    assert events["backup"]["status"] == "succeeded" and events["backup"]["url"] == f"/archive/runs/{failed.pk - 1}/"
    assert events["check"]["status"] == "failed" and "evil.zip" in events["check"]["title"]
    assert events["check"]["detail"] == "entry ../x leaves the archive"


def test_chart_svg_has_a_bar_per_outcome(seeded):
    chart = charts.stacked_days(dashboard.usage()["per_day"])
    assert [bar["series"] for bar in chart["bars"]].count("succeeded") == 3
    svg = render_to_string("lora_manager/dashboard/_stacked_days.html", {"chart": chart})
    assert svg.count('class="chart-bar chart-succeeded"') == 3
    assert svg.count('class="chart-bar chart-failed"') == 1
    assert "style=" not in svg  # the CSP forbids inline styles


def test_chart_geometry_is_plain_data_and_the_markup_escapes_labels():
    per_day = [
        {"date": f"2026-01-{d:02d}", "succeeded": d, "failed": 1, "cancelled": 0, "active": 0, "total": d + 1}
        for d in range(1, 15)
    ]
    chart = charts.stacked_days(per_day)
    assert [tick["value"] for tick in chart["ticks"]] == [0, 5, 10, 15, 20]  # a round peak above the tallest day
    tallest = [bar for bar in chart["bars"] if bar["date"] == "2026-01-14"]
    assert sum(bar["height"] for bar in tallest) == pytest.approx((220 - 24 - 8) * 15 / 20, abs=0.2)
    assert [label["text"] for label in chart["labels"]] == ["01-07", "01-14"] and chart["labels"][-1]["anchor"] == "end"
    breakdown = charts.bars([{"label": "<b>SDXL</b>", "count": 4}, {"label": "SD1", "count": 2}], "chart-x")
    assert [row["width"] for row in breakdown["rows"]] == [160.0, 80.0] and breakdown["height"] == 52
    svg = render_to_string("lora_manager/dashboard/_bars.html", {"chart": breakdown})
    assert "&lt;b&gt;SDXL&lt;/b&gt;" in svg and "<b>" not in svg and svg.count("<rect") == 2


def test_dashboard_is_the_home_page(client, seeded):
    client.force_login(seeded["editor"])
    page = client.get("/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="chart-generations"' in body and 'id="dashboard-figures"' in body
    assert 'href="/library/?unused=never&amp;active=1"' in body
    assert "No ratings yet" in body
    fragment = client.get("/", headers={"HX-Request": "true"})
    assert 'id="dashboard-figures"' in fragment.content.decode() and "<html" not in fragment.content.decode()


def test_dashboard_requires_login(client, db):
    assert client.get("/").status_code == 302


def test_never_used_link_filters_the_gallery(client, seeded):
    client.force_login(seeded["editor"])
    page = client.get("/library/?unused=never&active=1&view=list")
    body = page.content.decode()
    assert "never touched" in body and "broken" in body
    assert "used a lot" not in body and "inactive never" not in body
    long_unused = client.get("/library/?unused=90&view=list").content.decode()
    assert "stale" in long_unused and "never touched" in long_unused and "used a lot" not in long_unused
    bad = client.get("/library/?unused=soon").content.decode()
    assert "The unused filter takes" in bad


def test_suggestion_acceptance_is_recorded(client, seeded):
    client.force_login(seeded["editor"])
    ok = client.post("/suggestions/accepted", {"adapter": seeded["used"].pk, "kind": "prompt"})
    assert ok.status_code == 204 and SuggestionAcceptance.objects.count() == 1
    assert client.post("/suggestions/accepted", {"adapter": "x", "kind": "prompt"}).status_code == 400
    assert client.post("/suggestions/accepted", {"adapter": "999999", "kind": "adapter"}).status_code == 404


def test_add_to_composition_button_reports_the_acceptance(seeded):
    from django.template.loader import render_to_string

    from recommendations.ranking import Results, Suggestion

    s = Suggestion(seeded["used"].pk, "used a lot", "", "SDXL", 0.9, 0.9, True, [], 0, "<lora:used:1>")
    html = render_to_string(
        "recommendations/_suggestion.html",
        {"s": s, "results": Results(kind="prompt", context="a knight"), "add_button": True},
    )
    assert 'hx-post="/suggestions/accepted"' in html
    assert f'"adapter": "{seeded["used"].pk}"' in html and '"kind": "prompt"' in html
