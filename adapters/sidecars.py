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
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.safetensors_header import loads_json

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
_A1111_KEYS = frozenset({"description", "notes", "sd version", "activation text", "preferred weight", "negative text"})
_CB_PLUS_KEYS = frozenset({"modelId", "modelVersionId", "sha256"})
_A1111_SD_VERSIONS = frozenset({"SD1", "SD2", "SDXL", "SD3"})
_SDXL_FAMILY = frozenset({"pony", "illustrious", "noobai"})
_FAMILY_PREFIXES = (("sd 1", "SD1"), ("sd 2", "SD2"), ("sdxl", "SDXL"), ("sd 3", "SD3"), ("flux.1", "Flux"))
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number"}


@dataclass
class SidecarValues:
    """What one sidecar file says, in normalized names, plus what was wrong with it."""

    kind: str
    filename: str
    values: dict[str, Any] = field(default_factory=dict)
    issues: list[str] = field(default_factory=list)


# --- directory lookups -------------------------------------------------------------------------------------

_index_cache: tuple[Collection[str], int, dict[str, str]] | None = None


def _lower_index(dir_names: Collection[str]) -> dict[str, str]:
    """Lower-cased name -> real name, built once per directory listing (the scanner reuses one set per dir)."""
    global _index_cache
    cached = _index_cache
    if cached is not None and cached[0] is dir_names and cached[1] == len(dir_names):
        return cached[2]
    index: dict[str, str] = {}
    for name in sorted(dir_names):
        index.setdefault(name.lower(), name)
    _index_cache = (dir_names, len(dir_names), index)
    return index


def find_name(name: str, dir_names: Collection[str]) -> str | None:
    """The entry of ``dir_names`` called ``name``, falling back to a case-insensitive match (Windows copies)."""
    if name in dir_names:
        return name
    return _lower_index(dir_names).get(name.lower())


_companion_cache: tuple[Collection[str], int, dict[str, list[str]]] | None = None


def _companion_index(dir_names: Collection[str]) -> dict[str, list[str]]:
    """Lower-cased stem -> entries named ``<stem>.<anything>`` (any case) other than ``<stem>.safetensors``,
    built once per directory listing: most models have no sidecar or preview, and the others a few."""
    global _companion_cache
    cached = _companion_cache
    if cached is not None and cached[0] is dir_names and cached[1] == len(dir_names):
        return cached[2]
    index: dict[str, list[str]] = {}
    for name in dir_names:
        low = name.lower()
        dot = low.find(".")
        while dot > 0:
            if low[dot:] != ".safetensors":
                index.setdefault(low[:dot], []).append(name)
            dot = low.find(".", dot + 1)
    _companion_cache = (dir_names, len(dir_names), index)
    return index


def has_companions(stem: str, dir_names: Collection[str]) -> bool:
    """Whether any entry but ``<stem>.safetensors`` is named ``<stem>.<anything>`` (any case)."""
    return stem.lower() in _companion_index(dir_names)


def find_companions(stem: str, dir_names: Collection[str], suffixes: Iterable[str]) -> list[str]:
    """For each of ``suffixes`` (lower case) in order, the entry ``stem + suffix`` if present, else its
    case-insensitive match (the same answer as ``find_name``, from the few entries that share the stem)."""
    low_stem = stem.lower()
    group = _companion_index(dir_names).get(low_stem)
    if not group:
        return []
    ranks = _suffix_ranks(suffixes)  # walk the stem's few entries, not every suffix (33 for previews)
    cut = len(low_stem)
    by_suffix: dict[str, list[str]] = {}
    for name in group:
        suffix = name.lower()[cut:]
        if suffix in ranks:
            by_suffix.setdefault(suffix, []).append(name)
    found = []
    for suffix in sorted(by_suffix, key=ranks.__getitem__):
        names = by_suffix[suffix]
        exact = stem + suffix
        found.append(exact if exact in names else min(names))
    return found


_ranks_cache: dict[tuple[str, ...], dict[str, int]] = {}


def _suffix_ranks(suffixes: Iterable[str]) -> dict[str, int]:
    """Suffix -> its first position in ``suffixes``; cached for the module-level tuples callers pass."""
    key = suffixes if isinstance(suffixes, tuple) else tuple(suffixes)
    ranks = _ranks_cache.get(key)
    if ranks is None:
        ranks = {}
        for position, suffix in enumerate(key):
            ranks.setdefault(suffix, position)
        if len(_ranks_cache) < 64:
            _ranks_cache[key] = ranks
    return ranks


def sidecar_names(stem: str, dir_names: Collection[str]) -> list[str]:
    """Sidecar files present for ``stem``, lowest precedence first, without touching the disk."""
    return find_companions(stem, dir_names, _SUFFIX_NAMES)


# --- field readers -----------------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
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


class _Reader:
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
        self.issue(f"'{label}' is not {expected} (got {_type_name(value)})")

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


def _parse_a1111(r: _Reader, data: dict) -> None:
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


def _files_sha256(r: _Reader, version: dict, prefix: str, guess: bool) -> None:
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


def _parse_version(r: _Reader, version: dict, prefix: str = "", guess_file: bool = True) -> None:
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


def _parse_civitai_info(r: _Reader, data: dict) -> None:
    if not data:
        r.put("not_on_civitai", True)
        return
    _parse_version(r, data)


def _parse_sdnext(r: _Reader, data: dict) -> None:
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


def _parse_lm(r: _Reader, data: dict) -> None:
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


def _parse_usage_tips(r: _Reader, raw: Any) -> None:
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


def _parse_cm_info(r: _Reader, data: dict) -> None:
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


def _parse_unknown(r: _Reader, data: dict) -> None:
    keys = ", ".join(sorted(data)[:6])
    r.issue(f"unrecognized JSON, not a known sidecar format (keys: {keys})")


_PARSERS = {
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


# --- reading files -----------------------------------------------------------------------------------------


def _kind_from_name(name: str, stem: str) -> str | None:
    low, low_stem = name.lower(), stem.lower()
    if low.startswith(low_stem) and low[len(low_stem) :] in _SUFFIX_KIND:
        return _SUFFIX_KIND[low[len(low_stem) :]]
    return next((kind for suffix, kind in _SUFFIXES if low.endswith(suffix)), None)


def _read_text(path: Path, r: _Reader) -> str | None:
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


def _load_object(text: str, r: _Reader) -> dict | None:
    try:
        data = loads_json(text)
    except json.JSONDecodeError as exc:
        r.issue(f"not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})")
        return None
    except (ValueError, RecursionError) as exc:  # e.g. nesting too deep, integer literal too long
        r.issue(f"not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})")
        return None
    if not isinstance(data, dict):
        r.issue(f"expected a JSON object, got {_type_name(data)}")
        return None
    return data


def read_sidecar(path: Path, stem: str, known_hashes: Iterable[str] = ()) -> SidecarValues:
    """Parse one sidecar; ``known_hashes`` (any Civitai hash flavour of the model) picks matching versions."""
    kind = _kind_from_name(path.name, stem)
    r = _Reader(path.name, _normalize_hashes(known_hashes))
    text = _read_text(path, r)
    if text is not None and kind == "description_txt":
        r.put("description", text.strip())
    elif text is not None and (data := _load_object(text, r)) is not None:
        kind = kind or detect_json_kind(data)
        _PARSERS[kind](r, data)
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
