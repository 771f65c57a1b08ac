"""Periodic jobs on RQ's scheduler: the rescan, the backup, the retention run and the janitor.

Each app declares its periodic jobs in its ``AppConfig.ready()`` (``self.periodic_jobs``). A periodic
job is a chain: the scheduled RQ job (id ``periodic-<name>-<time>``) runs the work, then schedules
the next one. ``run_worker`` and every janitor run call ``schedule_all()``, which only adds a link
where a chain is missing (a worker killed mid-job breaks one), so there is never more than one.
A scheduled link that names another function than ``RUN`` (left by a release where this module lived
elsewhere) is dropped and replaced, so moving this module never breaks a chain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.apps import apps
from django.utils.module_loading import import_string

log = logging.getLogger(__name__)

PREFIX = "periodic-"
RUN = f"{__name__}.run"  # the function every link of a chain calls (``run`` below)


@dataclass(frozen=True)
class Periodic:
    """``func`` (a dotted path, called without arguments) every ``seconds()`` seconds (0: switched off)."""

    name: str
    func: str
    seconds: Callable[[], float]
    queue: str = "default"
    at_front: bool = False  # jump the queue when due (the janitor: never behind a long scan that waits)

    @property
    def job_prefix(self) -> str:
        return f"{PREFIX}{self.name}-"


def declared() -> list[Periodic]:
    """Every periodic job the installed apps declare, in app order."""
    return [job for config in apps.get_app_configs() for job in getattr(config, "periodic_jobs", ())]


def find(name: str) -> Periodic:
    for job in declared():
        if job.name == name:
            return job
    raise LookupError(f"no periodic job named {name!r} is declared")


def scheduled_ids(job: Periodic) -> list[str]:
    """The scheduled links of this chain; links calling a stale dotted path are removed, not counted."""
    import django_rq  # not at the top: every AppConfig.ready() imports this module (issue 17, fast commands)
    from rq.job import Job

    registry = django_rq.get_queue(job.queue).scheduled_job_registry
    ids = [job_id for job_id in registry.get_job_ids() if job_id.startswith(job.job_prefix)]
    links = Job.fetch_many(ids, connection=registry.connection)
    for link in links:
        if link is not None and link.func_name != RUN:
            log.info("periodic job %s: dropping link %s, which calls %s", job.name, link.id, link.func_name)
            registry.remove(link, delete_job=True)
    return [job_id for job_id, link in zip(ids, links, strict=True) if link is None or link.func_name == RUN]


def schedule(job: Periodic) -> bool:
    """Schedule the next run unless one is scheduled or the job is switched off; True when it scheduled."""
    import django_rq

    seconds = job.seconds()
    if not seconds or scheduled_ids(job):
        return False
    django_rq.get_queue(job.queue).enqueue_in(
        timedelta(seconds=seconds),
        RUN,
        job.name,
        job_id=f"{job.job_prefix}{time.time_ns()}",
        at_front=job.at_front,
        result_ttl=600,
        failure_ttl=24 * 3600,
    )
    return True


def schedule_all() -> list[str]:
    """Repair every chain; returns the names it had to schedule."""
    return [job.name for job in declared() if schedule(job)]


def run(name: str) -> None:
    """The RQ job behind every periodic job: the work, then the next link of the chain (even on error)."""
    job = find(name)
    try:
        import_string(job.func)()
    finally:
        schedule(job)
