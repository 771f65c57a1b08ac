import socket
from datetime import timedelta

import pytest
from django.utils import timezone
from rq import Worker
from rq.utils import utcformat

from lora_manager import system_status


@pytest.mark.django_db
def test_readyz_healthy_with_a_worker(client, redis_conn):
    worker = Worker(["default"], connection=redis_conn, name="test-worker")
    worker.register_birth()
    try:
        response = client.get("/readyz")
    finally:
        worker.register_death()
    body = response.json()
    assert response.status_code == 200, body
    assert body["ok"] is True
    assert body["database"]["ok"] and body["redis"]["ok"]
    assert body["workers"]["count"] == 1


@pytest.mark.django_db
def test_readyz_without_worker_names_it(client, redis_conn):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["workers"]
    assert response.json()["workers"]["error"] == system_status.NO_WORKER


@pytest.mark.django_db
def test_readyz_with_redis_down(client, settings):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert "redis" in body["failing"]
    assert "Redis unreachable" in body["redis"]["error"]
    assert body["database"]["ok"] is True


def test_healthz_is_plain(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.content == b"ok"


@pytest.mark.django_db
def test_readyz_counts_a_worker_only_while_its_heartbeats_are_fresh(client, redis_conn):
    """RQ keeps listing a worker for minutes after a SIGKILL; its heartbeats say whether it lives.
    A worker promising a heartbeat every 30 s is alive 20 s after the last one and dead after 50."""
    worker = Worker(["default"], connection=redis_conn, name="elsewhere-worker", worker_ttl=30)
    worker.register_birth()
    redis_conn.hset(worker.key, "hostname", "another-machine")  # no pid to check: only heartbeats tell

    def heartbeat_seconds_ago(seconds: int) -> None:  # as if time passed since a heartbeat
        redis_conn.hset(worker.key, "last_heartbeat", utcformat(timezone.now() - timedelta(seconds=seconds)))
        redis_conn.expire(worker.key, 30 + 60 - seconds)

    heartbeat_seconds_ago(20)
    assert client.get("/readyz").status_code == 200
    heartbeat_seconds_ago(50)
    assert [w.name for w in Worker.all(connection=redis_conn)] == ["elsewhere-worker"]  # still listed by RQ
    response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["workers"]["count"] == 0
    worker.heartbeat()
    assert client.get("/readyz").status_code == 200


@pytest.mark.django_db
def test_readyz_and_the_status_page_give_one_verdict(client, redis_conn, settings):
    """/readyz and /status (collect) run the same checks: the same failing parts, the same messages."""
    ready, status = client.get("/readyz").json(), system_status.collect(include_backends=False)
    assert ready["failing"] == ["workers"] and status["failing"] == ["rq"]
    assert ready["workers"]["error"] == status["rq"]["error"] == system_status.NO_WORKER
    assert ready["database"]["engine"] == status["database"]["engine"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        settings.REDIS_URL = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    ready, status = client.get("/readyz").json(), system_status.collect(include_backends=False)
    assert ready["redis"]["error"] == status["redis"]["error"]
    assert ready["workers"]["error"] == status["rq"]["error"] == system_status.REDIS_DOWN
