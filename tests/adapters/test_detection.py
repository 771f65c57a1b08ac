import base64
import io
import json

import pytest
from PIL import Image

from adapters.detection import (
    BASE_FAMILIES,
    NETWORK_TYPES,
    detect,
    embedded_images,
    header_fields,
    metadata_for_storage,
    training_tags,
    trigger_candidates,
)
from adapters.safetensors_header import read_header
from tests.factories.lora_files import kohya_metadata, write_lora, write_raw, write_tensors


def lora(tmp_path, name="x.safetensors", **kwargs):
    return read_header(write_lora(tmp_path / name, **kwargs))


def tensors(tmp_path, shapes, metadata=None):
    return read_header(write_tensors(tmp_path / "t.safetensors", shapes, metadata=metadata))


def png_bytes(size=(4, 3)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


# --- every factory kind ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "family", "detail", "network_type", "alpha"),
    [
        ("sd15", "SD1", "SD 1.5", "LoRA", 2.0),
        ("sd2", "SD2", "SD 2.x", "LoRA", 2.0),
        ("sdxl", "SDXL", "SDXL 1.0", "LoRA", 2.0),
        ("flux", "Flux", "Flux.1 D", "LoRA", 2.0),
        ("peft_sdxl", "SDXL", "SDXL 1.0", "LoRA", None),
        ("loha", "SD1", "SD 1.5", "LoHa", 2.0),
        ("lokr", "SDXL", "SDXL 1.0", "LoKr", 2.0),
        ("dora", "SDXL", "SDXL 1.0", "DoRA", 2.0),
    ],
)
@pytest.mark.parametrize("max_modules", [1, None])
def test_detect_factory_kinds(tmp_path, kind, family, detail, network_type, alpha, max_modules):
    found = detect(lora(tmp_path, kind=kind, rank=4, max_modules=max_modules))
    assert found.base_model == family
    assert found.base_model_detail == detail
    assert found.base_model_source == "tensor shapes"
    assert found.network_type == network_type
    assert found.rank == 4
    assert found.alpha == alpha
    assert found.conflicts == []
    assert found.base_model in BASE_FAMILIES
    assert found.network_type in NETWORK_TYPES


@pytest.mark.parametrize("kind", ["sd15", "sd2", "sdxl"])
def test_conv_layers_make_locon(tmp_path, kind):
    assert detect(lora(tmp_path, kind=kind, conv=True, max_modules=3)).network_type == "LoCon"
    plain = lora(tmp_path, name="plain.safetensors", kind=kind, conv=True, max_modules=3, metadata=None)
    assert detect(plain).network_type == "LoCon"  # from the 3x3 kernels alone


def test_one_by_one_conv_is_still_plain_lora(tmp_path):
    header = lora(tmp_path, kind="sd15", metadata=None)
    proj_in = header.tensors["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight"]
    assert proj_in.shape == (8, 320, 1, 1)
    assert detect(header).network_type == "LoRA"


def test_conv_dim_in_network_args_means_locon(tmp_path):
    metadata = kohya_metadata("sdxl", ss_network_args=json.dumps({"conv_dim": "4", "conv_alpha": "1"}))
    assert detect(lora(tmp_path, max_modules=2, metadata=metadata)).network_type == "LoCon"
    metadata["ss_network_args"] = json.dumps({"algo": "locon"})
    assert detect(lora(tmp_path, max_modules=2, metadata=metadata)).network_type == "LoCon"


def test_loha_with_conv_stays_loha(tmp_path):
    assert detect(lora(tmp_path, kind="loha", conv=True, max_modules=4)).network_type == "LoHa"


@pytest.mark.parametrize(("algo", "expected"), [("loha", "LoHa"), ("lokr", "LoKr"), ("dora", "DoRA"), ("ia3", "Other")])
def test_network_args_algo_when_tensors_say_nothing(tmp_path, algo, expected):
    metadata = {"ss_network_args": json.dumps({"algo": algo})}
    header = tensors(tmp_path, {"lora_unet_x.weight": (4, 4), "lora_unet_x.on_input": (4,)}, metadata)
    assert detect(header).network_type == expected


def test_dora_wd_network_arg_makes_dora(tmp_path):
    metadata = kohya_metadata("sdxl", ss_network_args=json.dumps({"algo": "lora", "dora_wd": "True"}))
    assert detect(lora(tmp_path, max_modules=2, metadata=metadata)).network_type == "DoRA"


def test_oft_keys(tmp_path):
    header = tensors(tmp_path, {"lora_unet_input_blocks_4_1_proj_in.oft_blocks": (4, 160, 160)})
    assert detect(header).network_type == "OFT"


def test_rank_is_the_most_common_down_rank(tmp_path):
    shapes = {
        "lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": (4, 768),
        "lora_te_text_model_encoder_layers_0_mlp_fc2.lora_down.weight": (16, 3072),
        "lora_te_text_model_encoder_layers_1_mlp_fc2.lora_down.weight": (16, 3072),
    }
    assert detect(tensors(tmp_path, shapes)).rank == 16


def test_rank_and_alpha_from_metadata_without_tensors(tmp_path):
    header = read_header(write_raw(tmp_path / "x.safetensors", {"__metadata__": kohya_metadata()}))
    found = detect(header)
    assert (found.rank, found.alpha) == (32, 16.0)
    metadata = kohya_metadata(ss_network_dim="None", ss_network_alpha="None")
    found = detect(read_header(write_raw(tmp_path / "y.safetensors", {"__metadata__": metadata})))
    assert (found.rank, found.alpha) == (None, None)


def test_an_implausible_rank_is_no_rank(tmp_path):
    """A 1-D "down" tensor of 3.2e9 elements (seen by hand) gave rank 3,200,000,000: PostgreSQL's integer column
    refused it and the whole scan failed. A rank past any real LoRA's is no rank."""
    size = 3_200_000_000
    header = {"lora_unet_x.lora_down.weight": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}}
    path = write_raw(tmp_path / "huge.safetensors", header)
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size + size)  # sparse: the header's offsets fit the file
    assert detect(read_header(path)).rank is None
    for dim in ("3200000000", "9" * 40):
        metadata = kohya_metadata(ss_network_dim=dim)
        found = detect(read_header(write_raw(tmp_path / f"{len(dim)}.safetensors", {"__metadata__": metadata})))
        assert found.rank is None


# --- base model evidence --------------------------------------------------------------------------------------


def test_shapes_overrule_wrong_metadata(tmp_path):
    found = detect(lora(tmp_path, kind="sdxl", max_modules=1, metadata=kohya_metadata("sd15")))
    assert found.base_model == "SDXL"
    assert found.base_model_source == "tensor shapes"
    assert found.conflicts == [
        "metadata says SD1 (ss_base_model_version) but tensor shapes say SDXL (cross-attention width 2048); using SDXL"
    ]


def test_shapes_overrule_sdxl_metadata_on_an_sd15_file(tmp_path):
    found = detect(lora(tmp_path, kind="sd15", max_modules=1, metadata=kohya_metadata("sdxl")))
    assert (found.base_model, found.base_model_detail) == ("SD1", "SD 1.5")
    assert "cross-attention width 768" in found.conflicts[0]


def test_flux_keys_overrule_sdxl_metadata(tmp_path):
    found = detect(lora(tmp_path, kind="flux", max_modules=2, metadata={"ss_base_model_version": "sdxl_base_v1-0"}))
    assert found.base_model == "Flux"
    assert found.conflicts == [
        "metadata says SDXL (ss_base_model_version) but tensor shapes say Flux (hidden width 3072); using Flux"
    ]


def test_ambiguous_sd_layout_uses_ss_v2(tmp_path):
    shapes = {"lora_te_text_model_encoder_layers_0_mlp_fc2.lora_down.weight": (8, 4096)}
    found = detect(tensors(tmp_path, shapes, {"ss_v2": "True"}))
    assert (found.base_model, found.base_model_detail, found.base_model_source) == ("SD2", "SD 2.x", "ss_v2")
    found = detect(tensors(tmp_path, shapes))
    assert (found.base_model, found.base_model_source) == ("SD1", "tensor keys")


def test_text_encoder_width_decides_sd1_vs_sd2(tmp_path):
    shapes = {"lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": (8, 1024)}
    found = detect(tensors(tmp_path, shapes))
    assert (found.base_model, found.base_model_source) == ("SD2", "tensor shapes")


def test_second_text_encoder_keys_mean_sdxl(tmp_path):
    shapes = {"lora_te2_text_model_encoder_layers_0_mlp_fc1.lokr_w1": (8, 8)}
    found = detect(tensors(tmp_path, shapes))
    assert (found.base_model, found.base_model_source) == ("SDXL", "tensor keys")


@pytest.mark.parametrize(
    ("model_name", "detail"),
    [
        ("ponyDiffusionV6XL_v6StartWithThisOne.safetensors", "Pony"),
        ("illustriousXL_v01.safetensors", "Illustrious"),
        ("noobaiXLNAIXL_vPred10Version.safetensors", "NoobAI"),
        ("juggernautXL_v9.safetensors", "SDXL 1.0"),
    ],
)
def test_sdxl_detail_from_base_checkpoint_name(tmp_path, model_name, detail):
    found = detect(lora(tmp_path, max_modules=1, metadata=kohya_metadata(ss_sd_model_name=model_name)))
    assert (found.base_model, found.base_model_detail, found.base_model_source) == ("SDXL", detail, "tensor shapes")


def test_filename_refines_a_generic_sdxl_detail_only(tmp_path):
    header = lora(tmp_path, max_modules=1, metadata=None)
    assert detect(header, "ponyStyle_v2.safetensors").base_model_detail == "Pony"
    assert detect(header, "style.safetensors").base_model_detail == "SDXL 1.0"
    assert detect(lora(tmp_path, kind="sd15", max_modules=1), "pony.safetensors").base_model_detail == "SD 1.5"


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"ss_base_model_version": "sd_v1"}, ("SD1", "SD 1.5", "ss_base_model_version")),
        ({"ss_base_model_version": "sd_v2_v"}, ("SD2", "SD 2.x", "ss_base_model_version")),
        ({"ss_base_model_version": "flux1"}, ("Flux", "Flux.1", "ss_base_model_version")),
        ({"ss_base_model_version": "chroma"}, ("Flux", "Chroma", "ss_base_model_version")),
        ({"ss_base_model_version": "lumina2"}, ("Other", "Lumina 2", "ss_base_model_version")),
        ({"modelspec.architecture": "flux-1-schnell/lora"}, ("Flux", "Flux.1 S", "modelspec.architecture")),
        ({"modelspec.architecture": "stable-diffusion-3.5-large/lora"}, ("SD3", "SD 3.5", "modelspec.architecture")),
        ({"modelspec.architecture": "stable-diffusion-v2-512/lora"}, ("SD2", "SD 2.x", "modelspec.architecture")),
        ({"ss_sd_model_name": "runwayml/stable-diffusion-v1-5"}, ("SD1", "SD 1.5", "ss_sd_model_name")),
        ({"ss_sd_model_name": "chilloutmix_NiPrunedFp32Fix.safetensors"}, ("Unknown", "", "")),
        (
            {"ss_base_model_version": "flux1", "modelspec.architecture": "flux-1-dev/lora"},
            ("Flux", "Flux.1 D", "ss_base_model_version"),
        ),
        ({}, ("Unknown", "", "")),
    ],
)
def test_metadata_only_detection(tmp_path, metadata, expected):
    found = detect(read_header(write_raw(tmp_path / "x.safetensors", {"__metadata__": metadata} if metadata else {})))
    assert (found.base_model, found.base_model_detail, found.base_model_source) == expected
    assert found.conflicts == []


def test_chroma_metadata_on_flux_tensors(tmp_path):
    metadata = {"ss_base_model_version": "chroma", "modelspec.architecture": "chroma/lora"}
    found = detect(lora(tmp_path, kind="flux", max_modules=2, metadata=metadata))
    assert (found.base_model, found.base_model_detail, found.conflicts) == ("Flux", "Chroma", [])


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("lora_unet_joint_blocks_0_x_block_attn_qkv.lora_down.weight", ("SD3", "SD 3")),
        ("lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight", ("Flux", "Flux.1")),
        ("transformer.single_transformer_blocks.0.attn.to_k.lora_A.weight", ("Flux", "Flux.1")),
        ("diffusion_model.double_blocks.0.stream_modulation.lora_A.weight", ("Flux", "Flux.2")),
        ("diffusion_model.noise_refiner.0.attention.qkv.lora_A.weight", ("Other", "Z-Image")),
    ],
)
def test_key_patterns(tmp_path, key, expected):
    found = detect(tensors(tmp_path, {key: (4, 64)}))
    assert (found.base_model, found.base_model_detail, found.base_model_source) == (*expected, "tensor keys")


def test_chroma_keys(tmp_path):
    shapes = {
        "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": (4, 3072),
        "lora_unet_distilled_guidance_layer_in_proj.lora_down.weight": (4, 64),
    }
    found = detect(tensors(tmp_path, shapes))
    assert (found.base_model, found.base_model_detail, found.base_model_source) == ("Flux", "Chroma", "tensor keys")


def test_unknown_when_nothing_is_recognised(tmp_path):
    found = detect(tensors(tmp_path, {"something.weight": (2, 2)}))
    assert (found.base_model, found.base_model_detail, found.base_model_source) == ("Unknown", "", "")
    assert found.network_type == "Other"


# --- tags and triggers ----------------------------------------------------------------------------------------


def test_training_tags_sum_over_directories():
    frequency = {"10_pixel art": {"pixel art": 120, "solo": 61, " 1girl": 4}, "5_extra": {"solo": 9, "sword": 61}}
    assert training_tags({"ss_tag_frequency": json.dumps(frequency)}) == [
        ("pixel art", 120),
        ("solo", 70),
        ("sword", 61),
        ("1girl", 4),
    ]


def test_training_tags_top_n_and_factory_metadata():
    assert training_tags(kohya_metadata(), top_n=2) == [("pixel art", 120), ("solo", 61)]


def test_training_tags_from_ss_datasets():
    datasets = [
        {"tag_frequency": {"img": {"cat": 3, "dog": 5}}, "subsets": []},
        {"tag_frequency": {"more": {"cat": 4}}},
        "junk",
    ]
    assert training_tags({"ss_datasets": json.dumps(datasets)}) == [("cat", 7), ("dog", 5)]


@pytest.mark.parametrize(
    "metadata",
    [
        {"ss_tag_frequency": "{not json"},
        {"ss_tag_frequency": "[1, 2]"},
        {"ss_tag_frequency": json.dumps({"d": {"a": "many", "b": True, "c": -1}})},
        {"ss_datasets": "None"},
        {},
    ],
)
def test_training_tags_tolerate_broken_values(metadata):
    assert training_tags(metadata) == []


def test_trigger_candidates():
    datasets = [
        {"subsets": [{"class_tokens": "sks woman", "is_reg": False}, {"class_tokens": "woman", "is_reg": True}]},
        {"subsets": [{"class_tokens": None}, {"class_tokens": "Pixel Art"}]},
    ]
    metadata = {
        "modelspec.trigger_phrase": "pixel art, retro style,",
        "ss_datasets": json.dumps(datasets),
        "ssmd_keywords": "8bit, retro style",
    }
    assert trigger_candidates(metadata) == ["pixel art", "retro style", "sks woman", "8bit"]


def test_trigger_candidates_tolerate_junk():
    assert trigger_candidates({"ss_datasets": "{broken", "modelspec.trigger_phrase": "None"}) == []


# --- descriptive fields ---------------------------------------------------------------------------------------


def test_header_fields_from_ssmd_and_modelspec():
    metadata = kohya_metadata(
        **{
            "ssmd_display_name": "Pixel Art XL",
            "ssmd_author": "nerijs",
            "ssmd_description": "Pixel art style",
            "ssmd_tags": "style, pixel art",
            "modelspec.tags": "pixel art, 8bit",
            "ssmd_negative_keywords": "blurry",
            "ssmd_source": "https://civitai.com/models/120096",
            "ssmd_rating": "8",
            "modelspec.usage_hint": "use weight 0.8",
        }
    )
    assert header_fields(metadata) == {
        "alias": "pixelart_xl",
        "name": "Pixel Art XL",
        "description": "Pixel art style",
        "author": "nerijs",
        "negative_text": "blurry",
        "usage_hint": "use weight 0.8",
        "tags": ["pixel art", "8bit", "style"],
        "source_url": "https://civitai.com/models/120096",
        "rating": 8,
    }


def test_header_fields_only_present_keys():
    assert header_fields({}) == {}
    assert header_fields({"modelspec.title": "x", "modelspec.description": "d"}) == {"name": "x", "description": "d"}


@pytest.mark.parametrize(
    "metadata",
    [
        {"ssmd_source": "file:///etc/passwd"},
        {"ssmd_rating": "11"},
        {"ssmd_rating": "-1"},
        {"ssmd_rating": "great"},
        {"modelspec.title": "LoRA@1718094977"},
        {"ss_output_name": "None"},
        {"ssmd_author": "   "},
    ],
)
def test_header_fields_skip_unusable_values(metadata):
    assert header_fields(metadata) == {}


# --- embedded images and storage ------------------------------------------------------------------------------


def test_embedded_png_thumbnail_and_cover_images():
    png = png_bytes()
    thumbnail = "data:image/png;base64," + base64.b64encode(png).decode()
    covers = [base64.b64encode(png).decode(), "data:image/png;base64,!!!not base64!!!", "aGVsbG8=", 42, thumbnail]
    metadata = {"modelspec.thumbnail": thumbnail, "ssmd_cover_images": json.dumps(covers)}
    images = embedded_images(metadata)
    assert images == [png, png, png]
    assert Image.open(io.BytesIO(images[0])).size == (4, 3)


def test_embedded_images_skip_garbage_and_oversize():
    png = png_bytes((64, 64))
    assert embedded_images({"modelspec.thumbnail": "data:image/png,rawtext"}) == []
    assert embedded_images({"modelspec.thumbnail": "data:image/png;base64,%%%"}) == []
    assert embedded_images({"ssmd_cover_images": "[broken"}) == []
    thumbnail = "data:image/png;base64," + base64.b64encode(png).decode()
    assert embedded_images({"modelspec.thumbnail": thumbnail}, max_bytes=len(png) - 1) == []
    assert embedded_images({"modelspec.thumbnail": thumbnail}, max_bytes=len(png)) == [png]


def test_metadata_for_storage_replaces_images_and_caps_sizes():
    png = png_bytes()
    metadata = {
        "modelspec.thumbnail": "data:image/png;base64," + base64.b64encode(png).decode(),
        "ssmd_cover_images": json.dumps([base64.b64encode(png).decode()] * 2),
        "ss_long": "x" * 10_000,
        "ss_short": "ok",
    }
    stored = metadata_for_storage(metadata, max_value_chars=100)
    assert stored["modelspec.thumbnail"] == f"<embedded image, {len(png):,} bytes>"
    assert stored["ssmd_cover_images"] == "<2 embedded images>"
    assert len(stored["ss_long"]) <= 100
    assert stored["ss_long"].startswith("xxx")
    assert stored["ss_long"].endswith("[cut, 10,000 characters in the file]")
    assert stored["ss_short"] == "ok"


def test_metadata_for_storage_stops_at_total_cap():
    metadata = {f"ss_key_{i:02d}": "v" * 50 for i in range(40)}
    stored = metadata_for_storage(metadata, max_total_chars=1000)
    assert list(stored) == [f"ss_key_{i:02d}" for i in range(len(stored))]
    assert 0 < len(stored) < 40
    assert sum(len(k) + len(v) for k, v in stored.items()) <= 1000


def test_metadata_for_storage_keeps_a_normal_header_whole():
    metadata = kohya_metadata()
    assert metadata_for_storage(metadata) == metadata
