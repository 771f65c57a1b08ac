"""Reading one LoRA file and its sidecars into catalog values, with where each value came from.

Precedence, lowest first (a later source overwrites an earlier one; a value edited in LoRA Manager,
source "user", is never overwritten by any of them):

1. the file name (name);
2. the safetensors header: ``ss_*``/``modelspec.*``/``ssmd_*`` metadata, and tensor keys/shapes for
   base model, network type and rank;
3. sidecars, in ``adapters.sidecars.PRECEDENCE`` order (description .txt, SD.Next Civitai model
   JSON, Stability Matrix, ComfyUI-Lora-Manager, .civitai.info, A1111 user metadata).

One exception: the base-model family deduced from tensor keys and shapes beats every sidecar and
metadata claim, because the shapes cannot lie about which model the LoRA plugs into.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from adapters import companions, detection, sanitize, sidecars
from adapters.previews import find_image_preview, find_preview
from adapters.safetensors_header import HeaderError, read_alpha, read_header

PHYSICAL_EVIDENCE = ("tensor shapes", "tensor keys")
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")

# Catalog fields a scan may set; everything else on Adapter belongs to the user or to the app.
SCANNED_FIELDS = (
    "name",
    "alias",
    "base_model",
    "base_model_detail",
    "network_type",
    "rank",
    "alpha",
    "trigger_words",
    "training_tags",
    "preferred_weight",
    "weight_min",
    "weight_max",
    "activation_text",
    "negative_text",
    "description",
    "notes",
    "civitai_model_id",
    "civitai_version_id",
    "source_url",
    "not_on_civitai",
    "favorite",
    "header_metadata",
)


@dataclass
class FileRead:
    """What one file (plus its sidecars) says; ``error`` is set when its header is unusable."""

    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    issues: list[str] = field(default_factory=list)
    data_offset: int = 0
    header_sha256: str = ""
    preview_source: str = ""
    embedded_preview: bytes | None = None
    error: str = ""


def _set(read: FileRead, name: str, value: Any, source: str) -> None:
    if value is None or value == "" or value == []:
        return
    read.values[name] = value
    read.sources[name] = source


def sidecar_signature(directory: str, stem: str, dir_names: set[str]) -> str:
    """Changes when any sidecar or preview of the model is added, removed or modified."""
    if not companions.has_companions(stem, dir_names):
        return ""
    names = sidecars.sidecar_names(stem, dir_names)
    preview = find_preview(stem, dir_names)
    if preview:
        names = [*names, preview]
    if not names:
        return ""
    digest = hashlib.sha1(usedforsecurity=False)
    for name in names:
        try:
            st = os.stat(os.path.join(directory, name))
        except OSError:
            continue
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


_stem_index: tuple[int, dict[str, list[str]]] = (0, {})


def _model_stems(dir_names: set[str]) -> dict[str, list[str]]:
    """Model file names by lower-cased stem, built once per directory listing (the scanner reuses the set)."""
    global _stem_index
    if _stem_index[0] != id(dir_names):
        index: dict[str, list[str]] = {}
        for name in dir_names:
            base, ext = os.path.splitext(name)
            if ext.lower() in MODEL_SUFFIXES:
                index.setdefault(base.lower(), []).append(name)
        _stem_index = (id(dir_names), index)
    return _stem_index[1]


def stem_clash(stem: str, dir_names: set[str], own_name: str) -> str:
    """Another model file with the same stem would share (and confuse) this model's sidecars."""
    for name in _model_stems(dir_names).get(stem.lower(), []):
        if name != own_name:
            return f"another model file with the same name ({name}) shares this folder's sidecars; they may describe it"
    return ""


def read_file(path: str, size: int, dir_names: set[str]) -> FileRead:
    directory, filename = os.path.split(path)
    stem = filename[: -len(".safetensors")] if filename.lower().endswith(".safetensors") else filename
    read = FileRead()
    _set(read, "name", stem, "file name")
    clash = stem_clash(stem, dir_names, filename)
    if clash:
        read.issues.append(clash)
    try:
        header = read_header(path, file_size=size)
    except HeaderError as exc:
        read.error = str(exc)
        read.issues.append(str(exc))
        return read
    read.data_offset = header.data_offset
    read.header_sha256 = header.fingerprint
    read.issues.extend(header.issues)
    metadata = header.metadata
    found = detection.detect(header, filename)
    read.issues.extend(found.conflicts)
    _set(read, "base_model", found.base_model, found.base_model_source or "default")
    _set(read, "base_model_detail", found.base_model_detail, found.base_model_source)
    _set(read, "network_type", found.network_type, "tensor keys")
    _set(read, "rank", found.rank, "tensor shapes")
    alpha, alpha_source = found.alpha, "ss_network_alpha"
    if alpha is None:
        try:
            alpha, alpha_source = read_alpha(path, header), "alpha tensor"
        except (HeaderError, OSError):
            alpha = None
    _set(read, "alpha", alpha, alpha_source)
    _set(read, "training_tags", [list(pair) for pair in detection.training_tags(metadata)], "ss_tag_frequency")
    _set(read, "trigger_words", detection.trigger_candidates(metadata), "header")
    header_values = detection.header_fields(metadata)
    for key in ("alias", "name", "description", "negative_text", "source_url"):
        _set(read, key, header_values.get(key), "header")
    read.tags.extend(header_values.get("tags", []) or [])
    _set(read, "header_metadata", detection.metadata_for_storage(metadata), "header")

    has_companions = companions.has_companions(stem, dir_names)  # one lookup; most models have no sidecar
    known_hashes = [metadata.get("sshs_model_hash", "")] if metadata.get("sshs_model_hash") else []
    found_sidecars = (
        sidecars.read_sidecars(Path(directory), stem, dir_names, known_hashes=known_hashes) if has_companions else []
    )
    for sidecar in found_sidecars:
        read.issues.extend(sidecar.issues)
    merged, merged_sources = sidecars.merge(found_sidecars)
    for key, value in merged.items():
        if key == "tags":
            read.tags.extend(value)
        elif key == "base_model":
            if read.sources.get("base_model") not in PHYSICAL_EVIDENCE:
                _set(read, key, value, merged_sources[key])
        elif key in SCANNED_FIELDS:
            _set(read, key, value, merged_sources[key])

    preview, preview_issues = find_image_preview(directory, stem, dir_names) if has_companions else (None, [])
    read.issues.extend(preview_issues)
    if preview:
        read.preview_source = os.path.join(directory, preview)
    else:
        images = detection.embedded_images(metadata)
        if images:
            read.embedded_preview = images[0]
            read.preview_source = "embedded"
    read.tags = list(dict.fromkeys(tag.strip().lower()[:100] for tag in read.tags if tag and tag.strip()))
    return make_storable(read)


def make_storable(read: FileRead) -> FileRead:
    """The gate for text from files (adapters.sanitize): lone surrogates and NUL are replaced and named
    in a per-file issue, so one odd header or sidecar never fails the scan or a page later."""
    if _plainly_storable(read):  # nearly always: skip the walk that names each bad place
        return read
    replaced: list[str] = []
    read.values = {
        key: sanitize.storable_data(value, replaced, read.sources.get(key, key) + ": " + key)
        for key, value in read.values.items()
    }
    read.tags = sanitize.storable_data(read.tags, replaced, "tags")
    read.issues = sanitize.storable_data(read.issues)
    if read.preview_source and sanitize.storable_problem(read.preview_source):
        replaced.append("preview file name")
        read.preview_source = ""
    if replaced:
        places = ", ".join(dict.fromkeys(place.split("[")[0] for place in replaced))
        read.issues.append(f"text that cannot be stored (lone surrogates or NUL) was replaced with \ufffd in {places}")
    return read


def _plainly_storable(read: FileRead) -> bool:
    """True when no text of ``read`` needs the gate: orjson refuses lone surrogates and writes NUL as an
    escape, so one serialisation answers for every string and key (a false alarm only costs the slow path)."""
    try:
        blob = orjson.dumps([read.values, read.tags, read.issues, read.preview_source])
    except TypeError:
        return False
    return b"\\u0000" not in blob
