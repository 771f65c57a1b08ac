"""The archive format: ``manifest.json`` at the root of a ZIP, and how its values map to our models.

A manifest has a fixed core (format, versions, counts, roots, tags, adapters, files) and *sections*:
``{"sections": {"presets": {"version": 1, "items": [...]}, ...}}``. A reader imports the sections
it knows and reports the ones it does not (written by a newer app) as ignored, so a later feature
(generation ratings, for one) adds a section without a new format version. See docs/archive.md.
"""

from __future__ import annotations

import re
import tomllib
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import models
from django.utils.dateparse import parse_datetime

from adapters.models import Adapter, AdapterFile
from adapters.sanitize import storable, storable_problem

FORMAT = "lora-manager-archive"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
MAX_MANIFEST_BYTES = 2 * 1024**3
KNOWN_SECTIONS = {"presets": 1, "feedback": 1, "history": 1}
FILE_KINDS = ("weights", "companion", "thumbnail", "image")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
POSITIVE = (models.PositiveIntegerField, models.PositiveBigIntegerField, models.PositiveSmallIntegerField)

# Every stored Adapter column except the key and the generated ``has_issues``.
ADAPTER_FIELDS = tuple(
    f.name
    for f in Adapter._meta.concrete_fields
    if not f.primary_key and not isinstance(f, models.GeneratedField) and f.name != "has_issues"
)
# AdapterFile columns kept per file (``path`` and ``root`` become root index + relative path).
FILE_FIELDS = (
    "size",
    "mtime_ns",
    "data_offset",
    "header_sha256",
    "sidecar_signature",
    "sha256",
    "tensor_sha256",
    "hashed_size",
    "hashed_mtime_ns",
    "status",
    "issues",
    "last_seen_at",
)


_DRIVE = re.compile(r"^[A-Za-z]:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
PREVIEW_KEY_RE = re.compile(r"^(?:[0-9a-f]{64})?$")  # adapters.previews: sha256 of the source image
# Where each kind of archive entry may live (what the exporter writes); checked before anything is written.
ENTRY_PATTERNS = {
    "weights": (re.compile(r"^library/r\d{1,6}/."), "library/r<root>/<relative path>"),
    "companion": (re.compile(r"^library/r\d{1,6}/."), "library/r<root>/<relative path>"),
    "thumbnail": (re.compile(r"^thumbnails/[0-9a-f]{64}-\d{1,4}\.webp$"), "thumbnails/<64 hex>-<size>.webp"),
    "image": (re.compile(r"^media/[A-Za-z0-9_./-]+$"), "media/<letters, digits, _ . - />"),
}
IMAGE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def name_problem(name: str) -> str | None:
    """Why a relative path (ZIP entry name, manifest rel_path) could escape its folder, or None if safe."""
    if not name:
        return "empty path"
    if "\\" in name:
        return f"{name!r}: backslash in path"
    if name.startswith("/"):
        return f"{name!r}: absolute path"
    if _DRIVE.match(name):
        return f"{name!r}: drive letter"
    if "\x00" in name:
        return f"{name!r}: NUL in path"
    if any(part in ("", ".", "..") for part in name.rstrip("/").split("/")):
        return f"{name!r}: '..', '.' or empty path component"
    if _CONTROL.search(name):
        return f"{name!r}: control character or lone surrogate in path"
    return None


def _unstorable_texts(value: Any, where: str, found: list[str]) -> None:
    """Every string of the manifest (keys too) passes the one gate for untrusted text (adapters.sanitize)."""
    if len(found) >= 20:
        return
    if isinstance(value, str):
        problem = storable_problem(value)
        if problem:
            found.append(f"{where} {problem}")
    elif isinstance(value, dict):
        for key, item in value.items():
            _unstorable_texts(key, f"{where} (a key)", found)
            _unstorable_texts(item, f"{where}.{storable(str(key))}", found)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _unstorable_texts(item, f"{where}[{i}]", found)


def app_version() -> str:
    try:
        with open(Path(settings.BASE_DIR) / "pyproject.toml", "rb") as fh:
            return str(tomllib.load(fh)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"


def dump_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def load_fields(model: type[models.Model], data: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Manifest values back to Python values for the named columns (already validated)."""
    values = {}
    for name in names:
        if name not in data:
            continue
        value = data[name]
        if isinstance(_field(model, name), models.DateTimeField) and value is not None:
            value = parse_datetime(value)
        values[name] = value
    return values


def _type_problem(field: models.Field, value: Any) -> str | None:
    """Why ``value`` cannot go into ``field``, or None. Checked before anything is written."""
    if value is None:
        return None if field.null else "must not be null"
    if isinstance(field, models.JSONField):
        return None
    if isinstance(field, models.BooleanField):
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(field, models.DateTimeField):
        return None if isinstance(value, str) and parse_datetime(value) else "must be an ISO date-time"
    if isinstance(field, models.FloatField):
        return None if isinstance(value, int | float) and not isinstance(value, bool) else "must be a number"
    if isinstance(field, models.IntegerField):
        if not isinstance(value, int) or isinstance(value, bool):
            return "must be a whole number"
        return "must not be negative" if isinstance(field, POSITIVE) and value < 0 else None
    if isinstance(field, models.CharField | models.TextField):
        if not isinstance(value, str):
            return "must be text"
        if field.max_length and len(value) > field.max_length:
            return f"is longer than {field.max_length} characters"
        if field.choices and value not in {c[0] for c in field.choices}:
            return f"must be one of {', '.join(str(c[0]) for c in field.choices)}"
    return None


_FIELDS: dict[tuple[type, str], models.Field] = {}


def _field(model: type[models.Model], name: str) -> models.Field:
    key = (model, name)
    if key not in _FIELDS:
        _FIELDS[key] = model._meta.get_field(name)
    return _FIELDS[key]


def _check_fields(where: str, model: type[models.Model], data: Any, names: tuple[str, ...], problems: list[str]):
    if not isinstance(data, dict):
        problems.append(f"{where}: must be an object")
        return
    for name in names:
        if name in data:
            reason = _type_problem(_field(model, name), data[name])
            if reason:
                problems.append(f"{where}.{name} {reason}")


def _is_int(value: Any, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def validate(manifest: Any) -> list[str]:
    """Every problem with a parsed manifest (empty list = acceptable). Nothing is trusted unchecked."""
    if not isinstance(manifest, dict):
        return ["manifest.json must hold a JSON object"]
    if manifest.get("format") != FORMAT:
        return [f"manifest.json is not a LoRA Manager archive (format is {manifest.get('format')!r}, not {FORMAT!r})"]
    version = manifest.get("format_version")
    if not _is_int(version, 1):
        return ["manifest.json has no valid format_version"]
    if version > FORMAT_VERSION:
        return [
            f"this archive was written by a newer LoRA Manager (format version {version}, app "
            f"{manifest.get('app_version', '?')}); this one reads format version {FORMAT_VERSION} and older"
        ]
    problems: list[str] = []
    _unstorable_texts(manifest, "manifest", problems)
    if problems:
        return problems
    for key, kind in (("created_at", str), ("app_version", str), ("roots", list), ("tags", list)):
        if not isinstance(manifest.get(key), kind):
            problems.append(f"manifest.{key} is missing or not a {kind.__name__}")
    for key in ("adapters", "files"):
        if not isinstance(manifest.get(key), list):
            problems.append(f"manifest.{key} is missing or not a list")
    if not isinstance(manifest.get("sections", {}), dict):
        problems.append("manifest.sections must be an object")
    if problems:
        return problems
    roots = manifest["roots"]
    if not all(isinstance(r, str) for r in roots):
        problems.append("manifest.roots must be a list of folder names")
    if not all(isinstance(t, dict) and isinstance(t.get("name"), str) and t["name"] for t in manifest["tags"]):
        problems.append("manifest.tags must be objects with a non-empty name")
    files: dict[str, dict] = {}
    for i, entry in enumerate(manifest["files"]):
        where = f"files[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            problems.append(f"{where} has no path")
            continue
        if entry["path"] in files:
            problems.append(f"{where}: {entry['path']} is listed twice")
        files[entry["path"]] = entry
        if not _is_int(entry.get("size")):
            problems.append(f"{where} ({entry['path']}) has no valid size")
        if not isinstance(entry.get("sha256"), str) or not SHA256_RE.match(entry["sha256"]):
            problems.append(f"{where} ({entry['path']}) has no valid sha256")
        if "mtime_ns" in entry and not _is_int(entry["mtime_ns"]):
            problems.append(f"{where} ({entry['path']}) has an invalid mtime_ns")
        if entry.get("kind") not in FILE_KINDS:
            problems.append(f"{where} ({entry['path']}) has an unknown kind {entry.get('kind')!r}")
        elif name_problem(entry["path"]) or not ENTRY_PATTERNS[entry["kind"]][0].match(entry["path"]):
            pattern = ENTRY_PATTERNS[entry["kind"]][1]
            problems.append(f"{where}: a {entry['kind']} entry must be {pattern}, not {entry['path']!r}")
    keys: set[str] = set()
    for i, item in enumerate(manifest["adapters"]):
        where = f"adapters[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            problems.append(f"{where} has no key")
            continue
        if item["key"] in keys:
            problems.append(f"{where}: key {item['key']} is used twice")
        keys.add(item["key"])
        _check_fields(f"{where}.fields", Adapter, item.get("fields"), ADAPTER_FIELDS, problems)
        key = item["fields"].get("preview_key", "") if isinstance(item.get("fields"), dict) else ""
        if not isinstance(key, str) or not PREVIEW_KEY_RE.match(key):
            problems.append(f"{where}.fields.preview_key must be empty or 64 hexadecimal digits, not {key!r}")
        if isinstance(item.get("fields"), dict) and not isinstance(item["fields"].get("name"), str):
            problems.append(f"{where}.fields.name is missing")
        if not isinstance(item.get("tags", []), list) or not all(isinstance(t, str) for t in item.get("tags", [])):
            problems.append(f"{where}.tags must be a list of names")
        for path in item.get("thumbnails", []) if isinstance(item.get("thumbnails", []), list) else [None]:
            if path not in files:
                problems.append(f"{where}.thumbnails refers to {path!r}, which is not in manifest.files")
        if not isinstance(item.get("files"), list):
            problems.append(f"{where}.files must be a list")
            continue
        for j, file in enumerate(item["files"]):
            fwhere = f"{where}.files[{j}]"
            if not isinstance(file, dict):
                problems.append(f"{fwhere} must be an object")
                continue
            if not (_is_int(file.get("root")) and file["root"] < len(roots)):
                problems.append(f"{fwhere}.root is not an index into manifest.roots")
            if not isinstance(file.get("rel_path"), str) or not file["rel_path"]:
                problems.append(f"{fwhere}.rel_path is missing")
            elif name_problem(file["rel_path"]):
                problems.append(f"{fwhere}.rel_path is unsafe: {name_problem(file['rel_path'])}")
            _check_fields(fwhere, AdapterFile, file, FILE_FIELDS, problems)
            for ref in [file.get("archive_path"), *file.get("companions", [])]:
                if ref is not None and ref not in files:
                    problems.append(f"{fwhere} refers to {ref!r}, which is not in manifest.files")
    history = manifest.get("sections", {}).get("history", {})
    for i, job in enumerate(history.get("items", []) if isinstance(history, dict) else []):
        images = job.get("images", []) if isinstance(job, dict) else None
        for image in images if isinstance(images, list) else [None]:
            for kind in ("path", "thumbnail"):
                value = image.get(kind) if isinstance(image, dict) else None
                if not isinstance(value, str) or not IMAGE_NAME_RE.match(value) or name_problem(value):
                    problems.append(f"sections.history.items[{i}]: image {kind} must be a plain file name")
                source = image.get(f"{kind}_archive") if isinstance(image, dict) else None
                if source is not None and (files.get(source) or {}).get("kind") != "image":
                    problems.append(f"sections.history.items[{i}]: {kind}_archive is not an image in manifest.files")
            ratings = image.get("ratings", []) if isinstance(image, dict) else []
            for rating in ratings if isinstance(ratings, list) else [None]:
                if not (
                    isinstance(rating, dict)
                    and isinstance(rating.get("user"), str)
                    and rating.get("thumb") in (None, -1, 1)
                    and (rating.get("stars") is None or rating.get("stars") in (1, 2, 3, 4, 5))
                    and (rating.get("thumb") is not None or rating.get("stars") is not None)
                ):
                    problems.append(
                        f"sections.history.items[{i}]: a rating needs a user and a thumb (-1, 1) and/or stars (1-5)"
                    )
    for name, section in manifest.get("sections", {}).items():
        if not isinstance(section, dict) or not isinstance(section.get("items"), list):
            problems.append(f"sections.{name} must be an object with an items list")
        elif name in KNOWN_SECTIONS and not (_is_int(section.get("version"), 1)):
            problems.append(f"sections.{name} has no valid version")
        elif name in KNOWN_SECTIONS and section["version"] > KNOWN_SECTIONS[name]:
            problems.append(f"sections.{name} has version {section['version']}, newer than this app reads")
    return problems


def ignored_sections(manifest: dict) -> list[str]:
    """Sections this app does not know (a newer app wrote them): imported nothing, said so in the plan."""
    return sorted(name for name in manifest.get("sections", {}) if name not in KNOWN_SECTIONS)
