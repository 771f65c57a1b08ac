"""One Redis database, one installation.

Two installations pointed at the same Redis database would run each other's jobs (a worker takes a job
of the other, finds no row in its own database and reports success). So the web process (``bootstrap``)
and every worker (``run_worker``) claim the database for ``settings.INSTANCE`` and refuse to start when
another installation holds it. The channel layer's keys carry the instance name as well.
"""

from __future__ import annotations

import json
import time

import redis
from django.conf import settings

CLAIM_KEY = "lora_manager:installation"


class InstallationConflict(Exception):
    """The Redis database belongs to another installation; the message says what to do."""


def _description() -> dict:
    database = settings.DATABASES["default"]
    return {
        "instance": settings.INSTANCE,
        "database": f"{database['ENGINE'].rsplit('.', 1)[-1]} {database.get('HOST') or ''} {database['NAME']}".strip(),
        "data_dir": str(settings.DATA_DIR),
        "claimed_at": int(time.time()),
    }


def claim(connection: redis.Redis, force: bool = False) -> dict:
    """Claim the Redis database for this installation, or raise InstallationConflict naming the holder."""
    mine = _description()
    if force:
        connection.set(CLAIM_KEY, json.dumps(mine))
        return mine
    if connection.set(CLAIM_KEY, json.dumps(mine), nx=True):
        return mine
    raw = connection.get(CLAIM_KEY)
    try:
        holder = json.loads(raw) if raw else {}
    except ValueError:
        holder = {}
    if not isinstance(holder, dict):
        holder = {}
    if holder.get("instance") == settings.INSTANCE:
        return holder
    raise InstallationConflict(
        f"This Redis database is already used by another LoRA Manager installation "
        f"('{holder.get('instance', '?')}': {holder.get('database', 'unknown database')}, data in "
        f"{holder.get('data_dir', '?')}); this one is '{settings.INSTANCE}' ({mine['database']}). Two installations "
        "on one Redis database would run each other's jobs. Give this one its own database number "
        "(e.g. LORA_MANAGER_REDIS_URL=redis://host:6379/1), or, if the other installation is gone for good, "
        "run 'python manage.py claim_redis --force'."
    )
