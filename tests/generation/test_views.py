"""Composer, jobs, history and image views: full pages, htmx fragments, permissions, bad input."""

from __future__ import annotations

import re
from datetime import timedelta

import django_rq
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from generation import composer, lora_names, pipeline
from generation.models import GenerationJob, JobStatus, Preset
from tests.generation.conftest import RecordingReporter, composition, queue_job

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def form_data(**overrides) -> dict:
    data = {"backend": "default", "prompt": "a lighthouse", "negative": "", "checkpoint": "", "sampler": "Default",
            "steps": "3", "cfg_scale": "6", "width": "64", "height": "64", "seed": "42", "batch_size": "1",
            "count": "1"}  # fmt: skip
    data.update(overrides)
    return data


def with_lora(data: dict, key: str, adapter_id: int, weight: str = "0.8") -> dict:
    lora_keys = data.get("lora", [])
    return {**data, "lora": [*lora_keys, key], f"lora-{key}-adapter": str(adapter_id), f"lora-{key}-weight": weight,
            f"lora-{key}-triggers": "1"}  # fmt: skip


def test_composer_page_for_an_editor(editor_client, catalog, sdnext):
    response = editor_client.get(reverse("generation:compose"), {"adapter": catalog["pixel_xl"].pk})
    html = response.content.decode()
    assert response.status_code == 200
    for fragment_id in (
        "composer-form",
        "composer-backend",
        "composer-preview",
        "composer-presets",
        "generation-queue",
    ):
        assert f'id="{fragment_id}"' in html
    assert "stand-in, not a real SD.Next" in html and "sd_xl_base_1.0" in html and "DPM++ 2M" in html
    assert 'name="lora-' in html and 'type="range"' in html and 'value="0.8"' in html  # preferred weight
    assert "&lt;lora:pixel_xl:0.8&gt;" in html and "pixel art" in html  # the final prompt preview
    assert 'id="generate-button"' in html and ">Compose<" in html and ">History<" in html
    assert lora_names.sync_state("default") is not None  # the first visit read SD.Next's LoRA list
    assert "<script>" not in html and "style=" not in html and "hx-on" not in html


def test_composer_page_when_sdnext_is_not_configured(viewer_client, settings, db):
    settings.SDNEXT_BACKENDS = {"default": {"URL": "", "USER": "", "PASSWORD": ""}}
    html = viewer_client.get(reverse("generation:compose")).content.decode()
    assert "SD.Next is not configured: set LORA_MANAGER_SDNEXT_URL" in html
    assert 'id="generate-button"' not in html and "can look but not generate" in html


def test_composer_page_when_sdnext_is_down(editor_client, catalog, sdnext):
    sdnext.set_fault("refuse")
    html = editor_client.get(reverse("generation:compose")).content.decode()
    assert "Cannot reach SD.Next at" in html and 'id="checkpoint"' in html


def test_open_a_past_job_and_a_preset_in_the_composer(editor_client, catalog, sdnext):
    job = queue_job(composition(prompt="from a job", loras=[composer.LoraChoice(catalog["ink_sd15"].pk, 0.55)]))
    html = editor_client.get(reverse("generation:compose"), {"job": job.pk}).content.decode()
    assert "from a job</textarea>" in html and 'value="0.55"' in html and f"Loaded from job #{job.pk}" in html
    preset = Preset.objects.create(name="night", data=composer.Composition(prompt="night sky", steps=33).to_dict())
    html = editor_client.get(reverse("generation:compose"), {"preset": preset.pk}).content.decode()
    assert "night sky</textarea>" in html and 'value="33"' in html
    assert "no longer exists" in editor_client.get(reverse("generation:compose"), {"job": 999}).content.decode()


def test_preview_fragment_shows_the_prompt_and_lint(viewer_client, catalog, sdnext):
    data = with_lora(form_data(), "a1", catalog["ink_sd15"].pk, "0.7")
    data = with_lora(data, "b2", catalog["ink_sd15"].pk, "0.6")
    response = viewer_client.post(reverse("generation:preview"), data, **HTMX)
    html = response.content.decode()
    assert response.status_code == 200 and html.startswith('<section id="composer-preview"') and "<header" not in html
    assert "&lt;lora:ink_sd15:0.7&gt; &lt;lora:ink_sd15:0.6&gt;" in html
    assert 'data-code="duplicate"' in html and 'data-code="base-model"' not in html  # no checkpoint info cached


def test_preview_reports_invalid_values(viewer_client, catalog, sdnext):
    data = with_lora(form_data(steps="10000", width="500"), "a1", catalog["ink_sd15"].pk, "abc")
    html = viewer_client.post(reverse("generation:preview"), data, **HTMX).content.decode()
    assert "Steps: Ensure this value is less than or equal to 150." in html
    assert "Width: 500 is not a multiple of 8" in html and "Weight &#x27;abc&#x27; is not a number." in html


def test_lora_search_and_row_fragments(viewer_client, catalog, sdnext):
    html = viewer_client.get(reverse("generation:lora_search"), {"q": "ink"}, **HTMX).content.decode()
    assert html.startswith('<ul id="lora-search-results"') and "ink_sd15" in html and "pixel_xl" not in html
    assert "No LoRA matches" in viewer_client.get(reverse("generation:lora_search"), {"q": "zzz"}).content.decode()
    response = viewer_client.get(reverse("generation:lora_row"), {"adapter": catalog["pixel_xl"].pk}, **HTMX)
    assert "HX-Trigger" not in response  # before the swap, the preview would read the form without the new row
    assert response["HX-Trigger-After-Swap"] == "composer-changed"
    html = response.content.decode()
    assert 'class="lora-row"' in html and 'min="-1"' in html and 'max="2"' in html and "recommended 0.5–1" in html
    assert "Add to the negative prompt" in html  # pixel_xl has negative text
    assert viewer_client.get(reverse("generation:lora_row"), {"adapter": "x"}).status_code == 400
    assert viewer_client.get(reverse("generation:lora_row"), {"adapter": 999}).status_code == 404


def search_names(client, query: str) -> list[str]:
    html = client.get(reverse("generation:lora_search"), {"q": query}, **HTMX).content.decode()
    return re.findall(r'aria-label="Add ([^"]+)"', html)


def test_lora_search_finds_by_alias_trigger_word_and_tag(viewer_client, catalog, sdnext):
    from adapters.models import Adapter, Tag

    ink, blur = catalog["ink_sd15"], catalog["blur_xl"]
    Adapter.objects.filter(pk=ink.pk).update(alias="sumi_brush")
    Adapter.objects.filter(pk=blur.pk).update(trigger_words=["dreamy haze"])
    blur.tags.add(Tag.objects.create(name="watercolor"))
    assert search_names(viewer_client, "sumi") == ["ink_sd15"]
    assert search_names(viewer_client, "haze") == ["blur_xl"]
    assert search_names(viewer_client, "waterc") == ["blur_xl"]
    Adapter.objects.filter(pk=catalog["pixel_xl"].pk).update(trigger_words=["neon glyph"])
    assert search_names(viewer_client, "neon glyph") == ["pixel_xl"]  # two words of one trigger
    html = viewer_client.get(reverse("generation:lora_search"), {"q": "haze"}, **HTMX).content.decode()
    assert "trigger dreamy haze" in html and 'data-query="haze"' in html and 'role="option"' in html
    assert search_names(viewer_client, "lora_q-never-read") == [] and search_names(viewer_client, "")


def test_lora_search_puts_names_starting_with_the_query_first(viewer_client, catalog, sdnext):
    from adapters.models import Adapter

    Adapter.objects.filter(pk=catalog["ink_sd15"].pk).update(description="blur in ink", usage_count=50)
    assert search_names(viewer_client, "blur") == ["blur_xl", "ink_sd15"]


def test_composer_search_box_sends_what_the_search_view_reads(editor_client, catalog, sdnext):
    html = editor_client.get(reverse("generation:compose")).content.decode()
    box = re.search(r'<input type="search" id="lora-search"[^>]*>', html).group(0)
    assert 'name="q"' in box and 'role="combobox"' in box and "hx-get=" in box


def test_submit_creates_the_row_and_enqueues_on_commit(
    editor_client, catalog, sdnext, redis_conn, django_capture_on_commit_callbacks
):
    data = with_lora(form_data(), "a1", catalog["pixel_xl"].pk)
    with django_capture_on_commit_callbacks(execute=True):
        response = editor_client.post(reverse("generation:submit"), data, **HTMX)
    job = GenerationJob.objects.get()
    assert response.status_code == 200 and f'Job <a href="/generate/jobs/{job.pk}/">#{job.pk}</a> queued' in (
        response.content.decode()
    )
    assert job.status == JobStatus.QUEUED and job.rq_job_id == f"generation-{job.pk}"
    assert django_rq.get_queue("generation-default").get_job_ids() == [job.rq_job_id]
    assert job.loras.get().adapter == catalog["pixel_xl"] and job.requested_by.username == "eddie"
    pipeline.run(job.pk, RecordingReporter())
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED


def test_submit_without_htmx_redirects_to_the_job(editor_client, catalog, sdnext, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = editor_client.post(reverse("generation:submit"), form_data())
    job = GenerationJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("generation:job", args=[job.pk])


def test_invalid_submit_creates_nothing(editor_client, catalog, sdnext):
    response = editor_client.post(reverse("generation:submit"), form_data(steps="0"), **HTMX)
    assert "Steps: Ensure this value is greater than or equal to 1." in response.content.decode()
    response = editor_client.post(reverse("generation:submit"), form_data(height="100"))
    assert response.status_code == 400 and "100 is not a multiple of 8" in response.content.decode()
    assert not GenerationJob.objects.exists()


def test_submit_to_an_unconfigured_backend_says_which_variable(editor_client, settings, db):
    settings.SDNEXT_BACKENDS = {"default": {"URL": "", "USER": "", "PASSWORD": ""}}
    html = editor_client.post(reverse("generation:submit"), form_data(), **HTMX).content.decode()
    assert "SD.Next is not configured: set LORA_MANAGER_SDNEXT_URL" in html
    assert not GenerationJob.objects.exists()


def test_viewers_cannot_submit_cancel_rerun_or_edit_presets(viewer_client, catalog, sdnext):
    job = queue_job()
    assert viewer_client.post(reverse("generation:submit"), form_data()).status_code == 403
    assert viewer_client.post(reverse("generation:cancel", args=[job.pk])).status_code == 403
    assert viewer_client.post(reverse("generation:rerun", args=[job.pk])).status_code == 403
    assert viewer_client.post(reverse("generation:save_preset"), form_data(preset_name="x")).status_code == 403
    assert viewer_client.post(reverse("generation:refresh_loras")).status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED and GenerationJob.objects.count() == 1


def test_csrf_is_enforced(editor, catalog, sdnext, django_capture_on_commit_callbacks):
    client = Client(enforce_csrf_checks=True)
    client.force_login(editor)
    assert client.post(reverse("generation:submit"), form_data()).status_code == 403
    page = client.get(reverse("generation:compose"))
    token = page.cookies["csrftoken"].value
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("generation:submit"), form_data(), HTTP_X_CSRFTOKEN=token, **HTMX)
    assert response.status_code == 200 and GenerationJob.objects.count() == 1


def test_cancel_views(editor_client, catalog, sdnext):
    queued = queue_job()
    response = editor_client.post(reverse("generation:cancel", args=[queued.pk]), {"fragment": "queue"}, **HTMX)
    assert response.content.decode().startswith('<section id="generation-queue"')
    queued.refresh_from_db()
    assert queued.status == JobStatus.CANCELLED
    running = queue_job()
    GenerationJob.objects.filter(pk=running.pk).update(status=JobStatus.RUNNING)
    response = editor_client.post(reverse("generation:cancel", args=[running.pk]), {"fragment": "panel"}, **HTMX)
    assert f'id="job-{running.pk}-panel"' in response.content.decode() and "Cancelling…" in response.content.decode()
    response = editor_client.post(reverse("generation:cancel", args=[running.pk]), {"next": "https://evil.example/"})
    assert response["Location"] == reverse("generation:job", args=[running.pk])


def test_rerun_queues_the_same_composition(editor_client, catalog, sdnext, django_capture_on_commit_callbacks):
    job = queue_job(composition(prompt="again", loras=[composer.LoraChoice(catalog["pixel_xl"].pk, 0.9)]))
    with django_capture_on_commit_callbacks(execute=False):
        response = editor_client.post(reverse("generation:rerun", args=[job.pk]))
    new = GenerationJob.objects.latest("id")
    assert new.pk != job.pk and new.prompt == job.prompt and response["Location"].endswith(f"/jobs/{new.pk}/")


def test_jobs_page_fragments_and_job_detail(viewer_client, catalog, sdnext):
    done = queue_job(composition(prompt="done one"))
    pipeline.run(done.pk, RecordingReporter())
    queued = queue_job(composition(prompt="waiting one"))
    html = viewer_client.get(reverse("generation:jobs")).content.decode()
    assert 'ws-connect="/ws/generation/jobs/"' in html and f'id="job-{queued.pk}-row"' in html
    assert "position 1" in html and f'id="recent-job-{done.pk}"' in html and "Cancel" not in html
    queue_html = viewer_client.get(reverse("generation:queue"), **HTMX).content.decode()
    assert queue_html.startswith('<section id="generation-queue"') and "<header" not in queue_html
    assert (
        viewer_client.get(reverse("generation:recent"), **HTMX)
        .content.decode()
        .startswith('<section id="generation-recent"')
    )
    html = viewer_client.get(reverse("generation:job", args=[done.pk])).content.decode()
    assert f'ws-connect="/ws/generation/jobs/{done.pk}/"' in html and "Succeeded" in html
    assert "LoRA networks" not in html or "Infotext" in html
    assert "Open in composer" in html and "Re-run" not in html  # viewers do not re-run
    panel = viewer_client.get(reverse("generation:job_panel", args=[done.pk]), **HTMX).content.decode()
    assert panel.startswith(f'<section id="job-{done.pk}-panel"')
    assert viewer_client.get(reverse("generation:job", args=[9999])).status_code == 404


def test_images_are_served_only_to_logged_in_users(client, viewer, catalog, sdnext):
    job = queue_job()
    pipeline.run(job.pk, RecordingReporter())
    url = reverse("generation:image", args=[job.pk, 0, "original"])
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(viewer)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content)[:3] == b"\xff\xd8\xff"
    thumb = client.get(reverse("generation:image", args=[job.pk, 0, "thumb"]))
    assert thumb["Content-Type"] == "image/webp"
    assert client.get(reverse("generation:image", args=[job.pk, 0, "raw"])).status_code == 404
    assert client.get(reverse("generation:image", args=[job.pk, 5, "original"])).status_code == 404
    download = client.get(url, {"download": "1"})
    assert download["Content-Disposition"] == f'attachment; filename="job{job.pk}-1.jpg"'


def test_history_filters_sorts_and_ignores_nonsense(viewer_client, catalog, sdnext):
    pixel = catalog["pixel_xl"]
    with_pixel = queue_job(composition(prompt="pixel one", loras=[composer.LoraChoice(pixel.pk, 0.8)]))
    pipeline.run(with_pixel.pk, RecordingReporter())
    plain = queue_job(composition(prompt="plain one", checkpoint="sd_xl_base_1.0"))
    pipeline.run(plain.pk, RecordingReporter())
    failed = queue_job(composition(prompt="failed one"))
    GenerationJob.objects.filter(pk=failed.pk).update(
        status=JobStatus.FAILED, created_at=timezone.now() - timedelta(days=3)
    )
    url = reverse("generation:history")

    def ids(**params) -> list[int]:
        response = viewer_client.get(url, params, **HTMX, HTTP_HX_TARGET="history-results")
        html = response.content.decode()
        assert html.lstrip().startswith('<section id="history-results"') and "<header" not in html
        return [job.pk for job in GenerationJob.objects.order_by("id") if f'id="history-job-{job.pk}"' in html]

    assert ids() == [with_pixel.pk, plain.pk, failed.pk]
    assert ids(lora="pixel") == [with_pixel.pk]
    assert ids(checkpoint="sd_xl_base_1.0") == [plain.pk]
    assert ids(status="failed") == [failed.pk]
    today = timezone.localdate().isoformat()
    assert ids(**{"from": today}) == [with_pixel.pk, plain.pk]
    assert ids(to=(timezone.localdate() - timedelta(days=1)).isoformat()) == [failed.pk]
    assert ids(sort="slowest") and ids(sort="oldest") == [with_pixel.pk, plain.pk, failed.pk]
    html = viewer_client.get(url, {"status": "exploded", "sort": "sideways", "from": "yesterday", "page": "x"})
    assert html.status_code == 200 and "Ignored: status &#x27;exploded&#x27;; sort &#x27;sideways&#x27;" in (
        html.content.decode()
    )
    full = viewer_client.get(url, {"lora": "pixel"}).content.decode()
    assert "<header" in full and 'value="pixel"' in full and "Open in composer" in full


def test_presets_save_update_load_delete(editor_client, catalog, sdnext):
    url = reverse("generation:save_preset")
    html = editor_client.post(url, form_data(preset_name="Knights", prompt="knight"), **HTMX).content.decode()
    assert "Preset “Knights” saved." in html and html.startswith('<section id="composer-presets"')
    html = editor_client.post(url, form_data(preset_name="Knights", prompt="knight 2"), **HTMX).content.decode()
    assert "Preset “Knights” updated." in html
    preset = Preset.objects.get()
    assert preset.data["prompt"] == "knight 2" and preset.owner.username == "eddie"
    assert (
        "Fix the form first" in editor_client.post(url, form_data(preset_name="x", steps="0"), **HTMX).content.decode()
    )
    assert "This field is required" in editor_client.post(url, form_data(preset_name=" "), **HTMX).content.decode()
    delete = reverse("generation:delete_preset", args=[preset.pk])
    assert "Preset deleted." in editor_client.post(delete, **HTMX).content.decode()
    assert "already deleted" in editor_client.post(delete, **HTMX).content.decode()
    assert editor_client.post(delete)["Location"] == reverse("generation:compose")


def test_refresh_loras_and_backend_fragment(editor_client, catalog, sdnext):
    response = editor_client.post(reverse("generation:refresh_loras"), {"backend": "default"}, **HTMX)
    html = response.content.decode()
    assert html.startswith('<div id="composer-backend"') and "SD.Next lists 3 LoRAs; 3 matched to the catalog." in html
    assert response["HX-Trigger-After-Swap"] == "composer-changed"
    sdnext.set_fault("500", path="/sdapi/v1/refresh-loras")
    html = editor_client.post(reverse("generation:refresh_loras"), {"backend": "default"}, **HTMX).content.decode()
    assert "Could not refresh the LoRA list: SD.Next failed with HTTP 500" in html
    fragment = editor_client.get(reverse("generation:backend"), {"backend": "default", "refresh": "1"}, **HTMX)
    assert fragment.content.decode().startswith('<div id="composer-backend"')


def test_login_required_everywhere(client, db):
    for name in ("compose", "jobs", "history"):
        assert client.get(reverse(f"generation:{name}")).status_code == 302


def test_open_in_composer_from_an_adapter_page(viewer_client, catalog):
    pixel = catalog["pixel_xl"]
    html = viewer_client.get(reverse("adapters:detail", args=[pixel.pk])).content.decode()
    assert f'href="/generate/?adapter={pixel.pk}"' in html and "Open in composer" in html


def test_a_finished_job_page_answers_the_skip_warnings_and_shows_each_image_once(viewer_client, catalog, sdnext):
    from generation.models import BackendLora

    lora_names.refresh("default")
    pixel = catalog["pixel_xl"]
    BackendLora.objects.filter(adapter=pixel).delete()  # the list we read says SD.Next lacks it...
    job = queue_job(composition(loras=[composer.LoraChoice(pixel.pk, 0.8)]))
    assert any(composer.SKIP_PREDICTION in w for w in job.warnings)
    before = viewer_client.get(reverse("generation:job", args=[job.pk])).content.decode()
    assert composer.SKIP_PREDICTION in before and "not yet known" in before
    pipeline.run(job.pk, RecordingReporter())  # ...but its folder has the file: it is applied
    job.refresh_from_db()
    panel = viewer_client.get(reverse("generation:job_panel", args=[job.pk]), **HTMX).content.decode()
    assert panel.startswith(f'<section id="job-{job.pk}-panel"')
    assert f'<div id="job-{job.pk}-facts" class="job-details" hx-swap-oob="true">' in panel  # swapped alongside
    assert composer.SKIP_PREDICTION not in panel and 'data-applied="yes"' in panel
    assert f'<td data-param="seeds-used">{job.seeds[0]}</td>' in panel
    assert 'class="result-grid large"' not in panel and f'id="job-{job.pk}-results"' in panel  # images: below, once
    results = viewer_client.get(reverse("generation:job_results", args=[job.pk]), **HTMX).content.decode()
    assert results.count("<img ") == 1 and f"seed {job.seeds[0]}" in results and "download=1" in results
    assert 'class="job-panel card" data-job-status="succeeded"' in panel  # its colour stays on the edge
