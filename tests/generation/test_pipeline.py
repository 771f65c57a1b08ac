"""The pipeline against the SD.Next stand-in, with a recording reporter instead of the channel layer."""

from __future__ import annotations

import threading
import time

import pytest
from PIL import Image

from adapters.models import Adapter
from adapters.scanning import scan
from generation import composer, lora_names, pipeline, storage, submitting
from generation.models import GenerationJob, JobStatus
from generation.sdnext import SDNextAuthError
from tests.adapters.conftest import lora
from tests.generation.conftest import RecordingReporter, composition, queue_job
from tests.standins.sdnext import SDNextStandIn

pytestmark = pytest.mark.django_db


def run(job: GenerationJob, reporter: RecordingReporter | None = None) -> GenerationJob:
    return pipeline.run(job.pk, reporter or RecordingReporter())


def test_success_stores_images_thumbnails_and_records_usage(catalog, sdnext):
    lora_names.refresh("default")
    pixel, ink = catalog["pixel_xl"], catalog["ink_sd15"]
    comp = composition(loras=[composer.LoraChoice(pixel.pk, 0.8), composer.LoraChoice(ink.pk, 0.5)], steps=6)
    job = queue_job(comp)
    assert "<lora:pixel_xl:0.8>" in job.prompt and "<lora:ink_sd15:0.5>" in job.prompt
    assert "pixel art" in job.prompt
    reporter = RecordingReporter()
    job = run(job, reporter)
    assert job.status == JobStatus.SUCCEEDED, job.message
    assert job.message.startswith("1 image in")
    assert job.step == job.steps_total == 6 and job.progress == 1.0
    image = job.images.get()
    assert image.format == "JPEG" and (image.width, image.height) == (64, 64) and image.seed == 42
    assert "LoRA networks: pixel_xl, ink_sd15" in image.infotext
    with Image.open(storage.absolute(image.thumbnail)) as thumb:
        assert thumb.format == "WEBP"
    assert storage.absolute(image.path).read_bytes()[:3] == b"\xff\xd8\xff"
    assert {lora.name: lora.applied for lora in job.loras.all()} == {"pixel_xl": True, "ink_sd15": True}
    pixel.refresh_from_db()
    assert pixel.usage_count == 1 and pixel.last_used_at is not None
    assert reporter.statuses == 2  # running, succeeded
    steps = [u.step for u in reporter.updates if u.phase == "Inference"]
    assert steps and steps == sorted(steps), steps
    assert set(job.timings) >= {"submitted", "started", "sent", "returned", "finished"}
    request = next(r for r in sdnext.requests if r["path"] == "/sdapi/v1/txt2img")
    assert request["json"]["steps"] == 6 and request["json"]["width"] == 64


def test_unknown_lora_is_reported_not_applied_and_not_counted(catalog, sdnext, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    lora(elsewhere, "only_here_xl.safetensors", "sdxl", seed=9)  # in the catalog, not in SD.Next's folder
    scan([str(elsewhere)])
    only_here = Adapter.objects.get(name="only_here_xl")
    lora_names.refresh("default")
    job = run(queue_job(composition(loras=[composer.LoraChoice(only_here.pk, 1.0)])))
    assert job.status == JobStatus.SUCCEEDED
    assert job.warnings[-1].startswith("SD.Next did not apply only_here_xl"), job.warnings
    assert any("does not list only_here_xl" in w for w in job.warnings)  # the linter said so at submit
    assert job.loras.get().applied is False
    only_here.refresh_from_db()
    assert only_here.usage_count == 0


def test_batches_drop_the_grid_and_keep_seeds(catalog, sdnext):
    job = run(queue_job(composition(batch_size=2, n_iter=2)))
    assert job.status == JobStatus.SUCCEEDED
    assert [img.seed for img in job.images.all()] == [42, 43, 44, 45]
    assert job.seeds == [42, 43, 44, 45]


def test_live_preview_images_reach_the_reporter_and_row(catalog, sdnext):
    sdnext.engine.step_delay = 0.02
    reporter = RecordingReporter()
    job = run(queue_job(composition(steps=15, live_preview=True)), reporter)
    previews = [u.preview for u in reporter.updates if u.preview]
    assert previews and previews[0].startswith("data:image/jpeg;base64,/9j/")
    assert job.status == JobStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("fault", "options", "expected"),
    [
        ("500", {}, "SD.Next failed with HTTP 500 on /sdapi/v1/txt2img: CUDA out of memory"),
        ("429", {"path": "/sdapi/v1/txt2img"}, "rate limit was hit"),
        ("no_images", {}, "SD.Next returned no images: is a checkpoint loaded?"),
        ("malformed", {"path": "/sdapi/v1/txt2img"}, "is not JSON"),
    ],
)
def test_sdnext_faults_end_failed_with_the_message(catalog, sdnext, fault, options, expected):
    job = queue_job()
    sdnext.set_fault(fault, **options)
    with pytest.raises(Exception):  # noqa: B017 - the job re-raises for RQ after recording the failure
        run(job)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert expected in job.message
    assert job.finished_at is not None


def test_unknown_sampler_fails_with_a_hint(catalog, sdnext):
    job = queue_job(composition(sampler="DPM++ 2M Karras"))
    with pytest.raises(Exception):  # noqa: B017
        run(job)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "Sampler not found" in job.message and "Pick a sampler" in job.message


def test_missing_checkpoint_says_which(catalog, sdnext):
    job = queue_job(composition(checkpoint="no_such_model"))
    with pytest.raises(Exception):  # noqa: B017
        run(job)
    job.refresh_from_db()
    assert "no images" in job.message and "checkpoint 'no_such_model'" in job.message


def test_unreachable_sdnext(catalog, settings, lora_root):
    settings.SDNEXT_BACKENDS = {"default": {"URL": "http://127.0.0.1:9", "USER": "", "PASSWORD": ""}}
    settings.GENERATION_POLL_SECONDS = 0.02
    settings.GENERATION_RETRY_BACKOFF = 0.01
    job = queue_job()
    with pytest.raises(Exception):  # noqa: B017
        run(job)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "Cannot reach SD.Next at http://127.0.0.1:9: connection refused" in job.message


def test_wrong_credentials(catalog, settings, lora_root):
    with SDNextStandIn(lora_dir=lora_root, auth=("me", "secret")) as server:
        settings.SDNEXT_BACKENDS = {"default": {"URL": server.url, "USER": "me", "PASSWORD": "wrong"}}
        job = queue_job()
        with pytest.raises(SDNextAuthError):
            run(job)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "LORA_MANAGER_SDNEXT_PASSWORD" in job.message


def test_hang_past_the_timeout_fails_and_is_sent_once(catalog, sdnext, settings):
    settings.SDNEXT_TIMEOUT = 0.5
    sdnext.set_fault("hang")
    job = queue_job()
    with pytest.raises(Exception):  # noqa: B017
        run(job)
    sdnext.set_fault(None)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert "did not answer /sdapi/v1/txt2img within 0.5 s" in job.message and "not resent" in job.message
    assert sum(1 for r in sdnext.requests if r["path"] == "/sdapi/v1/txt2img") == 1
    assert any(r["path"] == "/sdapi/v1/interrupt" for r in sdnext.requests)


@pytest.mark.django_db(transaction=True)
def test_cancel_while_running_interrupts_and_keeps_partial_images(catalog, sdnext, redis_conn):
    sdnext.engine.step_delay = 0.05
    job = queue_job(composition(steps=100))
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("job", run(job)))
    thread.start()
    assert sdnext.txt2img_started.wait(5)
    time.sleep(0.2)
    assert submitting.cancel(job.pk).startswith("Stopping")
    thread.join(10)
    job = box["job"]
    assert job.status == JobStatus.CANCELLED
    assert job.message.startswith("Cancelled at step") and "kept 1 image" in job.message
    image = job.images.get()
    assert image.partial
    assert any(r["path"] == "/sdapi/v1/interrupt" for r in sdnext.requests)


def test_a_job_cancelled_while_queued_never_reaches_sdnext(catalog, sdnext):
    job = queue_job()
    assert submitting.cancel(job.pk) == "Cancelled before it started."
    job = run(job)
    assert job.status == JobStatus.CANCELLED
    assert not any(r["path"] == "/sdapi/v1/txt2img" for r in sdnext.requests)


def test_a_running_row_picked_up_again_is_never_resent(catalog, sdnext):
    job = queue_job()
    GenerationJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    job = run(job)
    assert job.status == JobStatus.FAILED and job.message == pipeline.WORKER_STOPPED
    assert not any(r["path"] == "/sdapi/v1/txt2img" for r in sdnext.requests)
