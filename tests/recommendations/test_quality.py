"""Quality with the real model on the labelled evaluation set (eval_set.py): not a smoke test.

- "Similar LoRAs": precision@5 of same-theme neighbours, averaged over all 41 adapters, >= 0.8.
- "LoRAs for this prompt": for every prompt, the first suggestion belongs to the prompt's theme.
"""

from __future__ import annotations

from collections import defaultdict

import pytest

from adapters.models import Adapter
from recommendations import ranking, sync
from tests.recommendations.conftest import make_eval_library
from tests.recommendations.eval_set import PROMPTS

pytestmark = pytest.mark.django_db


@pytest.fixture
def eval_library(st_model):
    themes = make_eval_library()
    result = sync.sync_library()
    assert result["embedded"] == len(themes)
    return themes


def test_similar_precision_at_5_is_at_least_0_8(eval_library):
    themes = eval_library
    per_theme: dict[str, list[float]] = defaultdict(list)
    misses = []
    for adapter in Adapter.objects.prefetch_related("tags"):
        results = ranking.similar(adapter, k=5)
        assert results.unavailable is None and len(results.suggestions) == 5
        same = [themes[s.id] == themes[adapter.pk] for s in results.suggestions]
        per_theme[themes[adapter.pk]].append(sum(same) / 5)
        misses += [f"{adapter.name} -> {s.name}" for s, ok in zip(results.suggestions, same, strict=True) if not ok]
    precision = sum(sum(v) for v in per_theme.values()) / sum(len(v) for v in per_theme.values())
    report = {theme: round(sum(v) / len(v), 2) for theme, v in per_theme.items()}
    assert precision >= 0.8, f"precision@5 {precision:.3f} per theme {report}; misses: {misses}"


def test_prompts_rank_a_matching_theme_first(eval_library):
    themes = eval_library
    wrong = []
    for prompt, theme in PROMPTS:
        results = ranking.for_prompt(prompt, k=3)
        assert results.unavailable is None and results.suggestions, prompt
        first = results.suggestions[0]
        if themes[first.id] != theme:
            wrong.append(f"{prompt!r}: {first.name} ({themes[first.id]}), wanted {theme}")
    assert not wrong, "\n".join(wrong)
