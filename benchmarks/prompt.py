"""Prompt -> LoRAs latency on the CPU, encode included, at 10,000 and 100,000 adapters.

The adapter vectors are synthetic (see benchmarks/similar.py); the prompt is encoded by the real
model on every query (the query cache is emptied each time), then ``ranking.for_prompt`` runs its
real path: filtered index search, catalog re-check, feedback and co-usage lookups, reasons.
Reported: encode alone and the whole call, p50/p95. Target: p95 < 50 ms.
"""

from __future__ import annotations

import itertools
import time

import torch
from django.db import connection

from benchmarks.similar import percentiles, synthetic_catalog
from recommendations import embeddings, ranking

SIZES = (10_000, 100_000)
SUBJECTS = ["a knight", "a cozy harbour town", "an elf mage", "a bowl of ramen", "a gothic cathedral", "a cyborg"]
STYLES = ["pixel art", "watercolor", "anime screenshot", "neon cyberpunk", "food photography", "art deco"]
EXTRAS = ["at sunset", "in the rain", "close-up, detailed", "wide shot, dramatic light"]


def prompts() -> list[str]:
    return [f"{s}, {st}, {e}" for s, st, e in itertools.product(SUBJECTS, STYLES, EXTRAS)]


def run(sizes: tuple[int, ...] = SIZES, queries: int = 100) -> list[dict]:
    embeddings.get_model()
    embeddings.encode(["warm up the model"])
    texts = prompts()[:queries]
    results = []
    for n in sizes:
        with synthetic_catalog(n) as catalog:
            ranking.for_prompt(texts[0])  # warm the ORM paths
            encode_s, total_s = [], []
            for base_model, text in zip(itertools.cycle(["", "SDXL", "SD1"]), texts, strict=False):
                ranking._query_vectors.clear()
                started = time.perf_counter()
                embeddings.encode([text])
                encode_s.append(time.perf_counter() - started)
                ranking._query_vectors.clear()
                started = time.perf_counter()
                result = ranking.for_prompt(text, base_model=base_model or None)
                total_s.append(time.perf_counter() - started)
                assert result.unavailable is None and result.suggestions, result
            encode_p50, encode_p95 = percentiles(encode_s)
            p50, p95 = percentiles(total_s)
            results.append(
                {
                    "adapters": n,
                    "vectors": "synthetic adapter vectors; prompts encoded by the real model",
                    "index_kind": catalog["stamp"]["kind"],
                    "device": "cpu" if not torch.cuda.is_available() else "cuda",
                    "torch_threads": torch.get_num_threads(),
                    "encode_threads": 1,  # one prompt: embeddings.encode uses a single thread (see its docstring)
                    "queries": len(texts),
                    "encode_p50_ms": encode_p50,
                    "encode_p95_ms": encode_p95,
                    "prompt_p50_ms": p50,
                    "prompt_p95_ms": p95,
                    "db_engine": connection.vendor,
                    "target_p95_ms": 50.0,
                }
            )
    return results
