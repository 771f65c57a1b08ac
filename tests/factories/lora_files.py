"""Real ``.safetensors`` LoRA files for tests and benchmarks: real kohya/LyCORIS/PEFT key names and shapes.

Files are laid out like the reference writer's (compact JSON, ``__metadata__`` first, tensors sorted
by name, header padded with spaces to a multiple of 8), so ``safetensors.safe_open`` loads them.
Tensor bytes come from ``random.Random(seed)``: different seeds give different hashes.
"""

from __future__ import annotations

import functools
import json
import math
import random
import struct
from pathlib import Path
from types import EllipsisType

KINDS = ("sd15", "sd2", "sdxl", "flux", "peft_sdxl", "loha", "lokr", "dora")
DTYPE_SIZES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8}

# (module name, in features, out features, conv kernel or None for a linear layer)
Module = tuple[str, int, int, tuple[int, int] | None]

_FIRST_COMMIT = "48d368fa557731ad0488c07304dfeba8c07910eb"


def kohya_metadata(kind: str = "sdxl", output_name: str = "pixelart_xl", **overrides: str) -> dict[str, str]:
    """The ``__metadata__`` kohya sd-scripts writes for ``kind`` (lora-files.md B7); every value a string."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    base = _BASES["sdxl" if kind in ("peft_sdxl", "lokr", "dora") else "sd15" if kind == "loha" else kind]
    md = {
        "ss_session_id": "2310594738",
        "ss_training_started_at": "1718090321.4412541",
        "ss_training_finished_at": "1718094977.0826733",
        "ss_output_name": output_name,
        "ss_learning_rate": "0.0001",
        "ss_unet_lr": "0.0001",
        "ss_text_encoder_lr": "None",
        "ss_num_train_images": "1200",
        "ss_num_validation_images": "0",
        "ss_num_reg_images": "0",
        "ss_num_batches_per_epoch": "300",
        "ss_num_epochs": "10",
        "ss_steps": "3000",
        "ss_epoch": "10",
        "ss_max_train_steps": "3000",
        "ss_lr_warmup_steps": "0",
        "ss_lr_scheduler": "cosine",
        "ss_network_module": "networks.lora",
        "ss_network_dim": "32",
        "ss_network_alpha": "16.0",
        "ss_network_dropout": "None",
        "ss_mixed_precision": "bf16",
        "ss_full_fp16": "False",
        "ss_v2": base["v2"],
        "ss_base_model_version": base["version"],
        "ss_clip_skip": "None",
        "ss_max_token_length": "None",
        "ss_cache_latents": "True",
        "ss_seed": "42",
        "ss_noise_offset": "0.0357",
        "ss_min_snr_gamma": "5.0",
        "ss_optimizer": "bitsandbytes.optim.adamw.AdamW8bit(weight_decay=0.01)",
        "ss_training_comment": "trigger: pixel art",
        "ss_sd_scripts_commit_hash": _FIRST_COMMIT,
        "ss_batch_size_per_device": "4",
        "ss_total_batch_size": "4",
        "ss_resolution": f"({base['resolution']}, {base['resolution']})",
        "ss_enable_bucket": "True",
        "ss_min_bucket_reso": "256" if base["resolution"] == 512 else "512",
        "ss_max_bucket_reso": "1024" if base["resolution"] == 512 else "2048",
        "ss_keep_tokens": "1",
        "ss_shuffle_caption": "True",
        "ss_flip_aug": "False",
        "ss_color_aug": "False",
        "ss_random_crop": "False",
        "ss_bucket_no_upscale": "True",
        "ss_dataset_dirs": json.dumps({"10_pixel art": {"n_repeats": 10, "img_count": 120}}),
        "ss_reg_dataset_dirs": "{}",
        "ss_tag_frequency": json.dumps(
            {"10_pixel art": {"pixel art": 120, "1girl": 54, "solo": 61, "outdoors": 33, "sword": 12}}
        ),
        "ss_bucket_info": json.dumps(
            {
                "buckets": {
                    "0": {"resolution": [896, 1152], "count": 480},
                    "1": {"resolution": [1024, 1024], "count": 720},
                },
                "mean_img_ar_error": 0.021,
            }
        ),
        "ss_sd_model_name": base["model_name"],
        "ss_sd_model_hash": "be9edd61",
        "ss_new_sd_model_hash": "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b",
        "sshs_model_hash": "5a7c1b0e9f3d2a4c6e8b0d1f3a5c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a1c",
        "sshs_legacy_hash": "8f2c4e6a",
        "modelspec.sai_model_spec": "1.0.1",
        "modelspec.architecture": base["architecture"],
        "modelspec.implementation": base["implementation"],
        "modelspec.implementation_version": f"sd-scripts/{_FIRST_COMMIT}",
        "modelspec.title": output_name,
        "modelspec.resolution": f"{base['resolution']}x{base['resolution']}",
        "modelspec.prediction_type": base["prediction"],
        "modelspec.date": "2024-06-11T09:36:17",
        "modelspec.trigger_phrase": "pixel art",
    }
    if kind == "flux":
        del md["modelspec.prediction_type"]
        md["ss_network_module"] = "networks.lora_flux"
        md.update(_FLUX_EXTRAS)
    network_args = {
        "loha": {"algo": "loha"},
        "lokr": {"algo": "lokr", "factor": "8"},
        "dora": {"algo": "lora", "dora_wd": "True"},
    }
    if kind in network_args:
        md["ss_network_module"] = "lycoris.kohya"
        md["ss_network_args"] = json.dumps(network_args[kind])
    md.update(overrides)
    return md


_BASES = {
    "sd15": {
        "version": "sd_v1",
        "v2": "False",
        "architecture": "stable-diffusion-v1/lora",
        "implementation": "diffusers",
        "model_name": "v1-5-pruned-emaonly.safetensors",
        "resolution": 512,
        "prediction": "epsilon",
    },
    "sd2": {
        "version": "sd_v2_v",
        "v2": "True",
        "architecture": "stable-diffusion-v2-768-v/lora",
        "implementation": "diffusers",
        "model_name": "v2-1_768-ema-pruned.safetensors",
        "resolution": 768,
        "prediction": "v",
    },
    "sdxl": {
        "version": "sdxl_base_v1-0",
        "v2": "False",
        "architecture": "stable-diffusion-xl-v1-base/lora",
        "implementation": "https://github.com/Stability-AI/generative-models",
        "model_name": "sd_xl_base_1.0.safetensors",
        "resolution": 1024,
        "prediction": "epsilon",
    },
    "flux": {
        "version": "flux1",
        "v2": "False",
        "architecture": "flux-1-dev/lora",
        "implementation": "https://github.com/black-forest-labs/flux",
        "model_name": "flux1-dev.safetensors",
        "resolution": 1024,
        "prediction": "",
    },
}

_FLUX_EXTRAS = {
    "ss_apply_t5_attn_mask": "False",
    "ss_weighting_scheme": "none",
    "ss_logit_mean": "0.0",
    "ss_logit_std": "1.0",
    "ss_mode_scale": "1.29",
    "ss_guidance_scale": "1.0",
    "ss_timestep_sampling": "shift",
    "ss_sigmoid_scale": "1.0",
    "ss_model_prediction_type": "raw",
    "ss_discrete_flow_shift": "3.1582",
}


# --- module lists (signature modules first, so max_modules keeps what detection looks at) ------------------


def _transformer(prefix: str, channels: int, context: int, depth: int, sep: str, linear_proj: bool) -> list[Module]:
    """One SD Transformer2DModel: proj_in/out plus per block attn1, attn2 (cross-attention) and GEGLU ff."""
    proj_kernel = None if linear_proj else (1, 1)
    modules: list[Module] = [(f"{prefix}{sep}proj_in", channels, channels, proj_kernel)]
    for block in range(depth):
        b = f"{prefix}{sep}transformer_blocks{sep}{block}{sep}"
        modules += [
            (f"{b}attn2{sep}to_k", context, channels, None),
            (f"{b}attn2{sep}to_v", context, channels, None),
            (f"{b}attn2{sep}to_q", channels, channels, None),
            (f"{b}attn2{sep}to_out{sep}0", channels, channels, None),
            (f"{b}attn1{sep}to_q", channels, channels, None),
            (f"{b}attn1{sep}to_k", channels, channels, None),
            (f"{b}attn1{sep}to_v", channels, channels, None),
            (f"{b}attn1{sep}to_out{sep}0", channels, channels, None),
            (f"{b}ff{sep}net{sep}0{sep}proj", channels, channels * 8, None),
            (f"{b}ff{sep}net{sep}2", channels * 4, channels, None),
        ]
    modules.append((f"{prefix}{sep}proj_out", channels, channels, proj_kernel))
    return modules


def _clip(prefix: str, layers: int, hidden: int, sep: str = "_", qkv_only: bool = False) -> list[Module]:
    modules: list[Module] = []
    for layer in range(layers):
        p = f"{prefix}{sep}text_model{sep}encoder{sep}layers{sep}{layer}{sep}"
        modules += [
            (f"{p}self_attn{sep}{name}", hidden, hidden, None) for name in ("q_proj", "k_proj", "v_proj", "out_proj")
        ]
        if not qkv_only:
            modules += [(f"{p}mlp{sep}fc1", hidden, hidden * 4, None), (f"{p}mlp{sep}fc2", hidden * 4, hidden, None)]
    return modules


def _sd_unet(context: int, linear_proj: bool) -> list[Module]:
    """SD 1.x/2.x UNet in the diffusers naming kohya uses for them."""
    blocks = [
        ("down_blocks_0", 320, 2),
        ("down_blocks_1", 640, 2),
        ("down_blocks_2", 1280, 2),
        ("up_blocks_1", 1280, 3),
    ]
    blocks += [("up_blocks_2", 640, 3), ("up_blocks_3", 320, 3)]
    modules: list[Module] = []
    for block, channels, count in blocks:
        for attention in range(count):
            modules += _transformer(f"lora_unet_{block}_attentions_{attention}", channels, context, 1, "_", linear_proj)
    return modules + _transformer("lora_unet_mid_block_attentions_0", 1280, context, 1, "_", linear_proj)


def _sdxl_unet() -> list[Module]:
    """SDXL UNet in the SGM naming kohya's sdxl_train_network writes."""
    blocks = [("input_blocks_4_1", 640, 2), ("input_blocks_5_1", 640, 2), ("input_blocks_7_1", 1280, 10)]
    blocks += [("input_blocks_8_1", 1280, 10), ("middle_block_1", 1280, 10)]
    blocks += [(f"output_blocks_{i}_1", 1280, 10) for i in range(3)]
    blocks += [(f"output_blocks_{i}_1", 640, 2) for i in range(3, 6)]
    modules: list[Module] = []
    for block, channels, depth in blocks:
        modules += _transformer(f"lora_unet_{block}", channels, 2048, depth, "_", linear_proj=True)
    return modules


def _sd_convs() -> list[Module]:
    """3x3 ResNet convolutions: what LoCon (kohya ``conv_dim``) adds for SD 1.x/2.x."""
    modules: list[Module] = []
    for block, c_in, c_out in [(0, 320, 320), (1, 320, 640), (2, 640, 1280), (3, 1280, 1280)]:
        r = f"lora_unet_down_blocks_{block}_resnets_"
        modules += [(f"{r}0_conv1", c_in, c_out, (3, 3)), (f"{r}0_conv2", c_out, c_out, (3, 3))]
        modules += [(f"{r}1_conv1", c_out, c_out, (3, 3)), (f"{r}1_conv2", c_out, c_out, (3, 3))]
    return modules


def _sdxl_convs() -> list[Module]:
    modules: list[Module] = []
    for block, c_in, c_out in [
        (1, 320, 320),
        (2, 320, 320),
        (4, 320, 640),
        (5, 640, 640),
        (7, 640, 1280),
        (8, 1280, 1280),
    ]:
        r = f"lora_unet_input_blocks_{block}_0_"
        modules += [(f"{r}in_layers_2", c_in, c_out, (3, 3)), (f"{r}out_layers_3", c_out, c_out, (3, 3))]
    return modules


def _flux() -> list[Module]:
    """FLUX.1 DiT as kohya's networks.lora_flux names it (hidden 3072, 19 double and 38 single blocks)."""
    modules: list[Module] = []
    for block in range(19):
        for side in ("img", "txt"):
            p = f"lora_unet_double_blocks_{block}_{side}_"
            modules += [
                (f"{p}attn_qkv", 3072, 9216, None),
                (f"{p}attn_proj", 3072, 3072, None),
                (f"{p}mlp_0", 3072, 12288, None),
                (f"{p}mlp_2", 12288, 3072, None),
                (f"{p}mod_lin", 3072, 18432, None),
            ]
    for block in range(38):
        p = f"lora_unet_single_blocks_{block}_"
        modules += [
            (f"{p}linear1", 3072, 21504, None),
            (f"{p}linear2", 15360, 3072, None),
            (f"{p}modulation_lin", 3072, 9216, None),
        ]
    return modules


def _peft_sdxl() -> list[Module]:
    """diffusers/PEFT SDXL LoRA: attention projections of both attention layers, both text encoders."""
    blocks = [("down_blocks.1", 640, 2, 2), ("down_blocks.2", 1280, 2, 10), ("up_blocks.0", 1280, 3, 10)]
    blocks += [("up_blocks.1", 640, 3, 2)]
    modules: list[Module] = []
    prefixes = [(f"unet.{b}.attentions.{a}", c, d) for b, c, n, d in blocks for a in range(n)]
    for prefix, channels, depth in [*prefixes, ("unet.mid_block.attentions.0", 1280, 10)]:
        modules += [m for m in _transformer(prefix, channels, 2048, depth, ".", True) if ".attn" in m[0]]
    modules += _clip("text_encoder", 12, 768, ".", qkv_only=True)
    return modules + _clip("text_encoder_2", 32, 1280, ".", qkv_only=True)


def _signature_first(modules: list[Module], *markers: str) -> list[Module]:
    """Move the first module containing each marker to the front."""
    front: list[Module] = []
    for marker in markers:
        front += [next(m for m in modules if marker in m[0] and m not in front)]
    return front + [m for m in modules if m not in front]


@functools.cache
def _modules(kind: str, conv: bool) -> tuple[Module, ...]:
    if conv and kind in ("flux", "peft_sdxl", "lokr"):
        raise ValueError(f"conv layers are not supported for kind {kind!r}")
    if kind in ("sd15", "loha"):
        modules = _sd_unet(768, linear_proj=False) + _clip("lora_te", 12, 768)
        signature = ["attn2_to_k", "lora_te_"]
    elif kind == "sd2":
        modules = _sd_unet(1024, linear_proj=True) + _clip("lora_te", 23, 1024)
        signature = ["attn2_to_k", "lora_te_"]
    elif kind in ("sdxl", "lokr", "dora"):
        modules = _sdxl_unet() + _clip("lora_te1", 12, 768) + _clip("lora_te2", 32, 1280)
        signature = ["attn2_to_k", "lora_te1_", "lora_te2_"]
    elif kind == "flux":
        modules, signature = _flux(), ["img_attn_qkv", "single_blocks_0_linear1"]
    elif kind == "peft_sdxl":
        modules, signature = _peft_sdxl(), ["attn2.to_k", "text_encoder.", "text_encoder_2."]
    else:
        raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")
    if conv:
        convs = _sdxl_convs() if kind in ("sdxl", "dora") else _sd_convs()
        modules = [*modules[:1], *convs, *modules[1:]]
        signature.insert(1, "resnets" if kind not in ("sdxl", "dora") else "in_layers")
    return tuple(_signature_first(modules, *signature))


# --- tensors for one module -----------------------------------------------------------------------------------


def _factor(dim: int, factor: int = 8) -> tuple[int, int]:
    """LyCORIS ``factorization(dim, 8)`` for the multiples of 8 SD uses: (8, dim // 8)."""
    return (factor, dim // factor) if dim % factor == 0 else (1, dim)


def _module_tensors(kind: str, module: Module, rank: int) -> list[tuple[str, tuple[int, ...]]]:
    name, c_in, c_out, kernel = module
    if kind == "peft_sdxl":
        return [(f"{name}.lora_A.weight", (rank, c_in)), (f"{name}.lora_B.weight", (c_out, rank))]
    alpha = (f"{name}.alpha", ())
    if kind == "loha":
        flat_in = c_in * (kernel[0] * kernel[1] if kernel else 1)
        return [
            alpha,
            (f"{name}.hada_w1_a", (c_out, rank)),
            (f"{name}.hada_w1_b", (rank, flat_in)),
            (f"{name}.hada_w2_a", (c_out, rank)),
            (f"{name}.hada_w2_b", (rank, flat_in)),
        ]
    if kind == "lokr":
        (out_l, out_k), (in_m, in_n) = _factor(c_out), _factor(c_in)
        return [
            alpha,
            (f"{name}.lokr_w1", (out_l, in_m)),
            (f"{name}.lokr_w2_a", (out_k, rank)),
            (f"{name}.lokr_w2_b", (rank, in_n)),
        ]
    down, up = ((rank, c_in, *kernel), (c_out, rank, 1, 1)) if kernel else ((rank, c_in), (c_out, rank))
    tensors = [alpha, (f"{name}.lora_down.weight", down), (f"{name}.lora_up.weight", up)]
    if kind == "dora":
        tensors.append((f"{name}.dora_scale", (c_out, 1) if not kernel else (c_out, 1, 1, 1)))
    return tensors


def _pack_scalar(value: float, dtype: str) -> bytes:
    if dtype == "BF16":
        return struct.pack("<f", value)[2:]  # bfloat16 = top half of a float32 (exact for small whole numbers)
    return struct.pack({"F16": "<e", "F32": "<f", "F64": "<d"}[dtype], value)


def write_lora(
    path: str | Path,
    *,
    kind: str = "sdxl",
    rank: int = 8,
    metadata: dict[str, str] | EllipsisType | None = ...,
    max_modules: int | None = None,
    seed: int = 0,
    dtype: str = "F16",
    conv: bool = False,
    alpha: float | None = None,
) -> Path:
    """Write a LoRA of ``kind``; default metadata is ``kohya_metadata(kind)`` matching rank and alpha (rank/2).

    ``metadata=None`` or ``{}`` writes no ``__metadata__``; "peft_sdxl" has none by default, like diffusers.
    """
    alpha = rank / 2 if alpha is None else alpha
    if metadata is ...:
        metadata = None if kind == "peft_sdxl" else _default_metadata(kind, rank, alpha, conv)
    modules = _modules(kind, conv)[:max_modules]
    tensors = {name: shape for module in modules for name, shape in _module_tensors(kind, module, rank)}
    return write_tensors(path, tensors, metadata=metadata, seed=seed, dtype=dtype, scalar=alpha)


def write_tensors(
    path: str | Path,
    tensors: dict[str, tuple[int, ...]],
    *,
    metadata: dict[str, str] | None = None,
    seed: int = 0,
    dtype: str = "F16",
    scalar: float = 1.0,
) -> Path:
    """Write a valid file with any tensor names and shapes (sorted by name like the reference writer);
    0-d tensors (kohya ``.alpha``) hold ``scalar``, the rest random bytes from ``seed``."""
    if dtype not in DTYPE_SIZES:
        raise ValueError(f"unsupported dtype {dtype!r}; expected one of {tuple(DTYPE_SIZES)}")
    size = DTYPE_SIZES[dtype]
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    scalar_offsets = []
    for name in sorted(tensors):
        shape = tensors[name]
        nbytes = math.prod(shape) * size
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        if not shape:
            scalar_offsets.append(offset)
        offset += nbytes
    data = bytearray(random.Random(seed).randbytes(offset))
    packed = _pack_scalar(scalar, dtype)
    for start in scalar_offsets:
        data[start : start + size] = packed
    return write_raw(path, header, bytes(data))


def _default_metadata(kind: str, rank: int, alpha: float, conv: bool) -> dict[str, str]:
    md = kohya_metadata(kind, ss_network_dim=str(rank), ss_network_alpha=str(float(alpha)))
    if conv:
        args = json.loads(md.get("ss_network_args", "{}"))
        args.update(conv_dim=str(rank), conv_alpha=str(float(alpha)))
        md["ss_network_args"] = json.dumps(args)
    return md


def write_raw(path: str | Path, header: dict | bytes, data: bytes = b"", header_length: int | None = None) -> Path:
    """Write any header and data, valid or not: a dict is dumped and space-padded like the reference writer,
    bytes are written as given; ``header_length`` overrides the 8-byte length prefix (for lying files)."""
    if isinstance(header, bytes):
        raw = header
    else:
        raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        raw += b" " * (-len(raw) % 8)
    length = len(raw) if header_length is None else header_length
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(b"".join((struct.pack("<Q", length), raw, data)))
    return path
