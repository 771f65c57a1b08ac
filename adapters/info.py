"""What the catalog knows about one adapter, as plain data (lora_info, the API, exports)."""

from __future__ import annotations

import os

from django.db.models import Q

from adapters.civitai_lookup import record_info
from adapters.models import Adapter, AdapterFile, FileStatus


def primary_file(adapter: Adapter) -> AdapterFile | None:
    files = sorted(adapter.files.all(), key=lambda f: (f.status != FileStatus.PRESENT, f.path))
    return files[0] if files else None


def adapter_info(adapter: Adapter) -> dict:
    file = primary_file(adapter)
    return {
        "id": adapter.pk,
        "name": adapter.name,
        "alias": adapter.alias,
        "path": file.path if file else "",
        "paths": [{"path": f.path, "status": f.status} for f in adapter.files.all()],
        "size": adapter.size,
        "sha256": adapter.sha256 or "",
        "autov2": adapter.autov2,
        "tensor_sha256": adapter.tensor_sha256,
        "autov3": adapter.autov3,
        "base_model": adapter.base_model,
        "base_model_detail": adapter.base_model_detail,
        "network_type": adapter.network_type,
        "rank": adapter.rank,
        "alpha": adapter.alpha,
        "trigger_words": adapter.trigger_words,
        "training_tags": adapter.training_tags,
        "tags": sorted(t.name for t in adapter.tags.all()),
        "preferred_weight": adapter.preferred_weight,
        "weight_min": adapter.weight_min,
        "weight_max": adapter.weight_max,
        "activation_text": adapter.activation_text,
        "negative_text": adapter.negative_text,
        "description": adapter.description,
        "notes": adapter.notes,
        "civitai_model_id": adapter.civitai_model_id,
        "civitai_version_id": adapter.civitai_version_id,
        "source_url": adapter.source_url,
        "has_preview": bool(adapter.preview_source or adapter.preview_key),
        "active": adapter.active,
        "favorite": adapter.favorite,
        "status": adapter.status,
        "issues": adapter.issues,
        "sources": adapter.sources,
        **_civitai(adapter.pk),
    }


def _civitai(adapter_id: int) -> dict:
    info = record_info(adapter_id)
    return {"civitai_update": info["civitai_update"], "civitai_checked_at": info["civitai_checked_at"]}


def find_adapter(path_or_hash: str) -> Adapter | None:
    """By file path (as given or resolved), else by a sha256 / tensor sha256 (or a prefix of 8+ hex)."""
    candidates = {path_or_hash, os.path.abspath(path_or_hash), os.path.realpath(path_or_hash)}
    file = AdapterFile.objects.filter(path__in=candidates).select_related("adapter").first()
    if file:
        return file.adapter
    value = path_or_hash.strip().lower()
    if len(value) >= 8 and all(c in "0123456789abcdef" for c in value):
        match = Q(sha256__startswith=value) | Q(tensor_sha256__startswith=value) | Q(files__sha256__startswith=value)
        return Adapter.objects.filter(match).distinct().order_by("pk").first()
    return None
