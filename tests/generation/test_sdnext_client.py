"""SDNextClient against a real running SD.Next stand-in: success and every failure a user can meet."""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
from pathlib import Path

import pytest

from generation.sdnext import (
    SDNextAuthError,
    SDNextBadResponse,
    SDNextClient,
    SDNextError,
    SDNextNotFound,
    SDNextRateLimited,
    SDNextServerError,
    SDNextTimeout,
    SDNextUnreachable,
    SDNextValidationError,
    image_format,
    lora_tags,
    loras_in_info,
    parse_info,
)
from tests.standins.sdnext import SDNextStandIn

SMALL = {"width": 64, "height": 64, "steps": 3, "seed": 42}


@pytest.fixture
def lora_dir(tmp_path: Path) -> Path:
    tensor = {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}
    header = json.dumps({"__metadata__": {"ss_output_name": "pixel"}, "w": tensor}).encode()
    path = tmp_path / "Lora" / "pixelart_xl.safetensors"
    path.parent.mkdir()
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    return path.parent


@pytest.fixture
def standin(lora_dir: Path):
    with SDNextStandIn(lora_dir=lora_dir, step_delay=0.005) as server:
        yield server


@pytest.fixture
def client(standin: SDNextStandIn) -> SDNextClient:
    return SDNextClient(standin.url, retries=1, backoff=0.01, read_timeout=5, generate_timeout=10)


def txt2img_requests(standin: SDNextStandIn) -> int:
    return sum(1 for request in standin.requests if request["path"] == "/sdapi/v1/txt2img")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_small_calls(client):
    assert client.version()["app"] == "sd.next (stand-in)"
    assert client.status()["status"] == "idle"
    assert client.checkpoints()[0]["model_name"] == "sd_xl_base_1.0"
    assert client.current_checkpoint()["name"] == "sd_xl_base_1.0"
    assert "DPM++ 2M" in client.samplers()
    assert [(lora["name"], lora["alias"]) for lora in client.loras()] == [("pixelart_xl", "pixel")]
    client.refresh_loras()
    assert "sd_model_checkpoint" in client.options()
    assert client.progress()["state"]["job"] == "" and client.progress(with_preview=True)["current_image"] is None
    client.interrupt()
    client.skip()


def test_txt2img_decodes_images_seeds_infotexts_and_applied_loras(client):
    result = client.txt2img({**SMALL, "prompt": "knight <lora:pixelart_xl:0.8> <lora:nope:1>", "batch_size": 2})
    assert len(result.images) == 2 and all(image_format(image) == "JPEG" for image in result.images)
    assert result.seeds == [42, 43]
    assert len(result.infotexts) == 2 and "Seed: 43" in result.infotexts[1]  # the grid was removed
    assert result.loras_applied == ["pixelart_xl"]  # the unknown LoRA was silently skipped by SD.Next
    assert result.info["index_of_first_image"] == 1 and json.loads(result.info_raw) == result.info
    assert result.parameters["batch_size"] == 2


def test_txt2img_accepts_png_when_sdnext_encodes_png(client, standin):
    standin.engine.options["samples_format"] = "png"
    assert image_format(client.txt2img(SMALL).images[0]) == "PNG"


def test_refused_connection_is_retried_then_reported(client, standin, caplog):
    standin.set_fault("refuse")
    with caplog.at_level(logging.WARNING), pytest.raises(SDNextUnreachable) as caught:
        client.version()
    message = str(caught.value)
    assert f"Cannot reach SD.Next at {standin.url}: connection refused" in message
    assert "LORA_MANAGER_SDNEXT_URL" in message and caught.value.retryable
    assert "retry 1/1" in caplog.text


def test_nothing_listening_on_the_port():
    client = SDNextClient(f"http://127.0.0.1:{free_port()}", retries=0)
    with pytest.raises(SDNextUnreachable, match=r"connection refused\. Is it running"):
        client.txt2img(SMALL)


def test_refused_connection_that_recovers_succeeds_and_txt2img_is_sent_once(standin, caplog):
    client = SDNextClient(standin.url, retries=5, backoff=0.05, generate_timeout=10)
    standin.set_fault("refuse", seconds=0.2)
    with caplog.at_level(logging.WARNING):
        result = client.txt2img(SMALL)
    assert len(result.images) == 1 and txt2img_requests(standin) == 1
    assert "connection refused" in caplog.text and "retry 1/5" in caplog.text


def test_wrong_or_missing_credentials(lora_dir):
    with SDNextStandIn(lora_dir=lora_dir, auth=("ann", "s3cret")) as server:
        with pytest.raises(SDNextAuthError, match=r"refused the credentials .*Unauthorized") as caught:
            SDNextClient(server.url, "ann", "wrong").version()
        assert caught.value.status == 401 and "LORA_MANAGER_SDNEXT_PASSWORD" in str(caught.value)
        with pytest.raises(SDNextAuthError, match="Not authenticated"):
            SDNextClient(server.url).status()
        assert SDNextClient(server.url, "ann", "s3cret").version()["app"].startswith("sd.next")


def test_unknown_sampler_is_not_found(client):
    with pytest.raises(SDNextNotFound, match=r"SD\.Next says: Sampler not found") as caught:
        client.txt2img({**SMALL, "sampler_name": "DPM++ 2M Karras"})
    assert caught.value.status == 404 and caught.value.detail == "Sampler not found"


def test_rate_limited(client, standin):
    standin.set_fault("429")
    with pytest.raises(SDNextRateLimited, match=r"rate limit exceeded.*still ran") as caught:
        client.txt2img(SMALL)
    assert caught.value.retryable and caught.value.status == 429


@pytest.mark.parametrize(
    ("form", "expected"),
    [("a11", r"CUDA out of memory.*OutOfMemoryError"), ("string", "CUDA out of memory"), ("text", "Internal Server")],
)
def test_server_error_shapes(client, standin, form, expected):
    standin.set_fault("500", form=form)
    with pytest.raises(SDNextServerError, match=expected) as caught:
        client.txt2img(SMALL)
    assert caught.value.status == 500 and not caught.value.retryable


def test_hang_past_the_timeout_is_never_resent(standin):
    client = SDNextClient(standin.url, retries=3, backoff=0.01, generate_timeout=0.5)
    standin.set_fault("hang")
    started = time.monotonic()
    with pytest.raises(SDNextTimeout, match=r"did not answer /sdapi/v1/txt2img within 0\.5 s.*not resent") as caught:
        client.txt2img(SMALL)
    assert time.monotonic() - started < 2 and not caught.value.retryable
    assert txt2img_requests(standin) == 1


def test_connection_dropped_mid_txt2img_is_never_resent(standin):
    client = SDNextClient(standin.url, retries=3, backoff=0.01, generate_timeout=10)
    standin.set_fault("hang")
    errors: list[Exception] = []

    def generate() -> None:
        try:
            client.txt2img(SMALL)
        except SDNextError as exc:
            errors.append(exc)

    thread = threading.Thread(target=generate)
    thread.start()
    deadline = time.monotonic() + 5
    while txt2img_requests(standin) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    standin.stop()
    thread.join(5)
    assert isinstance(errors[0], SDNextUnreachable) and "not resent" in str(errors[0])
    assert not errors[0].retryable and txt2img_requests(standin) == 1


def test_no_images_means_no_checkpoint(client, standin):
    standin.set_fault("no_images")
    with pytest.raises(SDNextBadResponse, match=r"SD\.Next returned no images: is a checkpoint loaded"):
        client.txt2img(SMALL)
    standin.set_fault(None)
    assert client.txt2img({**SMALL, "send_images": False}).images == []


def test_malformed_json(client, standin):
    standin.set_fault("malformed")
    with pytest.raises(SDNextBadResponse, match="not JSON"):
        client.txt2img(SMALL)
    standin.set_fault("malformed", body=json.dumps({"images": ["aGVsbG8="], "info": ""}))
    with pytest.raises(SDNextBadResponse, match="not a JPEG, PNG or WEBP"):
        client.txt2img(SMALL)
    standin.set_fault("malformed", body="[1, 2]")
    with pytest.raises(SDNextBadResponse, match="is a list, not a dict"):
        client.txt2img(SMALL)


def test_validation_error_summarises_fields(client):
    with pytest.raises(SDNextValidationError, match="steps: Input should be a valid integer") as caught:
        client.txt2img({**SMALL, "steps": "many"})
    assert caught.value.status == 422


def test_invalid_url_is_a_configuration_error():
    with pytest.raises(SDNextError, match=r"not a valid SD\.Next URL"):
        SDNextClient("localhost:7860").version()


def test_parse_info_is_tolerant():
    assert parse_info("") == {}
    assert parse_info("not json") == {}
    assert parse_info('["a"]') == {}
    assert parse_info('{"seed": 1}') == {"seed": 1}


def test_loras_in_info_reads_extra_params_or_the_infotext_line():
    assert loras_in_info({"extra_generation_params": {"LoRA networks": "a, b_c"}}) == ["a", "b_c"]
    infotext = "p\nSteps: 20, Seed: 1, LoRA networks: pixel_xl, ink, LoRA hashes: 5a7c1b0e, 1234abcd, Version: x"
    assert loras_in_info({"infotexts": [infotext]}) == ["pixel_xl", "ink"]
    assert loras_in_info({"infotexts": ["p\nSteps: 20, LoRA networks: solo"]}) == ["solo"]
    assert loras_in_info({"infotexts": ["p\nSteps: 20"]}) == [] and loras_in_info({}) == []


def test_lora_tags_follow_the_grammar():
    prompt = "a <lora:pixel:0.8> <lora:style/ink> <lora:x:te=0.5:0.7> <lyco:old:1> <hypernet:h:1> <lora:s:0@0,1@0.5>"
    assert lora_tags(prompt) == [("pixel", "0.8"), ("style/ink", ""), ("x", "0.7"), ("s", "0@0,1@0.5")]
