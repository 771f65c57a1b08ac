"""Write curated values back to A1111/SD.Next's ``<stem>.json`` (opt-in: ``LORA_MANAGER_WRITE_SIDECARS=a1111``).

What is written: the values a person edited here (source "user") among activation text / trigger words,
preferred weight, negative text, notes and description, under A1111's keys (``activation text``,
``preferred weight``, ``negative text``, ``notes``, ``description``). Nothing else: a value that came
from a sidecar or a header is already where those tools can read it.

How (docs/recipes.md, "Write-back"): merged into the existing object, keeping every key we do not own
and their order; written to a temporary file in the same folder and moved over the old one with
``os.replace``, so a reader never sees half a file. A file that is not A1111 user metadata (SD.Next's
copy of the Civitai model JSON has the same name), not valid JSON, not UTF-8 or too large is never
touched: the adapter gets an issue instead.

Why a rescan does not loop: writing is triggered only by a person's edit, never by a scan. The file's
row remembers what we wrote (``AdapterFile.sidecar_written``: name, sha256, values) and, when nothing
else changed beside it, its new sidecar signature, so the next scan does not even re-read it. If it is
re-read for another reason, every key that still holds the value we wrote is skipped
(``already_applied``): it came from here and is already applied. And edited values carry source "user", which no scan
overwrites, so even a changed file cannot flip them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from adapters import companions, reading, sidecar_formats, sidecars
from adapters.models import Adapter, AdapterFile, FileStatus

A1111 = "a1111"
ISSUE_PREFIX = "write-back: "
# A1111 key -> the catalog fields it carries (sidecar_formats._parse_a1111 reads them back the same way).
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "activation text": ("activation_text", "trigger_words"),
    "preferred weight": ("preferred_weight",),
    "negative text": ("negative_text",),
    "notes": ("notes",),
    "description": ("description",),
}
WRITTEN_FIELDS = frozenset(field for fields in KEY_FIELDS.values() for field in fields)


class NotWritable(Exception):
    """The existing sidecar cannot be safely merged into; the message goes into the adapter's issues."""


def enabled() -> bool:
    return settings.WRITE_SIDECARS == A1111


def activation_text(adapter: Adapter) -> str:
    """What A1111 adds to the prompt with the LoRA: the activation text, else the trigger words (as the
    composer's "insert triggers" does)."""
    if adapter.activation_text.strip():
        return adapter.activation_text.strip()
    return ", ".join(str(word).strip() for word in adapter.trigger_words or [] if str(word).strip())


def curated_values(adapter: Adapter) -> dict[str, Any]:
    """A1111 key -> value, for the keys whose fields a person edited here."""
    values: dict[str, Any] = {}
    for key, fields in KEY_FIELDS.items():
        if not any(adapter.is_user_edited(field) for field in fields):
            continue
        if key == "activation text":
            values[key] = activation_text(adapter)
        elif key == "preferred weight":
            values[key] = adapter.preferred_weight if adapter.preferred_weight is not None else 0  # 0 = default
        else:
            values[key] = getattr(adapter, fields[0]) or ""
    return values


def _load_existing(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            raw = handle.read(sidecars.MAX_SIDECAR_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise NotWritable(f"cannot read it ({exc.strerror or exc})") from exc
    if len(raw) > sidecars.MAX_SIDECAR_BYTES:
        raise NotWritable("it is larger than the sidecar limit")
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise NotWritable(f"it is not valid UTF-8 JSON ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise NotWritable("it is not a JSON object")
    kind = sidecar_formats.detect_json_kind(data) if data else "a1111_json"
    if kind != "a1111_json":
        label = {"sdnext_civitai_json": "SD.Next's copy of the Civitai model JSON"}.get(kind, f"not A1111's ({kind})")
        raise NotWritable(f"it is {label}")
    return data


def _encode(data: dict) -> bytes:
    """A1111's own layout (indent 4, UTF-8); text that cannot be encoded (lone surrogates) is replaced."""
    return json.dumps(data, indent=4, ensure_ascii=False).encode("utf-8", "replace")


def _replace_atomically(path: Path, payload: bytes) -> None:
    mode = 0o644
    with contextlib.suppress(OSError):
        mode = path.stat().st_mode & 0o777
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".json.tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def write_file(row: AdapterFile, values: dict[str, Any]) -> str:
    """Merge ``values`` into the ``<stem>.json`` next to one file; returns "" or the reason it was not written."""
    model = Path(row.path)
    directory, stem = (
        model.parent,
        model.name[: -len(".safetensors")] if model.name.lower().endswith(".safetensors") else model.stem,
    )
    try:
        names = set(os.listdir(directory))
    except OSError as exc:
        return f"{stem}.json: the folder cannot be read ({exc.strerror or exc})"
    name = companions.find_name(stem + ".json", names) or stem + ".json"
    path = directory / name
    signature_before = reading.sidecar_signature(str(directory), stem, names)
    try:
        existing = _load_existing(path)
        merged = {**existing, **values}
        payload = _encode(merged)
        if merged != existing or not path.exists():
            _replace_atomically(path, payload)
        else:
            payload = path.read_bytes()  # already says exactly this: leave its bytes and mtime alone
    except NotWritable as exc:
        return f"{name} was not written back: {exc}; it is left untouched"
    except OSError as exc:
        return f"{name} could not be written ({exc.strerror or exc}); it is left as it was"
    update: dict[str, Any] = {
        "sidecar_written": {"name": name, "sha256": hashlib.sha256(payload).hexdigest(), "values": values}
    }
    if signature_before == row.sidecar_signature:  # nothing else changed: the next scan may skip this file
        update["sidecar_signature"] = reading.sidecar_signature(str(directory), stem, names | {name})
    AdapterFile.objects.filter(pk=row.pk).update(**update)
    return ""


def write_adapter(adapter_id: int) -> list[str]:
    """Write one adapter's curated values next to each of its present files; returns the problems."""
    adapter = Adapter.objects.filter(pk=adapter_id).first()
    if adapter is None or not enabled():
        return []
    values = curated_values(adapter)
    if not values:
        return []
    problems = [
        problem for row in adapter.files.filter(status=FileStatus.PRESENT) if (problem := write_file(row, values))
    ]
    issues = [issue for issue in adapter.issues or [] if not str(issue).startswith(ISSUE_PREFIX)]
    issues += [ISSUE_PREFIX + problem for problem in problems]
    if issues != (adapter.issues or []):
        Adapter.objects.filter(pk=adapter.pk).update(issues=issues)
    return problems


def after_edit(adapter_id: int, fields: Iterable[str]) -> None:
    """Called by every place a person edits a catalog field; writes once the edit is committed."""
    if enabled() and WRITTEN_FIELDS.intersection(fields):
        transaction.on_commit(lambda: write_adapter(adapter_id))


def already_applied(row: AdapterFile, directory: str, dir_names: Iterable[str]) -> set[str]:
    """Catalog fields a scan must not take from the ``<stem>.json``: those whose key still holds exactly the
    value we wrote (it came from here). A key someone changed since is read like any sidecar value."""
    written = row.sidecar_written or {}
    name, values = written.get("name"), written.get("values")
    if not name or name not in dir_names or not isinstance(values, dict):
        return set()
    try:
        current = _load_existing(Path(directory) / name)
    except NotWritable:
        return set()
    return {field for key, value in values.items() if current.get(key) == value for field in KEY_FIELDS.get(key, ())}
