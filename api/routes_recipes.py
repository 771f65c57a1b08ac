"""/api/v1/recipes: import images as recipes and read them back, through generation.recipes.

The answer has the shape ``manage.py import_recipe --json`` prints: ``{"recipes": [...]}``.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from ninja import File, Router, Schema
from ninja.errors import HttpError
from ninja.files import UploadedFile

from api import schemas
from api.auth import require
from generation import recipes

router = Router(tags=["recipes"])

VIEW, ADD = "generation.view_recipe", "generation.add_recipe"


class RecipeLoraOut(Schema):
    name: str
    weight: float | None
    hash: str
    adapter_id: int | None
    matched_by: str | None


class RecipeOut(Schema):
    id: int
    source: str
    prompt: str
    negative: str
    steps: int | None
    sampler: str
    cfg_scale: float | None
    seed: int | None
    width: int | None
    height: int | None
    checkpoint: str
    loras: list[RecipeLoraOut]


class RecipesOut(Schema):
    recipes: list[RecipeOut]


@router.post("/recipes", response={201: RecipesOut, 413: schemas.Error, 422: schemas.Error})
def import_recipe(request: HttpRequest, image: File[UploadedFile]):
    """Upload one PNG, JPEG or WebP (multipart field ``image``); its parameters and matched LoRAs come back.
    An image that carries no parameters, or is not an image, is a 422 with the reason."""
    require(request, ADD, "import recipes")
    if image.size is not None and image.size > recipes.MAX_IMAGE_BYTES:
        raise HttpError(413, f"The image is larger than {recipes.size_limit()}.")
    data = image.read(recipes.MAX_IMAGE_BYTES + 1)
    try:
        recipe = recipes.import_image(data, image.name or "", request.user)
    except recipes.ImportFailed as exc:
        raise HttpError(422, f"{image.name or 'The upload'}: {exc}") from exc
    return 201, {"recipes": [recipes.as_json(recipe)]}


@router.get("/recipes/{int:recipe_id}", response={200: RecipesOut, 404: schemas.Error})
def get_recipe(request: HttpRequest, recipe_id: int):
    require(request, VIEW, "see recipes")
    if recipe_id > schemas.MAX_ID:
        raise Http404(f"No recipe {recipe_id}.")
    recipe = get_object_or_404(recipes.visible(request.user).prefetch_related("loras"), pk=recipe_id)
    return {"recipes": [recipes.as_json(recipe)]}
