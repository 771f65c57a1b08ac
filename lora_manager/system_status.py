"""Is everything running? Database, Redis, RQ, each SD.Next backend, GPU, embeddings, disks, schedules.

Every check answers quickly and never raises: a service that is down is reported with a message a
person can act on (what is down, at which address). The status page, the staff JSON
(``/status.json``) and ``GET /api/v1/status`` all call ``collect``; ``/readyz`` calls ``readiness``,
the same database, Redis and worker checks without the slow parts (SD.Next, disks, schedules).
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection as db_connection
from redis import Redis
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from lora_manager.runs import periodic
from lora_manager.runs import workers as live_workers

NO_WORKER = "No RQ worker is alive (none sends heartbeats): start one with 'manage.py run_worker'."
REDIS_DOWN = "Redis is down"


def redis_connection() -> Redis:
    """A connection with short timeouts, so a check answers even when Redis hangs."""
    return Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def database_status() -> dict[str, Any]:
    """A round trip, and the catalog's triggers: missing ones leave search, duplicates and counts stale,
    which no error would show (the database still answers), so they are named here as a warning."""
    from adapters import derived

    started = time.perf_counter()
    try:
        with db_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"ok": False, "error": f"Database unreachable: {exc}"}
    result = {"ok": True, "engine": db_connection.vendor, "latency_ms": _ms_since(started)}
    missing = derived.missing_triggers(db_connection)
    if missing:
        result["missing_triggers"] = missing
        result["warning"] = f"{len(missing)} catalog trigger(s) missing ({', '.join(missing)}): {derived.TRIGGER_FIX}."
    return result


def redis_status(details: bool = True) -> dict[str, Any]:
    """A ping (its round trip), and with ``details`` the version and memory the status page shows."""
    started = time.perf_counter()
    try:
        client = redis_connection()
        client.ping()
        latency = _ms_since(started)
        memory = client.info("memory") if details else {}
        server = client.info("server") if details else {}
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"ok": False, "error": f"Redis unreachable at {settings.REDIS_URL}: {exc}"}
    if not details:
        return {"ok": True, "latency_ms": latency}
    return {
        "ok": True,
        "latency_ms": latency,
        "version": server.get("redis_version", ""),
        "used_memory_bytes": memory.get("used_memory", 0),
        "used_memory_human": memory.get("used_memory_human", ""),
        "maxmemory_bytes": memory.get("maxmemory", 0),
    }


def worker_status() -> dict[str, Any]:
    """Workers whose heartbeats are fresh (a SIGKILLed worker stays listed by RQ for minutes: not alive)."""
    try:
        alive = live_workers.live_workers(redis_connection())
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "count": 0, "error": f"Cannot list the workers: {exc}"}
    if not alive:
        return {"ok": False, "count": 0, "error": NO_WORKER}
    return {"ok": True, "count": len(alive), "names": sorted(w.name for w in alive)}


def readiness() -> dict[str, Any]:
    """What ``/readyz`` answers: can this instance serve and run jobs (database, Redis, a live worker)?"""
    checks = {"database": database_status(), "redis": redis_status(details=False)}
    checks["workers"] = worker_status() if checks["redis"]["ok"] else {"ok": False, "count": 0, "error": REDIS_DOWN}
    failing = [name for name, result in checks.items() if not result["ok"]]
    return {"ok": not failing, "failing": failing, **checks}


def rq_status() -> dict[str, Any]:
    """Workers and, per queue, how many jobs wait, run and failed (link: the django-rq dashboard)."""
    try:
        connection = redis_connection()
        workers = Worker.all(connection=connection)
        queues = []
        for name in settings.RQ_QUEUES:
            queue = Queue(name, connection=connection)
            queues.append(
                {
                    "name": name,
                    "queued": queue.count,
                    "started": StartedJobRegistry(queue=queue).count,
                    "failed": FailedJobRegistry(queue=queue).count,
                    "scheduled": ScheduledJobRegistry(queue=queue).count,
                }
            )
        worker_rows = [
            {
                "name": w.name,
                "alive": live_workers.is_alive(w),
                "state": w.get_state() if live_workers.is_alive(w) else "gone (no heartbeat)",
                "queues": w.queue_names(),
                "current_job": w.get_current_job_id() or "",
            }
            for w in workers
        ]
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "error": f"cannot read the queues: {exc}", "workers": [], "queues": []}
    alive = [row for row in worker_rows if row["alive"]]
    problem = "" if alive else NO_WORKER
    return {
        "ok": bool(alive),
        "error": problem,
        "workers": sorted(worker_rows, key=lambda w: w["name"]),
        "queues": queues,
        "dashboard_url": "/admin/rq/",
    }


def backend_status(name: str) -> dict[str, Any]:
    """One SD.Next backend: reachable, version, loaded checkpoint, busy or idle and current progress."""
    from generation import backends
    from generation.sdnext import SDNextError

    try:
        backend = backends.require(name)
    except backends.BackendNotConfigured as exc:
        return {"name": name, "ok": False, "configured": False, "error": str(exc)}
    api = backends.client(backend, read_timeout=3.0, retries=0)
    try:
        version = api.version()
        checkpoint = api.current_checkpoint()
        progress = api.progress()
    except SDNextError as exc:
        return {"name": name, "ok": False, "configured": True, "url": backend.url, "error": str(exc)}
    state = progress.get("state") if isinstance(progress.get("state"), dict) else {}
    # Idle ⇔ state.job == "" (docs/sdnext-contract.md §7): after a job `progress` stays at its last value, even 1.0.
    busy = bool(str(state.get("job") or "").strip())
    return {
        "name": name,
        "ok": True,
        "configured": True,
        "url": backend.url,
        "version": version,
        "checkpoint": checkpoint.get("title") or checkpoint.get("model_name") or checkpoint.get("name") or "",
        "busy": busy,
        "progress": float(progress.get("progress") or 0),
        "job": str(state.get("job") or ""),
        "eta_seconds": progress.get("eta_relative"),
        "error": "",
    }


def gpu_status() -> dict[str, Any]:
    """The CUDA device and its memory, or "CPU only" (torch is imported once per process, on first ask)."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a requirement
        return {"cuda": False, "summary": "CPU only (torch is not installed)"}
    if not torch.cuda.is_available():
        return {"cuda": False, "summary": "CPU only"}
    free, total = torch.cuda.mem_get_info()
    name = torch.cuda.get_device_name(0)
    return {
        "cuda": True,
        "device": name,
        "memory_used_bytes": total - free,
        "memory_total_bytes": total,
        "summary": name,
    }


def embedding_status() -> dict[str, Any]:
    from recommendations import status

    overview = status.overview()
    run = overview.get("run")
    return {
        "ok": overview["ready"],
        "model": overview["model"],
        "index": overview["index"],
        "stale_index": overview["stale_index"],
        "embedded": overview["embedded"],
        "adapters": overview["adapters"],
        "problem": overview["unavailable"] or "",
        "last_run": {"id": run.pk, "status": run.status, "message": run.message} if run else None,
    }


def backup_dir() -> Path:
    """Where backups go (LORA_MANAGER_BACKUP_DIR)."""
    return Path(settings.BACKUP_DIR)


def _disk(label: str, path: Path) -> dict[str, Any]:
    probe = path
    while not probe.exists() and probe != probe.parent:  # a directory not made yet: its volume
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError as exc:
        return {"label": label, "path": str(path), "ok": False, "error": str(exc)}
    return {
        "label": label,
        "path": str(path),
        "ok": True,
        "exists": path.exists(),
        "free_bytes": usage.free,
        "total_bytes": usage.total,
    }


def disk_status() -> list[dict[str, Any]]:
    from adapters.models import LibraryRoot

    paths = [("data", Path(settings.DATA_DIR))]
    library = {str(p) for p in settings.LIBRARY_DIRS} | set(LibraryRoot.objects.values_list("path", flat=True))
    paths += [("library", Path(p)) for p in sorted(library)]
    paths.append(("backups", backup_dir()))
    return [_disk(label, path) for label, path in paths]


def _next_scheduled(prefix: str) -> str | None:
    """When RQ's scheduler next runs a job whose id starts with ``prefix`` (None: nothing scheduled)."""
    connection = redis_connection()
    registry = ScheduledJobRegistry(queue=Queue("default", connection=connection))
    scores = [connection.zscore(registry.key, job_id) for job_id in registry.get_job_ids() if job_id.startswith(prefix)]
    times = [datetime.fromtimestamp(score, tz=UTC) for score in scores if score is not None]
    return min(times).isoformat() if times else None


def schedule_status() -> dict[str, Any]:
    """Last and next periodic rescan and backup (the next ones are RQ scheduled jobs)."""
    from adapters.models import ScanRun
    from archive.backups import list_backups

    last_scan = ScanRun.objects.exclude(finished_at__isnull=True).order_by("-finished_at").first()
    result: dict[str, Any] = {
        "rescan": {
            "interval_minutes": settings.RESCAN_INTERVAL_MINUTES,
            "last": last_scan.finished_at.isoformat() if last_scan else None,
            "last_status": last_scan.status if last_scan else None,
            "next": None,
        },
        "backup": {"interval_hours": settings.BACKUP_INTERVAL_HOURS, "last": None, "last_name": None, "next": None},
    }
    try:
        newest = next(iter(list_backups()), None)
        if newest:
            result["backup"]["last"] = newest.created_at.astimezone(UTC).isoformat()
            result["backup"]["last_name"] = newest.name
    except OSError as exc:
        result["backup"]["error"] = f"cannot read the backup folder: {exc}"
    try:
        result["rescan"]["next"] = _next_scheduled(periodic.find("rescan").job_prefix)
        result["backup"]["next"] = _next_scheduled(periodic.find("backup").job_prefix)
    except Exception as exc:  # noqa: BLE001
        result["error"] = f"cannot read the schedule from Redis: {exc}"
    return result


def collect(include_backends: bool = True) -> dict[str, Any]:
    """Every check; ``ok`` is false when the database, Redis, the workers or a configured backend is down."""
    from generation import backends

    database = database_status()
    redis = redis_status()
    rq = rq_status() if redis["ok"] else {"ok": False, "error": REDIS_DOWN, "workers": [], "queues": []}
    sdnext = [backend_status(name) for name in backends.names()] if include_backends else []
    failing = [name for name, part in (("database", database), ("redis", redis), ("rq", rq)) if not part["ok"]]
    failing += [f"sdnext:{b['name']}" for b in sdnext if b.get("configured") and not b["ok"]]
    return {
        "ok": not failing,
        "failing": failing,
        "checked_at": datetime.now(UTC).isoformat(),
        "database": database,
        "redis": redis,
        "rq": rq,
        "sdnext": sdnext,
        "gpu": gpu_status(),
        "embeddings": embedding_status(),
        "disks": disk_status(),
        "schedule": schedule_status(),
    }


def public_summary(status: dict[str, Any]) -> dict[str, Any]:
    """What non-staff users see: each part's state (up / down / busy), no paths, ids, versions or errors
    (those can name hosts, folders and workers); staff get ``collect()`` whole."""

    def state(ok: bool) -> str:
        return "up" if ok else "down"

    parts = [
        {"id": "database", "name": "Database", "state": state(status["database"]["ok"])},
        {"id": "redis", "name": "Redis", "state": state(status["redis"]["ok"])},
        {"id": "rq", "name": "Workers and queues", "state": state(status["rq"]["ok"])},
    ]
    for backend in status["sdnext"]:
        if backend.get("configured", True):
            busy = backend["ok"] and backend.get("busy")
            parts.append(
                {
                    "id": f"backend-{backend['name']}",
                    "name": f"SD.Next “{backend['name']}”",
                    "state": "busy" if busy else state(backend["ok"]),
                }
            )
    embeddings_ok = not status["embeddings"].get("problem")
    parts.append({"id": "embeddings", "name": "Recommendations", "state": state(embeddings_ok)})
    down = [part["name"] for part in parts if part["state"] == "down"]
    return {"ok": status["ok"], "down": down, "parts": parts}
