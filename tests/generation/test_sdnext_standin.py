"""The SD.Next stand-in keeps the contract in docs/sdnext-contract.md, so client tests against it mean something."""

from __future__ import annotations

import base64
import io
import json
import struct
import threading
import time
from pathlib import Path

import pytest
import requests
from PIL import Image

from tests.standins.sdnext import SDNextStandIn

SMALL = {"width": 64, "height": 64, "steps": 3, "seed": 1234}


def write_lora(path: Path, metadata: dict | None = None) -> Path:
    """A minimal valid safetensors file: 8-byte little-endian header length, JSON header, tensor bytes."""
    header = {"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}
    if metadata is not None:
        header["__metadata__"] = metadata
    raw = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 4)
    return path


@pytest.fixture
def lora_dir(tmp_path: Path) -> Path:
    root = tmp_path / "Lora"
    write_lora(root / "pixel.v2.safetensors", {"ss_output_name": "pixel", "ss_tag_frequency": '{"img": {"a": 1}}'})
    write_lora(root / "style" / "ink.safetensors")
    (root / "notes.txt").write_text("not a LoRA")
    return root


@pytest.fixture
def standin(lora_dir: Path):
    with SDNextStandIn(lora_dir=lora_dir, step_delay=0.01) as server:
        yield server


def post(standin: SDNextStandIn, path: str, body: dict | None = None, **kwargs) -> requests.Response:
    return requests.post(f"{standin.url}/sdapi/v1/{path}", json=body, timeout=kwargs.pop("timeout", 10), **kwargs)


def get(standin: SDNextStandIn, path: str, **kwargs) -> requests.Response:
    return requests.get(f"{standin.url}/sdapi/v1/{path}", timeout=kwargs.pop("timeout", 10), **kwargs)


def in_background(target, *args) -> tuple[threading.Thread, dict]:
    """Run a blocking call on a thread; its result (or exception) lands in the returned dict."""
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = target(*args)
        except Exception as exc:
            box["error"] = exc
        box["done_at"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def sampling_step(standin: SDNextStandIn) -> int:
    return get(standin, "progress", params={"skip_current_image": "true"}).json()["state"]["sampling_step"]


def test_labels_itself_a_stand_in_and_times_every_response(standin):
    response = get(standin, "version")
    assert response.json()["app"] == "sd.next (stand-in)"
    assert float(response.headers["X-Process-Time"]) >= 0
    assert "stand-in" in response.headers["Server"]


def test_txt2img_returns_real_jpegs_and_info_per_the_contract(standin):
    response = post(standin, "txt2img", {**SMALL, "prompt": "a fox", "batch_size": 2, "return_grid": False, "junk": 1})
    assert response.status_code == 200
    body = response.json()
    images = [base64.b64decode(item) for item in body["images"]]
    assert len(images) == 2 and all(data.startswith(b"\xff\xd8\xff") for data in images)
    assert Image.open(io.BytesIO(images[0])).size == (64, 64)
    assert body["parameters"]["cfg_scale"] == 6.0 and "junk" not in body["parameters"]
    info = json.loads(body["info"])
    assert info["all_seeds"] == [1234, 1235] and info["all_prompts"] == ["a fox", "a fox"]
    assert info["index_of_first_image"] == 0 and len(info["infotexts"]) == 2
    assert info["infotexts"][1].startswith("a fox\nSteps: 3, Size: 64x64, Sampler: Default, Seed: 1235")
    assert len(info["job_timestamp"]) == 14 and info["sd_model_hash"] == standin.engine.checkpoints[0]["hash"]


def test_random_seed_and_grid_for_batches(standin):
    info = json.loads(post(standin, "txt2img", {**SMALL, "seed": -1, "n_iter": 2}).json()["info"])
    assert info["seed"] >= 0 and info["all_seeds"] == [info["seed"], info["seed"] + 1]
    assert info["index_of_first_image"] == 1 and len(info["infotexts"]) == 3


def test_progress_advances_while_txt2img_blocks(standin):
    thread, box = in_background(post, standin, "txt2img", {**SMALL, "steps": 30})
    assert standin.txt2img_started.wait(5)
    wait_for(lambda: sampling_step(standin) >= 3)
    live = get(standin, "progress").json()
    assert live["state"]["job"] == "Inference" and live["state"]["sampling_steps"] == 30
    assert 0 < live["progress"] < 1 and live["current_image"] is not None and live["textinfo"] is None
    assert Image.open(io.BytesIO(base64.b64decode(live["current_image"]))).format == "JPEG"
    wait_for(lambda: sampling_step(standin) > live["state"]["sampling_step"])
    assert get(standin, "status").json()["status"] == "running"
    thread.join(5)
    assert box["result"].status_code == 200
    idle = get(standin, "progress").json()
    assert idle["state"]["job"] == "" and idle["current_image"] is None


def test_second_txt2img_waits_for_the_first(standin):
    first, first_box = in_background(post, standin, "txt2img", {**SMALL, "steps": 15})
    assert standin.txt2img_started.wait(5)
    second, second_box = in_background(post, standin, "txt2img", {**SMALL, "steps": 15})
    first.join(5)
    second.join(5)
    assert first_box["result"].status_code == second_box["result"].status_code == 200
    assert second_box["done_at"] - first_box["done_at"] >= 15 * 0.01 * 0.9  # ran only after the first finished


def test_interrupt_returns_the_partial_image(standin):
    started = time.monotonic()
    thread, box = in_background(post, standin, "txt2img", {**SMALL, "steps": 500})
    assert standin.txt2img_started.wait(5)
    wait_for(lambda: sampling_step(standin) >= 2)
    assert post(standin, "interrupt").status_code == 204
    thread.join(5)
    assert time.monotonic() - started < 4
    body = box["result"].json()
    assert box["result"].status_code == 200 and len(body["images"]) == 1
    assert get(standin, "status").json()["status"] == "interrupted"


def test_interrupt_while_idle_does_not_cancel_the_next_job(standin):
    assert post(standin, "interrupt").status_code == 204
    assert len(post(standin, "txt2img", {**SMALL, "batch_size": 2, "return_grid": False}).json()["images"]) == 2


def test_skip_ends_only_the_current_iteration(standin):
    thread, box = in_background(post, standin, "txt2img", {**SMALL, "steps": 400, "n_iter": 2, "return_grid": False})
    assert standin.txt2img_started.wait(5)
    wait_for(lambda: sampling_step(standin) >= 2)
    assert post(standin, "skip").status_code == 204
    wait_for(lambda: get(standin, "progress").json()["state"]["job_no"] == 1)
    post(standin, "interrupt")
    thread.join(5)
    assert len(box["result"].json()["images"]) == 2  # the skipped pass and the interrupted one, both partial


def test_unknown_sampler_is_a_404_but_names_are_case_insensitive(standin):
    response = post(standin, "txt2img", {**SMALL, "sampler_name": "DPM++ 2M Karras"})
    assert response.status_code == 404
    assert response.json() == {
        "error": "HTTPException", "code": 404, "detail": "Sampler not found", "body": "",
        "errors": "404: Sampler not found",
    }  # fmt: skip
    assert post(standin, "txt2img", {**SMALL, "sampler_name": "dpm++ 2m"}).status_code == 200
    assert "Euler a" in [item["name"] for item in get(standin, "samplers").json()]


def test_loras_are_listed_from_the_folder_with_header_metadata(standin, lora_dir):
    loras = {item["name"]: item for item in get(standin, "loras").json()}
    assert set(loras) == {"pixel_v2", "ink"}
    assert loras["pixel_v2"]["alias"] == "pixel" and loras["ink"]["alias"] == "ink"
    assert loras["pixel_v2"]["metadata"]["ss_tag_frequency"] == {"img": {"a": 1}}
    assert loras["ink"]["path"] == str(lora_dir / "style" / "ink.safetensors")


def test_lora_networks_lists_only_loras_that_loaded(standin):
    prompt = "cat <lora:pixel.v2:0.8> <lora:style/ink> <lora:missing:1> <lora:pixel_v2:0>"
    response = post(standin, "txt2img", {**SMALL, "prompt": prompt})
    assert response.status_code == 200
    info = json.loads(response.json()["info"])
    assert info["extra_generation_params"] == {"LoRA networks": "pixel_v2, ink"}
    assert info["infotexts"][0].endswith("LoRA networks: pixel_v2, ink") and info["prompt"] == prompt
    assert get(standin, "loaded-loras").json() == ["pixel_v2", "ink"]
    info = json.loads(post(standin, "txt2img", {**SMALL, "prompt": "<lora:missing>"}).json()["info"])
    assert info["extra_generation_params"] == {} and "LoRA networks" not in info["infotexts"][0]


def test_a_new_lora_file_is_found_by_rescan(standin, lora_dir):
    write_lora(lora_dir / "late.safetensors")
    info = json.loads(post(standin, "txt2img", {**SMALL, "prompt": "<lora:late:1>"}).json()["info"])
    assert info["extra_generation_params"]["LoRA networks"] == "late"
    write_lora(lora_dir / "later.safetensors")
    assert "later" in post(standin, "refresh-loras").json()
    assert "later" in {item["name"] for item in get(standin, "loras").json()}


def test_wrong_json_types_are_a_fastapi_422(standin):
    response = post(standin, "txt2img", {"steps": "many", "prompt": 5})
    assert response.status_code == 422
    locs = {tuple(item["loc"]): item["type"] for item in response.json()["detail"]}
    assert locs == {("body", "steps"): "int_parsing", ("body", "prompt"): "string_type"}
    assert post(standin, "txt2img", {"steps": "7", **{k: v for k, v in SMALL.items() if k != "steps"}}).ok
    bad_json = requests.post(f"{standin.url}/sdapi/v1/txt2img", data=b"{nope", timeout=5)
    assert bad_json.status_code == 422 and bad_json.json()["detail"][0]["type"] == "json_invalid"


def test_checkpoints_options_and_routes(standin):
    (model,) = get(standin, "sd-models").json()
    assert model["title"] == f"sd_xl_base_1.0 [{model['sha256'][:10]}]" and model["hash"] == model["sha256"][:10]
    assert get(standin, "checkpoint").json()["title"] == model["title"]
    assert get(standin, "options").json()["sd_model_checkpoint"] == model["title"]
    assert post(standin, "options", {"samples_format": "png", "bogus": 1}).json() == {
        "updated": [{"samples_format": True}, {"bogus": False}]
    }
    image = base64.b64decode(post(standin, "txt2img", SMALL).json()["images"][0])
    assert image.startswith(b"\x89PNG")
    assert post(standin, "checkpoint", params={"sd_model_checkpoint": "nope"}).json() == {"ok": False}
    assert get(standin, "nothing-here").status_code == 404
    assert get(standin, "txt2img").status_code == 405


def test_no_checkpoint_loaded_gives_200_without_images(lora_dir):
    with SDNextStandIn(lora_dir=lora_dir, checkpoints=[]) as server:
        body = post(server, "txt2img", SMALL).json()
        assert body["images"] == [] and body["info"] == ""
        assert get(server, "checkpoint").json()["type"] is None


def test_basic_auth_guards_every_route(lora_dir):
    with SDNextStandIn(lora_dir=lora_dir, auth=("ann", "s3cret")) as server:
        missing = get(server, "progress")
        assert missing.status_code == 401 and missing.json()["detail"] == "Not authenticated"
        wrong = post(server, "txt2img", SMALL, auth=("ann", "nope"))
        assert wrong.status_code == 401 and wrong.json()["error"] == "HTTPException"
        assert wrong.json()["detail"] == "Unauthorized"
        assert get(server, "version", auth=("ann", "s3cret")).status_code == 200
        assert server.requests[-1]["path"] == "/sdapi/v1/version"


def test_fault_refuse_closes_the_port_until_cleared(standin):
    standin.set_fault("refuse")
    with pytest.raises(requests.ConnectionError, match="refused"):
        get(standin, "version")
    standin.set_fault(None)
    assert get(standin, "version").ok
    standin.set_fault("refuse", seconds=0.1)
    with pytest.raises(requests.ConnectionError):
        get(standin, "version")
    wait_for(lambda: standin._httpd is not None)
    assert get(standin, "version").ok


def test_fault_500_in_its_three_shapes(standin):
    standin.set_fault("500", path="/sdapi/v1/txt2img")
    assert get(standin, "version").ok  # scoped to txt2img
    body = post(standin, "txt2img", SMALL).json()
    assert body["code"] == 500 and body["error"] == "OutOfMemoryError" and "CUDA out of memory" in body["errors"]
    standin.set_fault("500", form="string", detail="bad operand type")
    assert get(standin, "status").json() == "bad operand type"
    standin.set_fault("500", form="text")
    response = get(standin, "status")
    assert response.status_code == 500 and response.text.startswith("Internal Server Error")


def test_fault_429_comes_after_the_handler_ran(standin):
    standin.set_fault("429", times=1)
    response = post(standin, "txt2img", SMALL)
    assert response.status_code == 429
    assert response.json()["detail"] == "127.0.0.1:/sdapi/v1/txt2img: rate limit exceeded"
    assert standin.txt2img_started.is_set()  # the job still ran, like SD.Next's middleware-side limiter
    assert post(standin, "txt2img", SMALL).ok  # times=1: cleared itself


def test_fault_hang_until_cleared_and_stop_is_not_blocked(lora_dir):
    server = SDNextStandIn(lora_dir=lora_dir).start()
    server.set_fault("hang")
    with pytest.raises(requests.ReadTimeout):
        post(server, "txt2img", SMALL, timeout=0.3)
    assert get(server, "version").ok  # only txt2img hangs
    thread, box = in_background(post, server, "txt2img", SMALL)
    time.sleep(0.1)
    server.set_fault(None)
    thread.join(5)
    assert box["result"].ok
    server.set_fault("hang")
    thread, box = in_background(post, server, "txt2img", SMALL)
    wait_for(lambda: len(server.requests) == 4)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    thread.join(5)
    assert isinstance(box["error"], requests.ConnectionError)


def test_fault_no_images_and_malformed(standin):
    standin.set_fault("no_images")
    body = post(standin, "txt2img", SMALL).json()
    assert body["images"] == [] and body["info"] == "" and body["parameters"]["width"] == 64
    standin.set_fault("malformed")
    response = post(standin, "txt2img", SMALL)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_unknown_faults_are_rejected(standin):
    with pytest.raises(ValueError, match="unknown fault"):
        standin.set_fault("gremlins")
    with pytest.raises(ValueError, match="seconds"):
        standin.set_fault("refuse", times=1)
