"""The index on synthetic vectors: exact and HNSW search, filters that keep top-k, reload on version change."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.models import BaseModel
from recommendations import index
from recommendations.embeddings import Unavailable

SDXL, SD1, UNKNOWN = (index.family_code(v) for v in (BaseModel.SDXL, BaseModel.SD1, BaseModel.UNKNOWN))


def vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def build(directory, n=400, kind=None, active=None, family=None, seed=0, ids=None):
    x = vectors(n, seed=seed)
    ids = np.arange(1, n + 1, dtype=np.int64) * 10 if ids is None else ids
    active = np.ones(n, dtype=bool) if active is None else active
    family = np.full(n, SDXL, dtype=np.uint8) if family is None else family
    stamp = index.write_index(ids, x, active, family, model="test-model", recipe=1, kind=kind, directory=directory)
    return ids, x, stamp


def exact_top(x, ids, query, k, mask):
    scores = np.where(mask, x @ query, -np.inf)
    order = np.argsort(-scores)[:k]
    return [int(ids[i]) for i in order]


@pytest.mark.parametrize("kind", [index.EXACT, index.HNSW])
def test_search_returns_the_exact_top_k(private_index, kind):
    ids, x, _ = build(private_index, n=3000, kind=kind)
    snapshot = index.current(private_index)
    assert snapshot.kind == kind and len(snapshot) == 3000
    recall = []
    for q in vectors(20, seed=7):
        got = [adapter_id for adapter_id, _ in snapshot.search(q, 10)]
        recall.append(len(set(got) & set(exact_top(x, ids, q, 10, np.ones(3000, bool)))) / 10)
    assert np.mean(recall) >= (1.0 if kind == index.EXACT else 0.95)


@pytest.mark.parametrize("kind", [index.EXACT, index.HNSW])
def test_filters_never_cost_results(private_index, kind):
    """The 2,500 nearest rows to the query are filtered out: the search still fills k from the rest."""
    n = 3000
    x = vectors(n)
    query = x[0]
    nearest = np.argsort(-(x @ query))
    active = np.ones(n, dtype=bool)
    active[nearest[:2000]] = False
    family = np.full(n, SDXL, dtype=np.uint8)
    family[nearest[2000:2500]] = SD1
    family[nearest[-5:]] = UNKNOWN
    ids = np.arange(1, n + 1, dtype=np.int64)
    index.write_index(ids, x, active, family, model="m", recipe=1, kind=kind, directory=private_index)
    snapshot = index.current(private_index)
    wanted = index.compatible_codes(BaseModel.SDXL)
    hits = snapshot.search(query, 10, families=wanted)
    mask = active & np.isin(family, list(wanted))
    assert [i for i, _ in hits] == exact_top(x, ids, query, 10, mask)
    assert all(active[i - 1] and family[i - 1] != SD1 for i, _ in hits)
    # A narrow filter (the 5 Unknown rows only) is answered exactly too.
    unknown_only = snapshot.search(query, 10, families={UNKNOWN})
    assert sorted(i for i, _ in unknown_only) == sorted(int(ids[r]) for r in nearest[-5:])
    # Exclusions (the source adapter itself) are honoured.
    first = hits[0][0]
    assert first not in [i for i, _ in snapshot.search(query, 10, families=wanted, exclude={first})]


def test_unknown_is_compatible_with_everything():
    assert index.compatible_codes(BaseModel.SD1) == {SD1, UNKNOWN}
    assert index.compatible_codes(BaseModel.UNKNOWN) is None and index.compatible_codes("") is None
    assert SDXL in index.incompatible_codes(BaseModel.SD1) and UNKNOWN not in index.incompatible_codes(BaseModel.SD1)


def test_readers_reload_when_the_version_changes(private_index):
    build(private_index, n=50, seed=1)
    first = index.current(private_index)
    assert index.current(private_index) is first  # unchanged stamp: the same snapshot, no reload
    ids, x, stamp = build(private_index, n=60, seed=2)
    second = index.current(private_index)
    assert second is not first and second.stamp["version"] == stamp["version"] and len(second) == 60
    assert np.allclose(second.vector(int(ids[5])), x[5])
    assert second.vector(12345) is None


def test_meta_only_update_keeps_the_vectors_and_changes_the_filter(private_index):
    ids, x, _ = build(private_index, n=50)
    before = index.current(private_index)
    top = before.search(x[3], 1)[0][0]
    active = np.ones(50, dtype=bool)
    active[np.searchsorted(ids, top)] = False
    index.write_meta(active, np.full(50, SDXL, dtype=np.uint8), directory=private_index)
    after = index.current(private_index)
    assert after is not before and after.vectors is before.vectors  # vectors not reloaded
    assert top not in [i for i, _ in after.search(x[3], 5)]


def test_old_files_are_removed_but_the_previous_version_is_kept(private_index):
    for seed in range(4):
        build(private_index, n=20, seed=seed)
    stamp = index.read_stamp(private_index)
    names = {p.name for p in private_index.iterdir() if not p.name.startswith(".")}
    versions = {stamp["version"], stamp["previous"]["version"]}
    assert {n.split("_")[1].split(".")[0] for n in names if n.startswith("ids_")} == versions
    assert len([n for n in names if n.startswith("meta_")]) == 2


def test_unreadable_index_files_make_recommendations_unavailable(private_index):
    _, _, stamp = build(private_index, n=20)
    (private_index / f"vectors_{stamp['version']}.npy").write_bytes(b"garbage")
    index._caches.clear()
    with pytest.raises(Unavailable, match="cannot be read"):
        index.current(private_index)


def test_ids_must_be_sorted_and_match_rows(private_index):
    with pytest.raises(ValueError):
        index.write_index(
            np.array([3, 2]), vectors(2), np.ones(2, bool), np.zeros(2, np.uint8), "m", 1, directory=private_index
        )
