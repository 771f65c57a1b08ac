"""Bring the embeddings and the index in line with the catalog: the one function every path calls.

The RQ job, ``manage.py embed_library`` and the benchmarks all run ``sync_library``. It walks the
catalog in chunks, rebuilds each adapter's recipe text, encodes only the adapters whose text, model
or recipe version changed, stores their vectors, then republishes the index (or only its filter
columns when no vector changed).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from adapters.models import Adapter, AdapterStatus
from recommendations import embeddings, index, recipe
from recommendations.embeddings import Unavailable
from recommendations.models import Embedding

Progress = Callable[[str, int, int], None]
CHUNK = 1024


def _tag_names(adapter_ids: list[int]) -> dict[int, list[str]]:
    through = Adapter.tags.through
    names: dict[int, list[str]] = defaultdict(list)
    for adapter_id, name in through.objects.filter(adapter_id__in=adapter_ids).values_list("adapter_id", "tag__name"):
        names[adapter_id].append(name)
    return names


def _store(rows: list[tuple[int, str]], vectors: np.ndarray, model: str) -> None:
    now = timezone.now()
    objects = [
        Embedding(
            adapter_id=adapter_id,
            model_name=model,
            recipe_version=recipe.RECIPE_VERSION,
            text_sha256=sha,
            dim=int(vectors.shape[1]),
            vector=vectors[i].astype("<f4").tobytes(),
            updated_at=now,
        )
        for i, (adapter_id, sha) in enumerate(rows)
    ]
    with transaction.atomic():
        # An adapter deleted meanwhile would violate the foreign key: store only those still there.
        alive = set(Adapter.objects.filter(pk__in=[o.adapter_id for o in objects]).values_list("pk", flat=True))
        Embedding.objects.bulk_create(
            [o for o in objects if o.adapter_id in alive],
            update_conflicts=True,
            unique_fields=["adapter"],
            update_fields=["model_name", "recipe_version", "text_sha256", "dim", "vector", "updated_at"],
            batch_size=500,
        )


def embed_changed(
    rebuild: bool = False, progress: Progress | None = None, chunk: int = CHUNK, adapters: QuerySet | None = None
) -> tuple[int, int]:
    """Encode adapters whose recipe text, model or recipe version changed; returns (embedded, unchanged).

    ``adapters`` narrows the walk (benchmarks); by default the whole catalog."""
    progress = progress or (lambda phase, done, total: None)
    problem = embeddings.model_problem()
    if problem:
        raise Unavailable(problem)
    model = embeddings.model_identity()
    adapters = Adapter.objects.usable() if adapters is None else adapters
    total = adapters.count()
    done = embedded = unchanged = 0
    last_pk = 0
    progress("embedding", 0, total)
    while True:
        rows = list(adapters.filter(pk__gt=last_pk).order_by("pk").values(*recipe.FIELDS)[:chunk])
        if not rows:
            break
        last_pk = rows[-1]["id"]
        ids = [row["id"] for row in rows]
        tags = _tag_names(ids)
        stored = {
            adapter_id: (name, version, sha)
            for adapter_id, name, version, sha in Embedding.objects.filter(adapter_id__in=ids).values_list(
                "adapter_id", "model_name", "recipe_version", "text_sha256"
            )
        }
        todo: list[tuple[int, str]] = []
        texts: list[str] = []
        for row in rows:
            text = recipe.build_text(row, tags.get(row["id"], ()))
            sha = recipe.text_sha256(text)
            if rebuild or stored.get(row["id"]) != (model, recipe.RECIPE_VERSION, sha):
                todo.append((row["id"], sha))
                texts.append(text)
        if todo:
            _store(todo, embeddings.encode(texts), model)
        embedded += len(todo)
        unchanged += len(rows) - len(todo)
        done += len(rows)
        progress("embedding", done, max(total, done))  # adapters added meanwhile: total grows
    return embedded, unchanged


def _catalog_columns(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Active flag and base-model family per index row, read fresh from the catalog."""
    active = np.zeros(len(ids), dtype=bool)
    family = np.full(len(ids), index.UNKNOWN, dtype=np.uint8)
    position = {int(adapter_id): row for row, adapter_id in enumerate(ids)}
    # Unreadable files (Adapter.objects.usable) count as inactive: never suggested, even if embedded earlier.
    rows = Adapter.objects.values_list("pk", "active", "base_model", "status")
    for adapter_id, is_active, base_model, status in rows.iterator(chunk_size=5000):
        row = position.get(adapter_id)
        if row is not None:
            active[row] = is_active and status != AdapterStatus.ERROR
            family[row] = index.family_code(base_model)
    return active, family


def _load_vectors(rows: Any, progress: Progress) -> tuple[np.ndarray, np.ndarray]:
    """All stored vectors in adapter-id order, read in one pass (rows added meanwhile are included)."""
    expected = rows.count()
    found: list[int] = []
    vectors = np.zeros((0, 0), dtype=np.float32)  # an empty library: no model load just for the dimension
    for adapter_id, blob in rows.order_by("adapter_id").values_list("adapter_id", "vector").iterator(chunk_size=2000):
        vector = np.frombuffer(bytes(blob), dtype="<f4")
        if len(found) == vectors.shape[0]:
            grown = np.empty((max(expected, 2 * len(found), 1024), vector.shape[0]), dtype=np.float32)
            if found:
                grown[: len(found)] = vectors
            vectors = grown
        vectors[len(found)] = vector
        found.append(adapter_id)
        if len(found) % 10_000 == 0:
            progress("indexing", len(found), max(expected, len(found)))
    return np.asarray(found, dtype=np.int64), vectors[: len(found)]


def _same_vectors(stamp: dict[str, Any], model: str, ids: np.ndarray) -> bool:
    if (stamp.get("model"), stamp.get("recipe"), stamp.get("count")) != (model, recipe.RECIPE_VERSION, len(ids)):
        return False
    if stamp.get("kind") != index.choose_kind(len(ids)):
        return False
    try:
        return bool(np.array_equal(index.load_ids(stamp), ids))
    except (OSError, ValueError):
        return False


def refresh_index(force: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Republish the index from the stored vectors of the current model and recipe.

    Vectors (and the HNSW graph) are rebuilt only when the set of adapters, a vector, the model or
    the index kind changed; otherwise only the filter columns, and only if they differ."""
    progress = progress or (lambda phase, done, total: None)
    model = embeddings.model_identity()
    current_rows = Embedding.objects.filter(model_name=model, recipe_version=recipe.RECIPE_VERSION)
    ids = np.fromiter(current_rows.order_by("adapter_id").values_list("adapter_id", flat=True), dtype=np.int64)
    progress("indexing", 0, len(ids))
    stamp = index.read_stamp()
    if not force and stamp is not None and _same_vectors(stamp, model, ids):
        active, family = _catalog_columns(ids)
        try:
            old_active, old_family = index.load_meta(stamp)
        except (OSError, ValueError):
            old_active = old_family = None
        if np.array_equal(old_active, active) and np.array_equal(old_family, family):
            return {"action": "unchanged", **stamp}
        return {"action": "meta", **index.write_meta(active, family)}
    ids, vectors = _load_vectors(current_rows, progress)
    active, family = _catalog_columns(ids)
    stamp = index.write_index(ids, vectors, active, family, model=model, recipe=recipe.RECIPE_VERSION)
    progress("indexing", len(ids), len(ids))
    return {"action": "built", **stamp}


def sync_library(
    rebuild: bool = False, progress: Progress | None = None, adapters: QuerySet | None = None
) -> dict[str, Any]:
    """Embed what changed, then publish the index. Returns counts for the run row and the command."""
    started = time.monotonic()
    embedded, unchanged = embed_changed(rebuild=rebuild, progress=progress, adapters=adapters)
    result = refresh_index(force=rebuild or embedded > 0, progress=progress)
    return {
        "embedded": embedded,
        "unchanged": unchanged,
        "indexed": result.get("count", 0),
        "index_kind": result.get("kind", ""),
        "index_action": result["action"],
        "seconds": round(time.monotonic() - started, 3),
    }
