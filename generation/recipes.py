"""Recipes: import an image, keep its parameters and matched LoRAs, open or run them again.

The one set of functions the recipe pages, ``manage.py import_recipe``, the API and "Save as recipe"
on a job's image call. Parsing is ``recipe_reading``/``recipe_parsing`` (pure), matching is
``recipe_matching``. An image is checked as an image first (type by magic bytes, decompression bombs
refused by ``adapters.previews``), so nothing is stored for a file that cannot be shown.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet

from adapters.civitai_lookup import example_images
from adapters.models import Adapter
from adapters.previews import PreviewError, make_thumbnails
from adapters.thumbnails import thumbnail_path
from generation import backends, composer, storage
from generation.image_metadata import MetadataError, clean_text, sniff
from generation.models import GenerationImage, Recipe, RecipeLora, RecipeSource
from generation.recipe_matching import match
from generation.recipe_parsing import (
    ParsedLora,
    ParsedRecipe,
    RecipeError,
    recipe_from_civitai_meta,
    strip_lora_tokens,
)
from generation.recipe_reading import recipe_from_image

MAX_IMAGE_BYTES = 50 * 1024 * 1024
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
# ComfyUI sampler names -> the names A1111/SD.Next use (for "Open in composer" and "Generate again").
COMFY_SAMPLERS = {
    "euler": "Euler",
    "euler_ancestral": "Euler a",
    "heun": "Heun",
    "dpm_2": "DPM2",
    "dpm_2_ancestral": "DPM2 a",
    "lms": "LMS",
    "dpm_fast": "DPM fast",
    "dpm_adaptive": "DPM adaptive",
    "dpmpp_2s_ancestral": "DPM++ 2S a",
    "dpmpp_sde": "DPM++ SDE",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_3m_sde": "DPM++ 3M SDE",
    "ddim": "DDIM",
    "uni_pc": "UniPC",
    "lcm": "LCM",
}


def size_limit() -> str:
    """The upload limit for messages: "50 MB" (or bytes when smaller than a megabyte)."""
    if MAX_IMAGE_BYTES >= 1024 * 1024:
        return f"{MAX_IMAGE_BYTES // (1024 * 1024)} MB"
    return f"{MAX_IMAGE_BYTES:,} bytes"


class ImportFailed(Exception):
    """This file gave no recipe; the message says why, for the person who uploaded it."""


def visible(user) -> QuerySet[Recipe]:
    """Recipes this user may see: all but other people's private ones (admins see everything); the one
    visibility rule of results (generation.models.visible_q). ``None``: every recipe (commands)."""
    return Recipe.objects.all() if user is None else Recipe.objects.visible_to(user)


def search(queryset: QuerySet[Recipe], query: str) -> QuerySet[Recipe]:
    for word in query.split()[:8]:
        queryset = queryset.filter(
            Q(prompt__icontains=word)
            | Q(negative__icontains=word)
            | Q(title__icontains=word)
            | Q(checkpoint__icontains=word)
            | Q(loras__name__icontains=word)
        )
    return queryset.distinct()


def _store_original(data: bytes, digest: str, kind: str) -> str:
    relative = f"recipes/{digest[:2]}/{digest}.{EXTENSIONS[kind]}"
    path = storage.absolute(relative)
    if not path.is_file():
        storage.write_atomically(path, data)
    return relative


def clean_title(name: str) -> str:
    return clean_text(os.path.basename(name or ""), 255).strip()


def save(
    parsed: ParsedRecipe,
    *,
    title: str = "",
    image: bytes | None = None,
    user=None,
    private: bool = False,
    job=None,
) -> Recipe:
    """Store a parsed recipe (thumbnails first: an image that cannot be shown is refused before any row)."""
    image_key = image_path = digest = ""
    if image is not None:
        try:
            thumbs = make_thumbnails(image, Path(settings.THUMBNAIL_DIR))
        except PreviewError as exc:
            raise ImportFailed(f"the image cannot be shown: {exc}") from exc
        digest, image_key = hashlib.sha256(image).hexdigest(), thumbs.key
        image_path = _store_original(image, digest, sniff(image[:16]) or "png")
    owner = user if user is not None and getattr(user, "is_authenticated", False) else None
    matches = [match(lora) for lora in parsed.loras]
    warnings = list(dict.fromkeys(clean_text(str(w), 500) for w in parsed.warnings))[:50]
    with transaction.atomic():
        recipe = Recipe.objects.create(
            source=parsed.source,
            title=clean_title(title),
            prompt=parsed.prompt,
            negative=parsed.negative,
            steps=parsed.steps,
            sampler=parsed.sampler,
            cfg_scale=parsed.cfg_scale,
            seed=parsed.seed,
            width=parsed.width,
            height=parsed.height,
            checkpoint=parsed.checkpoint,
            checkpoint_hash=parsed.checkpoint_hash,
            parameters=parsed.parameters,
            warnings=warnings,
            image=image_path,
            image_sha256=digest,
            image_key=image_key,
            job=job,
            owner=owner,
            private=private,
        )
        RecipeLora.objects.bulk_create(
            RecipeLora(
                recipe=recipe,
                position=position,
                name=clean_text(lora.name, 255) or "(unnamed)",
                weight=lora.weight,
                hash=clean_text(lora.hash, 64),
                file=clean_text(lora.file, 1000),
                adapter=found.adapter,
                matched_by=found.matched_by,
                note=clean_text(found.note, 500),
            )
            for position, (lora, found) in enumerate(zip(parsed.loras, matches, strict=True))
        )
    return recipe


def import_image(data: bytes, filename: str = "", user=None) -> Recipe:
    """One uploaded or named image file into a recipe; raises ImportFailed with a message for people."""
    if not data:
        raise ImportFailed("the file is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImportFailed(f"the file is larger than {size_limit()}")
    try:
        parsed = recipe_from_image(data)
    except (MetadataError, RecipeError) as exc:
        raise ImportFailed(str(exc)) from exc
    return save(parsed, title=filename, image=data, user=user)


def from_civitai_meta(meta: dict, title: str = "", image: bytes | None = None, user=None) -> Recipe:
    """A Civitai example image's ``meta`` (and its bytes, when downloaded) into a recipe; the Civitai lookup
    calls this for the example images it stores."""
    try:
        parsed = recipe_from_civitai_meta(meta)
    except RecipeError as exc:
        raise ImportFailed(str(exc)) from exc
    return save(parsed, title=title, image=image, user=user)


def from_civitai_examples(adapter_id: int, user=None) -> tuple[list[Recipe], int]:
    """The adapter's stored Civitai example images (adapters.civitai_lookup) as recipes, parameters only
    (their images stay on Civitai); examples already saved, or without parameters, are skipped."""
    name = Adapter.objects.filter(pk=adapter_id).values_list("name", flat=True).first() or f"#{adapter_id}"
    made: list[Recipe] = []
    skipped = 0
    for position, example in enumerate(example_images(adapter_id), start=1):
        title = clean_title(f"{name}, Civitai example {position}")
        if Recipe.objects.filter(source=RecipeSource.CIVITAI, title=title).exists():
            skipped += 1
            continue
        try:
            recipe = from_civitai_meta(example["meta"] or {}, title=title, user=user)
        except ImportFailed:
            skipped += 1
            continue
        recipe.parameters = {**recipe.parameters, "civitai image": example["url"]}
        recipe.save(update_fields=["parameters"])
        made.append(recipe)
    return made, skipped


def from_job_image(image: GenerationImage, user=None) -> Recipe:
    """ "Save as recipe" on one of this app's own results: the job's own LoRAs (known adapters, matched by
    their hashes like any import) and the image's seed; a private job's recipe stays private."""
    job = image.job
    parsed = ParsedRecipe(source=RecipeSource.JOB)
    composition = composer.Composition.from_dict(job.composition)
    parsed.prompt, parsed.negative = composition.prompt, composition.negative
    parsed.steps, parsed.sampler, parsed.cfg_scale = job.steps, job.sampler, job.cfg_scale
    parsed.seed = image.seed if image.seed is not None else job.seed
    parsed.width, parsed.height, parsed.checkpoint = job.width, job.height, job.checkpoint
    parsed.parameters = {"backend": job.backend, "job": job.pk, "final prompt": job.prompt[:5000]}
    for lora in job.loras.select_related("adapter"):
        adapter = lora.adapter
        digest = (adapter.tensor_sha256[:12] or adapter.sha256 or "") if adapter else ""
        parsed.loras.append(ParsedLora(name=lora.name, weight=lora.weight, hash=digest))
    try:
        data = storage.absolute(image.path).read_bytes()
    except (OSError, ValueError):
        data = None
        parsed.warnings.append("the original image file is gone; the recipe keeps the parameters only")
    title = f"Job #{job.pk}, image {image.index + 1}"
    return save(parsed, title=title, image=data, user=user, private=job.private, job=job)


def rematch(recipe: Recipe) -> int:
    """Find the recipe's LoRAs in the catalog again (files added or hashed since); returns how many changed."""
    changed = 0
    for lora in recipe.loras.all():
        found = match(ParsedLora(name=lora.name, weight=lora.weight, hash=lora.hash, file=lora.file))
        note = clean_text(found.note, 500)
        if (found.adapter.pk if found.adapter else None, found.matched_by, note) != (
            lora.adapter_id,
            lora.matched_by,
            lora.note,
        ):
            lora.adapter, lora.matched_by, lora.note = found.adapter, found.matched_by, note
            lora.save(update_fields=["adapter", "matched_by", "note"])
            changed += 1
    return changed


def delete(recipe: Recipe) -> None:
    """The row, and its image and thumbnails unless another recipe or an adapter preview still uses them."""
    key, image, digest = recipe.image_key, recipe.image, recipe.image_sha256
    recipe.delete()
    if digest and not Recipe.objects.filter(image_sha256=digest).exists() and image:
        with contextlib.suppress(OSError, ValueError):
            storage.absolute(image).unlink(missing_ok=True)
    if key and not Recipe.objects.filter(image_key=key).exists() and not Adapter.objects.filter(preview_key=key):
        for size in ("card", "large"):
            thumbnail_path(key, size).unlink(missing_ok=True)


def as_json(recipe: Recipe) -> dict:
    """The shape ``import_recipe --json`` and the API print."""
    return {
        "id": recipe.pk,
        "source": recipe.source,
        "prompt": recipe.prompt,
        "negative": recipe.negative,
        "steps": recipe.steps,
        "sampler": recipe.sampler,
        "cfg_scale": recipe.cfg_scale,
        "seed": recipe.seed,
        "width": recipe.width,
        "height": recipe.height,
        "checkpoint": recipe.checkpoint,
        "loras": [
            {
                "name": lora.name,
                "weight": lora.weight,
                "hash": lora.hash,
                "adapter_id": lora.adapter_id,
                "matched_by": lora.matched_by or None,
            }
            for lora in recipe.loras.all()
        ],
    }


def _clamp(value, bounds, fallback):
    if value is None:
        return fallback
    low, high = bounds
    return min(max(value, low), high)


def match_checkpoint(name: str, short_hash: str, checkpoints: list[dict]) -> str | None:
    """The title of the backend's checkpoint an image names: by its short hash (A1111 titles end in
    "[31e35c80fc]"), else by file stem (``sd_xl_base_1.0`` = ``sd_xl_base_1.0.safetensors``)."""
    short_hash = short_hash.strip().lower()
    if short_hash:
        for checkpoint in checkpoints:
            known = " ".join(str(checkpoint.get(k) or "") for k in ("title", "hash", "sha256")).lower()
            if short_hash in known:
                return checkpoint.get("title") or None
    stem = PurePosixPath(name.replace("\\", "/")).name
    for suffix in (".safetensors", ".ckpt"):
        stem = stem.removesuffix(suffix)
    if not stem:
        return None
    for checkpoint in checkpoints:
        names = {str(checkpoint.get(k) or "") for k in ("title", "model_name")}
        filename = PurePosixPath(str(checkpoint.get("filename") or "").replace("\\", "/")).name
        if name in names or stem in names or filename.rsplit(".", 1)[0] == stem:
            return checkpoint.get("title") or None
    return None


def composition_for(recipe: Recipe, info: backends.ServerInfo | None = None) -> tuple[composer.Composition, list[str]]:
    """The recipe as a composer state, and notes on what had to change to fit the composer's limits
    or the backend (``info``: a checkpoint SD.Next does not list is left to the one it has loaded).

    LoRA tokens are taken out of the prompt: the composer writes its own from the LoRA rows (matched
    ones as catalog adapters, missing ones by name, so the linter can say they are missing)."""
    notes: list[str] = []
    sampler = COMFY_SAMPLERS.get(recipe.sampler, recipe.sampler) or "Default"
    karras = recipe.parameters.get("scheduler") == "karras"
    if recipe.source == RecipeSource.COMFYUI and karras and sampler != "Default":
        sampler = f"{sampler} Karras"
    seed = recipe.seed if recipe.seed is not None else -1
    if not composer.SEED[0] <= seed <= composer.SEED[1]:
        notes.append(f"Seed {seed} is beyond what SD.Next accepts; a random seed is used.")
        seed = -1

    def size(value: int | None) -> int:
        return int(_clamp(value, composer.SIZE, 1024)) // 8 * 8

    width, height = size(recipe.width), size(recipe.height)
    if (recipe.width and width != recipe.width) or (recipe.height and height != recipe.height):
        notes.append(f"Size {recipe.width}×{recipe.height} adjusted to {width}×{height}.")
    loras = []
    for lora in recipe.loras.all()[: composer.MAX_LORAS]:
        weight = lora.weight if lora.weight is not None else 1.0
        weight = _clamp(weight, composer.WEIGHT, 1.0)
        # The image's own prompt already holds any trigger words: don't insert them twice.
        name = "" if lora.adapter_id else lora.name
        loras.append(composer.LoraChoice(lora.adapter_id, weight, triggers=False, name=name))
    checkpoint = recipe.checkpoint
    if checkpoint and info is not None and info.ok and info.checkpoints:
        found = match_checkpoint(checkpoint, recipe.checkpoint_hash, info.checkpoints)
        if found is None:
            notes.append(f"SD.Next does not list the checkpoint “{checkpoint}”: the one it has loaded is used.")
        checkpoint = found or ""
    composition = composer.Composition(
        prompt=strip_lora_tokens(recipe.prompt)[: composer.MAX_PROMPT],
        negative=recipe.negative[: composer.MAX_PROMPT],
        loras=loras,
        checkpoint=checkpoint,
        sampler=sampler,
        steps=int(_clamp(recipe.steps, composer.STEPS, 20)),
        cfg_scale=float(_clamp(recipe.cfg_scale, composer.CFG, 6.0)),
        width=width,
        height=height,
        seed=seed,
    )
    return composition, notes
