"""The dry-run plan of an import: which archived adapter is new, identical, updated or conflicting.

Matching, in order: tensor hash (survives metadata edits), then full-file sha256, then the file path
the archive's file would take here. A matched adapter *differs* when any curated field or its tags
differ; the difference is a *conflict* when the local value is the user's own (edited here, i.e.
source "user"; for ``active`` and ``rating``, a non-default value; for tags, local tags the archive
lacks). What each ``--on-conflict`` option then does is in docs/archive.md and ``importing.merge``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from adapters.models import USER_SOURCE, Adapter, AdapterFile, LibraryRoot
from adapters.reading import SCANNED_FIELDS
from archive import manifest as mf
from archive import sections

ON_CONFLICT = ("skip", "update", "keep-both")
COMPARED = (*SCANNED_FIELDS, "active", "rating", "preview_source")
OUTCOMES = ("new", "identical", "updated", "conflicting")
MAX_PLAN_ROWS = 5000  # adapters listed by name, per outcome; the rest are "and N more"


class PlanError(Exception):
    """The archive is fine but cannot go into this library as asked (e.g. no library folder)."""


@dataclass
class AdapterPlan:
    key: str
    name: str
    outcome: str
    local_id: int | None = None
    matched_by: str = ""
    differences: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    restore_files: bool = False  # weights in the archive, none present here: they are written


@dataclass
class Plan:
    on_conflict: str
    metadata_only: bool
    created_at: str
    app_version: str
    adapters: list[AdapterPlan]
    targets: list[str]  # library folder for each archive root
    sections: dict[str, dict[str, int]]
    write_bytes: int = 0
    write_files: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(OUTCOMES, 0)
        for item in self.adapters:
            counts[item.outcome] += 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        groups = []
        for outcome in OUTCOMES:
            chosen = [a for a in self.adapters if a.outcome == outcome]
            listed = [asdict(a) for a in chosen[:MAX_PLAN_ROWS]]
            groups.append({"outcome": outcome, "count": len(chosen), "rows": listed, "more": len(chosen) - len(listed)})
        rows = [row for group in groups if group["outcome"] != "identical" for row in group["rows"]]
        return {
            "on_conflict": self.on_conflict,
            "metadata_only": self.metadata_only,
            "created_at": self.created_at,
            "app_version": self.app_version,
            "counts": self.counts,
            "sections": self.sections,
            "targets": self.targets,
            "write_bytes": self.write_bytes,
            "write_files": self.write_files,
            "warnings": self.warnings,
            "groups": groups,  # every adapter by outcome, named (up to MAX_PLAN_ROWS each)
            "adapters": rows,  # the ones that change something, for the command's listing
            "adapters_cut": sum(g["more"] for g in groups if g["outcome"] != "identical"),
        }


def thumbnail_destination(archive_path: str) -> Path:
    """Where an archived preview thumbnail goes (content-addressed: an existing one is kept)."""
    name = archive_path.rsplit("/", 1)[-1]
    return Path(settings.THUMBNAIL_DIR) / name[:2] / name


def target_roots(roots: list[str], library_dir: str | Path | None) -> list[Path]:
    """Where each archive root's files go: --library-dir, else the same folder when it is a library
    folder here, else the first configured one. Several roots under one folder get a subfolder each."""
    configured = [Path(p).resolve() for p in settings.LIBRARY_DIRS]
    known = set(configured) | {Path(r.path) for r in LibraryRoot.objects.all()}
    base = Path(library_dir).expanduser().resolve() if library_dir else None
    targets: list[Path] = []
    for index, root in enumerate(roots):
        if base is None and Path(root) in known:
            targets.append(Path(root))
            continue
        folder = base or (configured[0] if configured else None)
        if folder is None:
            raise PlanError(
                "no library folder is configured here: pass --library-dir (or set LORA_MANAGER_LIBRARY_DIRS)"
            )
        if len(roots) > 1:
            folder = folder / (Path(root).name or f"root{index}")
            if folder in targets:
                folder = folder.with_name(f"{folder.name}-{index}")
        targets.append(folder)
    return targets


def remap_path(path: str, roots: list[str], targets: list[Path]) -> str:
    """An absolute path under an archive root, moved to the matching library folder here; "" for a path
    outside every root (an archive must not point the thumbnailer at arbitrary files on this machine)."""
    path = os.path.normpath(path)
    for root, target in zip(roots, targets, strict=True):
        root = os.path.normpath(root)
        if path.startswith(root.rstrip("/") + "/"):
            return str(target / os.path.relpath(path, root))
    return ""


def incoming_values(item: dict, roots: list[str], targets: list[Path]) -> dict[str, Any]:
    values = mf.load_fields(Adapter, item["fields"], mf.ADAPTER_FIELDS)
    source = values.get("preview_source") or ""
    if source.startswith("/"):
        values["preview_source"] = remap_path(source, roots, targets)
    return values


def is_user_value(local: Adapter, name: str, local_tags: set[str], archive_tags: set[str]) -> bool:
    if name == "tags":
        return bool(local_tags - archive_tags)
    if name == "active":
        return not local.active
    if name == "rating":
        return local.rating != 0
    if name == "preview_source":
        return local.sources.get("preview") == USER_SOURCE
    return local.sources.get(name) == USER_SOURCE


class Matcher:
    """Local adapters by tensor hash, full hash and file path, loaded once (fast at 100k adapters)."""

    def __init__(self) -> None:
        self.by_tensor: dict[str, int] = {}
        self.by_sha: dict[str, int] = {}
        for pk, sha, tensor in Adapter.objects.values_list("pk", "sha256", "tensor_sha256").order_by("pk"):
            if tensor:
                self.by_tensor.setdefault(tensor, pk)
            if sha:
                self.by_sha[sha] = pk
        self.by_path = dict(AdapterFile.objects.values_list("path", "adapter_id"))

    def match(self, fields: dict, paths: list[str]) -> tuple[int | None, str]:
        tensor, sha = fields.get("tensor_sha256") or "", fields.get("sha256") or ""
        if tensor and tensor in self.by_tensor:
            same = self.by_sha.get(sha)
            return (same if same is not None and sha else self.by_tensor[tensor]), "tensor hash"
        if sha and sha in self.by_sha:
            return self.by_sha[sha], "full hash"
        for path in paths:
            if path in self.by_path:
                return self.by_path[path], "path"
        return None, ""


def compare(local: Adapter, local_tags: set[str], values: dict, archive_tags: set[str]) -> tuple[list[str], list[str]]:
    differences = [n for n in COMPARED if n in values and getattr(local, n) != values[n]]
    if local_tags != archive_tags:
        differences.append("tags")
    conflicts = [n for n in differences if is_user_value(local, n, local_tags, archive_tags)]
    return differences, conflicts


def make_plan(manifest: dict, on_conflict: str, library_dir: str | Path | None = None) -> Plan:
    """Classify every archived adapter and count the sections; reads the database, writes nothing."""
    if on_conflict not in ON_CONFLICT:
        raise PlanError(f"unknown --on-conflict {on_conflict!r}: use one of {', '.join(ON_CONFLICT)}")
    roots = manifest["roots"]
    targets = target_roots(roots, library_dir) if roots else []
    matcher = Matcher()
    items = manifest["adapters"]
    matches = {}
    for item in items:
        paths = [str(targets[f["root"]] / f["rel_path"]) for f in item["files"]]
        matches[item["key"]] = matcher.match(item["fields"], paths)
    local_ids = [pk for pk, _ in matches.values() if pk is not None]
    locals_ = Adapter.objects.in_bulk(local_ids)
    tags_of: dict[int, set[str]] = {}
    for adapter_id, name in Adapter.tags.through.objects.filter(adapter_id__in=local_ids).values_list(
        "adapter_id", "tag__name"
    ):
        tags_of.setdefault(adapter_id, set()).add(name)
    present = set(
        AdapterFile.objects.filter(adapter_id__in=local_ids, status="present").values_list("adapter_id", flat=True)
    )
    files = {entry["path"]: entry for entry in manifest["files"]}
    plans: list[AdapterPlan] = []
    claimed: set[int] = set()
    writes: dict[str, int] = {}  # archive path -> size of each file the import would write
    for item in items:
        local_id, how = matches[item["key"]]
        name = item["fields"].get("name", "")
        weights = [f["archive_path"] for f in item["files"] if f.get("archive_path")]
        if local_id is None:
            plans.append(AdapterPlan(item["key"], name, "new", restore_files=bool(weights)))
            writes.update((p, files[p]["size"]) for f in item["files"] for p in _file_refs(f))
            continue
        if local_id in claimed:  # two archived adapters match one local adapter: the first wins
            plans.append(
                AdapterPlan(item["key"], name, "conflicting", local_id, how, [], ["matches an adapter already matched"])
            )
            continue
        claimed.add(local_id)
        local = locals_[local_id]
        values = incoming_values(item, roots, targets)
        differences, conflicts = compare(local, tags_of.get(local_id, set()), values, set(item.get("tags", [])))
        outcome = "identical" if not differences else "conflicting" if conflicts else "updated"
        restore = bool(weights) and local_id not in present
        if restore:
            writes.update((p, files[p]["size"]) for f in item["files"] for p in _file_refs(f))
        plans.append(AdapterPlan(item["key"], name, outcome, local_id, how, differences, conflicts, restore))
    resolve = make_resolver(manifest, {p.key: p.local_id for p in plans if p.outcome != "new"}, matcher)
    section_items = {name: s["items"] for name, s in manifest.get("sections", {}).items()}
    counts = {
        "presets": sections.import_presets(section_items.get("presets", []), on_conflict, apply=False),
        "feedback": sections.import_feedback(section_items.get("feedback", []), resolve, on_conflict, apply=False),
    }
    if "history" in section_items:
        counts["history"] = sections.import_history(section_items["history"], resolve, apply=False)
        writes.update((p, files[p]["size"]) for p in sections.new_history_files(section_items["history"]) if p in files)
    for entry in manifest["files"]:
        if entry["kind"] == "thumbnail" and not thumbnail_destination(entry["path"]).exists():
            writes[entry["path"]] = entry["size"]
    return Plan(
        on_conflict,
        bool(manifest.get("metadata_only")),
        manifest["created_at"],
        manifest["app_version"],
        plans,
        [str(t) for t in targets],
        counts,
        sum(writes.values()),
        len(writes),
    )


def _file_refs(file: dict) -> list[str]:
    return [p for p in [file.get("archive_path"), *file.get("companions", [])] if p]


def make_resolver(manifest: dict, key_to_id: dict[str, int | None], matcher: Matcher):
    """Turns an adapter reference from a section (archive key or identity) into a local adapter id."""

    def resolve(ref: Any) -> int | None:
        if not isinstance(ref, dict):
            return None
        if "key" in ref:
            return key_to_id.get(ref["key"])
        found, _ = matcher.match({"sha256": ref.get("sha256"), "tensor_sha256": ref.get("tensor_sha256")}, [])
        return found

    return resolve
