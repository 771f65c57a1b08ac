"""`manage.py generate`: the same machinery as the composer, for scripts."""

from __future__ import annotations

import json
import threading
from io import StringIO
from pathlib import Path

import django_rq
import pytest
from django.core.management import CommandError, call_command

from generation import lora_names
from generation.models import GenerationJob, JobStatus
from tests.conftest import InProcessWorker

pytestmark = pytest.mark.django_db(transaction=True)


def worker_for_one_job(redis_conn) -> threading.Thread:
    """A real worker waiting on the generation queue; it stops after one job."""
    worker = InProcessWorker([django_rq.get_queue("generation-default")], connection=redis_conn)
    thread = threading.Thread(target=worker.work, kwargs={"max_jobs": 1}, daemon=True)
    thread.start()
    return thread


def generate(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("generate", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_queue_only_prints_the_job(catalog, sdnext, redis_conn):
    out, err = generate(
        "--prompt", "a cat", "--lora", "pixel_xl:0.7", "--steps", "3", "--width", "64", "--height", "64"
    )
    job = GenerationJob.objects.get()
    assert out.strip() == f"queued job #{job.pk} on default" and job.status == JobStatus.QUEUED
    assert "<lora:pixel_xl:0.7>" in job.prompt and "no worker listens on queue generation-default" in err


def test_wait_json_reports_images_and_applied_loras(catalog, sdnext, redis_conn):
    lora_names.refresh("default")
    worker = worker_for_one_job(redis_conn)
    out, err = generate(
        "--prompt", "a cat", "--lora", "pixel_xl:0.7", "--lora", "ink_sd15", "--steps", "4", "--seed", "7",
        "--width", "64", "--height", "64", "--wait", "--json",
    )  # fmt: skip
    worker.join(10)
    state = json.loads(out)
    assert state["status"] == "succeeded" and state["message"].startswith("1 image in")
    assert [Path(p).exists() for p in state["images"]] == [True] and state["seeds"] == [7]
    assert [(lora["name"], lora["weight"], lora["applied"]) for lora in state["loras"]] == [
        ("pixel_xl", 0.7, True),
        ("ink_sd15", 1.0, True),
    ]
    assert state["loras_applied"] == ["pixel_xl", "ink_sd15"]
    assert f"job #{GenerationJob.objects.get().pk}: succeeded" in err
    assert err.count("ink_sd15 is a SD 1.x LoRA but the checkpoint looks SDXL") == 1  # warned once, not again


def test_wait_exits_non_zero_when_the_job_fails(catalog, sdnext, redis_conn):
    sdnext.set_fault("500")
    worker = worker_for_one_job(redis_conn)
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("generate", "--prompt", "x", "--steps", "2", "--width", "64", "--height", "64", "--wait",
                     "--json", stdout=out, stderr=StringIO())  # fmt: skip
    worker.join(10)
    assert failed.value.returncode == 1 and "failed: SD.Next failed with HTTP 500" in str(failed.value)
    assert json.loads(out.getvalue())["status"] == "failed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "0"], "Steps: Ensure this value is greater than or equal to 1."),
        (["--width", "100"], "Width: 100 is not a multiple of 8"),
        (["--lora", "pixel_xl:abc"], "weight 'abc' is not a number"),
        (["--lora", "pixel_xl:9"], "weight must be from -5 to 5"),
        (["--lora", "no_such_lora"], "no such LoRA in the catalog or in SD.Next's list"),
        (["--backend", "gpu9"], "unknown backend 'gpu9'"),
        (["--user", "ghost"], "no user 'ghost'"),
    ],
)
def test_bad_arguments_stop_before_anything_is_queued(catalog, sdnext, redis_conn, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        generate("--prompt", "x", *args)
    assert not GenerationJob.objects.exists()


def test_a_lora_only_sdnext_knows_is_sent_by_name(catalog, sdnext, redis_conn, tmp_path):
    from tests.adapters.conftest import lora

    lora(sdnext.engine.loras.root, "server_only.safetensors", "sdxl", seed=11)  # not scanned into the catalog
    lora_names.refresh("default")
    generate("--prompt", "x", "--lora", "server_only:0.4")
    assert "<lora:server_only:0.4>" in GenerationJob.objects.get().prompt
