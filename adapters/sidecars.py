"""Read the sidecar files other LoRA tools write next to ``<stem>.safetensors`` into normalized values.

Formats (reference/lora-files.md B6, peer-tools.md section 2):

* ``<stem>.json``: either A1111 user metadata (flat, keys with spaces) or SD.Next's copy of the Civitai
  *model* JSON (``modelVersions``, ``creator``). Same name, two schemas, so the kind is detected from keys.
* ``<stem>.civitai.info``: Civitai Helper's copy of the Civitai model *version* fetched by the file's SHA-256;
  ``{}`` means "looked up, not on Civitai".
* ``<stem>.metadata.json``: ComfyUI-Lora-Manager (LM); ``usage_tips`` is a JSON *string*.
* ``<stem>.cm-info.json``: Stability Matrix, PascalCase keys.
* ``<stem>.description.txt`` / ``<stem>.txt``: plain description text (A1111, SD.Next).

Precedence, lowest to highest (``PRECEDENCE``; ``merge`` lets a higher kind overwrite a lower one):

1. ``unknown_json``: carries no values, ranked only so that every kind has a place.
2. ``description_txt``: bare text with no provenance.
3. ``sdnext_civitai_json``: describes the whole Civitai model; its version is picked by hash or guessed.
4. ``cm_info_json``: Stability Matrix's record of one Civitai version.
5. ``lm_metadata_json``: one Civitai version plus LM's user fields (notes, favorite, usage tips).
6. ``civitai_info``: the Civitai version fetched by this very file's hash, the most reliable remote data.
7. ``a1111_json``: the user's own hand edits (activation text, preferred weight, notes) beat downloaded data.

Every reader is defensive: broken JSON, wrong encodings, oversized files and wrongly typed fields become
``issues`` (one clear message each) and only the bad field is skipped; nothing here raises.

This module finds a model's sidecars, reads each file and merges them by precedence; the parser of each
format is in ``adapters.sidecar_formats``, the directory-listing lookups in ``adapters.companions``.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.companions import find_companions
from adapters.safetensors_header import loads_json
from adapters.sidecar_formats import PARSERS, FieldReader, detect_json_kind, json_type_name

PRECEDENCE: tuple[str, ...] = (
    "unknown_json",
    "description_txt",
    "sdnext_civitai_json",
    "cm_info_json",
    "lm_metadata_json",
    "civitai_info",
    "a1111_json",
)
_RANK = {kind: rank for rank, kind in enumerate(PRECEDENCE)}

MAX_SIDECAR_BYTES = 5 * 1024 * 1024
LIST_FIELDS = frozenset({"tags", "trigger_words"})

# Suffixes in PRECEDENCE order. ``.json`` sits in the A1111 slot; its real kind is only known once read,
# so ``read_sidecars`` re-sorts by detected kind.
_SUFFIXES: tuple[tuple[str, str | None], ...] = (
    (".description.txt", "description_txt"),
    (".txt", "description_txt"),
    (".cm-info.json", "cm_info_json"),
    (".metadata.json", "lm_metadata_json"),
    (".civitai.info", "civitai_info"),
    (".json", None),
)
_SUFFIX_KIND = dict(_SUFFIXES)
_SUFFIX_NAMES = tuple(suffix for suffix, _ in _SUFFIXES)


@dataclass
class SidecarValues:
    """What one sidecar file says, in normalized names, plus what was wrong with it."""

    kind: str
    filename: str
    values: dict[str, Any] = field(default_factory=dict)
    issues: list[str] = field(default_factory=list)


def sidecar_names(stem: str, dir_names: Collection[str]) -> list[str]:
    """Sidecar files present for ``stem``, lowest precedence first, without touching the disk."""
    return find_companions(stem, dir_names, _SUFFIX_NAMES)


# --- reading files -----------------------------------------------------------------------------------------


def _kind_from_name(name: str, stem: str) -> str | None:
    low, low_stem = name.lower(), stem.lower()
    if low.startswith(low_stem) and low[len(low_stem) :] in _SUFFIX_KIND:
        return _SUFFIX_KIND[low[len(low_stem) :]]
    return next((kind for suffix, kind in _SUFFIXES if low.endswith(suffix)), None)


def _read_text(path: Path, r: FieldReader) -> str | None:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SIDECAR_BYTES + 1)
    except OSError as exc:
        r.issue(f"cannot read ({exc.strerror or exc})")
        return None
    if len(raw) > MAX_SIDECAR_BYTES:
        r.issue(f"larger than {MAX_SIDECAR_BYTES // (1024 * 1024)} MB, skipped")
        return None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 with BOM, e.g. saved by Windows PowerShell
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            r.issue("not valid UTF-16")
            return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        r.issue(f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at position {exc.start})")
        return None


def _normalize_hashes(known_hashes: Iterable[str]) -> tuple[str, ...]:
    """Lower-case hex without OneTrainer's "0x" prefix; shorter than 8 chars would match by accident."""
    cleaned = (h.strip().lower().removeprefix("0x") for h in known_hashes if isinstance(h, str))
    return tuple(h for h in cleaned if len(h) >= 8)


def _load_object(text: str, r: FieldReader) -> dict | None:
    try:
        data = loads_json(text)
    except json.JSONDecodeError as exc:
        r.issue(f"not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})")
        return None
    except (ValueError, RecursionError) as exc:  # e.g. nesting too deep, integer literal too long
        r.issue(f"not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})")
        return None
    if not isinstance(data, dict):
        r.issue(f"expected a JSON object, got {json_type_name(data)}")
        return None
    return data


def read_sidecar(path: Path, stem: str, known_hashes: Iterable[str] = ()) -> SidecarValues:
    """Parse one sidecar; ``known_hashes`` (any Civitai hash flavour of the model) picks matching versions."""
    kind = _kind_from_name(path.name, stem)
    r = FieldReader(path.name, _normalize_hashes(known_hashes))
    text = _read_text(path, r)
    if text is not None and kind == "description_txt":
        r.put("description", text.strip())
    elif text is not None and (data := _load_object(text, r)) is not None:
        kind = kind or detect_json_kind(data)
        PARSERS[kind](r, data)
        model_id, version_id = r.values.get("civitai_model_id"), r.values.get("civitai_version_id")
        if model_id is not None:
            query = f"?modelVersionId={version_id}" if version_id is not None else ""
            r.put("source_url", f"https://civitai.com/models/{model_id}{query}")
    return SidecarValues(kind or "unknown_json", path.name, r.values, r.issues)


def read_sidecars(
    directory: Path, stem: str, dir_names: Collection[str], known_hashes: Iterable[str] = ()
) -> list[SidecarValues]:
    """All sidecars of ``stem`` in ``directory``, sorted by PRECEDENCE of their detected kind (lowest first)."""
    hashes = tuple(known_hashes)
    found = [read_sidecar(directory / name, stem, hashes) for name in sidecar_names(stem, dir_names)]
    return sorted(found, key=lambda sidecar: _RANK[sidecar.kind])


def merge(sidecars: list[SidecarValues]) -> tuple[dict[str, Any], dict[str, str]]:
    """Merge by PRECEDENCE: a higher kind overwrites scalars; list fields are unioned (higher source's items
    first) and credited to the highest contributing kind. Returns (values, field -> source kind)."""
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for sidecar in sorted(sidecars, key=lambda s: _RANK.get(s.kind, 0)):
        for key, value in sidecar.values.items():
            if key in LIST_FIELDS and key in merged:
                seen = {item.casefold() for item in value}
                value = [*value, *(item for item in merged[key] if item.casefold() not in seen)]
            merged[key] = value
            sources[key] = sidecar.kind
    if "civitai_model_id" in merged or "civitai_version_id" in merged:
        merged.pop("not_on_civitai", None)  # an old "{}" lookup is contradicted by a source that found it
        sources.pop("not_on_civitai", None)
    return merged, sources
