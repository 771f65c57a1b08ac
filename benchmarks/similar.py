"""Similar-LoRA query latency and recall at 10,000 and 100,000 adapters.

The vectors are SYNTHETIC (clustered 384-d unit vectors, like sentence embeddings: a few thousand
topics plus noise), because embedding 100,000 real recipe texts takes ~6 minutes on a CPU; the
index, the filters, the adapter rows in the database and the code paths are the real ones. Adapter
rows are inserted in a transaction that is rolled back, and the index lives in a temporary directory.

Reported per size: index kind and build time; the index query alone (filtered top-10 with the
source's compatible base models and active only, as "similar" runs it) p50/p95 and recall@10
against exact filtered search; and ``similar()`` end to end (index + catalog re-check + feedback
and co-usage lookups + reasons) p50/p95. Target: index p95 < 5 ms at 100,000, recall@10 >= 0.95.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.test import override_settings

from adapters.models import Adapter, BaseModel
from recommendations import embeddings, index, ranking, recipe

SIZES = (10_000, 100_000)
DIM = 384
QUERIES = 300
FAMILY_MIX = [(BaseModel.SDXL, 0.6), (BaseModel.SD1, 0.2), (BaseModel.UNKNOWN, 0.1), (BaseModel.FLUX, 0.1)]


def clustered_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    topics = max(10, n // 50)
    centers = rng.standard_normal((topics, dim)).astype(np.float32)
    x = centers[rng.integers(0, topics, n)] + 0.9 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def percentiles(samples: list[float]) -> tuple[float, float]:
    values = np.asarray(samples) * 1000
    return round(float(np.percentile(values, 50)), 3), round(float(np.percentile(values, 95)), 3)


@contextmanager
def synthetic_catalog(n: int, seed: int = 0) -> Iterator[dict[str, Any]]:
    """``n`` adapters in the database (rolled back afterwards) and an index of synthetic vectors over them."""
    rng = random.Random(seed)
    families = [family for family, _ in FAMILY_MIX]
    weights = [weight for _, weight in FAMILY_MIX]
    with tempfile.TemporaryDirectory(prefix="bench-index-") as data_dir, override_settings(DATA_DIR=data_dir):
        with transaction.atomic():
            Adapter.objects.bulk_create(
                [
                    Adapter(
                        name=f"bench-similar-{i}",
                        base_model=rng.choices(families, weights)[0],
                        active=rng.random() > 0.05,
                    )
                    for i in range(n)
                ],
                batch_size=5000,
            )
            rows = list(
                Adapter.objects.filter(name__startswith="bench-similar-")
                .order_by("pk")
                .values_list("pk", "base_model", "active")
            )
            ids = np.array([pk for pk, _, _ in rows], dtype=np.int64)
            family = np.array([index.family_code(base) for _, base, _ in rows], dtype=np.uint8)
            active = np.array([is_active for _, _, is_active in rows], dtype=bool)
            vectors = clustered_vectors(n, seed=seed)
            started = time.perf_counter()
            stamp = index.write_index(
                ids, vectors, active, family, model=embeddings.model_identity(), recipe=recipe.RECIPE_VERSION
            )
            build_s = time.perf_counter() - started
            yield {
                "ids": ids,
                "family": family,
                "active": active,
                "vectors": vectors,
                "stamp": stamp,
                "build_s": build_s,
            }
            transaction.set_rollback(True)
        index.remove()


def measure(catalog: dict[str, Any], queries: int = QUERIES, seed: int = 1) -> dict[str, Any]:
    snapshot = index.current()
    ids, family, active, vectors = catalog["ids"], catalog["family"], catalog["active"], catalog["vectors"]
    rng = np.random.default_rng(seed)
    sources = rng.choice(np.flatnonzero(active), size=min(queries, int(active.sum())), replace=False)
    index_times, recalls = [], []
    for row in sources:
        base = index.FAMILIES[family[row]]
        allowed = index.compatible_codes(base)
        started = time.perf_counter()
        hits = snapshot.search(vectors[row], 10, families=allowed, exclude={int(ids[row])})
        index_times.append(time.perf_counter() - started)
        mask = active.copy()
        if allowed is not None:
            mask &= np.isin(family, list(allowed))
        mask[row] = False
        exact = np.argsort(-np.where(mask, vectors @ vectors[row], -np.inf))[:10]
        recalls.append(len({i for i, _ in hits} & {int(ids[r]) for r in exact}) / 10)
    adapters = {a.pk: a for a in Adapter.objects.filter(pk__in=[int(ids[r]) for r in sources[:100]])}
    ranking.similar(next(iter(adapters.values())))  # warm the ORM paths
    end_to_end = []
    for adapter in adapters.values():
        started = time.perf_counter()
        results = ranking.similar(adapter)
        end_to_end.append(time.perf_counter() - started)
        assert results.unavailable is None and results.suggestions, results
    index_p50, index_p95 = percentiles(index_times)
    e2e_p50, e2e_p95 = percentiles(end_to_end)
    return {
        "index_query_p50_ms": index_p50,
        "index_query_p95_ms": index_p95,
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "similar_end_to_end_p50_ms": e2e_p50,
        "similar_end_to_end_p95_ms": e2e_p95,
        "queries": len(sources),
    }


def run(sizes: tuple[int, ...] = SIZES, queries: int = QUERIES) -> list[dict]:
    results = []
    for n in sizes:
        with synthetic_catalog(n) as catalog:
            figures = measure(catalog, queries)
            results.append(
                {
                    "adapters": n,
                    "vectors": "synthetic (clustered, 384-d)",
                    "index_kind": catalog["stamp"]["kind"],
                    "ann_threshold": settings.ANN_THRESHOLD,
                    "index_build_s": round(catalog["build_s"], 2),
                    **figures,
                    "db_engine": connection.vendor,
                    "target_index_p95_ms_at_100k": 5.0,
                    "target_recall_at_10": 0.95,
                }
            )
    return results
