"""Weight sweeps and comparisons through the SD.Next stand-in and a real RQ worker: one seed, one job per
cell, a labelled grid image; rating the cells sets the adapter's suggested weight; bad input queues nothing."""

from __future__ import annotations

import pytest
from PIL import Image

from adapters.models import Adapter
from generation import storage, sweeps
from generation.models import GenerationJob, JobStatus, Sweep
from tests.generation.results_factory import image_of

pytestmark = pytest.mark.django_db
QUEUE = "generation-default"
FORM = {"mode": "weights", "prompt": "a lighthouse at dusk", "steps": "3", "width": "64", "height": "64", "seed": "-1"}


def start(client, adapter, **data):
    return client.post(f"/generate/adapters/{adapter.pk}/sweep/", {**FORM, **data}, HTTP_HX_REQUEST="true")


def test_a_sweep_runs_one_job_per_weight_with_one_seed_and_draws_the_grid(
    catalog, sdnext, editor_client, run_worker, django_capture_on_commit_callbacks
):
    pixel = catalog["pixel_xl"]
    with django_capture_on_commit_callbacks(execute=True):
        response = start(editor_client, pixel, weights="0, 0.25, 0.5, 0.75, 1")
    sweep = Sweep.objects.get()
    assert response.status_code == 204 and response["HX-Redirect"] == f"/generate/sweeps/{sweep.pk}/"
    jobs = list(GenerationJob.objects.filter(sweep=sweep).order_by("sweep_cell"))
    assert [j.sweep_cell for j in jobs] == [0, 1, 2, 3, 4]
    assert len({j.seed for j in jobs}) == 1 and jobs[0].seed == sweep.seed != -1
    assert [[(lora.adapter_id, lora.weight) for lora in j.loras.all()] for j in jobs] == [
        [(pixel.pk, w)] for w in (0.0, 0.25, 0.5, 0.75, 1.0)
    ]
    prompts = {j.prompt.rsplit("<lora:", 1)[0] for j in jobs}
    assert prompts == {"a lighthouse at dusk, pixel art "}  # the same prompt in every cell
    page = editor_client.get(f"/generate/sweeps/{sweep.pk}/").content.decode()
    assert "0 of 5 jobs done" in page and f'ws-connect="/ws/generation/sweeps/{sweep.pk}/"' in page

    run_worker(QUEUE)

    sweep.refresh_from_db()
    assert all(j.status == JobStatus.SUCCEEDED for j in sweep.jobs.all())
    assert sweep.grid == f"generations/sweeps/{sweep.pk}/grid.png" and sweep.message == "5 of 5 cells have an image."
    sent = [r["json"]["seed"] for r in sdnext.requests if r["path"] == "/sdapi/v1/txt2img"]
    assert sent == [sweep.seed] * 5
    with Image.open(storage.absolute(sweep.grid)) as grid:
        assert grid.format == "PNG" and grid.width > 5 * sweeps.CELL_SIDE and grid.height > sweeps.CELL_SIDE
    panel = editor_client.get(f"/generate/sweeps/{sweep.pk}/panel/").content.decode()
    assert f'id="sweep-{sweep.pk}-panel"' in panel and 'data-grid="ready"' in panel and "<html" not in panel
    assert "pixel_xl @ 0.75" in panel
    grid = editor_client.get(f"/generate/sweeps/{sweep.pk}/grid.png")
    assert grid.status_code == 200 and grid["Content-Type"] == "image/png"
    adapter_page = editor_client.get(f"/generate/adapters/{pixel.pk}/results/", HTTP_HX_REQUEST="true")
    assert f"/generate/sweeps/{sweep.pk}/grid.png" in adapter_page.content.decode()

    # Rating the grid's cells teaches the suggested weight (within the adapter's range 0.5-1.0).
    Adapter.objects.filter(pk=pixel.pk).update(sources={})
    for job, (thumb, stars) in zip(
        jobs, [("down", ""), ("down", ""), ("up", "3"), ("up", "5"), ("up", "4")], strict=True
    ):
        data = {"thumb": thumb, "stars": stars, "from": "sweep"}
        assert editor_client.post(f"/generate/images/{image_of(job).pk}/rate/", data).status_code == 302
    pixel.refresh_from_db()
    assert pixel.preferred_weight == 0.75 and pixel.sources["preferred_weight"] == "ratings"


def test_compare_two_loras_at_one_weight(
    catalog, sdnext, editor_client, run_worker, django_capture_on_commit_callbacks
):
    pixel, blur = catalog["pixel_xl"], catalog["blur_xl"]
    with django_capture_on_commit_callbacks(execute=True):
        response = start(editor_client, pixel, mode="compare", compare_with="blur_xl", weight="0.7", seed="99")
    assert response.status_code == 204
    sweep = Sweep.objects.get()
    assert sweep.mode == "compare" and sweep.labels == ["pixel_xl @ 0.7", "blur_xl @ 0.7"] and sweep.seed == 99
    run_worker(QUEUE)
    sweep.refresh_from_db()
    assert sweep.grid and [lora.adapter for j in sweep.jobs.order_by("sweep_cell") for lora in j.loras.all()] == [
        pixel,
        blur,
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"weights": ""}, "Give at least one weight"),
        ({"weights": ", ".join(str(i / 100) for i in range(500))}, "at most 12 weights; you gave 500"),
        ({"weights": "0.5, abc"}, "“abc” is not a number"),
        ({"weights": "0.5, 9"}, "outside the weights"),
        ({"mode": "compare", "compare_with": "", "weight": "0.5"}, "Name one or two other LoRAs"),
        ({"mode": "compare", "compare_with": "a, b, c", "weight": "0.5"}, "Name one or two other LoRAs"),
        ({"mode": "compare", "compare_with": "nope", "weight": "0.5"}, "No LoRA called “nope”"),
        ({"steps": "0"}, "greater than or equal to 1"),
    ],
)
def test_bad_sweeps_queue_nothing_and_say_why(catalog, sdnext, editor_client, redis_conn, data, message):
    response = start(editor_client, catalog["pixel_xl"], **data)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Sweep.objects.exists() and not GenerationJob.objects.exists()


def test_a_sweep_without_sdnext_configured_queues_nothing(catalog, editor_client, settings, redis_conn):
    settings.SDNEXT_BACKENDS = {"default": {"URL": "", "USER": "", "PASSWORD": ""}}
    response = start(editor_client, catalog["pixel_xl"], weights="0.5, 1")
    assert response.status_code == 422 and "Nothing was queued" in response.content.decode()
    assert not Sweep.objects.exists() and not GenerationJob.objects.exists()


def test_viewers_cannot_start_sweeps(catalog, viewer_client):
    assert start(viewer_client, catalog["pixel_xl"], weights="0.5").status_code == 403


def test_a_grid_marks_failed_cells(catalog, sdnext, editor, run_worker, django_capture_on_commit_callbacks):
    from generation import composer

    sdnext.set_fault("500", times=1, path="/sdapi/v1/txt2img")
    with django_capture_on_commit_callbacks(execute=True):
        sweep = sweeps.start_weight_sweep(
            catalog["pixel_xl"], composer.Composition(prompt="x", steps=3, width=64, height=64), [0.5, 1.0], editor
        )
    run_worker(QUEUE)
    sweep.refresh_from_db()
    statuses = [j.status for j in sweep.jobs.order_by("sweep_cell")]
    assert statuses == [JobStatus.FAILED, JobStatus.SUCCEEDED]
    assert sweep.grid and sweep.message == "1 of 2 cells have an image."


def test_a_rated_cell_keeps_its_label_on_the_sweep_page(
    catalog, sdnext, editor_client, run_worker, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        start(editor_client, catalog["pixel_xl"], weights="0.5")
    run_worker(QUEUE)
    job = GenerationJob.objects.get()
    response = editor_client.post(
        f"/generate/images/{image_of(job).pk}/rate/", {"thumb": "up", "from": "sweep"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert 'aria-label="Thumbs up for pixel_xl @ 0.5"' in html and 'aria-pressed="true"' in html
    assert 'name="from" value="sweep"' in html


@pytest.mark.django_db(transaction=True)
def test_a_private_sweep_is_hidden_from_others_on_the_page_and_the_websocket(
    catalog, sdnext, editor, client, redis_conn
):
    import asyncio

    from channels.testing import WebsocketCommunicator
    from django.test import TestCase

    from generation import composer
    from lora_manager.asgi import application
    from tests.conftest import make_user
    from tests.lora_manager.test_realtime import session_headers

    with TestCase.captureOnCommitCallbacks(execute=False):
        sweep = sweeps.start_weight_sweep(
            catalog["pixel_xl"], composer.Composition(prompt="x", steps=3, width=64, height=64), [0.5], editor, True
        )
    other = make_user("otto", "editor")
    client.force_login(other)
    assert client.get(f"/generate/sweeps/{sweep.pk}/").status_code == 404
    assert client.get(f"/generate/sweeps/{sweep.pk}/grid.png").status_code == 404

    async def connect(headers) -> bool:
        communicator = WebsocketCommunicator(application, f"/ws/generation/sweeps/{sweep.pk}/", headers=headers)
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert asyncio.run(connect(session_headers(client, other))) is False
    assert asyncio.run(connect(session_headers(client, editor))) is True
