"""When the model or FAISS cannot load, every place suggestions would be says why, and the rest of the app works."""

from __future__ import annotations

import pytest

from adapters import bulk_edit
from recommendations import embeddings, index, sync
from recommendations.embeddings import Unavailable
from tests.recommendations.conftest import make_adapter

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}
MISSING = "/nonexistent/models/all-MiniLM-L6-v2"


@pytest.fixture
def embedded(st_model):
    adapters = [make_adapter("pixelArt", tags=["pixel art"]), make_adapter("pixelIcons", tags=["pixel art"])]
    sync.sync_library()
    return adapters


def unavailable_everywhere(client, adapter, needle: str) -> None:
    def says_why(html: str) -> bool:
        start = html.find("Recommendations unavailable: ")
        return start >= 0 and needle in html[start : html.find("</p>", start)]

    for url, params in [
        ("/recommendations/", {}),
        ("/recommendations/status/", {}),
        (f"/recommendations/similar/{adapter.pk}/", HX),
        (f"/recommendations/similar/{adapter.pk}/", {}),
    ]:
        response = client.get(url, **params)
        assert response.status_code == 200 and says_why(response.content.decode()), url
    prompt = client.get("/recommendations/for-prompt/", {"q": "pixel art"}, **HX)
    assert prompt.status_code == 200 and says_why(prompt.content.decode())
    for url, params in [
        (f"/recommendations/similar/{adapter.pk}.json", {}),
        ("/recommendations/for-prompt.json", {"q": "pixel art"}),
    ]:
        response = client.get(url, params)
        assert response.status_code == 503 and response.json()["available"] is False, url
        assert needle in response.json()["reason"]


def test_a_missing_model_path_degrades_every_fragment_and_nothing_else(viewer_client, embedded, settings):
    settings.EMBEDDING_MODEL = MISSING
    unavailable_everywhere(viewer_client, embedded[0], f"the embedding model directory {MISSING} does not exist")
    assert viewer_client.get("/library/").status_code == 200
    assert bulk_edit.add_tags([embedded[0].pk], ["still works"]) == 1
    with pytest.raises(Unavailable, match="does not exist"):
        sync.sync_library()


def test_a_hub_name_is_never_downloaded(viewer_client, embedded, settings):
    settings.EMBEDDING_MODEL = "sentence-transformers/all-mpnet-base-v2"
    unavailable_everywhere(viewer_client, embedded[0], "hub names are never downloaded")


def test_a_directory_that_is_not_a_model(viewer_client, embedded, settings, tmp_path):
    settings.EMBEDDING_MODEL = str(tmp_path)
    unavailable_everywhere(viewer_client, embedded[0], "is not a sentence-transformers model directory")


def test_a_model_that_fails_to_load_is_reported_with_its_error(viewer_client, embedded, settings, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "modules.json").write_text("this is not json")
    settings.EMBEDDING_MODEL = str(broken)
    with pytest.raises(Unavailable, match="could not be loaded"):
        embeddings.get_model()
    unavailable_everywhere(viewer_client, embedded[0], f"the embedding model at {broken} could not be loaded")


def test_faiss_that_cannot_load_degrades_the_approximate_index(viewer_client, settings, st_model, monkeypatch):
    settings.ANN_THRESHOLD = 1
    adapters = [make_adapter("pixelArt", tags=["pixel art"]), make_adapter("pixelIcons", tags=["pixel art"])]
    assert sync.sync_library()["index_kind"] == index.HNSW
    index._caches.clear()  # a fresh web process

    def broken_faiss():
        raise Unavailable("FAISS cannot be loaded: ImportError: libfaiss.so: cannot open shared object file")

    monkeypatch.setattr(index, "_faiss", broken_faiss)
    unavailable_everywhere(viewer_client, adapters[0], "FAISS cannot be loaded")
    assert viewer_client.get("/library/").status_code == 200
