"""Recipe pages: upload (several files, per-file errors), browse/search/paging, detail, delete, permissions,
private results, "Open in composer", "Generate again" and "Save as recipe" on a job's image."""

from __future__ import annotations

import hashlib
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from adapters.identity import hash_pending
from adapters.models import Adapter
from generation import recipes
from generation.models import GenerationJob, JobStatus, Recipe
from generation.recipe_parsing import ParsedLora, ParsedRecipe
from lora_manager.roles import EDITOR
from tests.conftest import make_user
from tests.generation import recipe_images as ri
from tests.generation.results_factory import finished_job, image_of
from tests.standins.civitai import StandInLora


@pytest.fixture
def hashed(catalog):
    hash_pending(workers=1)
    return catalog


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/png")


def test_upload_several_files_with_per_file_errors(editor_client, hashed):
    files = [
        _upload("fox.png", ri.a1111_png()),
        _upload("comfy.png", ri.comfy_png()),
        _upload("notes.png", b"just some text"),
        _upload("empty.png", ri.png_with_text({})),
    ]
    response = editor_client.post("/generate/recipes/import/", {"images": files}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="recipe-import"' in html and "<html" not in html
    assert "fox.png: <a" in html and "comfy.png: <a" in html
    assert "notes.png: not a PNG, JPEG or WebP" in html
    assert "empty.png: no generation parameters found" in html
    assert 'id="recipe-results" aria-live="polite" hx-swap-oob="true"' in html  # the grid refreshes too
    assert Recipe.objects.count() == 2


def test_upload_without_htmx(editor_client, hashed):
    response = editor_client.post("/generate/recipes/import/", {"images": [_upload("fox.png", ri.a1111_png())]})
    recipe = Recipe.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/generate/recipes/{recipe.pk}/"
    response = editor_client.post("/generate/recipes/import/", {"images": [_upload("x.png", b"nope")]})
    assert response.status_code == 422 and "x.png: not a PNG" in response.content.decode()
    response = editor_client.post("/generate/recipes/import/", {})
    assert response.status_code == 422 and "Choose or drop" in response.content.decode()


def test_an_oversized_upload_is_refused_by_name(editor_client, hashed, monkeypatch):
    monkeypatch.setattr(recipes, "MAX_IMAGE_BYTES", 1024)
    files = [_upload("big.png", ri.a1111_png()), _upload("fine.png", b"x" * 100)]
    html = editor_client.post("/generate/recipes/import/", {"images": files}, headers={"HX-Request": "true"})
    assert "big.png: the file is larger than 1,024 bytes" in html.content.decode()
    assert "fine.png: not a PNG" in html.content.decode()
    assert Recipe.objects.count() == 0


def test_csrf_is_enforced_on_upload(editor, hashed):
    client = Client(enforce_csrf_checks=True)
    client.force_login(editor)
    response = client.post("/generate/recipes/import/", {"images": [_upload("fox.png", ri.a1111_png())]})
    assert response.status_code == 403 and Recipe.objects.count() == 0


def test_list_search_paging_and_detail(viewer_client, hashed):
    fox = recipes.import_image(ri.a1111_png(), "fox.png")
    comfy = recipes.import_image(ri.comfy_png(), "comfy.png")
    page = viewer_client.get("/generate/recipes/").content.decode()
    assert f'id="recipe-{fox.pk}-card"' in page and f'id="recipe-{comfy.pk}-card"' in page
    assert 'href="/generate/recipes/"' in page  # in the navigation
    assert "Import images" not in page  # viewers read only
    found = viewer_client.get(
        "/generate/recipes/?q=lighthouse", headers={"HX-Request": "true", "HX-Target": "recipe-results"}
    )
    html = found.content.decode()
    assert f'id="recipe-{comfy.pk}-card"' in html and f'id="recipe-{fox.pk}-card"' not in html and "<html" not in html
    by_lora = viewer_client.get("/generate/recipes/?q=ink_sd15").content.decode()
    assert f'id="recipe-{fox.pk}-card"' in by_lora and f'id="recipe-{comfy.pk}-card"' in by_lora
    for _ in range(25):
        recipes.import_image(ri.a1111_png(), "more.png")
    assert "Page 1 of 2" in viewer_client.get("/generate/recipes/").content.decode()
    assert "Page 2 of 2" in viewer_client.get("/generate/recipes/?page=2").content.decode()
    detail = viewer_client.get(f"/generate/recipes/{fox.pk}/").content.decode()
    assert "masterpiece, ink drawing of a fox" in detail and "blurry, lowres" in detail
    assert "File name" in detail and "DPM++ 2M Karras" in detail and "Clip skip" in detail
    assert f'href="/generate/?recipe={fox.pk}"' in detail
    assert viewer_client.get(f"/generate/recipes/{fox.pk}/image/card")["Content-Type"] == "image/webp"
    assert viewer_client.get(f"/generate/recipes/{fox.pk}/image/full")["Content-Type"] == "image/png"
    assert viewer_client.get(f"/generate/recipes/{fox.pk}/image/huge").status_code == 404


def test_missing_loras_are_listed_with_their_hash(viewer_client, hashed):
    recipe = recipes.import_image(ri.a1111_png(ink_hash="0123456789ab", pixel_hash="ba9876543210"), "x.png")
    Recipe.objects.filter(pk=recipe.pk).update(prompt="<lora:gone:0.5>")
    recipe.loras.filter(name="ink_sd15").update(name="gone", adapter=None, matched_by="", note="not in the catalog")
    html = viewer_client.get(f"/generate/recipes/{recipe.pk}/").content.decode()
    assert "lora-missing" in html and "0123456789ab" in html


def test_a_missing_lora_is_found_on_civitai_by_its_hash(viewer_client, civitai, settings):
    """The recipe page links each missing LoRA with a hash to Civitai: one lookup by hash when clicked, then
    its model page; a hash Civitai does not know, or Civitai failing, is a message on the recipe page."""
    sha = hashlib.sha256(b"neon glow file").hexdigest()
    neon_on_civitai = civitai.add_lora(StandInLora(sha, name="Neon Glow"))
    parsed = ParsedRecipe(source="a1111", prompt="a neon city")
    parsed.loras = [
        ParsedLora("neon_glow", 0.5, sha[:10].upper()),
        ParsedLora("ghost", 0.7, "0123456789ab"),
        ParsedLora("nohash", 0.4),
    ]
    recipe = recipes.save(parsed, title="neon.png")
    neon, ghost, nohash = recipe.loras.order_by("position")
    html = viewer_client.get(f"/generate/recipes/{recipe.pk}/").content.decode()
    for lora in (neon, ghost):
        assert f'href="/generate/recipes/{recipe.pk}/loras/{lora.pk}/civitai/"' in html
    assert f"/loras/{nohash.pk}/civitai/" not in html  # nothing to ask about
    assert not civitai.requests  # nothing is asked until a person clicks

    answer = viewer_client.get(f"/generate/recipes/{recipe.pk}/loras/{neon.pk}/civitai/")
    assert answer.status_code == 302
    assert answer["Location"] == (
        f"https://civitai.com/models/{neon_on_civitai.model_id}?modelVersionId={neon_on_civitai.version_id}"
    )
    assert [r["path"] for r in civitai.requests] == [f"/api/v1/model-versions/by-hash/{sha[:10]}"]

    page = viewer_client.get(f"/generate/recipes/{recipe.pk}/loras/{ghost.pk}/civitai/", follow=True)
    assert "Civitai does not know “ghost” (hash 0123456789ab)." in page.content.decode()
    page = viewer_client.get(f"/generate/recipes/{recipe.pk}/loras/{nohash.pk}/civitai/", follow=True)
    assert "“nohash” has no usable hash to look up on Civitai." in page.content.decode()
    civitai.set_fault("500")
    page = viewer_client.get(f"/generate/recipes/{recipe.pk}/loras/{neon.pk}/civitai/", follow=True)
    assert page.status_code == 200 and "Civitai lookup of “neon_glow” failed: Civitai failed 2 times (HTTP 500)" in (
        page.content.decode()
    )
    civitai.set_fault(None)
    other = recipes.save(ParsedRecipe(source="a1111"), title="other.png")
    assert viewer_client.get(f"/generate/recipes/{other.pk}/loras/{neon.pk}/civitai/").status_code == 404

    settings.CIVITAI_URL = ""  # switched off: no link, and the address refuses without touching the network
    asked = len(civitai.requests)
    assert "/civitai/" not in viewer_client.get(f"/generate/recipes/{recipe.pk}/").content.decode()
    page = viewer_client.get(f"/generate/recipes/{recipe.pk}/loras/{neon.pk}/civitai/", follow=True)
    assert "Civitai lookups are switched off" in page.content.decode() and len(civitai.requests) == asked


def test_delete_needs_the_permission(viewer, editor_client, hashed):
    recipe = recipes.import_image(ri.a1111_png(), "fox.png")
    assert _client(viewer).post(f"/generate/recipes/{recipe.pk}/delete/").status_code == 403
    response = editor_client.post(f"/generate/recipes/{recipe.pk}/delete/", headers={"HX-Request": "true"})
    assert response.status_code == 204 and response["HX-Redirect"] == "/generate/recipes/"
    assert not Recipe.objects.exists()


def test_open_in_composer_prefills_prompt_loras_and_settings(editor_client, hashed, sdnext):
    recipe = recipes.import_image(ri.comfy_png(), "comfy.png")
    html = editor_client.get(f"/generate/?recipe={recipe.pk}").content.decode()
    assert "Loaded from recipe" in html
    assert "a lighthouse at dusk, ink style" in html and "watermark, text" in html
    assert 'value="987654321"' in html and 'value="896"' in html and 'value="1152"' in html
    rows = re.findall(r'name="lora-(\w+)-adapter" value="(\d+)"', html)
    assert [int(pk) for _, pk in rows] == [hashed["ink_sd15"].pk, hashed["pixel_xl"].pk]
    weights = [re.search(rf'name="lora-{key}-weight"[^>]*value="([^"]+)"', html).group(1) for key, _ in rows]
    assert weights == ["0.75", "0.5"]
    assert "DPM++ 2M Karras" in html
    assert "Recipe #999 no longer exists" in editor_client.get("/generate/?recipe=999").content.decode()


def test_generate_again_submits_through_the_queue(
    editor_client, viewer, hashed, sdnext, django_capture_on_commit_callbacks
):
    recipe = recipes.import_image(ri.a1111_png(), "fox.png")
    assert _client(viewer).post(f"/generate/recipes/{recipe.pk}/generate/").status_code == 403
    with django_capture_on_commit_callbacks(execute=False):
        response = editor_client.post(f"/generate/recipes/{recipe.pk}/generate/")
    job = GenerationJob.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/generate/jobs/{job.pk}/"
    assert job.status == JobStatus.QUEUED and job.seed == 123456789 and (job.width, job.height) == (832, 1216)
    assert "<lora:" in job.prompt and [lora.adapter_id for lora in job.loras.all()] == [
        hashed["ink_sd15"].pk,
        hashed["pixel_xl"].pk,
    ]


def test_save_as_recipe_from_a_job_image_and_privacy(editor_client, viewer, editor, hashed):
    job = finished_job(loras=[(hashed["ink_sd15"], 0.9)], user=editor)
    image = image_of(job)
    page = editor_client.get(f"/generate/jobs/{job.pk}/results/").content.decode()
    assert f'action="/generate/images/{image.pk}/save-recipe/"' in page
    assert "save-recipe" not in _client(viewer).get(f"/generate/jobs/{job.pk}/results/").content.decode()
    response = editor_client.post(f"/generate/images/{image.pk}/save-recipe/", headers={"HX-Request": "true"})
    recipe = Recipe.objects.get()
    assert response.status_code == 200 and f'href="/generate/recipes/{recipe.pk}/"' in response.content.decode()
    assert recipe.loras.get().matched_by == "autov3"
    # A private job's recipe is private too: others get a 404, as for the job itself.
    other = make_user("otto", EDITOR)
    secret = finished_job(loras=[], user=editor, private=True)
    client = Client()
    client.force_login(other)
    assert client.post(f"/generate/images/{image_of(secret).pk}/save-recipe/").status_code == 404
    editor_client.post(f"/generate/images/{image_of(secret).pk}/save-recipe/")
    private = Recipe.objects.get(job=secret)
    assert private.private
    assert client.get(f"/generate/recipes/{private.pk}/").status_code == 404
    assert client.get(f"/generate/?recipe={private.pk}").content.decode().count("no longer exists") == 1
    assert f"recipe-{private.pk}-card" not in client.get("/generate/recipes/").content.decode()


def test_login_required(client, db):
    for url in ("/generate/recipes/", "/generate/recipes/1/"):
        assert client.get(url).status_code == 302


def test_match_again_after_the_missing_lora_is_hashed(editor_client, catalog):
    recipe = recipes.import_image(ri.a1111_png(ink_hash="0" * 12), "fox.png")  # before hashing: by file name
    ink = recipe.loras.get(name="ink_sd15")
    assert ink.matched_by == "file"
    hash_pending(workers=1)  # the catalog is hashed later; let the image carry the real hash
    ink.hash = Adapter.objects.get(name="ink_sd15").tensor_sha256[:12]
    ink.save(update_fields=["hash"])
    page = editor_client.get(f"/generate/recipes/{recipe.pk}/").content.decode()
    assert "Match again" not in page  # nothing is missing
    ink.adapter, ink.matched_by = None, ""
    ink.save(update_fields=["adapter", "matched_by"])
    assert "Match again" in editor_client.get(f"/generate/recipes/{recipe.pk}/").content.decode()
    response = editor_client.post(f"/generate/recipes/{recipe.pk}/rematch/", follow=True)
    assert "1 LoRA match changed." in response.content.decode()
    ink.refresh_from_db()
    assert (ink.adapter_id, ink.matched_by) == (catalog["ink_sd15"].pk, "autov3")


def test_civitai_examples_become_recipes_once(editor_client, viewer, hashed):
    """A lookup stores Civitai example images with their ``meta``; the detail page's button turns them into
    recipes (LoRAs matched to the catalog), and a second press adds nothing."""
    from django.utils import timezone

    from adapters.models import CivitaiImage, CivitaiRecord

    pixel = hashed["pixel_xl"]
    CivitaiRecord.objects.create(adapter=pixel, checked_at=timezone.now(), found=True, model_name="Pixel")
    meta = {
        "prompt": "a knight, pixel art, <lora:ink_sd15:0.7>",
        "negativePrompt": "blurry",
        "seed": 42,
        "steps": 25,
        "sampler": "Euler a",
        "cfgScale": 6.5,
        "Size": "832x1216",
        "resources": [{"name": "pixel_xl", "type": "lora", "weight": 0.8}],
    }
    CivitaiImage.objects.create(adapter=pixel, position=0, url="https://image.civitai.com/x/1.png", meta=meta)
    CivitaiImage.objects.create(adapter=pixel, position=1, url="https://image.civitai.com/x/2.png", meta={})
    page = editor_client.get(f"/library/{pixel.pk}/").content.decode()
    assert "2 example images stored, 1 with generation parameters." in page and 'id="civitai-recipes-button"' in page

    assert _client(viewer).post(f"/generate/recipes/from-civitai/{pixel.pk}/").status_code == 403
    response = editor_client.post(f"/generate/recipes/from-civitai/{pixel.pk}/")
    assert response.status_code == 302
    recipe = Recipe.objects.get()
    assert (recipe.source, recipe.prompt, recipe.seed, recipe.width, recipe.height) == (
        "civitai",
        meta["prompt"],
        42,
        832,
        1216,
    )
    matched = {lora.name: (lora.adapter_id, lora.weight) for lora in recipe.loras.all()}
    assert matched == {"ink_sd15": (hashed["ink_sd15"].pk, 0.7), "pixel_xl": (pixel.pk, 0.8)}
    assert recipe.parameters["civitai image"] == "https://image.civitai.com/x/1.png"
    editor_client.post(f"/generate/recipes/from-civitai/{pixel.pk}/")
    assert Recipe.objects.count() == 1
    assert editor_client.post("/generate/recipes/from-civitai/999999/").status_code == 404
    detail = editor_client.get(f"/library/{pixel.pk}/").content.decode()
    assert "Save the examples as recipes" in detail
    CivitaiImage.objects.filter(adapter=pixel).update(meta=None)  # examples without parameters: nothing to save
    page = editor_client.get(f"/library/{pixel.pk}/").content.decode()
    assert "2 example images stored, 0 with generation parameters." in page and "civitai-recipes-button" not in page
