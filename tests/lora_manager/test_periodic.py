"""Periodic chains survive a move of the module their links call."""

from __future__ import annotations

from datetime import timedelta

import django_rq

from lora_manager.runs import periodic


def test_a_link_naming_a_moved_function_is_replaced_not_counted(redis_conn, settings):
    settings.JANITOR_SECONDS = 60
    janitor = periodic.find("janitor")
    queue = django_rq.get_queue(janitor.queue)
    # What a release before lora_manager/runs/ left in Redis: RQ would fail it with an ImportError and
    # the chain would end, while schedule_all() took it for a live link.
    queue.enqueue_in(timedelta(hours=1), "lora_manager.periodic.run", "janitor", job_id=f"{janitor.job_prefix}1")
    assert periodic.schedule(janitor) is True
    (link,) = periodic.scheduled_ids(janitor)
    assert queue.fetch_job(link).func_name == periodic.RUN == "lora_manager.runs.periodic.run"
    assert queue.fetch_job(f"{janitor.job_prefix}1") is None
    assert periodic.schedule(janitor) is False
