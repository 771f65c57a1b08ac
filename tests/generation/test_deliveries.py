"""Webhook and command deliveries: admin-configured targets, offered in the composer, run as generation jobs
through a real RQ worker; a local HTTP test server and harmless commands for success and every fault."""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from generation import composer, deliveries
from generation.admin import DeliveryTargetForm
from generation.models import DeliveryTarget, GenerationJob, JobStatus
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.django_db
HUGE = 50 * 1024 * 1024


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Hook.received.append({"path": self.path, "body": body})
        if self.path == "/slow":
            time.sleep(2)
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "https://elsewhere.example/hook")
            self.end_headers()
            return
        if self.path == "/huge":
            self.send_response(200)
            self.send_header("Content-Length", str(HUGE))
            self.end_headers()
            chunk = b"x" * 65536
            try:
                for _ in range(HUGE // len(chunk)):
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client stopped reading at its cap, as it should
            return
        status = 500 if self.path == "/error" else 200
        payload = b"boom: the queue is full" if status == 500 else b'{"accepted": true}'
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def hook_server():
    Hook.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def webhook(url: str, **fields) -> DeliveryTarget:
    return DeliveryTarget.objects.create(name=fields.pop("name", "hook"), kind="webhook", url=url, **fields)


def command(arguments: list[str], **fields) -> DeliveryTarget:
    return DeliveryTarget.objects.create(name=fields.pop("name", "cmd"), kind="command", arguments=arguments, **fields)


def deliver(catalog, target: DeliveryTarget, user=None) -> GenerationJob:
    """Queue a delivery (no worker) and run it as the worker would."""
    from django.test import TestCase

    comp = composer.Composition(
        prompt="a lighthouse at dusk",
        negative="blurry",
        loras=[composer.LoraChoice(catalog["pixel_xl"].pk, 0.8)],
        steps=25,
        seed=7,
    )
    with TestCase.captureOnCommitCallbacks(execute=False):
        job = deliveries.submit(comp, target, user)
    return deliveries.run(job.pk)


def test_the_composer_offers_targets_and_a_worker_posts_the_json(
    catalog, hook_server, editor_client, run_worker, django_capture_on_commit_callbacks
):
    target = webhook(f"{hook_server}/ok")
    DeliveryTarget.objects.create(name="off", kind="webhook", url=f"{hook_server}/ok", enabled=False)
    page = editor_client.get("/generate/").content.decode()
    assert f'<option value="{target.pk}">hook (HTTP webhook (POST JSON))</option>' in page and ">off (" not in page
    form = {
        "prompt": "a lighthouse at dusk", "negative": "blurry", "steps": "25", "cfg_scale": "6", "width": "512",
        "height": "512", "seed": "7", "batch_size": "1", "count": "1", "lora": "k1",
        "lora-k1-adapter": str(catalog["pixel_xl"].pk), "lora-k1-weight": "0.8", "lora-k1-triggers": "1",
        "target": str(target.pk),
    }  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        response = editor_client.post("/generate/submit/", form, HTTP_HX_REQUEST="true")
    job = GenerationJob.objects.get()
    assert "queued on @hook" in response.content.decode() and job.target == target
    run_worker("default")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.message == "Delivered to hook (HTTP 200)."
    assert (job.result_code, job.output) == (200, '{"accepted": true}')
    body = Hook.received[0]["body"]
    assert body["prompt"] == "a lighthouse at dusk, pixel art <lora:pixel_xl:0.8>"
    assert body["negative_prompt"] == "blurry" and body["parameters"]["steps"] == 25 and body["parameters"]["seed"] == 7
    assert body["loras"] == [
        {"name": "pixel_xl", "weight": 0.8, "adapter_id": catalog["pixel_xl"].pk, "sha256": catalog["pixel_xl"].sha256}
    ]
    panel = editor_client.get(f"/generate/jobs/{job.pk}/").content.decode()
    assert "Delivered to" in panel and "HTTP status" in panel and "accepted" in panel


def test_a_target_is_never_taken_from_the_request(catalog, editor_client, redis_conn):
    form = {"prompt": "x", "steps": "20", "cfg_scale": "6", "width": "512", "height": "512", "seed": "-1",
            "batch_size": "1", "count": "1", "target": "http://evil.example/"}  # fmt: skip
    response = editor_client.post("/generate/submit/", form, HTTP_HX_REQUEST="true")
    assert "That delivery target does not exist" in response.content.decode()
    assert not GenerationJob.objects.exists()


@pytest.mark.parametrize(
    ("path", "status", "message", "code"),
    [
        ("/slow", JobStatus.FAILED, "hook did not answer within 1 s; not resent", None),
        ("/redirect", JobStatus.FAILED, "answered 302, a redirect to https://elsewhere.example/hook", 302),
        ("/error", JobStatus.FAILED, "hook answered 500: boom: the queue is full.", 500),
        ("/huge", JobStatus.SUCCEEDED, "The answer was longer than 64 KB and was cut off.", 200),
    ],
)
def test_webhook_faults_end_in_a_clear_state(catalog, hook_server, path, status, message, code):
    job = deliver(catalog, webhook(f"{hook_server}{path}", timeout_seconds=1, max_output_kb=64))
    assert job.status == status and message in job.message, job.message
    assert job.result_code == code
    assert len(job.output.encode()) <= 64 * 1024
    assert len(Hook.received) == 1  # an answer or a timeout is never resent


def test_connection_errors_are_retried_then_fail_clearly(catalog, settings):
    target = webhook(f"http://127.0.0.1:{free_port()}/hook", retries=2, timeout_seconds=2)
    job = deliver(catalog, target)
    assert job.status == JobStatus.FAILED
    assert job.message == "Could not connect to hook after 3 attempts: connection refused"


PY = sys.executable


def test_a_command_gets_the_prompt_as_an_argument_and_on_stdin_without_a_shell(catalog):
    script = "import sys; print('arg=' + sys.argv[1]); print('stdin=' + sys.stdin.read())"
    target = command([PY, "-c", script, "{prompt} $(touch /tmp/pwned)"], stdin="prompt")
    job = deliver(catalog, target)
    assert job.status == JobStatus.SUCCEEDED and job.message == "cmd finished (exit code 0)."
    assert job.result_code == 0
    prompt = "a lighthouse at dusk, pixel art <lora:pixel_xl:0.8>"
    assert job.output == f"arg={prompt} $(touch /tmp/pwned)\nstdin={prompt}\n"  # passed literally, nothing ran


def test_a_command_can_read_the_json_document(catalog):
    script = "import json, sys; d = json.load(sys.stdin); print(d['loras'][0]['name'], d['parameters']['steps'])"
    job = deliver(catalog, command([PY, "-c", script], stdin="json"))
    assert job.output == "pixel_xl 25\n"


def test_a_command_that_hangs_is_stopped_at_its_timeout(catalog):
    job = deliver(
        catalog, command([PY, "-c", "import time; print('started', flush=True); time.sleep(60)"], timeout_seconds=1)
    )
    assert job.status == JobStatus.FAILED and job.message == "cmd did not finish within 1 s and was stopped."
    assert job.output == "started\n" and job.result_code is None


def test_a_command_that_exits_non_zero_fails_with_its_code_and_output(catalog):
    job = deliver(catalog, command([PY, "-c", "import sys; print('no GPU here'); sys.exit(3)"]))
    assert job.status == JobStatus.FAILED and job.message == "cmd exited with code 3."
    assert (job.result_code, job.output) == (3, "no GPU here\n")


def test_a_command_that_floods_its_output_is_capped(catalog):
    flood = "import sys\nfor _ in range(200): sys.stdout.write('y' * 65536)"
    job = deliver(catalog, command([PY, "-c", flood], max_output_kb=16))
    assert job.status == JobStatus.SUCCEEDED
    assert job.output == "y" * 16 * 1024
    assert "Its output was 13,107,200 bytes; the first 16 KB are kept." in job.message


def test_a_missing_program_fails_clearly(catalog):
    job = deliver(catalog, command(["/nonexistent/tool", "{prompt}"]))
    assert job.status == JobStatus.FAILED and job.message.startswith("Could not start '/nonexistent/tool'")


def test_a_disabled_or_half_configured_target_is_refused_before_queueing(catalog):
    comp = composer.Composition(prompt="x")
    with pytest.raises(deliveries.DeliveryError, match="has no program"):
        deliveries.submit(comp, command([]))
    with pytest.raises(deliveries.DeliveryError, match="is disabled"):
        deliveries.submit(comp, webhook("http://127.0.0.1:9/", name="h2", enabled=False))
    assert not GenerationJob.objects.exists()


def test_the_admin_form_takes_one_argument_per_line_and_checks_each_kind(db):
    form = DeliveryTargetForm(
        {
            "name": "echo",
            "kind": "command",
            "enabled": "on",
            "arguments_text": "/bin/echo\nhello world\n{prompt}",
            "stdin": "none",
            "timeout_seconds": "10",
            "retries": "0",
            "max_output_kb": "64",
        }
    )
    assert form.is_valid(), form.errors
    assert form.save().arguments == ["/bin/echo", "hello world", "{prompt}"]
    values = {"name": "w", "kind": "webhook", "stdin": "none", "timeout_seconds": "0", "retries": "0"}
    bad = DeliveryTargetForm({**values, "max_output_kb": "64"})
    assert not bad.is_valid()
    assert "A webhook needs the URL to POST to." in bad.errors["url"]
    assert "Use 1 to 3600 seconds." in bad.errors["timeout_seconds"]


def test_a_running_delivery_says_it_cannot_be_stopped(catalog, redis_conn):
    from django.test import TestCase

    from generation import submitting

    with TestCase.captureOnCommitCallbacks(execute=False):
        job = deliveries.submit(composer.Composition(prompt="x"), command([PY, "-c", "pass"]))
    GenerationJob.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
    assert submitting.cancel(job.pk).startswith("A running delivery cannot be stopped")
    job.refresh_from_db()
    assert not job.cancel_requested
