"""Shared fixtures: real Redis (flushed per test that uses it), real RQ workers, users per role."""

from __future__ import annotations

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
