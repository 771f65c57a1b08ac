"""The Civitai client against the STAND-IN: pacing, 429 / Retry-After, 5xx and timeouts, bad answers."""

from __future__ import annotations

import hashlib
import itertools
import socket
import threading
import time

import pytest

from adapters.civitai import Cancelled, CivitaiClient, CivitaiError, CivitaiUnreachable, retry_after_seconds
from tests.adapters.civitai_fixtures import fast_client
from tests.standins.civitai import LABEL, CivitaiStandIn, StandInLora

SHA = hashlib.sha256(b"some lora").hexdigest()
TENSOR = hashlib.sha256(b"some tensors").hexdigest()


@pytest.fixture
def standin():
    server = CivitaiStandIn().start()
    server.add_lora(StandInLora(SHA, TENSOR, name="Ink", newer_version=True))
    yield server
    server.stop()


def test_by_hash_any_case_and_length(standin):
    client = fast_client(standin)
    for digest in (SHA, SHA.upper(), SHA[:10], SHA[:10].upper(), TENSOR[:12].upper()):
        version = client.version_by_hash(digest)
        assert version is not None and version["model"]["name"] == "Ink", digest
        assert version["standIn"] == LABEL  # labelled as a stand-in in every answer
    assert client.version_by_hash("0" * 64) is None  # 404 {"error": "Model not found"}
    model = client.model(version["modelId"])
    assert [v["name"] for v in model["modelVersions"]] == ["v2.0", "v1.0"]  # newest first


def test_requests_to_a_host_are_spaced_by_the_minimum_interval(standin):
    client = fast_client(standin, min_interval=0.2)
    for _ in range(4):
        client.version_by_hash(SHA)
    starts = [r["at"] for r in standin.requests]
    assert len(starts) == 4
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.19


def test_429_waits_for_retry_after_and_resumes(standin):
    standin.set_fault("429", times=2, retry_after="1")
    client = fast_client(standin)
    began = time.monotonic()
    assert client.version_by_hash(SHA) is not None
    assert time.monotonic() - began >= 1.9  # two waits of Retry-After: 1
    assert len(standin.requests) == 3


def test_retry_after_as_http_date():
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", 5.0) == 0.0
    assert retry_after_seconds("12", 5.0) == 12.0
    assert retry_after_seconds("soon", 5.0) == 5.0


def test_500_is_retried_then_reported(standin):
    standin.set_fault("500", times=2)
    assert fast_client(standin, retries=3).version_by_hash(SHA) is not None  # recovered on the third try
    standin.set_fault("500")
    with pytest.raises(CivitaiError, match=r"failed 3 times \(HTTP 500\)"):
        fast_client(standin, retries=2).version_by_hash(SHA)
    assert len(standin.requests) == 3 + 3


def test_a_hanging_server_times_out_and_is_reported(standin):
    standin.set_fault("hang", seconds=10)
    began = time.monotonic()
    with pytest.raises(CivitaiError, match=r"no answer within 0\.3 s"):
        fast_client(standin, timeout=0.3, retries=1).version_by_hash(SHA)
    assert time.monotonic() - began < 5
    standin.set_fault(None)


def test_html_instead_of_json_is_a_clear_error(standin):
    standin.set_fault("html")
    with pytest.raises(CivitaiError, match="HTML page instead of JSON"):
        fast_client(standin).version_by_hash(SHA)


def test_huge_answers_are_refused(standin):
    standin.set_fault("huge")
    with pytest.raises(CivitaiError, match="too large"):
        fast_client(standin).version_by_hash(SHA)


def test_unreachable_host_says_so():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    client = CivitaiClient(f"http://127.0.0.1:{port}", min_interval=0, timeout=1, retries=1, backoff=0.01)
    with pytest.raises(CivitaiUnreachable, match="cannot be reached"):
        client.version_by_hash(SHA)


def test_switched_off_means_no_client():
    with pytest.raises(CivitaiError, match="switched off"):
        CivitaiClient("")


def test_waiting_can_be_cancelled(standin):
    stop = threading.Event()
    standin.set_fault("429", retry_after="30")
    client = fast_client(standin, should_stop=stop.is_set)
    threading.Timer(0.3, stop.set).start()
    began = time.monotonic()
    with pytest.raises(Cancelled):
        client.version_by_hash(SHA)
    assert time.monotonic() - began < 5


def test_bearer_key_is_sent_only_to_the_api(standin):
    client = fast_client(standin, api_key="secret-key")
    version = client.version_by_hash(SHA)
    client.image(version["images"][0]["url"])
    assert standin.requests[0]["authorization"] == "Bearer secret-key"
    assert standin.requests[1]["authorization"] == ""


def test_images_only_from_civitais_hosts(standin):
    client = fast_client(standin)
    with pytest.raises(CivitaiError, match="not Civitai's"):
        client.image("http://10.0.0.1:6379/x.png")
    with pytest.raises(CivitaiError, match="not http"):
        client.image("file:///etc/passwd")
    assert client.image_host_allowed("image.civitai.com") and client.image_host_allowed("127.0.0.1")
    assert not client.image_host_allowed("civitai.com.evil.example")
    assert standin.requests == []
