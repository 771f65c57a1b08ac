"""Cancel against a hung SD.Next (the STAND-IN's "hang" fault): the job is cancelled within seconds, SD.Next
is asked to interrupt, nothing is resent, and the next job of that backend's queue runs."""

from __future__ import annotations

import threading

import pytest

from generation import pipeline, submitting
from generation.models import GenerationJob, JobStatus
from tests.faults.waiting import wait_until
from tests.generation.conftest import composition

pytestmark = pytest.mark.django_db(transaction=True)
QUEUE = "generation-default"


def status(job: GenerationJob) -> str:
    return GenerationJob.objects.values_list("status", flat=True).get(pk=job.pk)


def paths(standin) -> list[str]:
    return [request["path"] for request in standin.requests]


def test_cancel_stops_waiting_on_a_hung_sdnext_and_the_next_job_runs(catalog, sdnext, run_worker, settings):
    settings.SDNEXT_TIMEOUT = 600  # the hang must not end by the client's own timeout
    sdnext.set_fault("hang", times=1)  # the first txt2img never answers; later ones do
    hung = submitting.submit(composition())
    following = submitting.submit(composition())
    worker = threading.Thread(target=run_worker, args=(QUEUE,), daemon=True)  # a real RQ worker, burst mode
    worker.start()
    wait_until(lambda: "/sdapi/v1/txt2img" in paths(sdnext) and status(hung) == JobStatus.RUNNING, 20, "the hang")

    assert submitting.cancel(hung.pk).startswith("Stopping")
    wait_until(lambda: status(hung) == JobStatus.CANCELLED, 5, "the hung job to be cancelled")
    hung.refresh_from_db()
    assert hung.message == pipeline.ABANDONED
    assert "/sdapi/v1/interrupt" in paths(sdnext)

    wait_until(lambda: status(following) == JobStatus.SUCCEEDED, 30, "the next job to run")
    worker.join(30)
    assert not worker.is_alive()
    assert paths(sdnext).count("/sdapi/v1/txt2img") == 2  # the hung one was never resent
    assert following.images.count() == 1
