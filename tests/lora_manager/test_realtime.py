"""A real worker's events reach a websocket client through channels_redis."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from lora_manager.asgi import application
from lora_manager.runs.jobs import enqueue
from lora_manager.runs.tasks import heartbeat

pytestmark = pytest.mark.django_db(transaction=True)


def session_headers(client, user, origin="http://127.0.0.1"):
    client.force_login(user)
    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
    return [(b"origin", origin.encode()), (b"cookie", cookie.encode()), (b"host", b"127.0.0.1")]


async def receive_until(communicator, needle: str, timeout: float = 5.0) -> str:
    deadline = asyncio.get_running_loop().time() + timeout
    seen = []
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise AssertionError(f"never received {needle!r}; got {seen}")
        message = await communicator.receive_from(timeout=remaining)
        seen.append(message)
        if needle in message:
            return message


def test_worker_event_reaches_websocket_client(client, viewer, run_worker):
    headers = session_headers(client, viewer)

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/activity/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        first = await communicator.receive_from(timeout=5)
        assert 'id="activity-indicator"' in first and "Idle" in first
        await database_sync_to_async(enqueue)("default", heartbeat, 0.2, "t")
        await receive_until(communicator, "1 queued")
        await asyncio.to_thread(run_worker, "default")
        running = await receive_until(communicator, "1 running")
        assert 'id="activity-indicator"' in running
        await receive_until(communicator, "Idle")
        await communicator.disconnect()

    asyncio.run(scenario())


def test_websocket_from_another_origin_is_refused(client, viewer, redis_conn):
    headers = session_headers(client, viewer, origin="http://evil.example")

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/activity/", headers=headers)
        connected, _ = await communicator.connect()
        assert not connected

    asyncio.run(scenario())


def test_anonymous_websocket_is_refused(redis_conn):
    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/activity/", headers=[(b"origin", b"http://127.0.0.1")])
        connected, code = await communicator.connect()
        assert not connected
        assert code == 4403

    asyncio.run(scenario())
