"""One parser per sidecar format, each filling a ``FieldReader`` with normalized values and issues.

``detect_json_kind`` tells the two schemas that share the ``<stem>.json`` name apart; ``PARSERS`` maps a
kind to its parser. Which files exist and which format wins is ``adapters.sidecars``'s business.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_A1111_KEYS = frozenset({"description", "notes", "sd version", "activation text", "preferred weight", "negative text"})
_CB_PLUS_KEYS = frozenset({"modelId", "modelVersionId", "sha256"})
_A1111_SD_VERSIONS = frozenset({"SD1", "SD2", "SDXL", "SD3"})
_SDXL_FAMILY = frozenset({"pony", "illustrious", "noobai"})
_FAMILY_PREFIXES = (("sd 1", "SD1"), ("sd 2", "SD2"), ("sdxl", "SDXL"), ("sd 3", "SD3"), ("flux.1", "Flux"))
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number"}


# --- field readers -----------------------------------------------------------------------------------------


def json_type_name(value: Any) -> str:
    """How a JSON value is named in an issue ("an object", "null", ...)."""
    return "null" if value is None else _JSON_TYPES.get(type(value), "a number")


def split_words(text: str) -> list[str]:
    """Comma-separated prompt words, stripped and deduplicated case-insensitively (first spelling kept)."""
    seen: dict[str, str] = {}
    for part in text.split(","):
        word = part.strip()
        if word:
            seen.setdefault(word.casefold(), word)
    return list(seen.values())


def base_model_family(detail: str) -> str:
    """Civitai ``baseModel`` ("SDXL 1.0", "Pony", "Flux.1 D", ...) -> SD1/SD2/SDXL/SD3/Flux/Other."""
    low = detail.strip().lower()
    if low in _SDXL_FAMILY:
        return "SDXL"
    return next((family for prefix, family in _FAMILY_PREFIXES if low.startswith(prefix)), "Other")


def _hash_matches(hashes: Any, known: tuple[str, ...]) -> bool:
    """A Civitai ``hashes`` dict matches when any value and a known hash are prefixes of each other."""
    if not known or not isinstance(hashes, dict):
        return False
    for value in hashes.values():
        if isinstance(value, str) and len(value) >= 8:
            low = value.lower()
            if any(k.startswith(low) or low.startswith(k) for k in known):
                return True
    return False


class FieldReader:
    """Collects one sidecar's values and issues; within a file the first value put for a name wins."""

    def __init__(self, filename: str, known: tuple[str, ...]) -> None:
        self.filename = filename
        self.known = known
        self.values: dict[str, Any] = {}
        self.issues: list[str] = []

    def issue(self, message: str) -> None:
        self.issues.append(f"{self.filename}: {message}")

    def put(self, name: str, value: Any) -> None:
        if value is not None and value != "" and value != [] and name not in self.values:
            self.values[name] = value

    def bad(self, label: str, expected: str, value: Any) -> None:
        self.issue(f"'{label}' is not {expected} (got {json_type_name(value)})")

    def obj(self, data: dict, key: str, prefix: str = "") -> dict | None:
        value = data.get(key)
        if value is None or isinstance(value, dict):
            return value
        self.bad(prefix + key, "an object", value)
        return None

    def text(self, data: dict, key: str, prefix: str = "") -> str | None:
        value = data.get(key)
        if value is None or isinstance(value, str):
            return (value or "").strip() or None
        self.bad(prefix + key, "a string", value)
        return None

    def number(self, data: dict, key: str, prefix: str = "") -> float | None:
        value = data.get(key)
        if value is None or value == "":
            return None
        try:
            number = math.nan if isinstance(value, bool) else float(value)
        except (TypeError, ValueError, OverflowError):
            number = math.nan
        if not math.isfinite(number):
            self.issue(f"'{prefix + key}' is not a number")
            return None
        return number

    def integer(self, data: dict, key: str, prefix: str = "") -> int | None:
        value = data.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, str) and value.strip().isdecimal() and len(value) < 20:
            value = int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
            return value
        self.issue(f"'{prefix + key}' is not a whole number")
        return None

    def flag(self, data: dict, key: str, prefix: str = "") -> bool | None:
        value = data.get(key)
        if value is None or isinstance(value, bool):
            return value
        self.bad(prefix + key, "true/false", value)
        return None

    def strings(self, data: dict, key: str, prefix: str = "", named: bool = False) -> list[str] | None:
        """A list of strings; with ``named``, Civitai's older ``[{"name": ...}]`` tag objects too."""
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, list):
            items = [v.get("name") if named and isinstance(v, dict) else v for v in value]
            if all(isinstance(v, str) for v in items):
                return items
        self.issue(f"'{prefix + key}' is not a list of strings")
        return None

    def sha256(self, data: dict, key: str, prefix: str = "") -> str | None:
        value = self.text(data, key, prefix)
        if value is None:
            return None
        if _SHA256_RE.fullmatch(value.lower()):
            return value.lower()
        self.issue(f"'{prefix + key}' is not a SHA-256 hex digest")
        return None

    # Normalizing puts -----------------------------------------------------------------------------------

    def put_words(self, words: list[str] | None) -> None:
        if words:
            self.put("trigger_words", split_words(",".join(words)))

    def put_tags(self, tags: list[str] | None) -> None:
        if tags:
            self.put("tags", list(dict.fromkeys(t.strip().lower() for t in tags if t.strip())))

    def put_base(self, detail: str | None) -> None:
        if detail and detail.lower() != "unknown":
            self.put("base_model_detail", detail)
            self.put("base_model", base_model_family(detail))

    def put_creator(self, creator: Any, label: str) -> None:
        if isinstance(creator, dict):
            self.put("author", self.text(creator, "username", label + "."))
        elif isinstance(creator, str):
            self.put("author", creator.strip())
        elif creator is not None:
            self.bad(label, "a username", creator)


# --- format parsers ----------------------------------------------------------------------------------------


def _parse_a1111(r: FieldReader, data: dict) -> None:
    r.put("description", r.text(data, "description"))
    r.put("notes", r.text(data, "notes"))
    sd_version = r.text(data, "sd version")
    if sd_version:
        if sd_version.upper() in _A1111_SD_VERSIONS:
            r.put("base_model", sd_version.upper())
        elif sd_version.lower() not in ("unknown", "other"):
            r.issue(f"unrecognized 'sd version' {sd_version!r}")
    activation = r.text(data, "activation text")
    r.put("activation_text", activation)
    r.put_words([activation] if activation else None)
    weight = r.number(data, "preferred weight")
    r.put("preferred_weight", weight or None)  # 0 means "use the default multiplier"
    r.put("negative_text", r.text(data, "negative text"))
    r.put("civitai_model_id", r.integer(data, "modelId"))
    r.put("civitai_version_id", r.integer(data, "modelVersionId"))
    r.put("sha256", r.sha256(data, "sha256"))


def _files_sha256(r: FieldReader, version: dict, prefix: str, guess: bool) -> None:
    """Declared SHA-256 of our file: the file whose hashes match a known hash; with ``guess``, the only or
    primary file (a ``.civitai.info`` was fetched by this file's own hash, so that is nearly always right)."""
    files = version.get("files")
    if files is None:
        return
    if not isinstance(files, list):
        r.bad(prefix + "files", "a list", files)
        return
    candidates = [(i, f) for i, f in enumerate(files) if isinstance(f, dict) and isinstance(f.get("hashes"), dict)]
    chosen = next(((i, f) for i, f in candidates if _hash_matches(f["hashes"], r.known)), None)
    if chosen is None and guess:
        primary = [(i, f) for i, f in candidates if f.get("primary") is True]
        chosen = candidates[0] if len(candidates) == 1 else (primary[0] if primary else None)
    if chosen is not None:
        index, file = chosen
        r.put("sha256", r.sha256(file["hashes"], "SHA256", f"{prefix}files[{index}].hashes."))


def _parse_version(r: FieldReader, version: dict, prefix: str = "", guess_file: bool = True) -> None:
    """A Civitai model-version object (``.civitai.info``, LM's ``civitai`` block, SD.Next's picked version)."""
    r.put("civitai_version_id", r.integer(version, "id", prefix))
    r.put("civitai_model_id", r.integer(version, "modelId", prefix))
    model = r.obj(version, "model", prefix)
    if model:
        r.put("name", r.text(model, "name", prefix + "model."))
        r.put("description", r.text(model, "description", prefix + "model."))
        r.put("nsfw", r.flag(model, "nsfw", prefix + "model."))
        r.put_creator(model.get("creator"), prefix + "model.creator")
        r.put_tags(r.strings(model, "tags", prefix + "model.", named=True))
    r.put("description", r.text(version, "description", prefix))
    r.put_creator(version.get("creator"), prefix + "creator")
    r.put_words(r.strings(version, "trainedWords", prefix))
    r.put_base(r.text(version, "baseModel", prefix))
    _files_sha256(r, version, prefix, guess_file)


def _parse_civitai_info(r: FieldReader, data: dict) -> None:
    if not data:
        r.put("not_on_civitai", True)
        return
    _parse_version(r, data)


def _parse_sdnext(r: FieldReader, data: dict) -> None:
    r.put("civitai_model_id", r.integer(data, "id"))
    r.put("name", r.text(data, "name"))
    r.put("description", r.text(data, "description"))
    r.put("nsfw", r.flag(data, "nsfw"))
    r.put_creator(data.get("creator"), "creator")
    r.put_tags(r.strings(data, "tags", named=True))
    versions = data.get("modelVersions")
    if versions is None:
        return
    if not isinstance(versions, list):
        r.bad("modelVersions", "a list", versions)
        return
    indexed = [(i, v) for i, v in enumerate(versions) if isinstance(v, dict)]
    matched = next(((i, v) for i, v in indexed if _version_matches(v, r.known)), None)
    if matched is None and indexed and r.known:
        r.issue("no model version matches the file's hash; using the first version")
    picked = matched or (indexed[0] if indexed else None)
    if picked:
        _parse_version(r, picked[1], f"modelVersions[{picked[0]}].", guess_file=False)


def _version_matches(version: dict, known: tuple[str, ...]) -> bool:
    files = version.get("files")
    return isinstance(files, list) and any(isinstance(f, dict) and _hash_matches(f.get("hashes"), known) for f in files)


def _parse_lm(r: FieldReader, data: dict) -> None:
    r.put("name", r.text(data, "model_name"))
    r.put("sha256", r.sha256(data, "sha256"))
    r.put_base(r.text(data, "base_model"))
    r.put("notes", r.text(data, "notes"))
    r.put("description", r.text(data, "modelDescription"))
    r.put_tags(r.strings(data, "tags"))
    r.put("favorite", r.flag(data, "favorite"))
    r.put_words(r.strings(data, "trainedWords"))
    _parse_usage_tips(r, data.get("usage_tips"))
    civitai = r.obj(data, "civitai")
    if civitai:
        _parse_version(r, civitai, "civitai.")


def _parse_usage_tips(r: FieldReader, raw: Any) -> None:
    if raw is None or raw == "":
        return
    tips = raw
    if isinstance(raw, str):
        try:
            tips = json.loads(raw)
        except (ValueError, RecursionError):
            r.issue("'usage_tips' is not valid JSON")
            return
    if not isinstance(tips, dict):
        r.bad("usage_tips", "a JSON object", tips)
        return
    p = "usage_tips."
    r.put("preferred_weight", r.number(tips, "strength", p))
    r.put("weight_min", r.number(tips, "strength_min", p))
    r.put("weight_max", r.number(tips, "strength_max", p))
    r.put("clip_strength", r.number(tips, "clip_strength", p))
    r.put("clip_strength", r.number(tips, "clipStrength", p))  # LM's code spelling; its schema doc says clip_strength
    r.put("clip_skip", r.integer(tips, "clip_skip", p))


def _parse_cm_info(r: FieldReader, data: dict) -> None:
    r.put("name", r.text(data, "UserTitle"))
    r.put("name", r.text(data, "ModelName"))
    source = data.get("Source")
    if not isinstance(source, str) or source.lower() == "civitai":  # OpenModelDb ids are not Civitai ids
        r.put("civitai_model_id", r.integer(data, "ModelId"))
        r.put("civitai_version_id", r.integer(data, "VersionId"))
    r.put_base(r.text(data, "BaseModel"))
    r.put_words(r.strings(data, "TrainedWords"))
    r.put_tags(r.strings(data, "Tags"))
    hashes = r.obj(data, "Hashes")
    if hashes:
        r.put("sha256", r.sha256(hashes, "SHA256", "Hashes."))
    r.put("description", r.text(data, "ModelDescription"))
    r.put("description", r.text(data, "VersionDescription"))
    r.put("nsfw", r.flag(data, "Nsfw"))
    r.put("author", r.text(data, "AuthorUsername"))
    r.put("source_url", r.text(data, "SourceUrl"))


def _parse_unknown(r: FieldReader, data: dict) -> None:
    keys = ", ".join(sorted(data)[:6])
    r.issue(f"unrecognized JSON, not a known sidecar format (keys: {keys})")


PARSERS = {
    "a1111_json": _parse_a1111,
    "sdnext_civitai_json": _parse_sdnext,
    "civitai_info": _parse_civitai_info,
    "lm_metadata_json": _parse_lm,
    "cm_info_json": _parse_cm_info,
    "unknown_json": _parse_unknown,
}


def detect_json_kind(data: dict) -> str:
    """Kind of a ``<stem>.json`` object by its keys: the same name carries A1111's or SD.Next's schema."""
    keys = data.keys()
    if "modelVersions" in keys or "creator" in keys:
        return "sdnext_civitai_json"
    if not data or not _A1111_KEYS.isdisjoint(keys) or not _CB_PLUS_KEYS.isdisjoint(keys):
        if _A1111_KEYS.isdisjoint(keys - {"description"}) and ("trainedWords" in keys or "baseModel" in keys):
            return "civitai_info"  # a bare Civitai version object saved as .json
        return "a1111_json"
    return "unknown_json"
