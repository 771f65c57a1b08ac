"""Named backends: settings, queues, server info, and a second backend taking its own jobs."""

from __future__ import annotations

import django_rq
import pytest
from django.urls import reverse

from generation import backends
from generation.models import GenerationJob
from lora_manager.env import generation_queues
from tests.generation.conftest import composition, queue_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_backends(sdnext, settings):
    settings.SDNEXT_BACKENDS = {
        "default": {"URL": sdnext.url, "USER": "", "PASSWORD": ""},
        "gpu2": {"URL": sdnext.url, "USER": "", "PASSWORD": ""},
    }
    settings.RQ_QUEUES = {**settings.RQ_QUEUES, "generation-gpu2": dict(settings.RQ_QUEUES["generation-default"])}
    return sdnext


def test_backends_from_settings_and_their_messages(settings):
    settings.SDNEXT_BACKENDS = {"default": {"URL": ""}, "gpu1": {"URL": "http://gpu1:7860", "USER": "u"}}
    assert backends.names() == ["default", "gpu1"]
    assert backends.get("gpu1") == backends.Backend("gpu1", "http://gpu1:7860", "u", "")
    assert backends.get("gpu1").queue_name == "generation-gpu1"
    with pytest.raises(backends.BackendNotConfigured, match="set LORA_MANAGER_SDNEXT_URL"):
        backends.require("default")
    with pytest.raises(
        backends.BackendNotConfigured, match=r"no SD.Next backend named 'nope' \(configured: default, gpu1\)"
    ):
        backends.get("nope")


def test_server_info_is_cached_for_a_minute(sdnext):
    info = backends.server_info("default")
    assert info.ok and info.is_standin and info.has_checkpoint("sd_xl_base_1.0") and "Euler" in info.samplers
    calls = len(sdnext.requests)
    assert backends.server_info("default") is not None and len(sdnext.requests) == calls
    backends.server_info("default", refresh=True)
    assert len(sdnext.requests) > calls


def test_server_info_reports_a_down_server(sdnext):
    sdnext.set_fault("refuse")
    info = backends.server_info("default")
    assert not info.ok and "connection refused" in info.error
    assert backends.server_info("default", cached_only=True).error == ""  # failures are not cached


def test_a_second_backend_has_its_own_queue(
    two_backends, editor_client, django_capture_on_commit_callbacks, redis_conn
):
    html = editor_client.get(reverse("generation:compose"), {"backend": "gpu2"}).content.decode()
    assert '<select id="composer-backend-name" name="backend"' in html and '<option value="gpu2" selected>' in html
    with django_capture_on_commit_callbacks(execute=True):
        queue_job(composition(backend="gpu2"))
    job = GenerationJob.objects.get()
    assert job.backend == "gpu2"
    assert django_rq.get_queue("generation-gpu2").get_job_ids() == [job.rq_job_id]
    assert django_rq.get_queue("generation-default").count == 0


def test_the_launcher_starts_a_worker_per_backend():
    env = {"LORA_MANAGER_SDNEXT_URL": "http://a:1", "LORA_MANAGER_SDNEXT_BACKENDS": "gpu1=http://b:2,gpu2=http://c:3"}
    assert generation_queues(env) == ["generation-default", "generation-gpu1", "generation-gpu2"]
    assert generation_queues({}) == ["generation-default"]
