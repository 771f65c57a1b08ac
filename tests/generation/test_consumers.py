"""Generation websockets: who may connect, and what each event renders."""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import Client

from generation.progress import JOB_GROUP, JOBS_GROUP, snapshot
from lora_manager.asgi import application
from tests.conftest import make_user
from tests.generation.conftest import queue_job
from tests.lora_manager.test_realtime import receive_until, session_headers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("path", ["/ws/generation/jobs/", "/ws/generation/jobs/1/"])
def test_anonymous_and_foreign_origin_are_refused(client, viewer, redis_conn, path):
    foreign_headers = session_headers(client, viewer, "http://evil.example")

    async def scenario():
        anonymous = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://127.0.0.1")])
        connected, code = await anonymous.connect()
        assert not connected and code == 4403
        foreign = WebsocketCommunicator(application, path, headers=foreign_headers)
        assert not (await foreign.connect())[0]

    asyncio.run(scenario())


def test_a_user_without_a_role_is_refused(client, redis_conn):
    nobody = make_user("nobody", "viewer")
    nobody.groups.clear()
    headers = session_headers(client, nobody)

    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/generation/jobs/", headers=headers)
        connected, code = await communicator.connect()
        assert not connected and code == 4403

    asyncio.run(scenario())


def test_progress_events_render_the_fragment_and_status_events_reread_the_row(
    client, editor, catalog, sdnext, redis_conn
):
    job = queue_job()
    headers = session_headers(client, editor)

    async def scenario():
        detail = WebsocketCommunicator(application, f"/ws/generation/jobs/{job.pk}/", headers=headers)
        listing = WebsocketCommunicator(application, "/ws/generation/jobs/", headers=headers)
        assert (await detail.connect())[0] and (await listing.connect())[0]
        initial = await detail.receive_from(timeout=5)
        assert f'id="job-{job.pk}-panel"' in initial and "Cancel job" in initial  # editors may cancel
        queue = await listing.receive_from(timeout=5)
        assert 'id="generation-queue"' in queue and 'id="generation-recent"' in queue and "position 1" in queue
        layer = get_channel_layer()
        snap = snapshot(job.pk, "running", "Inference", 7, 20, 0.35, 4.2, 1, 1, "data:image/jpeg;base64,AAAA")
        await layer.group_send(JOB_GROUP.format(pk=job.pk), {"type": "job.progress", "job": snap})
        html = await detail.receive_from(timeout=5)
        assert f'id="job-{job.pk}-progress"' in html and 'value="35"' in html and "step 7/20" in html
        assert "about 4 s left" in html and f'id="job-{job.pk}-preview"' in html and "base64,AAAA" in html
        await layer.group_send(JOBS_GROUP, {"type": "job.status", "job_id": job.pk})
        await receive_until(listing, 'id="generation-queue"')
        await detail.disconnect()
        await listing.disconnect()

    asyncio.run(scenario())


def test_viewers_get_no_cancel_button(client, viewer, catalog, sdnext, redis_conn):
    job = queue_job()
    headers = session_headers(client, viewer)

    async def scenario():
        detail = WebsocketCommunicator(application, f"/ws/generation/jobs/{job.pk}/", headers=headers)
        assert (await detail.connect())[0]
        initial = await detail.receive_from(timeout=5)
        assert "Queued" in initial and "Cancel job" not in initial
        await detail.disconnect()

    asyncio.run(scenario())


def test_every_fragment_the_composers_socket_sends_has_a_place_on_the_composer_page(
    client, editor, catalog, sdnext, redis_conn
):
    """The ws extension swaps each top-level element by id: one without a target is a console error."""
    import re

    queue_job()
    headers = session_headers(client, editor)
    client.force_login(editor)
    page = client.get("/generate/").content.decode()
    path = re.search(r'id="composer-jobs"[^>]*ws-connect="([^"]+)"', page).group(1)

    async def scenario():
        socket = WebsocketCommunicator(application, path, headers=headers)
        assert (await socket.connect())[0]
        sent = await socket.receive_from(timeout=5)
        await socket.disconnect()
        return sent

    sent = asyncio.run(scenario())
    top_level_ids = re.findall(r'(?:^|>)\s*<\w+ id="([^"]+)"', sent)
    assert "generation-queue" in top_level_ids and "position 1" in sent
    for element_id in top_level_ids:
        assert f'id="{element_id}"' in page, f"#{element_id} is sent but the composer has no such element"


def test_the_job_socket_brings_seeds_and_applied_loras_when_the_job_ends(client, viewer, catalog, sdnext, redis_conn):
    """What sits below the panel (parameters, LoRAs) is live too: no reload to see the seeds."""
    from generation import composer, pipeline
    from generation.progress import JobReporter
    from tests.generation.conftest import composition

    job = queue_job(composition(loras=[composer.LoraChoice(catalog["ink_sd15"].pk, 0.6)]))
    headers = session_headers(client, viewer)

    async def scenario():
        detail = WebsocketCommunicator(application, f"/ws/generation/jobs/{job.pk}/", headers=headers)
        assert (await detail.connect())[0]
        initial = await detail.receive_from(timeout=5)
        assert f'id="job-{job.pk}-facts"' in initial and 'data-applied="unknown"' in initial
        await asyncio.to_thread(pipeline.run, job.pk, JobReporter(job.pk, interval=0))
        done = await receive_until(detail, "Succeeded")
        await detail.disconnect()
        return done

    done = asyncio.run(scenario())
    job.refresh_from_db()
    assert job.seeds and f'<td data-param="seeds-used">{job.seeds[0]}</td>' in done
    assert f'id="job-{job.pk}-facts"' in done and 'data-applied="yes"' in done


def test_sockets_watching_one_job_share_one_render_and_a_job_made_private_stops_reaching_others(
    client, editor, viewer, catalog, sdnext, redis_conn, monkeypatch
):
    """200 sockets on one job page each re-rendered the panel per status event (the serving bench's fan-out);
    now one render per event and process, while the visibility rule is still asked for each socket."""
    from generation import consumers, progress

    job = queue_job(user=editor)
    renders = []

    def counted(*args):
        renders.append(args)
        return render_job_panel(*args)

    render_job_panel = consumers.render_job_panel
    monkeypatch.setattr(consumers, "render_job_panel", counted)
    viewer_headers = session_headers(client, viewer)
    editor_headers = session_headers(Client(), editor)  # a second browser: logging in again ends the first session

    async def scenario():
        path = f"/ws/generation/jobs/{job.pk}/"
        viewers = [WebsocketCommunicator(application, path, headers=viewer_headers) for _ in range(5)]
        owner = WebsocketCommunicator(application, path, headers=editor_headers)
        for communicator in [*viewers, owner]:
            assert (await communicator.connect())[0]
            await communicator.receive_from(timeout=5)  # the initial panel
        renders.clear()
        await asyncio.to_thread(progress.send_status, job.pk)
        panels = [await communicator.receive_from(timeout=5) for communicator in [*viewers, owner]]
        assert all(f'id="job-{job.pk}-panel"' in html for html in panels)
        assert len(renders) == 2  # viewers (no cancel) and the editor (cancel): one render each, not six

        await asyncio.to_thread(type(job).objects.filter(pk=job.pk).update, private=True)
        await asyncio.to_thread(progress.send_status, job.pk)
        assert f'id="job-{job.pk}-panel"' in await owner.receive_from(timeout=5)
        for communicator in viewers:
            assert await communicator.receive_nothing(timeout=0.3)
        for communicator in [*viewers, owner]:
            await communicator.disconnect()

    asyncio.run(scenario())
