"""What a LoRA header says: base model family, network type, rank, tags, triggers and embedded images.

Base model evidence (lora-files.md B5): metadata (``ss_base_model_version``, ``modelspec.architecture``,
``ss_sd_model_name``, ``ss_v2``) names the family and the detail (Pony, Illustrious, Flux.1 D, ...),
but tensor shapes and keys decide the family when they disagree, because they cannot lie about which
model the LoRA plugs into.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import operator
import re
from collections import Counter
from dataclasses import dataclass, field

from adapters.safetensors_header import SafetensorsHeader, TensorInfo, loads_json

BASE_FAMILIES = ("SD1", "SD2", "SDXL", "SD3", "Flux", "Other", "Unknown")
NETWORK_TYPES = ("LoRA", "LoCon", "LoHa", "LoKr", "DoRA", "OFT", "Other")

# The detail each family gets when nothing more specific is known (Civitai's base model names).
GENERIC_DETAIL = {"SD1": "SD 1.5", "SD2": "SD 2.x", "SDXL": "SDXL 1.0", "SD3": "SD 3", "Flux": "Flux.1"}
CROSS_ATTENTION_WIDTH = {768: "SD1", 1024: "SD2", 2048: "SDXL"}
TEXT_ENCODER_WIDTH = {768: "SD1", 1024: "SD2"}
SDXL_FINETUNES = (("noob", "NoobAI"), ("illustrious", "Illustrious"), ("pony", "Pony"))


@dataclass
class Detection:
    base_model: str
    base_model_detail: str
    base_model_source: str
    network_type: str
    rank: int | None
    alpha: float | None
    conflicts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Claim:
    families: tuple[str, ...]  # more than one when the evidence cannot tell them apart (SD1/SD2 key layout)
    detail: str
    source: str
    reason: str = ""


# --- metadata claims ---------------------------------------------------------------------------------------


def _from_version(value: str) -> tuple[str, str] | None:
    v = value.strip().lower()
    if not v or v == "none":
        return None
    if v.startswith("sdxl"):
        return "SDXL", "SDXL 1.0"
    if v.startswith("sd_v1"):
        return "SD1", "SD 1.5"
    if v.startswith("sd_v2"):
        return "SD2", "SD 2.x"
    if v.startswith(("sd3", "stable-diffusion-3")):
        return "SD3", "SD 3.5" if "3.5" in v or "3-5" in v else "SD 3"
    if v.startswith("flux"):
        return "Flux", _flux_detail(v)
    if v.startswith("chroma"):
        return "Flux", "Chroma"
    return "Other", _other_detail(v)


def _from_architecture(value: str) -> tuple[str, str] | None:
    arch = value.strip().lower().split("/", 1)[0]
    if not arch:
        return None
    if arch.startswith("stable-diffusion-xl"):
        return "SDXL", "SDXL Refiner" if "refiner" in arch else "SDXL 1.0"
    if arch.startswith("stable-diffusion-v1"):
        return "SD1", "SD 1.5"
    if arch.startswith("stable-diffusion-v2"):
        return "SD2", "SD 2.x"
    if arch.startswith("stable-diffusion-3"):
        return "SD3", "SD 3.5" if "3.5" in arch or "3-5" in arch else "SD 3"
    if arch.startswith("flux"):
        return "Flux", _flux_detail(arch)
    if arch.startswith("chroma"):
        return "Flux", "Chroma"
    return "Other", _other_detail(arch)


def _flux_detail(text: str) -> str:
    if "flux-2" in text or "flux2" in text or "flux.2" in text:
        return "Flux.2"
    if "schnell" in text:
        return "Flux.1 S"
    return "Flux.1 D" if "dev" in text else "Flux.1"


def _other_detail(text: str) -> str:
    for marker, name in (
        ("lumina", "Lumina 2"),
        ("hunyuan", "HunyuanImage"),
        ("anima", "Anima"),
        ("qwen", "Qwen-Image"),
    ):
        if marker in text:
            return name
    return text[:100]


_XL_NAME = re.compile(r"sdxl|xl(?![a-z])|(?<![a-z])xl")


def _from_model_name(value: str) -> tuple[str, str] | None:
    """``ss_sd_model_name`` is a checkpoint file name or repo id: only a few words in it are reliable."""
    name = value.strip().lower()
    if "flux" in name:
        return "Flux", _flux_detail(name)
    if "chroma" in name:
        return "Flux", "Chroma"
    if "sd3" in name or "stable-diffusion-3" in name:
        return "SD3", "SD 3.5" if "3.5" in name or "3-5" in name else "SD 3"
    for marker, detail in SDXL_FINETUNES:
        if marker in name:
            return "SDXL", detail
    if _XL_NAME.search(name):
        return "SDXL", "SDXL 1.0"
    if re.search(r"v2[-_.]?[01]|sd2|768-v", name):
        return "SD2", "SD 2.x"
    if re.search(r"v1[-_.]?[45]|sd1|sd-v1|stable-diffusion-v1", name):
        return "SD1", "SD 1.5"
    return None


def _metadata_claims(metadata: dict[str, str]) -> list[_Claim]:
    claims = []
    for key, parse in (
        ("ss_base_model_version", _from_version),
        ("modelspec.architecture", _from_architecture),
        ("ss_sd_model_name", _from_model_name),
    ):
        found = parse(metadata[key]) if metadata.get(key) else None
        if found:
            claims.append(_Claim((found[0],), found[1], key))
    if metadata.get("ss_v2", "").strip().lower() == "true":
        claims.append(_Claim(("SD2",), "SD 2.x", "ss_v2"))
    return claims


# --- tensor evidence ---------------------------------------------------------------------------------------

_DOWN_SUFFIXES = (".lora_down.weight", ".lora_A.weight", ".lora.down.weight", "_lora.down.weight")
_SDXL_DEEP_BLOCK = re.compile(r"transformer_blocks[._][1-9]\d*[._](attn1|attn2|ff)")


def _in_features(tensors: dict[str, TensorInfo], key: str) -> int | None:
    """Input width of the linear module a down-projection key belongs to, whichever algorithm stored it."""
    info = tensors[key]
    if key.endswith((*_DOWN_SUFFIXES, ".hada_w1_b")):
        return info.shape[1] if len(info.shape) >= 2 else None
    if key.endswith((".lokr_w1", ".lokr_w1_b")):  # kron(w1, w2): in = w1 columns * w2 columns
        module = key.rsplit(".", 1)[0]
        w2 = tensors.get(module + ".lokr_w2") or tensors.get(module + ".lokr_w2_b")
        if w2 is not None and len(info.shape) == 2 and len(w2.shape) == 2:
            return info.shape[1] * w2.shape[1]
    return None


def _width_claim(
    tensors: dict[str, TensorInfo], keys: str, pattern: str, widths: dict[int, str], what: str
) -> _Claim | None:
    """The first key matching ``pattern`` (a regex) whose input width maps to a family."""
    for match in re.finditer(rf"^.*(?:{pattern}).*$", keys, re.MULTILINE):
        width = _in_features(tensors, match.group())
        if width in widths:
            family = widths[width]
            return _Claim((family,), GENERIC_DETAIL[family], "tensor shapes", f"{what} {width}")
    return None


def _tensor_claim(tensors: dict[str, TensorInfo], keys: str) -> _Claim | None:
    """Family from key patterns and shapes; ``keys`` is all tensor names joined by newlines (fast to search)."""
    if not tensors:
        return None
    if "double_blocks" in keys or "single_blocks" in keys or "single_transformer_blocks" in keys:
        if "stream_modulation" in keys:
            return _Claim(("Flux",), "Flux.2", "tensor keys", "double_blocks and stream_modulation keys")
        if "distilled_guidance_layer" in keys:
            return _Claim(("Flux",), "Chroma", "tensor keys", "distilled_guidance_layer keys")
        hidden = _width_claim(
            tensors,
            keys,
            r"double_blocks.*attn[._]qkv|transformer_blocks[._]\d+[._]attn[._]to_q",
            {3072: "Flux"},
            "hidden width",
        )
        if hidden:
            return _Claim(("Flux",), "Flux.1", hidden.source, hidden.reason)
        return _Claim(("Flux",), "Flux.1", "tensor keys", "double_blocks/single_blocks keys")
    if "joint_blocks" in keys:
        return _Claim(("SD3",), "SD 3", "tensor keys", "joint_blocks keys")
    shapes = _width_claim(
        tensors, keys, r"attn2[._](?:processor[._])?to_k", CROSS_ATTENTION_WIDTH, "cross-attention width"
    )
    if shapes:
        return shapes
    if "lora_te2_" in keys or "text_encoder_2." in keys:
        return _Claim(("SDXL",), "SDXL 1.0", "tensor keys", "second text encoder keys")
    te = _width_claim(tensors, keys, r"lora_te_text_model|^text_encoder\.", TEXT_ENCODER_WIDTH, "text encoder width")
    if te:
        return te
    if _SDXL_DEEP_BLOCK.search(keys):
        return _Claim(("SDXL",), "SDXL 1.0", "tensor keys", "more than one transformer block per attention")
    if "lora_te_" in keys or re.search(r"down_blocks[._]0[._]attentions", keys):
        return _Claim(("SD1", "SD2"), "", "tensor keys", "SD 1.x/2.x key layout")
    for marker, detail in (
        ("noise_refiner", "Z-Image"),
        ("context_refiner", "Z-Image"),
        ("llm_adapter", "Anima"),
        ("txtfusion", "Krea 2"),
        ("img_mlp", "Qwen-Image"),
        ("cross_attn", "Wan"),
    ):
        if marker in keys:
            return _Claim(("Other",), detail, "tensor keys", f"{marker} keys")
    return None


def _best_detail(claims: list[_Claim], family: str) -> str:
    """The most specific detail any claim for ``family`` gives (Pony beats a generic SDXL 1.0)."""
    details = [c.detail for c in claims if c.families == (family,) and c.detail]
    specific = [d for d in details if d != GENERIC_DETAIL.get(family)]
    return (specific or details or [""])[0]


def _base_model(header: SafetensorsHeader, keys: str, filename: str) -> tuple[str, str, str, list[str]]:
    claims = _metadata_claims(header.metadata)
    physical = _tensor_claim(header.tensors, keys)
    said = claims[0] if claims else None
    conflicts = []
    if physical and (said is None or said.families[0] not in physical.families):
        family = physical.families[0]
        source = physical.source
        if said is not None:
            shown = " or ".join(physical.families)
            conflicts.append(
                f"metadata says {said.families[0]} ({said.source}) but {physical.source} say {shown} "
                f"({physical.reason}); using {family}"
            )
    elif said is not None:
        family = said.families[0]
        source = physical.source if physical and len(physical.families) == 1 else said.source
    else:
        return "Unknown", "", "", conflicts
    detail = _best_detail(claims, family) or (physical.detail if physical and family in physical.families else "")
    detail = detail or GENERIC_DETAIL.get(family, "")
    if family == "SDXL" and detail == "SDXL 1.0":
        lowered = filename.lower()  # a weak hint, used only to refine an otherwise generic SDXL
        detail = next((name for marker, name in SDXL_FINETUNES if marker in lowered), detail)
    return family, detail, source, conflicts


# --- network type, rank, alpha -----------------------------------------------------------------------------


def _network_args(metadata: dict[str, str]) -> dict[str, object]:
    try:
        args = json.loads(metadata.get("ss_network_args") or "{}")
    except ValueError:
        return {}
    return args if isinstance(args, dict) else {}


def _network_type(header: SafetensorsHeader, keys: str) -> str:
    args = _network_args(header.metadata)
    algo = str(args.get("algo", "")).lower()
    if "oft_blocks" in keys or "oft_diag" in keys:
        return "OFT"
    if "lokr_w" in keys:
        return "LoKr"
    if "hada_w" in keys:
        return "LoHa"
    if "dora_scale" in keys:
        return "DoRA"
    if "lora_down" in keys or "lora_A" in keys or "lora.down" in keys:
        if str(args.get("dora_wd", "")).lower() == "true" or algo == "dora":
            return "DoRA"
        if "conv_dim" in args or algo == "locon" or _has_wide_conv(header.tensors):
            return "LoCon"
        return "LoRA"
    by_algo = {"locon": "LoCon", "lora": "LoRA", "loha": "LoHa", "lokr": "LoKr", "dora": "DoRA", "oft": "OFT"}
    by_algo.update({"diag-oft": "OFT", "boft": "OFT"})
    if algo in by_algo:
        return by_algo[algo]
    return "Other" if header.tensors else "LoRA"


def _has_wide_conv(tensors: dict[str, TensorInfo]) -> bool:
    """A 4-D down projection with a kernel larger than 1x1 (SD1 proj_in/out are 1x1 convs in plain LoRAs)."""
    return any(
        len(info.shape) == 4 and info.shape[2] * info.shape[3] > 1
        for name, info in tensors.items()
        if name.endswith(_DOWN_SUFFIXES)
    )


_RANK_SUFFIXES = (*_DOWN_SUFFIXES, ".hada_w1_b", ".lokr_w1_b", ".lokr_w2_b")


# No LoRA has a rank near this (full-rank SDXL layers are 1,280-5,120 wide); a larger "rank" is a hostile or
# broken header, and would not fit the database column (PostgreSQL refused the whole scan batch for one file).
MAX_RANK = 1_000_000


def _plausible_rank(value: int) -> int | None:
    return value if 0 < value <= MAX_RANK else None


def _rank(header: SafetensorsHeader) -> int | None:
    ranks = Counter(
        info.shape[0] for name, info in header.tensors.items() if info.shape and name.endswith(_RANK_SUFFIXES)
    )
    if ranks:
        return _plausible_rank(ranks.most_common(1)[0][0])
    dim = header.metadata.get("ss_network_dim", "").strip()
    return _plausible_rank(int(dim)) if dim.isdigit() and len(dim) <= 12 else None


def _float(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def detect(header: SafetensorsHeader, filename: str = "") -> Detection:
    """Everything about the network the header can tell; ``filename`` only refines an SDXL detail."""
    keys = "\n".join(header.tensors)
    family, detail, source, conflicts = _base_model(header, keys, filename)
    return Detection(
        base_model=family,
        base_model_detail=detail,
        base_model_source=source,
        network_type=_network_type(header, keys),
        rank=_rank(header),
        alpha=_float(header.metadata.get("ss_network_alpha")),
        conflicts=conflicts,
    )


# --- tags, triggers and descriptive fields -------------------------------------------------------------------


def _json(metadata: dict[str, str], key: str) -> object:
    try:
        return loads_json(metadata.get(key) or "null")
    except (ValueError, RecursionError):
        return None


def _add_frequencies(counts: Counter[str], by_dir: object) -> None:
    if not isinstance(by_dir, dict):
        return
    for tags in by_dir.values():
        if not isinstance(tags, dict):
            continue
        for tag, count in tags.items():
            tag = str(tag).strip()
            if tag and isinstance(count, int | float) and not isinstance(count, bool) and count > 0:
                counts[tag] += int(count)


def training_tags(metadata: dict[str, str], top_n: int = 50) -> list[tuple[str, int]]:
    """Caption tags the LoRA was trained on, most frequent first: a good guess at what it draws."""
    counts: Counter[str] = Counter()
    _add_frequencies(counts, _json(metadata, "ss_tag_frequency"))
    if not counts:
        datasets = _json(metadata, "ss_datasets")
        for dataset in datasets if isinstance(datasets, list) else []:
            if isinstance(dataset, dict):
                _add_frequencies(counts, dataset.get("tag_frequency"))
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top_n]


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _dedupe(items: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for item in items:
        seen.setdefault(item.casefold(), item)
    return list(seen.values())


def trigger_candidates(metadata: dict[str, str]) -> list[str]:
    """Words the trainer declared as triggers: modelspec trigger phrase, dataset class tokens, ssmd keywords."""
    found = _split(metadata.get("modelspec.trigger_phrase", ""))
    datasets = _json(metadata, "ss_datasets")
    for dataset in datasets if isinstance(datasets, list) else []:
        subsets = dataset.get("subsets") if isinstance(dataset, dict) else None
        for subset in subsets if isinstance(subsets, list) else []:
            tokens = subset.get("class_tokens") if isinstance(subset, dict) else None
            if isinstance(tokens, str) and tokens.strip() and not subset.get("is_reg"):
                found.append(tokens.strip())
    found += _split(metadata.get("ssmd_keywords", ""))
    return _dedupe([item for item in found if item.lower() != "none"])


def _text(metadata: dict[str, str], *keys: str) -> str:
    for key in keys:
        value = (metadata.get(key) or "").strip()
        if value and value != "None":
            return value
    return ""


def header_fields(metadata: dict[str, str]) -> dict[str, object]:
    """Descriptive values a trainer or metadata editor (ssmd_*) put in the header; only keys present."""
    fields: dict[str, object] = {}
    title = _text(metadata, "modelspec.title")
    if title.startswith("LoRA@"):  # kohya's fallback title is a timestamp, not a name
        title = ""
    candidates = {
        "alias": _text(metadata, "ss_output_name"),
        "name": _text(metadata, "ssmd_display_name") or title,
        "description": _text(metadata, "ssmd_description", "modelspec.description"),
        "author": _text(metadata, "ssmd_author", "modelspec.author"),
        "negative_text": _text(metadata, "ssmd_negative_keywords"),
        "usage_hint": _text(metadata, "modelspec.usage_hint"),
    }
    fields.update({key: value for key, value in candidates.items() if value})
    tags = _dedupe(_split(metadata.get("modelspec.tags", "")) + _split(metadata.get("ssmd_tags", "")))
    if tags:
        fields["tags"] = tags
    source = _text(metadata, "ssmd_source")
    if source.lower().startswith(("http://", "https://")):
        fields["source_url"] = source
    rating = _text(metadata, "ssmd_rating")
    if rating.isdigit() and 0 <= int(rating) <= 10:
        fields["rating"] = int(rating)
    return fields


# --- embedded images and the stored copy of the metadata ---------------------------------------------------

_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")


def _is_image(data: bytes) -> bool:
    return data.startswith(_IMAGE_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP") or data[4:12] == b"ftypavif"


def _base64_size(payload: str) -> int:
    payload = payload.strip()
    return len(payload) * 3 // 4 - (len(payload) - len(payload.rstrip("=")))


def _decode_image(text: object, max_bytes: int) -> bytes | None:
    if not isinstance(text, str):
        return None
    payload = text.strip()
    if payload.startswith("data:"):
        meta, _, payload = payload.partition(",")
        if not meta.endswith(";base64"):
            return None
    payload = "".join(payload.split())  # base64 wrapped over lines is still valid
    if not payload or _base64_size(payload) > max_bytes:
        return None
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if _is_image(data) and len(data) <= max_bytes else None


def embedded_images(metadata: dict[str, str], max_bytes: int = 20_000_000) -> list[bytes]:
    """Decoded images stored in the header (modelspec thumbnail, ssmd cover images); junk is skipped."""
    entries: list[object] = [metadata.get("modelspec.thumbnail")]
    covers = _json(metadata, "ssmd_cover_images")
    if isinstance(covers, list):
        entries += covers
    return [image for image in (_decode_image(entry, max_bytes) for entry in entries) if image is not None]


_is_data_url = operator.methodcaller("startswith", "data:")


def metadata_for_storage(
    metadata: dict[str, str], max_value_chars: int = 4000, max_total_chars: int = 200_000
) -> dict[str, str]:
    """A size-capped copy for the database: images become placeholders, long values are cut."""
    values = metadata.values()
    if (
        "ssmd_cover_images" not in metadata
        and max(map(len, values), default=0) <= max_value_chars
        and sum(map(len, values)) + sum(map(len, metadata)) <= max_total_chars
        and not any(map(_is_data_url, values))
    ):
        return dict(metadata)  # the usual header: nothing to replace or cut
    stored: dict[str, str] = {}
    total = 0
    for key, value in metadata.items():
        if value.startswith("data:"):
            value = f"<embedded image, {_base64_size(value.partition(',')[2]):,} bytes>"
        elif key == "ssmd_cover_images":
            covers = _json(metadata, key)
            value = f"<{len(covers) if isinstance(covers, list) else 0} embedded images>"
        if len(value) > max_value_chars:
            marker = f"… [cut, {len(value):,} characters in the file]"
            value = value[: max(max_value_chars - len(marker), 0)] + marker
        total += len(key) + len(value)
        if total > max_total_chars:
            break
        stored[key] = value
    return stored
