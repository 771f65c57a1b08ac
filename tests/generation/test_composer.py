"""Prompt building and every linter rule."""

from __future__ import annotations

import pytest

from adapters.models import Adapter, AdapterStatus, BaseModel
from generation import backends, composer, lora_names
from generation.composer import Composition, LoraChoice
from tests.generation.conftest import composition

pytestmark = pytest.mark.django_db


def codes(built: composer.Built) -> list[str]:
    return [issue.code for issue in built.issues]


def standin_info(checkpoint: str = "sd_xl_base_1.0 [1]", pipeline: str = "StableDiffusionXLPipeline"):
    return backends.ServerInfo(
        "default",
        ok=True,
        checkpoints=[{"title": checkpoint, "model_name": checkpoint.split(" ")[0]}],
        current={"title": checkpoint, "class": pipeline},
        samplers=["Euler"],
    )


def test_final_prompt_inserts_triggers_negative_text_and_tokens(catalog, sdnext):
    lora_names.refresh("default")
    pixel, ink = catalog["pixel_xl"], catalog["ink_sd15"]
    comp = composition(
        prompt="a cat",
        negative="blurry",
        loras=[LoraChoice(pixel.pk, 0.8, triggers=True, negative=True), LoraChoice(ink.pk, 0.456, triggers=False)],
    )
    built = composer.build(comp, standin_info())
    assert built.prompt == "a cat, pixel art <lora:pixel_xl:0.8> <lora:ink_sd15:0.46>"
    assert built.negative == "blurry, smooth shading"


def test_triggers_already_in_the_prompt_are_not_repeated_and_activation_text_wins(catalog, sdnext):
    pixel = catalog["pixel_xl"]
    built = composer.build(composition(prompt="Pixel Art of a cat", loras=[LoraChoice(pixel.pk, 1)]))
    assert built.prompt.lower().count("pixel art") == 1
    pixel.activation_text = "8-bit sprite, pixel art"
    pixel.save()
    built = composer.build(composition(prompt="a cat", loras=[LoraChoice(pixel.pk, 1)]))
    assert built.prompt.startswith("a cat, 8-bit sprite, pixel art <lora:")


def test_sdnext_names_win_over_file_stems(catalog, sdnext):
    pixel = catalog["pixel_xl"]
    assert composer.build(composition(loras=[LoraChoice(pixel.pk, 1)])).loras[0].name == "pixel_xl"  # stem guess
    lora_names.refresh("default")
    Adapter.objects.filter(pk=pixel.pk).update(name="Pixel Art XL (renamed)")
    built = composer.build(composition(loras=[LoraChoice(pixel.pk, 1)]))
    assert built.loras[0].name == "pixel_xl" and built.loras[0].known is True


def test_base_model_mismatch_with_the_checkpoint(catalog, sdnext):
    ink = catalog["ink_sd15"]
    built = composer.build(composition(loras=[LoraChoice(ink.pk, 0.7)]), standin_info())
    issue = next(i for i in built.issues if i.code == "base-model")
    assert issue.level == "warning" and "SD 1.x LoRA but the checkpoint looks SDXL" in issue.message
    flux = composer.build(
        composition(checkpoint="flux1-dev", loras=[LoraChoice(catalog["pixel_xl"].pk, 0.7)]), standin_info()
    )
    assert "base-model" in codes(flux)
    Adapter.objects.filter(pk=ink.pk).update(base_model=BaseModel.UNKNOWN)
    assert "base-model" not in codes(composer.build(composition(loras=[LoraChoice(ink.pk, 0.7)]), standin_info()))


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("sd_xl_base_1.0", "SDXL"),
        ("juggernautXL_v9", "SDXL"),
        ("ponyDiffusionV6", "SDXL"),
        ("v1-5-pruned-emaonly", "SD1"),
        ("flux1-dev-fp8", "Flux"),
        ("sd3_medium", "SD3"),
        ("v2-1_768-ema-pruned", "SD2"),
        ("dreamshaper_8", None),
    ],
)
def test_checkpoint_family_from_its_name(name, family):
    assert composer.checkpoint_family(name) == family


def test_checkpoint_family_of_the_loaded_model_comes_from_its_pipeline():
    info = standin_info("mystery [abc]", "FluxPipeline")
    assert composer.checkpoint_family("", info) == "Flux"
    assert composer.checkpoint_family("mystery [abc]", info) == "Flux"


def test_weight_outside_the_adapters_range(catalog, sdnext):
    pixel = catalog["pixel_xl"]
    built = composer.build(composition(loras=[LoraChoice(pixel.pk, 1.4)]))
    issue = next(i for i in built.issues if i.code == "weight-range")
    assert issue.message == "pixel_xl at 1.4 is outside its range 0.5–1."
    assert "weight-range" not in codes(composer.build(composition(loras=[LoraChoice(pixel.pk, 0.7)])))


def test_inactive_and_missing_files(catalog, sdnext):
    ink = catalog["ink_sd15"]
    Adapter.objects.filter(pk=ink.pk).update(active=False, status=AdapterStatus.MISSING)
    found = codes(composer.build(composition(loras=[LoraChoice(ink.pk, 0.7)])))
    assert "inactive" in found and "missing-file" in found


def test_a_deleted_adapter_blocks_submitting_unless_its_name_is_known(catalog, sdnext):
    built = composer.build(composition(loras=[LoraChoice(99999, 0.7)]))
    assert [i.code for i in built.blocking] == ["missing"]
    named = composer.build(composition(loras=[LoraChoice(99999, 0.7, name="old_lora")]))
    assert not named.blocking and "<lora:old_lora:0.7>" in named.prompt


def test_unknown_to_sdnext_offers_refresh(catalog, sdnext):
    pixel = catalog["pixel_xl"]
    before = composer.build(composition(loras=[LoraChoice(pixel.pk, 0.7)]))
    assert [(i.code, i.level, i.action) for i in before.issues if i.code == "not-synced"] == [
        ("not-synced", "info", "refresh-loras")
    ]
    lora_names.refresh("default")
    (sdnext.engine.loras.root / "pixel_xl.safetensors").unlink()
    lora_names.refresh("default")
    issue = next(i for i in composer.build(composition(loras=[LoraChoice(pixel.pk, 0.7)])).issues)
    assert (issue.code, issue.action) == ("unknown-to-sdnext", "refresh-loras")
    typed = composer.build(composition(prompt="a cat <lora:nothing_like_it:0.5>"))
    assert "unknown-to-sdnext" in codes(typed)


def test_duplicates_in_rows_and_typed_tags(catalog, sdnext):
    pixel = catalog["pixel_xl"]
    twice = composer.build(composition(loras=[LoraChoice(pixel.pk, 0.7), LoraChoice(pixel.pk, 0.6)]))
    assert codes(twice).count("duplicate") == 1
    typed = composer.build(composition(prompt="cat <lora:pixel_xl:0.5>", loras=[LoraChoice(pixel.pk, 0.7)]))
    assert "duplicate" in codes(typed)


def test_very_high_total_weight(catalog, sdnext):
    loras = [LoraChoice(catalog[name].pk, 0.9) for name in ("pixel_xl", "ink_sd15", "blur_xl")]
    issue = next(i for i in composer.build(composition(loras=loras)).issues if i.code == "total-weight")
    assert "add up to 2.7" in issue.message
    typed = composer.build(composition(prompt="<lora:a:1.5> <lora:b:-1>"))
    assert "total-weight" in codes(typed)


def test_trigger_words_switched_off_is_a_hint(catalog, sdnext):
    pixel = catalog["pixel_xl"]
    built = composer.build(composition(prompt="a cat", loras=[LoraChoice(pixel.pk, 0.7, triggers=False)]))
    assert ("triggers-off", "info") in [(i.code, i.level) for i in built.issues]
    built = composer.build(composition(prompt="pixel art cat", loras=[LoraChoice(pixel.pk, 0.7, triggers=False)]))
    assert "triggers-off" not in codes(built)


def test_not_configured_backend_is_an_error_with_the_variable(settings, db):
    settings.SDNEXT_BACKENDS = {"default": {"URL": "", "USER": "", "PASSWORD": ""}}
    built = composer.build(Composition(prompt="x"))
    assert [i.message for i in built.blocking] == [
        "SD.Next is not configured: set LORA_MANAGER_SDNEXT_URL (e.g. http://127.0.0.1:7860)."
    ]


def test_checkpoint_not_listed(catalog, sdnext):
    built = composer.build(composition(checkpoint="nope"), standin_info())
    assert "checkpoint" in codes(built)


def test_composition_round_trips_and_tolerates_old_data():
    comp = Composition(prompt="p", loras=[LoraChoice(3, 0.7, triggers=False, negative=True, name="x", key="k1")])
    data = comp.to_dict()
    assert "key" not in data["loras"][0]
    again = Composition.from_dict(data)
    assert again.loras[0] == LoraChoice(3, 0.7, triggers=False, negative=True, name="x")
    assert Composition.from_dict({"steps": "many", "loras": [{"weight": "x"}, "junk"], "cfg_scale": 7}) == Composition(
        cfg_scale=7
    )
    assert Composition.from_dict(None) == Composition()


def test_payload_uses_the_checkpoint_field():
    body = composer.payload(Composition(checkpoint="m1", sampler=""), "p", "n")
    assert body["sd_model_checkpoint"] == "m1" and body["sampler_name"] == "Default" and body["send_images"] is True
    assert "sd_model_checkpoint" not in composer.payload(Composition(), "p", "")


def test_two_adapters_behind_one_token_are_named_in_a_warning(catalog, lora_root, sdnext):
    """Copies of a LoRA in two folders (same file stem, different content) make the same token."""
    from adapters.scanning import scan
    from tests.adapters.conftest import lora

    lora(lora_root, "a/inkwash_sd15.safetensors", "sd15", seed=11)
    lora(lora_root, "b/inkwash_sd15.safetensors", "sd15", seed=12)
    scan([str(lora_root)])
    first, second = Adapter.objects.filter(files__path__endswith="inkwash_sd15.safetensors").order_by("pk")
    Adapter.objects.filter(pk=second.pk).update(name="inkwash_v2")
    built = composer.build(composition(loras=[LoraChoice(first.pk, 0.7), LoraChoice(second.pk, 0.5)]))
    assert "<lora:inkwash_sd15:0.7> <lora:inkwash_sd15:0.5>" in built.prompt
    shared = [i.message for i in built.issues if i.code == "shared-token"]
    assert shared and "inkwash_sd15 and inkwash_v2 both produce <lora:inkwash_sd15>" in shared[0]


def test_an_alias_shared_with_another_catalog_adapter_is_linted(catalog, sdnext):
    ink, blur = catalog["ink_sd15"], catalog["blur_xl"]
    Adapter.objects.filter(pk=blur.pk).update(alias="ink_sd15")
    built = composer.build(composition(loras=[LoraChoice(ink.pk, 0.7)]))
    messages = [i.message for i in built.issues if i.code == "shared-token"]
    assert messages == [
        "ink_sd15 and blur_xl (aliased ink_sd15) both answer to <lora:ink_sd15>: SD.Next may load either file. "
        "Give one of them another alias, or rename its file."
    ]
    Adapter.objects.filter(pk=blur.pk).update(alias="blur")
    assert "shared-token" not in codes(composer.build(composition(loras=[LoraChoice(ink.pk, 0.7)])))
