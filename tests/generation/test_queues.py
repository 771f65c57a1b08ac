"""The queue a generation job runs on is named once (backends.queue_name_of): submitting and
deliveries enqueue there, and cancel and the janitor look there."""

from __future__ import annotations

import django_rq
import pytest
from django.test import TestCase

from generation import backends, composer, deliveries, reconciling, submitting
from generation.models import DeliveryTarget, GenerationJob, JobStatus
from tests.generation.conftest import composition

pytestmark = pytest.mark.django_db


def enqueue(submit) -> GenerationJob:
    with TestCase.captureOnCommitCallbacks(execute=True):
        return submit()


def test_a_generation_and_a_delivery_wait_on_the_queue_queue_name_of_names(catalog, sdnext, redis_conn):
    target = DeliveryTarget.objects.create(name="cmd", kind="command", arguments=["/bin/true"])
    generation = enqueue(lambda: submitting.submit(composition()))
    delivery = enqueue(lambda: deliveries.submit(composer.Composition(prompt="x"), target))
    assert backends.queue_name_of(generation) == "generation-default"
    assert backends.queue_name_of(delivery) == backends.DELIVERY_QUEUE
    for job in (generation, delivery):
        assert django_rq.get_queue(backends.queue_name_of(job)).get_job_ids() == [job.rq_job_id]
    assert reconciling.reconcile_stale_jobs() == 0  # both found where they wait: nothing to settle
    for job in (generation, delivery):
        assert submitting.cancel(job.pk) == "Cancelled before it started."
        assert django_rq.get_queue(backends.queue_name_of(job)).get_job_ids() == []


def test_a_job_of_a_backend_no_longer_configured_is_settled_by_the_janitor(catalog, sdnext, redis_conn):
    job = enqueue(lambda: submitting.submit(composition()))
    GenerationJob.objects.filter(pk=job.pk).update(backend="gone")
    job.refresh_from_db()
    with pytest.raises(backends.BackendNotConfigured):
        backends.queue_name_of(job)
    assert reconciling.reconcile_stale_jobs() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "'gone' is no longer configured" in job.message
