"""Named SD.Next backends from settings, their clients, their queues and a per-backend run lock.

"default" is LORA_MANAGER_SDNEXT_URL (+ _USER/_PASSWORD); more come from LORA_MANAGER_SDNEXT_BACKENDS.
Each backend has its own RQ queue ``generation-<name>``; SD.Next runs one job at a time, so one job per
backend at a time is also what we run, which keeps queue positions honest. The Redis lock below holds
that true even when several workers listen on the same queue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import django_rq
from django.conf import settings
from django.core.cache import cache
from redis.exceptions import LockError
from redis.lock import Lock

from generation import conf
from generation.models import GenerationJob
from generation.sdnext import SDNextClient, SDNextError

logger = logging.getLogger(__name__)

INFO_CACHE_SECONDS = 60
LOCK_TTL_SECONDS = 60  # renewed on every progress poll; a killed worker frees its backend this soon after


DELIVERY_QUEUE = "default"  # deliveries (webhook, command) never touch SD.Next: they run beside other work


def queue_name_of(job: GenerationJob) -> str:
    """The RQ queue a generation job is enqueued on, and so where cancel and the janitor look for it:
    a delivery on ``DELIVERY_QUEUE``, a generation on its backend's queue (``BackendNotConfigured`` when
    that backend is no longer configured)."""
    if job.target_id is not None:
        return DELIVERY_QUEUE
    return get(job.backend).queue_name


class BackendNotConfigured(Exception):
    """The backend has no URL (or does not exist): the message tells the user which variable to set."""


@dataclass(frozen=True)
class Backend:
    name: str
    url: str
    user: str = ""
    password: str = ""

    @property
    def queue_name(self) -> str:
        return f"generation-{self.name}"

    @property
    def configured(self) -> bool:
        return bool(self.url)

    @property
    def not_configured_message(self) -> str:
        if self.name == "default":
            return "SD.Next is not configured: set LORA_MANAGER_SDNEXT_URL (e.g. http://127.0.0.1:7860)."
        return f"SD.Next backend '{self.name}' has no URL: fix it in LORA_MANAGER_SDNEXT_BACKENDS."


@dataclass
class ServerInfo:
    """What the composer needs from a backend; `error` is a user-facing message when it cannot be read."""

    backend: str
    ok: bool
    error: str = ""
    version: dict = field(default_factory=dict)
    checkpoints: list[dict] = field(default_factory=list)
    current: dict = field(default_factory=dict)
    samplers: list[str] = field(default_factory=list)

    @property
    def is_standin(self) -> bool:
        return "stand-in" in str(self.version.get("app", ""))

    def has_checkpoint(self, name: str) -> bool:
        return any(name in (c.get("title"), c.get("model_name"), c.get("filename")) for c in self.checkpoints)


def all_backends() -> dict[str, Backend]:
    return {
        name: Backend(name, conf.get("URL", ""), conf.get("USER", ""), conf.get("PASSWORD", ""))
        for name, conf in settings.SDNEXT_BACKENDS.items()
    }


def names() -> list[str]:
    return list(settings.SDNEXT_BACKENDS)


def get(name: str) -> Backend:
    backend = all_backends().get(name)
    if backend is None:
        known = ", ".join(names())
        raise BackendNotConfigured(f"There is no SD.Next backend named '{name}' (configured: {known}).")
    return backend


def require(name: str) -> Backend:
    """The backend, or BackendNotConfigured with the message to show when it has no URL."""
    backend = get(name)
    if not backend.configured:
        raise BackendNotConfigured(backend.not_configured_message)
    return backend


def client(backend: Backend, **options: float | int) -> SDNextClient:
    """A new client (one per thread: requests sessions are not thread-safe)."""
    options.setdefault("generate_timeout", settings.SDNEXT_TIMEOUT)
    options.setdefault("backoff", conf.retry_backoff())
    return SDNextClient(backend.url, backend.user, backend.password, **options)


def quick_client(backend: Backend) -> SDNextClient:
    """For page loads: fail fast rather than keep a page waiting on an unhealthy server."""
    return client(backend, read_timeout=5.0, retries=0)


def server_info(name: str, *, refresh: bool = False, cached_only: bool = False) -> ServerInfo:
    """Version, checkpoints, loaded checkpoint and samplers, cached for a minute per backend."""
    key = f"generation:server-info:{name}"
    info = None if refresh else cache.get(key)
    if info is not None or cached_only:
        return info or ServerInfo(name, ok=False, error="")
    try:
        backend = require(name)
    except BackendNotConfigured as exc:
        return ServerInfo(name, ok=False, error=str(exc))
    api = quick_client(backend)
    try:
        info = ServerInfo(
            name,
            ok=True,
            version=api.version(),
            checkpoints=api.checkpoints(),
            current=api.current_checkpoint(),
            samplers=api.samplers(),
        )
    except SDNextError as exc:
        return ServerInfo(name, ok=False, error=str(exc))
    cache.set(key, info, INFO_CACHE_SECONDS)
    return info


def queue(backend: Backend):
    return django_rq.get_queue(backend.queue_name)


def run_lock(backend: Backend) -> Lock:
    """The lock a worker holds while a job of this backend runs (renew with `extend` while it runs)."""
    connection = django_rq.get_connection(backend.queue_name)
    key = f"lora_manager:generation-lock:{backend.name}"
    return Lock(connection, key, timeout=LOCK_TTL_SECONDS, thread_local=False)


def lock_token(job_id: int) -> str:
    """The backend lock's value while generation ``job_id`` holds it, so a dead job's lock can be freed."""
    return f"generation-{job_id}"


def acquire(lock: Lock, give_up: Callable[[], bool], poll: float = 0.5, token: str | None = None) -> bool:
    """Wait for the backend; False when `give_up()` says so first (say the job was cancelled meanwhile)."""
    while not lock.acquire(blocking=False, token=token):
        if give_up():
            return False
        time.sleep(poll)
    return True


def free_lock_of_dead_job(job_id: int) -> bool:
    """Release the backend lock if (and only if) generation ``job_id``, whose process died, still holds it."""
    row = GenerationJob.objects.filter(pk=job_id).values("backend", "target_id").first()
    if row is None or row["target_id"] is not None:
        return False
    try:
        lock = run_lock(get(row["backend"]))
        lock.local.token = lock.redis.get_encoder().encode(lock_token(job_id))
        lock.release()
    except (LockError, BackendNotConfigured, KeyError):
        return False
    except Exception:  # noqa: BLE001 - Redis down: the lock expires by itself within LOCK_TTL_SECONDS
        return False
    return True
