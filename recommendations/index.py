"""The vector index: a cache of the embeddings in the database, persisted in DATA_DIR/index.

Small libraries get an exact index (a float32 matrix, memory-mapped, so every web process shares one
copy in the page cache); above ``ANN_THRESHOLD`` adapters an HNSW graph (FAISS). Beside the vectors,
a small "meta" file holds each row's active flag and base-model family, so the filters run inside
the search and a (de)activation rewrites a few kilobytes instead of rebuilding the graph.

A JSON stamp names the current files. Writers create new files and then replace the stamp
atomically (under a file lock); readers ``stat`` the stamp on each query and reload what changed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.utils import timezone

from adapters.models import BaseModel
from recommendations.embeddings import Unavailable

STAMP = "CURRENT.json"
EXACT, HNSW = "exact", "hnsw"
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
SMALL_SUBSET = 2_000  # filters leaving at most this many rows: exact search over just those rows

FAMILIES: tuple[str, ...] = tuple(BaseModel.values)
UNKNOWN = FAMILIES.index(BaseModel.UNKNOWN)


def family_code(base_model: str) -> int:
    return FAMILIES.index(base_model) if base_model in FAMILIES else UNKNOWN


def compatible_codes(base_model: str | None) -> frozenset[int] | None:
    """Families that work with ``base_model``: the same family, and Unknown (it may be anything).
    None (no filter) for no base model or Unknown."""
    if not base_model or base_model == BaseModel.UNKNOWN:
        return None
    return frozenset({family_code(base_model), UNKNOWN})


def incompatible_codes(base_model: str | None) -> frozenset[int]:
    allowed = compatible_codes(base_model)
    return frozenset() if allowed is None else frozenset(range(len(FAMILIES))) - allowed


def _faiss() -> Any:
    try:
        import faiss
    except Exception as exc:
        raise Unavailable(f"FAISS cannot be loaded: {type(exc).__name__}: {exc}") from exc
    faiss.cvar.distance_compute_blas_threshold = 20  # 1.15 defaults to 128000: small batches 3.5x slower
    return faiss


def index_dir() -> Path:
    return Path(settings.DATA_DIR) / "index"


def choose_kind(count: int) -> str:
    return HNSW if count > settings.ANN_THRESHOLD else EXACT


@dataclass(frozen=True)
class Snapshot:
    """One loaded version of the index; immutable, so concurrent queries need no lock."""

    stamp: dict[str, Any]
    ids: np.ndarray  # int64 adapter ids, ascending; row i holds adapter ids[i]
    vectors: np.ndarray  # (n, dim) float32
    active: np.ndarray  # bool per row
    family: np.ndarray  # uint8 family code per row
    ann: Any = None  # faiss HNSW index, or None for exact
    _masks: dict = field(default_factory=dict, repr=False, compare=False)  # filter -> row mask, computed once

    @property
    def kind(self) -> str:
        return self.stamp["kind"]

    @property
    def model(self) -> str:
        return self.stamp["model"]

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def row(self, adapter_id: int) -> int | None:
        position = int(np.searchsorted(self.ids, adapter_id))
        return position if position < len(self) and int(self.ids[position]) == adapter_id else None

    def vector(self, adapter_id: int) -> np.ndarray | None:
        row = self.row(adapter_id)
        return None if row is None else np.asarray(self.vectors[row], dtype=np.float32)

    def mask(
        self, families: Collection[int] | None, active_only: bool = True, exclude: Collection[int] = ()
    ) -> np.ndarray:
        key = (None if families is None else frozenset(families), active_only)
        base = self._masks.get(key)
        if base is None:
            base = self.active.copy() if active_only else np.ones(len(self), dtype=bool)
            if families is not None:
                wanted = np.zeros(256, dtype=bool)
                wanted[list(families)] = True
                base &= wanted[self.family]
            self._masks[key] = base
        mask = base.copy()
        for adapter_id in exclude:
            row = self.row(adapter_id)
            if row is not None:
                mask[row] = False
        return mask

    def search(
        self,
        query: np.ndarray,
        k: int,
        families: Collection[int] | None = None,
        active_only: bool = True,
        exclude: Collection[int] = (),
    ) -> list[tuple[int, float]]:
        """Top ``k`` (adapter id, cosine) among rows passing the filters; filters never shrink k."""
        query = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        mask = self.mask(families, active_only, exclude)
        allowed = int(mask.sum())
        k = min(k, allowed)
        if k <= 0:
            return []
        if self.ann is not None and allowed > SMALL_SUBSET:
            hits = self._search_hnsw(query, k, mask)
            if len(hits) >= k:
                return hits
        if allowed <= SMALL_SUBSET:
            rows = np.flatnonzero(mask)
            scores = self.vectors[rows] @ query
        else:  # the exact index, or HNSW came back short under a narrow filter
            rows = None
            scores = np.where(mask, self.vectors @ query, -np.inf)
        top = np.argpartition(-scores, k - 1)[:k] if k < scores.shape[0] else np.arange(scores.shape[0])
        top = top[np.argsort(-scores[top], kind="stable")]
        chosen = top if rows is None else rows[top]
        return [(int(self.ids[r]), float(s)) for r, s in zip(chosen, scores[top], strict=True)]

    def _search_hnsw(self, query: np.ndarray, k: int, mask: np.ndarray) -> list[tuple[int, float]]:
        faiss = _faiss()
        bitmap = np.packbits(mask, bitorder="little")
        selector = faiss.IDSelectorBitmap(len(self), faiss.swig_ptr(bitmap))
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(HNSW_EF_SEARCH, 2 * k))
        distances, rows = self.ann.search(query.reshape(1, -1), k, params=params)
        del selector, bitmap  # (kept alive until here on purpose: faiss holds raw pointers)
        return [(int(self.ids[r]), float(d)) for r, d in zip(rows[0], distances[0], strict=True) if r >= 0]


# -- writing ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def _write_lock(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _new_version() -> str:
    return f"{time.time_ns():x}-{secrets.token_hex(3)}"


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array)


def read_stamp(directory: Path | None = None) -> dict[str, Any] | None:
    try:
        return json.loads(((directory or index_dir()) / STAMP).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _publish(directory: Path, stamp: dict[str, Any]) -> None:
    """Replace the stamp atomically, then delete files that neither this nor the previous stamp names
    (a reader may be loading the previous version right now)."""
    previous = read_stamp(directory) or {}
    stamp["previous"] = {"version": previous.get("version"), "meta": previous.get("meta")}
    temporary = directory / f".{STAMP}.{secrets.token_hex(4)}"
    temporary.write_text(json.dumps(stamp))
    os.replace(temporary, directory / STAMP)
    versions = {stamp["version"], previous.get("version")}
    metas = {stamp["meta"], previous.get("meta")}
    for file in directory.iterdir():
        if file.name.startswith((".", STAMP)):
            continue
        kind, *tokens = file.stem.split("_")
        wanted = (tokens[-1] in metas) if kind == "meta" else bool(tokens) and tokens[0] in versions
        if not wanted:
            file.unlink(missing_ok=True)


def write_index(
    ids: np.ndarray,
    vectors: np.ndarray,
    active: np.ndarray,
    family: np.ndarray,
    model: str,
    recipe: int,
    kind: str | None = None,
    directory: Path | None = None,
) -> dict[str, Any]:
    """Build and publish a full index (vectors + meta); rows must be sorted by adapter id."""
    directory = directory or index_dir()
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if ids.shape[0] != vectors.shape[0] or (ids.size > 1 and np.any(np.diff(ids) <= 0)):
        raise ValueError("ids must be unique, ascending and one per vector row")
    kind = kind or choose_kind(len(ids))
    dim = int(vectors.shape[1]) if vectors.ndim == 2 else 0
    with _write_lock(directory):
        version, meta = _new_version(), _new_version()
        _save_npy(directory / f"ids_{version}.npy", ids)
        if kind == HNSW:
            faiss = _faiss()
            ann = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            ann.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            ann.add(vectors)
            faiss.write_index(ann, str(directory / f"hnsw_{version}.faiss"))
        else:
            _save_npy(directory / f"vectors_{version}.npy", vectors)
        _save_meta(directory, version, meta, active, family)
        stamp = {
            "version": version,
            "meta": meta,
            "kind": kind,
            "model": model,
            "recipe": recipe,
            "dim": dim,
            "count": len(ids),
            "built_at": timezone.now().isoformat(),
        }
        _publish(directory, stamp)
    return stamp


def _save_meta(directory: Path, version: str, meta: str, active: np.ndarray, family: np.ndarray) -> None:
    with open(directory / f"meta_{version}_{meta}.npz", "wb") as handle:
        np.savez(handle, active=np.asarray(active, dtype=bool), family=np.asarray(family, dtype=np.uint8))


def write_meta(active: np.ndarray, family: np.ndarray, directory: Path | None = None) -> dict[str, Any]:
    """Publish new filter columns for the current vectors (same rows, same order)."""
    directory = directory or index_dir()
    with _write_lock(directory):
        stamp = read_stamp(directory)
        if stamp is None or len(active) != stamp["count"] or len(family) != stamp["count"]:
            raise ValueError("write_meta needs a current index with the same rows")
        stamp["meta"] = _new_version()
        stamp["meta_at"] = timezone.now().isoformat()
        _save_meta(directory, stamp["version"], stamp["meta"], active, family)
        _publish(directory, stamp)
    return stamp


def load_ids(stamp: dict[str, Any], directory: Path | None = None) -> np.ndarray:
    return np.load((directory or index_dir()) / f"ids_{stamp['version']}.npy")


def load_meta(stamp: dict[str, Any], directory: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    with np.load((directory or index_dir()) / f"meta_{stamp['version']}_{stamp['meta']}.npz") as data:
        return data["active"].copy(), data["family"].copy()


# -- reading, with reload on version change ---------------------------------------------------------


class _Cache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.signature: tuple[int, int, int] | None = None
        self.snapshot: Snapshot | None = None


_caches: dict[str, _Cache] = {}


def _load_vectors(stamp: dict[str, Any], directory: Path) -> tuple[np.ndarray, Any]:
    if stamp["kind"] == HNSW:
        faiss = _faiss()
        ann = faiss.read_index(str(directory / f"hnsw_{stamp['version']}.faiss"))
        ann.hnsw.efSearch = HNSW_EF_SEARCH
        storage = faiss.downcast_index(ann.storage)
        vectors = faiss.rev_swig_ptr(storage.get_xb(), stamp["count"] * stamp["dim"])
        return vectors.reshape(stamp["count"], stamp["dim"]), ann
    return np.load(directory / f"vectors_{stamp['version']}.npy", mmap_mode="r"), None


def current(directory: Path | None = None) -> Snapshot | None:
    """The index as the stamp names it now (None when none was built); reloads whatever changed.

    Costs one ``os.stat`` when nothing changed. Raises Unavailable when the files cannot be read."""
    directory = directory or index_dir()
    cache = _caches.setdefault(str(directory), _Cache())
    try:
        info = os.stat(directory / STAMP)
    except FileNotFoundError:
        cache.signature, cache.snapshot = None, None
        return None
    signature = (info.st_ino, info.st_mtime_ns, info.st_size)
    if signature == cache.signature:
        return cache.snapshot
    with cache.lock:
        if signature == cache.signature:
            return cache.snapshot
        stamp = read_stamp(directory)
        if stamp is None:
            return cache.snapshot
        old = cache.snapshot
        try:
            if old is not None and old.stamp["version"] == stamp["version"]:
                ids, vectors, ann = old.ids, old.vectors, old.ann
            else:
                ids = load_ids(stamp, directory)
                vectors, ann = _load_vectors(stamp, directory)
            active, family = load_meta(stamp, directory)
        except Unavailable:
            raise
        except (OSError, ValueError, RuntimeError) as exc:
            raise Unavailable(f"the index in {directory} cannot be read ({exc}); re-embed the library") from exc
        cache.snapshot = Snapshot(stamp=stamp, ids=ids, vectors=vectors, active=active, family=family, ann=ann)
        cache.signature = signature
        return cache.snapshot


def remove(directory: Path | None = None) -> None:
    """Forget the index (``embed_library --rebuild`` starts from nothing; tests start clean)."""
    directory = directory or index_dir()
    if directory.is_dir():
        with _write_lock(directory):
            for file in directory.iterdir():
                if not file.name.startswith("."):
                    file.unlink(missing_ok=True)
    _caches.pop(str(directory), None)
