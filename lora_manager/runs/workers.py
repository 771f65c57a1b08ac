"""RQ workers: the worker process ``run_worker`` starts (its children die with it, it heartbeats often,
a killed work-horse fails its row at once) and how the app tells a live worker and a job's fate.

The process: RQ forks a work-horse per job (in its own process group) and a scheduler process. When
the worker is killed outright (kill -9, the OOM killer) they used to live on as orphans: a horse
finished a job after the app had stopped. Every direct child of the worker asks the kernel for SIGKILL
when the worker dies (Linux ``PR_SET_PDEATHSIG``); processes the horse forks itself are left alone.

Liveness: a worker's key in Redis outlives a SIGKILL by minutes (RQ lets it expire ``worker_ttl + 60`` s
after the last heartbeat), so "listed by RQ" is not "alive": a worker counts as alive while its last
heartbeat is within the interval it promised (+ a grace for a loaded machine) and, when it runs on
this machine, while its process exists.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connections
from django.utils import timezone
from redis import Redis
from rq import Worker as RQWorker
from rq.callbacks import execute_failure_callback
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from lora_manager import installation

log = logging.getLogger(__name__)

HEARTBEAT_GRACE_SECONDS = 15  # a busy 2-core machine may send a heartbeat a little late
ENQUEUE_GRACE = timedelta(seconds=60)  # a row is written before its RQ job is enqueued (on commit)
LOCAL_PREFIX = "local:"  # rq_job_id of a run executed in-process by a command: "local:<host>:<pid>"
PR_SET_PDEATHSIG = 1
_hooked_in: int | None = None


class WorkHorseKilled(Exception):
    """The process running a job died (SIGKILL, out of memory) while its worker lived on."""


def _die_with(parent_pid: int) -> None:
    if os.getppid() != parent_pid:
        return  # a grandchild (forked by the horse): not ours to tie
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the worker died between fork and prctl
        os._exit(1)


def tie_children_to_this_process() -> None:
    """From now on, each process this one forks is killed when this one dies (once per process)."""
    global _hooked_in
    if not sys.platform.startswith("linux") or _hooked_in == os.getpid():
        return
    _hooked_in = os.getpid()
    parent = os.getpid()
    os.register_at_fork(after_in_child=lambda: _die_with(parent))


class Worker(RQWorker):
    """RQ's forking worker as ``run_worker`` starts it, tuned for the janitor's rules:

    - its work-horse and scheduler never outlive it (``tie_children_to_this_process``);
    - heartbeats at least every ``WORKER_TTL - 15`` s when idle and every ``WORKER_TTL / 3`` s while a
      job runs (RQ's defaults, 405 s and 30 s, would make a live worker look dead);
    - registers again when Redis comes back without its data (restarted, flushed): RQ retries the
      connection by itself, but its registration would be gone, so /readyz and /status would see no worker;
    - when a work-horse dies, the job's own failure callback runs at once (RQ only moves the job
      to its failed registry), so the run or generation row says what happened;
    - closes the database connections before forking, so a horse never shares the parent's socket;
    - retries a lost Redis at least every ``max_connection_wait_time`` seconds (RQ's default, 60 s, made a
      worker that started its longest wait just before Redis came back miss the "within a minute");
    - claims the Redis database again for this installation when Redis came back empty (the claim went
      with the data), and stops when another installation took it meanwhile (the supervisor restarts it,
      and ``run_worker`` then refuses with the message that says what to do).
    """

    max_connection_wait_time = 15.0

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("worker_ttl", settings.WORKER_TTL)
        kwargs.setdefault("job_monitoring_interval", max(1, settings.WORKER_TTL // 3))
        super().__init__(*args, **kwargs)

    def work(self, *args, **kwargs):
        tie_children_to_this_process()
        return super().work(*args, **kwargs)

    def heartbeat(self, timeout: int | None = None, pipeline=None):
        if pipeline is None and not self.connection.exists(self.key):
            self.log.warning(
                "Worker %s: its registration is gone from Redis (restarted?): registering again", self.name
            )
            self.claim_redis_again()
            self.register_birth()
        return super().heartbeat(timeout, pipeline)

    def claim_redis_again(self) -> None:
        """Redis lost this installation's claim with the rest of its data: claim it again, so a second
        installation started now is refused; if one already took it, stop rather than run its jobs."""
        try:
            installation.claim(self.connection)
        except installation.InstallationConflict as exc:
            self.log.error("Worker %s: stopping: %s", self.name, exc)
            raise SystemExit(1) from exc

    def fork_work_horse(self, job, queue) -> None:
        connections.close_all()
        super().fork_work_horse(job, queue)

    def handle_work_horse_killed(self, job, retpid, ret_val, rusage) -> None:
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        how = f"signal {os.WTERMSIG(ret_val)}" if os.WIFSIGNALED(ret_val) else f"exit status {ret_val >> 8}"
        if os.WIFSIGNALED(ret_val) and os.WTERMSIG(ret_val) == 9:
            how = "SIGKILL: out of memory, or killed by hand"
        error = WorkHorseKilled(how)
        try:
            execute_failure_callback(job, self.death_penalty_class, WorkHorseKilled, error, None)
        except Exception:
            log.exception("the failure callback of job %s raised after its work-horse died", job.id)
        finally:
            connections.close_all()


def heartbeat_is_fresh(worker: RQWorker, now=None) -> bool:
    """Did the worker send a heartbeat within the interval it promised (+ a grace)?

    With every heartbeat RQ sets the expiry of the worker's key to the promised interval + 60 s
    (idle: ``worker_ttl``; a forking worker running a job: its monitoring interval; a SimpleWorker
    running a job: the job's timeout), so expiry + age since the heartbeat - 60 is that promise."""
    if worker.last_heartbeat is None or worker.connection.hexists(worker.key, "death"):
        return False
    age = ((now or timezone.now()) - worker.last_heartbeat).total_seconds()
    expires_in = worker.connection.ttl(worker.key)
    if expires_in == -2:  # the key is gone: RQ itself gave up on this worker
        return False
    promised = expires_in + age - 60 if expires_in >= 0 else settings.WORKER_TTL
    return age <= max(promised, 1) + HEARTBEAT_GRACE_SECONDS


def process_exists(hostname: str | None, pid: int | None) -> bool:
    """False only when the process ran on this machine and is gone (elsewhere: we cannot tell)."""
    if not pid or hostname != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_alive(worker: RQWorker) -> bool:
    return heartbeat_is_fresh(worker) and process_exists(worker.hostname, worker.pid)


def worker_alive(name: str | None, connection: Redis) -> bool:
    if not name:
        return False
    worker = RQWorker.find_by_key(RQWorker.redis_worker_namespace_prefix + name, connection=connection)
    return worker is not None and is_alive(worker)


def live_workers(connection: Redis) -> list[RQWorker]:
    """RQ's registered workers whose heartbeat is fresh and whose process (if local) still runs."""
    return [worker for worker in RQWorker.all(connection=connection) if is_alive(worker)]


def local_job_id() -> str:
    """The rq_job_id of a run executed in this process (a command), so the janitor can ask whether it runs."""
    return f"{LOCAL_PREFIX}{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Fate:
    """Why a row whose job is no longer alive must be failed: ``stopped`` (the worker died), ``killed``
    (its work-horse died), ``lost`` (the job vanished before it started) or ``failed`` (RQ failed it)."""

    kind: str
    detail: str = ""


def job_fate(rq_job_id: str, connection: Redis, *, running: bool, created_at) -> Fate | None:
    """None while the RQ job can still settle its row itself; else what happened to it."""
    if rq_job_id.startswith(LOCAL_PREFIX):
        hostname, _, pid = rq_job_id[len(LOCAL_PREFIX) :].rpartition(":")
        return None if process_exists(hostname, int(pid or 0)) else Fate("stopped", "its command stopped")
    young = timezone.now() - created_at < ENQUEUE_GRACE
    if not rq_job_id:
        return None if young else Fate("lost")
    try:
        job = Job.fetch(rq_job_id, connection=connection)
    except NoSuchJobError:
        if young and not running:
            return None
        return Fate("stopped") if running else Fate("lost")
    status = job.get_status(refresh=False)
    if status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
        return Fate("stopped") if running else None  # a RUNNING row whose job was put back: never run twice
    if status == JobStatus.STARTED:
        return None if worker_alive(job.worker_name, connection) else Fate("stopped")
    if status == JobStatus.FAILED:
        return _failure(job)
    return Fate("stopped") if running else Fate("lost")  # finished, stopped or cancelled, row still active


def _failure(job: Job) -> Fate:
    result = job.latest_result()
    text = (result.exc_string or "") if result is not None else ""
    if "Work-horse terminated unexpectedly" in text:
        return Fate("killed", "SIGKILL: out of memory, or killed by hand" if "signal 9" in text else "")
    if "AbandonedJobError" in text:
        return Fate("stopped")
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return Fate("failed", lines[-1].strip()[:300] if lines else "")
