"""POST /api/v1/recipes: an image upload in, the import_recipe --json shape out; refusals are JSON 4xx."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from adapters.models import Adapter
from api import tokens
from generation.models import Recipe
from tests.generation import recipe_images as ri

URL = "/api/v1/recipes"


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.THUMBNAIL_DIR = tmp_path / "thumbs"


def _post(user, name: str, data: bytes, field: str = "image"):
    token = tokens.create(user, "script")[1]
    upload = SimpleUploadedFile(name, data, content_type="image/png")
    return Client().post(URL, {field: upload}, headers={"Authorization": f"Bearer {token}"})


def test_upload_answers_the_command_shape(editor):
    ink = Adapter.objects.create(name="ink_sd15", tensor_sha256="36ea8aeef318" + "0" * 52, sha256="1" * 64)
    response = _post(editor, "fox.png", ri.a1111_png())
    assert response.status_code == 201, response.content
    body = response.json()
    assert list(body) == ["recipes"]
    recipe = body["recipes"][0]
    assert recipe["source"] == "a1111" and recipe["steps"] == 28 and recipe["checkpoint"] == "sd_xl_base_1.0"
    assert recipe["loras"] == [
        {"name": "ink_sd15", "weight": 0.8, "hash": "36ea8aeef318", "adapter_id": ink.pk, "matched_by": "autov3"},
        {"name": "pixel_xl", "weight": 0.6, "hash": "a1b2c3d4e5f6", "adapter_id": None, "matched_by": None},
    ]
    token = tokens.create(editor, "again")[1]
    again = Client().get(f"{URL}/{recipe['id']}", headers={"Authorization": f"Bearer {token}"})
    assert again.json() == body


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b"plain text", "not a PNG, JPEG or WebP"),
        (ri.png_with_text({}), "no generation parameters"),
        (ri.png_with_text({"prompt": "{broken"}), "not valid JSON"),
    ],
)
def test_bad_uploads_are_422_with_the_reason(editor, data, detail):
    response = _post(editor, "bad.png", data)
    assert response.status_code == 422
    assert detail in response.json()["detail"] and "bad.png" in response.json()["detail"]
    assert Recipe.objects.count() == 0


def test_an_oversized_upload_is_413(editor, monkeypatch):
    from generation import recipes

    monkeypatch.setattr(recipes, "MAX_IMAGE_BYTES", 1024)
    response = _post(editor, "big.png", ri.a1111_png())
    assert response.status_code == 413 and response.json()["detail"] == "The image is larger than 1,024 bytes."


def test_missing_file_field_and_viewer_refused(editor, viewer):
    assert _post(editor, "x.png", ri.a1111_png(), field="other").status_code == 422
    response = _post(viewer, "x.png", ri.a1111_png())
    assert response.status_code == 403 and "import recipes" in response.json()["detail"]
    assert Recipe.objects.count() == 0
