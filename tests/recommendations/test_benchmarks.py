"""The embed, similar and prompt benchmarks run end to end on tiny sizes and report every figure (timings unchecked)."""

from __future__ import annotations

import pytest

from adapters.models import Adapter
from benchmarks import embed as embed_bench
from benchmarks import prompt as prompt_bench
from benchmarks import similar as similar_bench
from benchmarks.__main__ import REGISTRY

pytestmark = pytest.mark.django_db


def test_the_three_benchmarks_are_registered():
    assert {"embed", "similar", "prompt"} <= set(REGISTRY)


def test_embed_benchmark_compares_pipeline_and_plain_encode(st_model):
    result = embed_bench.run(count=30, rounds=1)
    assert result["texts"] == 30 and result["unchanged_embedded"] == 0
    assert result["plain_encode_texts_per_s"] > 0 and result["pipeline_texts_per_s"] > 0 and result["ratio"] > 0
    assert result["target_ratio"] == 0.9
    assert not Adapter.objects.exists()  # rolled back


@pytest.mark.parametrize("threshold", [10_000, 100])
def test_similar_benchmark_reports_latency_and_recall(st_model, settings, threshold):
    settings.ANN_THRESHOLD = threshold
    (result,) = similar_bench.run(sizes=(400,), queries=20)
    assert result["index_kind"] == ("exact" if threshold > 400 else "hnsw")
    assert result["recall_at_10"] >= (1.0 if threshold > 400 else 0.9)
    for key in ("index_query_p95_ms", "similar_end_to_end_p95_ms", "index_build_s"):
        assert result[key] >= 0
    assert "synthetic" in result["vectors"] and not Adapter.objects.exists()


def test_prompt_benchmark_reports_latency_with_encode(st_model):
    (result,) = prompt_bench.run(sizes=(300,), queries=6)
    assert result["queries"] == 6 and result["prompt_p95_ms"] >= result["encode_p50_ms"] > 0
    assert result["target_p95_ms"] == 50.0
