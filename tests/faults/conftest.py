"""The fixtures every fault module shares: per module, a Redis server the module may stop and start, the
SD.Next STAND-IN, the whole `make run` stack on them, and an admin session. A module tunes them by
overriding ``standin_options`` (the stand-in's keyword arguments) or ``stack_env`` (extra environment for
the stack) with a module fixture of the same name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.faults.stack import RedisServer, Stack, running
from tests.standins.sdnext import SDNextStandIn


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def standin_options() -> dict:
    return {}


@pytest.fixture(scope="module")
def standin(standin_options) -> Iterator[SDNextStandIn]:
    server = SDNextStandIn(**standin_options).start()  # the SD.Next STAND-IN, not a real SD.Next
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack_env() -> dict[str, str]:
    return {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory, redis_server, standin, stack_env) -> Iterator[Stack]:
    with running(Stack(tmp_path_factory.mktemp("stack-data"), redis_server.url, standin.url, stack_env)) as app:
        yield app


@pytest.fixture(scope="module")
def session(stack) -> requests.Session:
    return stack.login()
