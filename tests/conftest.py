"""Shared fixtures: real Redis (flushed per test that uses it), real RQ workers, users per role."""

from __future__ import annotations

import os

import django_rq
import pytest
from django.contrib.auth import get_user_model
from rq import SimpleWorker
from rq.timeouts import TimerDeathPenalty

from lora_manager.roles import ADMIN, EDITOR, VIEWER, set_role


@pytest.fixture
def redis_conn():
    """The suite's own Redis database, emptied before the test."""
    connection = django_rq.get_connection("default")
    connection.flushdb()
    yield connection
    connection.flushdb()


class InProcessWorker(SimpleWorker):
    """A real RQ worker that runs jobs in this process; it may run off the main thread (no signals)."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:
        pass


@pytest.fixture
def run_worker(redis_conn):
    """Drain the queues with a real RQ worker in this process (SimpleWorker: no fork)."""

    def drain(*queue_names: str) -> SimpleWorker:
        names = queue_names or ("default", "embeddings")
        queues = [django_rq.get_queue(name) for name in names]
        worker = InProcessWorker(queues, connection=redis_conn)
        worker.work(burst=True)
        return worker

    return drain


@pytest.fixture
def start_worker(redis_conn, tmp_path):
    """Start real forking ``run_worker`` processes (tests/standins/held_worker.py) on the test database and
    Redis; they and their work-horses are stopped at the end. Needs ``django_db(transaction=True)``."""
    from django.conf import settings

    from tests.standins.held_worker import HeldWorker, database_url

    started: list[HeldWorker] = []

    def start(*queues: str, **env: str) -> HeldWorker:
        environment = {
            **os.environ,
            "LORA_MANAGER_DATABASE_URL": database_url(),
            "LORA_MANAGER_REDIS_URL": settings.REDIS_URL,
            "LORA_MANAGER_DATA_DIR": str(tmp_path / "worker-data"),
            "LORA_MANAGER_RESCAN_INTERVAL_MINUTES": "0",
            "LORA_MANAGER_BACKUP_INTERVAL_HOURS": "0",
            "LORA_MANAGER_WORKER_TTL": "16",  # idle heartbeats every second
            "DJANGO_SETTINGS_MODULE": "lora_manager.settings",
            **env,
        }
        environment.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        n = len(started)
        worker = HeldWorker(tmp_path / f"hold-{n}", environment, list(queues), tmp_path / f"worker-{n}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def make_user(username: str, role: str):
    user = get_user_model().objects.create_user(username, password="pw-" + username + "-1234")
    set_role(user, role)
    return user


@pytest.fixture
def viewer(db):
    return make_user("vera", VIEWER)


@pytest.fixture
def editor(db):
    return make_user("eddie", EDITOR)


@pytest.fixture
def admin_user(db):
    return make_user("ada", ADMIN)


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def editor_client(client, editor):
    client.force_login(editor)
    return client
