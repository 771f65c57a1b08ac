"""Recipes against a real catalog: matching by hash/file/name, storing, the command, the API, the pages."""

from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from adapters.identity import hash_pending
from adapters.models import Adapter
from adapters.thumbnails import thumbnail_path
from generation import recipes, storage
from generation.models import GenerationJob, Recipe
from generation.recipe_matching import match
from generation.recipe_parsing import ParsedLora
from lora_manager.roles import EDITOR
from tests.conftest import make_user
from tests.generation import recipe_images as ri
from tests.generation.results_factory import finished_job, image_of


@pytest.fixture
def hashed(catalog) -> dict[str, Adapter]:
    counts = hash_pending(workers=1)
    assert counts["hashed"] == 3
    return {a.name: a for a in Adapter.objects.all()}


def a1111_for(adapters, upper: bool = False) -> bytes:
    ink, pixel = adapters["ink_sd15"].tensor_sha256[:12], adapters["pixel_xl"].tensor_sha256[:12]
    return ri.a1111_png(ink_hash=ink.upper() if upper else ink, pixel_hash=pixel)


def upload(name: str, data: bytes, content_type: str = "image/png") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=content_type)


# --- matching ----------------------------------------------------------------------------------------------------


def test_match_by_hash_in_every_flavour(hashed):
    ink = hashed["ink_sd15"]
    for digest, how in [
        (ink.tensor_sha256[:12], "autov3"),
        (ink.tensor_sha256[:12].upper(), "autov3"),  # Civitai prints upper case
        (ink.tensor_sha256[:8], "autov3"),  # SD.Next's 8-character shorthash
        ("0x" + ink.tensor_sha256, "autov3"),  # OneTrainer's prefix, full length
        (ink.sha256[:10].upper(), "autov2"),
        (ink.sha256, "sha256"),
    ]:
        found = match(ParsedLora(name="whatever", hash=digest))
        assert (found.adapter, found.matched_by) == (ink, how), digest


def test_match_falls_back_to_file_then_name(hashed):
    assert match(ParsedLora(name="x", file="style/ink_sd15.safetensors")).matched_by == "file"
    assert match(ParsedLora(name="ink_sd15")).matched_by == "file"  # <lora:ink_sd15> = ink_sd15.safetensors
    Adapter.objects.filter(pk=hashed["blur_xl"].pk).update(alias="Soft Blur")
    found = match(ParsedLora(name="soft blur", hash="ffffffffffff"))  # unknown hash, known alias
    assert (found.adapter.pk, found.matched_by) == (hashed["blur_xl"].pk, "name")


def test_unknown_loras_are_missing_with_their_hash(hashed):
    found = match(ParsedLora(name="nowhere", hash="DEADBEEF0123"))
    assert (found.adapter, found.matched_by) == (None, "")
    assert "not in the catalog (hash deadbeef0123)" in found.note
    bad = match(ParsedLora(name="nowhere", hash="xyz"))
    assert "not a usable hash" in bad.note


def test_two_loras_with_the_same_short_hash_are_reported_and_none_picked(hashed):
    ink, pixel = hashed["ink_sd15"], hashed["pixel_xl"]
    Adapter.objects.filter(pk=pixel.pk).update(tensor_sha256=ink.tensor_sha256[:12] + "0" * 52)
    found = match(ParsedLora(name="pixel_xl", hash=ink.tensor_sha256[:12]))
    assert found.adapter is None and found.matched_by == ""
    assert "matches 2 catalog LoRAs" in found.note and "ink_sd15" in found.note and "pixel_xl" in found.note


# --- importing ---------------------------------------------------------------------------------------------------


def test_import_stores_image_thumbnails_parameters_and_matches(hashed, settings):
    data = a1111_for(hashed, upper=True)
    recipe = recipes.import_image(data, "fox.png")
    assert recipe.title == "fox.png" and recipe.source == "a1111"
    assert storage.absolute(recipe.image).read_bytes() == data
    assert thumbnail_path(recipe.image_key, "card").is_file()
    out = recipes.as_json(recipe)
    assert list(out) == [
        "id",
        "source",
        "prompt",
        "negative",
        "steps",
        "sampler",
        "cfg_scale",
        "seed",
        "width",
        "height",
        "checkpoint",
        "loras",
    ]
    assert out["loras"] == [
        {
            "name": "ink_sd15",
            "weight": 0.8,
            "hash": hashed["ink_sd15"].tensor_sha256[:12].upper(),
            "adapter_id": hashed["ink_sd15"].pk,
            "matched_by": "autov3",
        },
        {
            "name": "pixel_xl",
            "weight": 0.6,
            "hash": hashed["pixel_xl"].tensor_sha256[:12],
            "adapter_id": hashed["pixel_xl"].pk,
            "matched_by": "autov3",
        },
    ]


def test_import_comfyui_matches_by_file(hashed):
    recipe = recipes.import_image(ri.comfy_png(), "comfy.png")
    assert [(x["name"], x["weight"], x["adapter_id"], x["matched_by"]) for x in recipes.as_json(recipe)["loras"]] == [
        ("ink_sd15", 0.75, hashed["ink_sd15"].pk, "file"),
        ("pixel_xl", 0.5, hashed["pixel_xl"].pk, "file"),
    ]


def _bomb() -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(buffer, "PNG", pnginfo=_info())  # 144 Mpx, a few KB
    return buffer.getvalue()


def _info():
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", ri.a1111_text())
    return info


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"hello, I am a text file", "not a PNG, JPEG or WebP"),
        (ri.png_with_text({}), "no generation parameters found"),
        (_bomb(), "image too large"),
    ],
)
def test_bad_files_import_nothing(hashed, data, message):
    with pytest.raises(recipes.ImportFailed, match=message):
        recipes.import_image(data, "bad.png")
    assert Recipe.objects.count() == 0


def test_from_civitai_meta(hashed):
    digest = hashed["blur_xl"].sha256[:10].upper()
    resource = {"name": "Blur", "type": "lora", "weight": 0.4, "hash": digest}
    meta = {"prompt": "soft focus", "steps": 20, "resources": [resource]}
    recipe = recipes.from_civitai_meta(meta, title="Civitai image 1")
    assert recipes.as_json(recipe)["loras"] == [
        {"name": "Blur", "weight": 0.4, "hash": digest, "adapter_id": hashed["blur_xl"].pk, "matched_by": "autov2"}
    ]
    with pytest.raises(recipes.ImportFailed, match="'meta' is empty"):
        recipes.from_civitai_meta({})


def test_from_job_image_and_private_results(hashed, editor):
    owner = make_user("olga", EDITOR)
    job = finished_job(loras=[(hashed["pixel_xl"], 0.7)], user=owner, private=True, prompt="final")
    GenerationJob.objects.filter(pk=job.pk).update(composition={"prompt": "a red kite", "steps": 12})
    job.refresh_from_db()
    recipe = recipes.from_job_image(image_of(job), owner)
    assert (recipe.source, recipe.prompt, recipe.seed, recipe.private, recipe.job_id) == (
        "job",
        "a red kite",
        1234,
        True,
        job.pk,
    )
    assert [(x.adapter_id, x.matched_by, x.weight) for x in recipe.loras.all()] == [
        (hashed["pixel_xl"].pk, "autov3", 0.7)
    ]
    assert recipes.visible(owner).filter(pk=recipe.pk).exists()
    assert not recipes.visible(editor).filter(pk=recipe.pk).exists()


def test_delete_removes_the_image_unless_shared(hashed):
    data = a1111_for(hashed)
    first, second = recipes.import_image(data, "a.png"), recipes.import_image(data, "b.png")
    path = storage.absolute(first.image)
    recipes.delete(first)
    assert path.is_file() and thumbnail_path(second.image_key, "card").is_file()
    recipes.delete(second)
    assert not path.exists() and not thumbnail_path(second.image_key, "card").exists()


def test_composition_for_strips_tokens_maps_samplers_and_clamps(hashed):
    recipe = recipes.import_image(a1111_for(hashed), "fox.png")
    composition, notes = recipes.composition_for(recipe)
    assert composition.prompt == "masterpiece, ink drawing of a fox\ndetailed background"
    assert [(c.adapter_id, c.weight, c.triggers) for c in composition.loras] == [
        (hashed["ink_sd15"].pk, 0.8, False),
        (hashed["pixel_xl"].pk, 0.6, False),
    ]
    assert (composition.steps, composition.cfg_scale, composition.seed) == (28, 6.5, 123456789)
    assert (composition.width, composition.height, composition.sampler) == (832, 1216, "DPM++ 2M Karras")
    comfy = recipes.import_image(ri.comfy_png(), "c.png")
    Recipe.objects.filter(pk=comfy.pk).update(seed=2**40, width=4000)
    composition, notes = recipes.composition_for(Recipe.objects.get(pk=comfy.pk))
    assert composition.sampler == "DPM++ 2M Karras" and composition.seed == -1 and composition.width == 2048
    assert any("random seed" in n for n in notes) and any("4000" in n for n in notes)


def test_match_checkpoint_by_hash_or_stem():
    listed = [
        {
            "title": "sd_xl_base_1.0.safetensors [31e35c80fc]",
            "model_name": "sd_xl_base_1.0",
            "filename": "/m/sd_xl_base_1.0.safetensors",
        }
    ]
    assert recipes.match_checkpoint("whatever", "31E35C80FC", listed) == listed[0]["title"]
    assert recipes.match_checkpoint("sd_xl_base_1.0.safetensors", "", listed) == listed[0]["title"]
    assert recipes.match_checkpoint("other", "", listed) is None


# --- command -----------------------------------------------------------------------------------------------------


def test_import_recipe_command_json(hashed, tmp_path, capsys):
    good = tmp_path / "fox.png"
    good.write_bytes(a1111_for(hashed))
    comfy = tmp_path / "comfy.png"
    comfy.write_bytes(ri.comfy_png())
    call_command("import_recipe", str(good), str(comfy), "--json")
    out = json.loads(capsys.readouterr().out)
    assert list(out) == ["recipes"]
    assert [r["source"] for r in out["recipes"]] == ["a1111", "comfyui"]
    assert [lora["matched_by"] for r in out["recipes"] for lora in r["loras"]] == ["autov3", "autov3", "file", "file"]


def test_import_recipe_command_reports_bad_files_and_imports_the_rest(hashed, tmp_path, capsys):
    good = tmp_path / "fox.png"
    good.write_bytes(a1111_for(hashed))
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(CommandError, match="2 of 3 file"):
        call_command("import_recipe", str(text), str(good), str(tmp_path / "absent.png"))
    captured = capsys.readouterr()
    assert "notes.png: not a PNG, JPEG or WebP" in captured.err
    assert "absent.png: cannot read the file" in captured.err
    assert "ink_sd15 @ 0.8: matched by autov3" in captured.out
    assert Recipe.objects.count() == 1
