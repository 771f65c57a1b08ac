"""One Redis database, one installation: a second installation is refused with a clear message, and the
channel layer's keys carry the installation's name (real Redis, real channels_redis layers)."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from lora_manager import env, installation
from lora_manager.runs import workers


def test_the_first_installation_claims_redis_and_a_second_one_is_refused(redis_conn, settings):
    settings.INSTANCE = "studio"
    assert installation.claim(redis_conn)["instance"] == "studio"
    assert installation.claim(redis_conn)["instance"] == "studio"  # the same installation again: fine

    settings.INSTANCE = "laptop"
    with pytest.raises(installation.InstallationConflict) as refused:
        installation.claim(redis_conn)
    message = str(refused.value)
    assert "'studio'" in message and "'laptop'" in message and "claim_redis --force" in message

    assert installation.claim(redis_conn, force=True)["instance"] == "laptop"  # the old one is gone for good
    settings.INSTANCE = "studio"
    with pytest.raises(installation.InstallationConflict):
        installation.claim(redis_conn)


@pytest.mark.django_db
def test_workers_and_the_web_process_refuse_to_start_on_another_installations_redis(redis_conn, settings):
    settings.INSTANCE = "other-one"
    installation.claim(redis_conn)
    settings.INSTANCE = "this-one"
    with pytest.raises(CommandError, match="already used by another LoRA Manager installation"):
        call_command("run_worker")
    with pytest.raises(CommandError, match="already used by another LoRA Manager installation"):
        call_command("bootstrap")
    with pytest.raises(CommandError, match="already used"):
        call_command("claim_redis")
    call_command("claim_redis", "--force")
    assert installation.claim(redis_conn)["instance"] == "this-one"


def test_two_installations_channel_groups_do_not_see_each_others_events(redis_conn):
    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]

    async def scenario() -> tuple[dict, bool]:
        mine = RedisChannelLayer(hosts=config["hosts"], prefix="lora_manager:studio:")
        theirs = RedisChannelLayer(hosts=config["hosts"], prefix="lora_manager:laptop:")
        channel = await mine.new_channel()
        await mine.group_add("activity", channel)
        await theirs.group_send("activity", {"type": "activity.update", "from": "laptop"})
        await mine.group_send("activity", {"type": "activity.update", "from": "studio"})
        received = await asyncio.wait_for(mine.receive(channel), 5)
        try:
            await asyncio.wait_for(mine.receive(channel), 1)
            leaked = True
        except TimeoutError:
            leaked = False
        await mine.flush()
        await theirs.flush()
        return received, leaked

    received, leaked = asyncio.run(scenario())
    assert received["from"] == "studio" and not leaked


def test_the_instance_name_defaults_to_one_derived_from_the_database():
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "NAME": "/data/a/lora_manager.sqlite3"}
    other = {"ENGINE": "django.db.backends.sqlite3", "NAME": "/data/b/lora_manager.sqlite3"}
    assert env.instance_name("", sqlite) == env.instance_name("", dict(sqlite))
    assert env.instance_name("", sqlite) != env.instance_name("", other)
    assert env.instance_name(" home ", sqlite) == "home"
    with pytest.raises(ImproperlyConfigured, match="LORA_MANAGER_INSTANCE"):
        env.instance_name("two words", sqlite)
    assert settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] == f"lora_manager:{settings.INSTANCE}:"


def test_a_worker_claims_redis_again_when_it_came_back_empty_and_stops_if_another_installation_took_it(
    redis_conn, settings
):
    """A Redis restarted without persistence loses the claim with the rest. The worker noticed its own
    registration was gone and registered again, but left the claim gone, so a second installation started
    then was let in and the two ran each other's jobs (seen by hand with `make run`)."""
    settings.INSTANCE = "studio"
    installation.claim(redis_conn)
    worker = workers.Worker(["default"], connection=redis_conn)
    worker.register_birth()

    redis_conn.flushdb()  # Redis restarted empty
    worker.heartbeat()
    assert redis_conn.exists(worker.key)
    assert json.loads(redis_conn.get(installation.CLAIM_KEY))["instance"] == "studio"
    settings.INSTANCE = "laptop"
    with pytest.raises(installation.InstallationConflict):  # a second installation is refused again
        installation.claim(redis_conn)

    settings.INSTANCE = "studio"
    redis_conn.flushdb()
    redis_conn.set(installation.CLAIM_KEY, json.dumps({"instance": "laptop"}))  # it came first this time
    with pytest.raises(SystemExit):  # this worker stops instead of running the other's jobs
        worker.heartbeat()


def test_a_worker_retries_a_lost_redis_often_enough_to_be_back_within_a_minute():
    """RQ doubles its wait between connection attempts up to 60 s: a worker that began that wait just before
    Redis came back stayed away for a minute (54 s seen by hand). Capped, it is back within 15 s."""
    assert workers.Worker.max_connection_wait_time <= 15


@pytest.mark.django_db
def test_a_worker_started_while_redis_is_down_says_so_in_one_line(settings):
    """Under make run the supervisor restarts a worker that exits; while Redis was down each restart printed
    the claim's ConnectionError traceback (seen by hand). Now a CommandError: one line, exit status 1."""
    settings.RQ_QUEUES = {"default": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 60}}
    with pytest.raises(CommandError, match=r"Redis is not reachable .* the worker cannot start"):
        call_command("run_worker", "default")
