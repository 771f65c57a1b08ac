"""A real worker's events reach a websocket client through channels_redis."""

import asyncio
import copy
import socket

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


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def redis_down_channel_layer(settings):
    """The channel layer pointed at a port where no Redis listens: a real connection refused, as in an outage."""
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    layers["default"]["CONFIG"]["hosts"][0]["address"] = f"redis://127.0.0.1:{_closed_port()}/0"
    settings.CHANNEL_LAYERS = layers  # channels drops its cached layer on setting_changed
    yield


def test_a_handshake_while_redis_is_down_is_refused_without_a_traceback(client, viewer, redis_down_channel_layer):
    """Channels reads the channel layer beside the browser's messages; with Redis down that read fails. It used to
    escape to daphne as an "Exception inside application" traceback per refused handshake (an outage filled the
    log, the browser retrying each socket): the consumer now ends cleanly with a warning."""
    headers = session_headers(client, viewer)

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/activity/", headers=headers)
        connected, _ = await communicator.connect(timeout=10)
        assert not connected
        await communicator.wait(timeout=10)  # re-raises whatever the application raised
        assert communicator.future.done() and communicator.future.exception() is None

    asyncio.run(scenario())
