"""Writers for the sidecar files and previews other LoRA tools leave next to ``<stem>.safetensors``.

Content follows reference/lora-files.md B6 and peer-tools.md section 2. Every writer takes the model's path
(which need not exist), writes ``<stem><suffix>`` beside it and returns the sidecar's path. Keyword fields
override top-level keys of the written object; a field set to ``None`` removes that key.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

MODEL_SHA256 = hashlib.sha256(b"zelda-botw-lora").hexdigest()  # full-file SHA-256 (Civitai "SHA256")
ADDNET_HASH = hashlib.sha256(b"zelda-botw-tensors").hexdigest()  # sshs_model_hash; Civitai AutoV3 = first 12
MODEL_ID = 117170
VERSION_ID = 128713

_A1111_KEYS = {
    "sd_version": "sd version",
    "activation_text": "activation text",
    "preferred_weight": "preferred weight",
    "negative_text": "negative text",
}
_PIL_SAVE = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF", "avif": "AVIF", "bmp": "BMP", "tiff": "TIFF"}
_EXT_TYPES = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png", "webp": "webp", "gif": "gif", "avif": "avif", "bmp": "bmp"}
_EXT_TYPES |= {"tif": "tiff", "tiff": "tiff"}


def sidecar_path(model_path: Path, suffix: str) -> Path:
    model_path = Path(model_path)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    return model_path.with_name(model_path.stem + suffix)


def _override(base: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    for key, value in fields.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def _write_json(model_path: Path, suffix: str, data: Any) -> Path:
    path = sidecar_path(model_path, suffix)
    path.write_text(json.dumps(data, indent=4, ensure_ascii=False), encoding="utf-8")
    return path


def write_sidecar_raw(model_path: Path, suffix: str, content: str | bytes) -> Path:
    """Arbitrary bytes or text under ``<stem><suffix>``, for broken-file tests."""
    path = sidecar_path(model_path, suffix)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def civitai_hashes(sha256: str = MODEL_SHA256, addnet_hash: str = ADDNET_HASH) -> dict[str, str]:
    """Civitai ``files[].hashes``: upper-case hex, AutoV2 = first 10 of SHA256, AutoV3 = first 12 of addnet."""
    return {
        "AutoV1": "7B0F3A2C",
        "AutoV2": sha256[:10].upper(),
        "SHA256": sha256.upper(),
        "CRC32": "5E8B4D71",
        "BLAKE3": hashlib.sha256(sha256.encode()).hexdigest().upper(),
        "AutoV3": addnet_hash[:12].upper(),
    }


def civitai_version(
    *,
    version_id: int = VERSION_ID,
    model_id: int = MODEL_ID,
    model_name: str = "Zelda (Breath of the Wild)",
    name: str = "v1.0",
    trained_words: list[str] | None = None,
    base_model: str = "SD 1.5",
    sha256: str = MODEL_SHA256,
    addnet_hash: str = ADDNET_HASH,
    description: str = "<p>Trained on 60 screenshots. Works best at <strong>0.7-0.9</strong>.</p>",
    nsfw: bool = False,
    creator: str = "hyrule_artist",
    file_name: str = "zelda_botw.safetensors",
    **extra: Any,
) -> dict[str, Any]:
    """A Civitai model-version object as returned by ``/api/v1/model-versions/by-hash/<sha256>``."""
    version: dict[str, Any] = {
        "id": version_id,
        "modelId": model_id,
        "name": name,
        "createdAt": "2023-08-01T10:12:45.123Z",
        "updatedAt": "2023-08-02T08:00:00.000Z",
        "status": "Published",
        "publishedAt": "2023-08-01T11:00:00.000Z",
        "trainedWords": ["zelda", "pointy ears, blonde hair"] if trained_words is None else trained_words,
        "trainingStatus": None,
        "trainingDetails": None,
        "baseModel": base_model,
        "baseModelType": "Standard",
        "earlyAccessEndsAt": None,
        "description": description,
        "uploadType": "Created",
        "air": f"urn:air:sd1:lora:civitai:{model_id}@{version_id}",
        "stats": {"downloadCount": 15234, "ratingCount": 120, "rating": 4.9, "thumbsUpCount": 980},
        "model": {"name": model_name, "type": "LORA", "nsfw": nsfw, "poi": False},
        "creator": {"username": creator, "image": "https://image.civitai.com/avatar.jpeg"},
        "files": [
            {
                "id": 91234,
                "sizeKB": 147571.2,
                "name": file_name,
                "type": "Model",
                "pickleScanResult": "Success",
                "pickleScanMessage": "No Pickle imports",
                "virusScanResult": "Success",
                "virusScanMessage": None,
                "scannedAt": "2023-08-01T10:20:00.000Z",
                "metadata": {"format": "SafeTensor", "size": None, "fp": None},
                "hashes": civitai_hashes(sha256, addnet_hash),
                "downloadUrl": f"https://civitai.com/api/download/models/{version_id}",
                "primary": True,
            }
        ],
        "images": [
            {
                "url": "https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/abc/width=512/1234.jpeg",
                "nsfwLevel": 1,
                "width": 512,
                "height": 768,
                "hash": "UGF~wR00~q-;%MofRjWB4nof-;M{",
                "type": "image",
                "hasMeta": True,
                "meta": {
                    "prompt": "zelda, pointy ears, blonde hair, <lora:zelda_botw:0.8>",
                    "negativePrompt": "lowres, bad anatomy",
                    "seed": 1234567,
                    "steps": 28,
                    "sampler": "DPM++ 2M Karras",
                    "cfgScale": 7,
                },
            }
        ],
        "downloadUrl": f"https://civitai.com/api/download/models/{version_id}",
    }
    return _override(version, extra)


def write_a1111_json(model_path: Path, **fields: Any) -> Path:
    """A1111 user metadata ``<stem>.json``; ``activation_text=`` etc. map to the keys with spaces."""
    data = {
        "description": "Zelda from Breath of the Wild.",
        "sd version": "SD1",
        "activation text": "zelda, pointy ears",
        "preferred weight": 0.8,
        "negative text": "",
        "notes": "Looks best with the blue tunic.",
    }
    return _write_json(model_path, ".json", _override(data, {_A1111_KEYS.get(k, k): v for k, v in fields.items()}))


def write_sdnext_civitai_json(
    model_path: Path, versions: list[dict[str, Any]] | None = None, *, model_id: int = MODEL_ID, **fields: Any
) -> Path:
    """SD.Next ``<stem>.json``: the Civitai *model* JSON (``/api/v1/models/{id}``) with ``modelVersions``."""
    if versions is None:
        versions = [civitai_version(model_id=model_id, model=None, modelId=None, creator=None)]
    data = {
        "id": model_id,
        "name": "Zelda (Breath of the Wild)",
        "description": "<p>Princess Zelda, <em>Breath of the Wild</em> outfit.</p>",
        "allowNoCredit": True,
        "allowCommercialUse": ["Image"],
        "type": "LORA",
        "minor": False,
        "poi": False,
        "nsfw": False,
        "tags": ["character", "Zelda", "video game "],
        "creator": {"username": "hyrule_artist", "image": None},
        "stats": {"downloadCount": 15234, "favoriteCount": 0, "commentCount": 12, "rating": 4.9},
        "modelVersions": versions,
    }
    return _write_json(model_path, ".json", _override(data, fields))


def write_civitai_info(model_path: Path, empty: bool = False, **fields: Any) -> Path:
    """Civitai Helper ``<stem>.civitai.info`` (a model-version object); ``empty`` writes ``{}``: not on Civitai."""
    return _write_json(model_path, ".civitai.info", {} if empty else civitai_version(**fields))


def write_lm_metadata(
    model_path: Path,
    *,
    sha256: str = MODEL_SHA256,
    civitai: dict[str, Any] | None = None,
    usage_tips: dict[str, Any] | str | None = None,
    **fields: Any,
) -> Path:
    """ComfyUI-Lora-Manager ``<stem>.metadata.json``; ``civitai={}`` for a file not from Civitai,
    ``usage_tips`` as a dict (serialized to the JSON string LM stores) or a raw string."""
    model_path = Path(model_path)
    if usage_tips is None:
        usage_tips = {"strength": 0.8, "strength_min": 0.6, "strength_max": 1.0, "clip_strength": 1.0, "clip_skip": 2}
    data = {
        "file_name": model_path.stem,
        "model_name": "Zelda (Breath of the Wild)",
        "file_path": model_path.as_posix(),
        "size": 151112908,
        "modified": 1722500000.0,
        "sha256": sha256,
        "base_model": "SD 1.5",
        "preview_url": model_path.with_name(model_path.stem + ".webp").as_posix(),
        "preview_nsfw_level": 1,
        "notes": "Use with the BotW checkpoint.",
        "from_civitai": civitai != {},
        "civitai": civitai_version(sha256=sha256) if civitai is None else civitai,
        "tags": ["character", "Zelda"],
        "modelDescription": "<p>Princess Zelda, <em>Breath of the Wild</em> outfit.</p>",
        "civitai_deleted": False,
        "favorite": True,
        "exclude": False,
        "db_checked": False,
        "skip_metadata_refresh": False,
        "metadata_source": "civitai_api",
        "last_checked_at": 1722500100.0,
        "hash_status": "completed",
        "trainedWords": ["zelda"],
        "usage_tips": usage_tips if isinstance(usage_tips, str) else json.dumps(usage_tips),
    }
    return _write_json(model_path, ".metadata.json", _override(data, fields))


def write_cm_info(model_path: Path, **fields: Any) -> Path:
    """Stability Matrix ``<stem>.cm-info.json`` (PascalCase ``ConnectedModelInfo``)."""
    data = {
        "ModelId": MODEL_ID,
        "ModelName": "Zelda (Breath of the Wild)",
        "ModelDescription": "<p>Princess Zelda, <em>Breath of the Wild</em> outfit.</p>",
        "Nsfw": False,
        "Tags": ["character", "zelda"],
        "ModelType": "LORA",
        "VersionId": VERSION_ID,
        "VersionName": "v1.0",
        "VersionDescription": "<p>First release.</p>",
        "AuthorUsername": "hyrule_artist",
        "BaseModel": "SD 1.5",
        "RemoteFileName": "zelda_botw.safetensors",
        "ImportedAt": "2024-08-01T10:00:00+00:00",
        "Hashes": {"SHA256": MODEL_SHA256.upper(), "CRC32": "5E8B4D71", "BLAKE3": None},
        "TrainedWords": ["zelda", "pointy ears"],
        "ThumbnailImageUrl": "https://image.civitai.com/xG1nkqKTMzGDvpLrqFT7WA/abc/width=450/1234.jpeg",
        "Source": "Civitai",
    }
    return _write_json(model_path, ".cm-info.json", _override(data, fields))


def write_description_txt(
    model_path: Path, text: str = "Zelda from Breath of the Wild.\nTrigger: zelda", variant: str = "txt"
) -> Path:
    """``<stem>.txt`` (SD.Next, A1111) or ``<stem>.description.txt`` (A1111, ``variant="description.txt"``)."""
    path = sidecar_path(model_path, "." + variant)
    path.write_text(text, encoding="utf-8")
    return path


def image_bytes(
    image_type: str = "png", size: tuple[int, int] = (512, 768), mode: str = "RGB", exif_orientation: int | None = None
) -> bytes:
    """A small real image of ``image_type`` (jpeg, png, webp, gif, avif, bmp, tiff)."""
    image = Image.new(mode, size, "#b478c8" if mode in ("RGB", "RGBA") else 128)
    ImageDraw.Draw(image).ellipse((size[0] // 4, size[1] // 4, size[0] * 3 // 4, size[1] * 3 // 4), fill="white")
    out = io.BytesIO()
    kwargs: dict[str, Any] = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    image.save(out, _PIL_SAVE[image_type], **kwargs)
    return out.getvalue()


def write_preview(
    model_path: Path, naming: str = "preview.png", size: tuple[int, int] = (512, 768), real_type: str | None = None
) -> Path:
    """``<stem>.<naming>`` (e.g. "preview.png", "png", "thumb.jpg", "webp"); ``real_type`` writes other bytes
    than the extension says, as Civitai Helper does (JPEG bytes in ``.preview.png``)."""
    path = sidecar_path(model_path, "." + naming)
    image_type = real_type or _EXT_TYPES[naming.rsplit(".", 1)[-1].lower()]
    path.write_bytes(image_bytes(image_type, size))
    return path
