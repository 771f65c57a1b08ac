"""Retention and bulk delete: rated, pinned and running jobs stay, files leave the disk, the count comes first."""

from __future__ import annotations

import django_rq
import pytest
from django.core.exceptions import ImproperlyConfigured

from generation import ratings, retention, storage
from generation.models import GenerationImage, GenerationJob, JobStatus, RatedLora, ResultRating
from lora_manager import env
from lora_manager.runs import periodic
from tests.generation.results_factory import finished_job, image_of

pytestmark = pytest.mark.django_db


def folder(job) -> bool:
    return storage.absolute(storage.job_folder(job.pk)).is_dir()


@pytest.fixture
def history(catalog, editor):
    pixel = catalog["pixel_xl"]
    old = {
        "plain": finished_job([(pixel, 0.5)], user=editor, age_days=40, images=2),
        "failed": finished_job([(pixel, 0.5)], user=editor, age_days=35, status=JobStatus.FAILED),
        "rated": finished_job([(pixel, 0.75)], user=editor, age_days=50),
        "pinned": finished_job([(pixel, 1.0)], user=editor, age_days=60, pinned=True),
        "running": finished_job([(pixel, 1.0)], user=editor, age_days=45, status=JobStatus.RUNNING),
    }
    ratings.rate(editor, image_of(old["rated"]), ratings.Verdict(1, None))
    new = [finished_job([(pixel, 0.5)], user=editor) for _ in range(3)]
    return old, new


def test_retention_counts_first_then_keeps_rated_pinned_and_running_jobs_and_deletes_files(history):
    old, new = history
    rule = retention.Policy(keep_days=30)
    plan = retention.plan(rule)
    assert (plan.jobs, plan.images) == (2, 3) and plan.bytes > 0  # the failed job has an image file too
    assert (plan.kept_pinned, plan.kept_rated, plan.kept_active) == (1, 1, 1)
    assert folder(old["plain"])
    outcome = retention.apply(rule)
    assert (outcome.deleted_jobs, outcome.deleted_images) == (2, 3)
    assert "1 queued or running job(s) left alone" in outcome.message
    remaining = set(GenerationJob.objects.values_list("pk", flat=True))
    assert remaining == {old["rated"].pk, old["pinned"].pk, old["running"].pk, *[j.pk for j in new]}
    assert not folder(old["plain"]) and not folder(old["failed"]) and folder(old["rated"]) and folder(old["pinned"])
    assert retention.plan(rule).jobs == 0
    # What ratings taught survives deleting the rated job by hand.
    assert retention.delete_jobs([old["rated"].pk]).deleted_jobs == 1
    assert ResultRating.objects.get().job is None and RatedLora.objects.get().weight == 0.75


def test_retention_by_count_keeps_the_last_n_jobs(history):
    old, new = history
    outcome = retention.apply(retention.Policy(keep_jobs=3))
    assert outcome.deleted_jobs == 2  # 8 jobs; the newest 3 stay, then rated, pinned, running are protected
    kept = set(GenerationJob.objects.values_list("pk", flat=True))
    assert {j.pk for j in new} <= kept and old["plain"].pk not in kept


def test_retention_off_removes_nothing(history):
    assert retention.plan(retention.Policy()).jobs == 0
    assert retention.apply(retention.Policy()).deleted_jobs == 0
    assert GenerationJob.objects.count() == 8


def test_the_curation_page_shows_the_count_and_applies_the_policy(history, editor_client, settings):
    settings.RETENTION_KEEP_DAYS = 30
    page = editor_client.get("/generate/curation/").content.decode()
    assert "It would remove <strong>2 jobs</strong> with 3 images" in page
    assert "Kept although old: 1 pinned, 1 rated, 1 queued or running." in page
    response = editor_client.post("/generate/curation/run/", follow=True)
    assert "Retention removed 2 jobs and 3 images" in response.content.decode()
    assert GenerationJob.objects.count() == 6


def test_bulk_delete_confirms_then_deletes_and_skips_running_jobs(history, editor_client):
    old, _ = history
    ids = [old["plain"].pk, old["pinned"].pk, old["running"].pk]
    confirm = editor_client.post("/generate/history/delete/", {"job": ids}).content.decode()
    assert "Delete 3 jobs?" in confirm and "1 of them is pinned" in confirm and "1 is queued or running" in confirm
    assert GenerationJob.objects.count() == 8
    done = editor_client.post("/generate/history/delete/", {"job": ids, "confirm": "1"}, follow=True).content.decode()
    assert "Deleted 2 jobs and 3 images" in done and "cancel them first" in done
    assert GenerationJob.objects.filter(pk=old["running"].pk).exists()
    assert not folder(old["plain"]) and not folder(old["pinned"])
    empty = editor_client.post("/generate/history/delete/", {}, follow=True).content.decode()
    assert "Tick the jobs to delete first." in empty


def test_viewers_cannot_delete(history, viewer_client):
    old, _ = history
    assert viewer_client.post("/generate/history/delete/", {"job": [old["plain"].pk]}).status_code == 403
    assert viewer_client.post("/generate/curation/run/").status_code == 403


def test_delete_some_images_of_a_job_and_pin(catalog, editor, editor_client):
    job = finished_job([(catalog["pixel_xl"], 0.5)], user=editor, images=3)
    first = image_of(job, 0)
    response = editor_client.post(
        f"/generate/jobs/{job.pk}/images/delete/", {"image": ["0", "2"]}, HTTP_HX_REQUEST="true"
    )
    assert "Deleted 2 images." in response.content.decode()
    assert list(GenerationImage.objects.filter(job=job).values_list("index", flat=True)) == [1]
    assert not storage.absolute(first.path).exists() and not storage.absolute(first.thumbnail).exists()
    pinned = editor_client.post(f"/generate/jobs/{job.pk}/pin/", {"value": "1"}, HTTP_HX_REQUEST="true")
    assert "Pinned: retention keeps this job." in pinned.content.decode()
    job.refresh_from_db()
    assert job.pinned


def test_periodic_retention_is_scheduled_once_on_rqs_scheduler(redis_conn, settings):
    retention_job = periodic.find("retention")
    settings.RETENTION_KEEP_DAYS, settings.RETENTION_INTERVAL_MINUTES = 30, 60
    assert periodic.schedule(retention_job) is True
    assert periodic.schedule(retention_job) is False
    assert len(periodic.scheduled_ids(retention_job)) == 1
    redis_conn.flushdb()
    settings.RETENTION_KEEP_DAYS = 0  # policy off: nothing to schedule
    assert periodic.schedule(retention_job) is False


def test_the_periodic_job_applies_the_policy_through_a_real_worker(
    history, settings, run_worker, django_capture_on_commit_callbacks
):
    settings.RETENTION_KEEP_DAYS = 30
    with django_capture_on_commit_callbacks(execute=True):
        django_rq.get_queue("default").enqueue("lora_manager.runs.periodic.run", "retention")
    run_worker("default")
    failed = django_rq.get_queue("default").failed_job_registry
    assert failed.count == 0, [django_rq.get_queue("default").fetch_job(j).exc_info for j in failed.get_job_ids()]
    assert GenerationJob.objects.count() == 6
    assert periodic.scheduled_ids(periodic.find("retention"))


@pytest.mark.parametrize("name", ["RETENTION_KEEP_JOBS", "RETENTION_KEEP_DAYS", "RETENTION_INTERVAL_MINUTES"])
def test_retention_settings_are_parsed_strictly(name):
    assert env.env_int(name, 0, {f"LORA_MANAGER_{name}": "12"}, minimum=0) == 12
    with pytest.raises(ImproperlyConfigured, match=f"LORA_MANAGER_{name}='ten' is not a whole number"):
        env.env_int(name, 0, {f"LORA_MANAGER_{name}": "ten"}, minimum=0)
    with pytest.raises(ImproperlyConfigured, match="out of range"):
        env.env_int(name, 0, {f"LORA_MANAGER_{name}": "-1"}, minimum=0)


def test_the_command_counts_then_applies(history):
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("apply_retention", "--keep-days", "30", "--dry-run", stdout=out)
    assert "would remove 2 job(s) with 3 image(s)" in out.getvalue() and GenerationJob.objects.count() == 8
    call_command("apply_retention", "--keep-days", "30", stdout=out)
    assert "Retention removed 2 jobs and 3 images" in out.getvalue() and GenerationJob.objects.count() == 6
    with pytest.raises(CommandError, match="must be 0"):
        call_command("apply_retention", "--keep-days", "-1")
