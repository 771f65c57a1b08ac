"""Enqueue failures never leave a "queued" row behind (real database and Redis)."""

from __future__ import annotations

import pytest
import redis

from adapters.models import ScanRun
from lora_manager import outages
from lora_manager.runs import jobs


@pytest.mark.django_db
def test_a_row_whose_job_could_not_be_queued_after_commit_is_marked_failed():
    run = ScanRun.objects.create(rq_job_id="scan-test-1")
    other = ScanRun.objects.create(rq_job_id="scan-test-2")
    fixed = jobs.mark_not_queued("scan-test-1", redis.exceptions.ConnectionError("Connection refused"))
    run.refresh_from_db(), other.refresh_from_db()
    assert fixed == 1
    assert run.status == ScanRun.Status.FAILED and "Redis was not reachable" in run.message and run.finished_at
    assert other.status == ScanRun.Status.QUEUED


def test_require_redis_raises_a_clear_error_when_redis_does_not_answer(redis_conn):
    outages.require_redis(redis_conn)  # up: nothing happens
    dead = redis.Redis(port=1, socket_connect_timeout=0.5)
    with pytest.raises(outages.RedisUnavailable) as raised:
        outages.require_redis(dead)
    assert "not reachable" in str(raised.value) and outages.is_redis_outage(raised.value)
    assert outages.is_redis_outage(redis.exceptions.TimeoutError()) and not outages.is_redis_outage(ValueError())
