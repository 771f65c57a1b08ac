"""Reading generation parameters from real image bytes (no database): A1111, EXIF, ComfyUI, Civitai meta,
and every kind of bad input the issue lists."""

from __future__ import annotations

import io
import json
import zlib

import pytest
from PIL import Image

from generation import comfyui_graph
from generation.image_metadata import MAX_TEXT_BYTES, MetadataError, clean_text, read_image_text, user_comment_text
from generation.recipe_parsing import (
    RecipeError,
    lora_tokens,
    parse_infotext,
    recipe_from_civitai_meta,
    strip_lora_tokens,
)
from generation.recipe_reading import recipe_from_image
from tests.generation import recipe_images as ri


def _loras(recipe) -> list[tuple]:
    return [(lora.name, lora.weight, lora.hash, lora.file) for lora in recipe.loras]


def test_a1111_png_parameters_chunk():
    recipe = recipe_from_image(ri.a1111_png())
    assert recipe.source == "a1111"
    assert recipe.prompt.startswith("masterpiece, ink drawing of a fox, <lora:ink_sd15:0.8>")
    assert recipe.prompt.endswith("detailed background")  # prompts span lines
    assert recipe.negative == "blurry, lowres"
    assert (recipe.steps, recipe.sampler, recipe.cfg_scale, recipe.seed) == (28, "DPM++ 2M Karras", 6.5, 123456789)
    assert (recipe.width, recipe.height) == (832, 1216)
    assert (recipe.checkpoint, recipe.checkpoint_hash) == ("sd_xl_base_1.0", "31e35c80fc")
    assert _loras(recipe) == [("ink_sd15", 0.8, "36ea8aeef318", ""), ("pixel_xl", 0.6, "a1b2c3d4e5f6", "")]
    assert recipe.parameters == {"Clip skip": "2", "Version": "v1.10.1"}  # unknown keys are kept


@pytest.mark.parametrize(
    ("fmt", "comment"),
    [
        ("JPEG", ri.user_comment(ri.a1111_text())),  # piexif: UNICODE prefix + UTF-16BE
        ("JPEG", ri.user_comment(ri.a1111_text(), byteorder="le")),  # little-endian writers
        ("JPEG", ri.user_comment(ri.a1111_text(), encoding="ascii")),
        ("WEBP", ri.user_comment(ri.a1111_text())),
    ],
)
def test_exif_user_comment_in_jpeg_and_webp(fmt, comment):
    recipe = recipe_from_image(ri.exif_image(fmt, comment))
    assert recipe.negative == "blurry, lowres"
    assert recipe.seed == 123456789
    assert [(lora.name, lora.hash) for lora in recipe.loras] == [
        ("ink_sd15", "36ea8aeef318"),
        ("pixel_xl", "a1b2c3d4e5f6"),
    ]


def test_user_comment_prefixes():
    assert user_comment_text(b"UNICODE\0" + "Grüße".encode("utf-16-be")) == "Grüße"
    assert user_comment_text(b"UNICODE\0" + "Grüße".encode("utf-16")) == "Grüße"  # with a BOM
    assert user_comment_text(b"ASCII\0\0\0plain") == "plain"
    assert user_comment_text(b"no prefix at all") == "no prefix at all"


def test_infotext_quoted_values_named_weights_and_missing_hashes():
    text = (
        "portrait <lora:Film Grain v2:te=0.8:unet=0.6>, <lora:noweight>, <lyco:locon_x:0.4:0.2>\n"
        'Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x768, ADetailer prompt: "a, b", '
        'Lora hashes: "Film Grain v2: ABCDEF012345, orphan: 0x1234567890ab"'
    )
    recipe = parse_infotext(text)
    assert _loras(recipe) == [
        ("Film Grain v2", 0.6, "ABCDEF012345", ""),  # unet weight, hash in any case
        ("noweight", 1.0, "", ""),
        ("locon_x", 0.4, "", ""),
        ("orphan", None, "0x1234567890ab", ""),  # a hash whose token was edited out still counts
    ]
    assert recipe.parameters["ADetailer prompt"] == "a, b"
    assert strip_lora_tokens(recipe.prompt) == "portrait"


def test_sdnext_spelling_of_lora_hashes():
    text = (
        "a cat <lora:ink:0.5>\n"
        'Steps: 20, Sampler: Euler, Seed: 3, LoRA hashes: "ink: 36ea8aee", Pipeline: StableDiffusionXL'
    )
    recipe = parse_infotext(text)
    assert _loras(recipe) == [("ink", 0.5, "36ea8aee", "")]
    assert "LoRA hashes" not in recipe.parameters and recipe.parameters["Pipeline"] == "StableDiffusionXL"


def test_infotext_without_a_parameter_line_keeps_the_prompt_and_says_so():
    recipe = parse_infotext("just a prompt\nNegative prompt: bad")
    assert (recipe.prompt, recipe.negative, recipe.steps) == ("just a prompt", "bad", None)
    assert "only the prompt" in recipe.warnings[0]


def test_comfyui_api_graph():
    recipe = recipe_from_image(ri.comfy_png())
    assert recipe.source == "comfyui"
    assert (recipe.prompt, recipe.negative) == ("a lighthouse at dusk, ink style", "watermark, text")
    assert (recipe.steps, recipe.cfg_scale, recipe.seed, recipe.sampler) == (30, 7.0, 987654321, "dpmpp_2m")
    assert (recipe.width, recipe.height) == (896, 1152)
    assert recipe.checkpoint == "sd_xl_base_1.0.safetensors"
    assert recipe.parameters["scheduler"] == "karras"
    # Checkpoint side first; backslash paths from Windows installs are normalised.
    assert _loras(recipe) == [
        ("ink_sd15", 0.75, "", "style/ink_sd15.safetensors"),
        ("pixel_xl", 0.5, "", "pixel_xl.safetensors"),
    ]
    assert recipe.warnings == []


def test_comfyui_workflow_only_gives_the_same_recipe():
    from_api = recipe_from_image(ri.comfy_png())
    from_ui = recipe_from_image(ri.comfy_png(prompt=False, workflow=ri.comfy_workflow()))
    for field in ("prompt", "negative", "steps", "cfg_scale", "seed", "sampler", "width", "height", "checkpoint"):
        assert getattr(from_ui, field) == getattr(from_api, field), field
    assert _loras(from_ui) == _loras(from_api)


def test_comfyui_prompt_wins_over_a1111_text_when_both_exist():
    png = ri.png_with_text({"parameters": ri.a1111_text(), "prompt": json.dumps(ri.comfy_api_graph())})
    assert recipe_from_image(png).source == "comfyui"


def test_comfyui_text_through_conditioning_nodes_and_primitive_links():
    graph = ri.comfy_api_graph()
    combine = {"conditioning_1": ["6", 0], "conditioning_2": ["13", 0]}
    graph["12"] = {"class_type": "ConditioningCombine", "inputs": combine}
    graph["13"] = {"class_type": "CLIPTextEncode", "inputs": {"text": ["14", 0], "clip": ["11", 1]}}
    graph["14"] = {"class_type": "PrimitiveString", "inputs": {"value": "golden hour"}}
    graph["3"]["inputs"]["positive"] = ["12", 0]
    graph["3"]["inputs"]["seed"] = ["15", 0]
    graph["15"] = {"class_type": "Seed (rgthree)", "inputs": {"seed": 5}}
    recipe = comfyui_graph.parse(json.dumps(graph), "")
    assert recipe.prompt == "a lighthouse at dusk, ink style\ngolden hour"
    assert recipe.seed == 5


def test_comfyui_power_lora_loader_stacker():
    graph = ri.comfy_api_graph()
    graph["11"] = {
        "class_type": "Power Lora Loader (rgthree)",
        "inputs": {
            "lora_1": {"on": True, "lora": "pixel_xl.safetensors", "strength": 0.9},
            "lora_2": {"on": False, "lora": "off.safetensors", "strength": 1},
            "model": ["10", 0],
        },
    }
    recipe = comfyui_graph.parse(json.dumps(graph), "")
    assert [(lora.name, lora.weight) for lora in recipe.loras] == [("ink_sd15", 0.75), ("pixel_xl", 0.9)]


def test_comfyui_graph_with_a_cycle_is_read_without_hanging():
    graph = ri.comfy_api_graph()
    graph["10"]["inputs"]["model"] = ["11", 0]  # 11 -> 10 -> 11 -> ...
    graph["6"]["inputs"]["clip"] = ["7", 0]
    graph["7"]["inputs"]["clip"] = ["6", 0]
    recipe = comfyui_graph.parse(json.dumps(graph), "")
    assert recipe.prompt == "a lighthouse at dusk, ink style"
    assert {lora.name for lora in recipe.loras} == {"ink_sd15", "pixel_xl"}
    assert any("loop" in warning for warning in recipe.warnings)


def test_comfyui_graph_with_missing_links():
    graph = ri.comfy_api_graph()
    del graph["5"]  # the latent node is gone
    graph["3"]["inputs"]["negative"] = ["99", 0]  # dangling
    recipe = comfyui_graph.parse(json.dumps(graph), "")
    assert recipe.prompt == "a lighthouse at dusk, ink style"
    assert recipe.negative == ""
    assert recipe.width is None
    assert any("node 99" in warning for warning in recipe.warnings)


def test_comfyui_graph_without_a_sampler_still_lists_its_loras():
    graph = {k: v for k, v in ri.comfy_api_graph().items() if k != "3"}
    recipe = comfyui_graph.parse(json.dumps(graph), "")
    assert {lora.name for lora in recipe.loras} == {"ink_sd15", "pixel_xl"}
    assert any("no sampler" in warning for warning in recipe.warnings)


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ('{"3": {"class_type": "KSampler", "inputs": {', "not valid JSON"),
        ("[1, 2, 3]", "not a ComfyUI API graph"),
        ("{" * 100_000 + "}" * 100_000, "not valid JSON"),  # nesting bomb
        ('{"1": {"class_type": "VAEDecode", "inputs": {}}}', "no text prompt and no LoRA"),
    ],
)
def test_bad_comfyui_graphs_are_clear_errors(prompt, message):
    with pytest.raises(RecipeError, match=message):
        recipe_from_image(ri.png_with_text({"prompt": prompt}))


def test_civitai_meta():
    meta = {
        "prompt": "a castle, <lora:ink_sd15:0.7>",
        "negativePrompt": "lowres",
        "seed": 42,
        "steps": 25,
        "sampler": "Euler a",
        "cfgScale": 5,
        "Size": "1024x1024",
        "Model": "ponyDiffusionV6XL",
        "Model hash": "67ab2fd8ec",
        "hashes": {"model": "67ab2fd8ec", "lora:ink_sd15": "36EA8AEEF318"},
        "resources": [
            {"name": "ink_sd15", "type": "lora", "weight": 0.7, "hash": "36ea8aeef318"},
            {"name": "detail", "type": "lora", "weight": 0.3, "hash": "aaaabbbbcccc"},
            {"name": "ponyDiffusionV6XL", "type": "model", "hash": "67ab2fd8ec"},
        ],
        "Clip skip": 2,
    }
    recipe = recipe_from_civitai_meta(meta)
    assert recipe.source == "civitai"
    assert (recipe.prompt, recipe.negative, recipe.seed, recipe.steps, recipe.cfg_scale) == (
        "a castle, <lora:ink_sd15:0.7>",
        "lowres",
        42,
        25,
        5.0,
    )
    assert (recipe.width, recipe.height, recipe.checkpoint) == (1024, 1024, "ponyDiffusionV6XL")
    assert [(lora.name, lora.weight, lora.hash) for lora in recipe.loras] == [
        ("ink_sd15", 0.7, "36EA8AEEF318"),
        ("detail", 0.3, "aaaabbbbcccc"),
    ]
    assert recipe.parameters["Clip skip"] == 2


@pytest.mark.parametrize("meta", [None, {}, {"Size": "512x512"}])
def test_civitai_meta_without_parameters(meta):
    with pytest.raises(RecipeError):
        recipe_from_civitai_meta(meta)


# --- bad input ------------------------------------------------------------------------------------------------


def test_an_image_without_parameters_says_what_was_looked_for():
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    with pytest.raises(RecipeError, match=r"no generation parameters found in this PNG.*'parameters', 'prompt'"):
        recipe_from_image(buffer.getvalue())
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG")
    with pytest.raises(RecipeError, match="EXIF UserComment"):
        recipe_from_image(buffer.getvalue())


def test_a_truncated_text_chunk_is_reported():
    png = ri.a1111_png()
    cut = png[: png.index(b"parameters") + 200]  # the file ends inside the tEXt chunk
    found = read_image_text(cut)
    assert "parameters" not in found.texts
    assert any("cut off" in warning for warning in found.warnings)
    with pytest.raises(RecipeError, match="cut off"):
        recipe_from_image(cut)


def test_ten_megabytes_of_text_in_a_chunk_are_skipped_not_loaded():
    huge = ri.png_chunk(b"tEXt", b"parameters\0" + b"x" * (10 * 1024 * 1024))
    good = ri.png_chunk(b"tEXt", b"prompt\0" + json.dumps(ri.comfy_api_graph()).encode())
    found = read_image_text(ri.png_with_raw_chunks(huge, good))
    assert "parameters" not in found.texts
    assert any("'parameters' is 10 MB, over the 2 MB limit" in warning for warning in found.warnings)
    assert recipe_from_image(ri.png_with_raw_chunks(huge, good)).source == "comfyui"  # the rest still reads


def test_a_compressed_text_bomb_is_refused():
    bomb = zlib.compress(b"a" * (MAX_TEXT_BYTES * 4))  # ~8 KB inflating to 8 MB
    found = read_image_text(ri.png_with_raw_chunks(ri.png_chunk(b"zTXt", b"parameters\0\0" + bomb)))
    assert found.texts == {}
    assert any("inflates to more than" in warning for warning in found.warnings)


def test_itxt_utf8_and_ztxt_are_read():
    body = "a ship, 海\nSteps: 5, Sampler: Euler, CFG scale: 3, Seed: 9, Size: 64x64".encode()
    itxt = ri.png_chunk(b"iTXt", b"parameters\0\1\0\0\0" + zlib.compress(body))
    assert recipe_from_image(ri.png_with_raw_chunks(itxt)).prompt == "a ship, 海"
    ztxt = ri.png_chunk(b"zTXt", b"parameters\0\0" + zlib.compress(body))
    assert recipe_from_image(ri.png_with_raw_chunks(ztxt)).steps == 5


@pytest.mark.parametrize(
    "data",
    [b"", b"%PDF-1.7 not an image", b"GIF89a\x01\x00\x01\x00", b"\x00" * 100],
)
def test_non_images_are_refused(data):
    with pytest.raises(MetadataError, match="not a PNG, JPEG or WebP"):
        recipe_from_image(data)


def test_a_corrupt_jpeg_is_a_clear_error():
    with pytest.raises(MetadataError, match="cannot be read"):
        recipe_from_image(b"\xff\xd8\xff\xe1\x00\x10Exif\x00\x00garbage")


def test_unencodable_text_is_made_safe():
    assert clean_text("a\ud800b\x00c\r\nd") == "a\ufffdbc\nd"
    graph = ri.comfy_api_graph()
    graph["6"]["inputs"]["text"] = "lone \ud83d surrogate"
    recipe = recipe_from_image(ri.png_with_text({"prompt": json.dumps(graph)}))  # JSON escapes keep it latin-1
    assert recipe.prompt == "lone \ufffd surrogate"
    recipe.prompt.encode("utf-8")  # storable


def test_lora_tokens_edge_cases():
    found = lora_tokens("<lora:a:abc> <LORA:b:-0.5> <lora::1>")
    assert [(x.name, x.weight) for x in found] == [("a", None), ("b", -0.5)]
