"""Recipe pages: browse and search, upload images, read one, open it in the composer, generate it again,
delete it; and "Save as recipe" on a job's image. Thin: the work is in generation.recipes."""

from __future__ import annotations

from urllib.parse import quote

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from adapters import civitai_lookup
from adapters.civitai import CivitaiError
from adapters.models import Adapter
from adapters.thumbnails import thumbnail_path
from generation import backends, recipes, storage, submitting
from generation.models import GenerationImage, Recipe, RecipeLora

VIEW, ADD, DELETE = "generation.view_recipe", "generation.add_recipe", "generation.delete_recipe"
SUBMIT = "generation.add_generationjob"
PAGE_SIZE = 24
MAX_FILES = 20
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


def _visible(request: HttpRequest, pk: int) -> Recipe:
    return get_object_or_404(recipes.visible(request.user), pk=pk)


def _list_context(request: HttpRequest) -> dict:
    query = request.GET.get("q", "").strip()[:200]
    found = recipes.search(recipes.visible(request.user), query).prefetch_related("loras")
    page = Paginator(found, PAGE_SIZE).get_page(request.GET.get("page"))
    return {"page": page, "query": query, "querystring": f"q={query}" if query else ""}


@require_GET
@permission_required(VIEW, raise_exception=True)
def recipe_list(request: HttpRequest) -> HttpResponse:
    context = {**_list_context(request), "max_files": MAX_FILES, "size_limit": recipes.size_limit()}
    if request.htmx and request.htmx.target == "recipe-results":
        return render(request, "generation/_recipe_results.html", context)
    return render(request, "generation/recipes.html", context)


@require_POST
@permission_required(ADD, raise_exception=True)
def import_images(request: HttpRequest) -> HttpResponse:
    """Each uploaded file on its own: one that gives no recipe is listed with its reason, the others import."""
    files = request.FILES.getlist("images")
    results: list[dict] = []
    if not files:
        results.append({"name": "", "error": "Choose or drop one or more PNG, JPEG or WebP images first."})
    for upload in files[:MAX_FILES]:
        name = recipes.clean_title(upload.name)
        if upload.size > recipes.MAX_IMAGE_BYTES:
            results.append({"name": name, "error": f"the file is larger than {recipes.size_limit()}"})
            continue
        try:
            recipe = recipes.import_image(upload.read(), name, request.user)
        except recipes.ImportFailed as exc:
            results.append({"name": name, "error": str(exc)})
        else:
            results.append({"name": name, "recipe": recipe})
    if len(files) > MAX_FILES:
        results.append({"name": "", "error": f"Only the first {MAX_FILES} files were imported; upload the rest again."})
    imported = [r for r in results if "recipe" in r]
    context = {**_list_context(request), "results": results, "imported": imported}
    context.update(max_files=MAX_FILES, size_limit=recipes.size_limit())
    if request.htmx:
        return render(request, "generation/_recipe_import.html", {**context, "oob": True})
    if len(imported) == 1 and len(results) == 1:
        messages.success(request, f"Recipe imported from {imported[0]['name']}.")
        return redirect("generation:recipe", pk=imported[0]["recipe"].pk)
    return render(request, "generation/recipes.html", context, status=200 if imported else 422)


@require_GET
@permission_required(VIEW, raise_exception=True)
def recipe_detail(request: HttpRequest, pk: int) -> HttpResponse:
    recipe = _visible(request, pk)
    loras = list(recipe.loras.select_related("adapter"))
    context = {
        "recipe": recipe,
        "loras": loras,
        "missing": [lora for lora in loras if not lora.adapter_id],
        "extra": sorted((k, v) for k, v in recipe.parameters.items() if k != "graph"),
        "civitai_enabled": civitai_lookup.enabled(),
    }
    return render(request, "generation/recipe.html", context)


@require_GET
@permission_required(VIEW, raise_exception=True)
def recipe_image(request: HttpRequest, pk: int, size: str) -> FileResponse:
    recipe = _visible(request, pk)
    if size == "full" and recipe.image:
        path = storage.absolute(recipe.image)
        content_type = CONTENT_TYPES.get(path.suffix.lstrip("."), "application/octet-stream")
    elif size in ("card", "large") and recipe.image_key:
        path, content_type = thumbnail_path(recipe.image_key, size), "image/webp"
    else:
        raise Http404("no such image")
    if not path.is_file():
        raise Http404("the image file is gone")
    response = FileResponse(open(path, "rb"), content_type=content_type)  # noqa: SIM115 - FileResponse closes it
    response["Cache-Control"] = "private, max-age=86400"
    return response


@require_POST
@permission_required(DELETE, raise_exception=True)
def delete_recipe(request: HttpRequest, pk: int) -> HttpResponse:
    recipe = _visible(request, pk)
    title = str(recipe)
    recipes.delete(recipe)
    messages.success(request, f"Recipe “{title}” deleted.")
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = reverse("generation:recipes")
        return response
    return redirect("generation:recipes")


@require_POST
@permission_required(ADD, raise_exception=True)
def from_civitai_examples(request: HttpRequest, adapter_id: int) -> HttpResponse:
    """An adapter's Civitai example images (stored by a lookup) saved as recipes, from its detail page."""
    get_object_or_404(Adapter, pk=adapter_id)
    made, skipped = recipes.from_civitai_examples(adapter_id, request.user)
    if not made:
        messages.info(request, "No new recipes: the examples are saved already or carry no parameters.")
        return redirect("adapters:detail", pk=adapter_id)
    note = f" ({skipped} skipped: saved already or without parameters)" if skipped else ""
    messages.success(request, f"{len(made)} recipe{'s' if len(made) != 1 else ''} saved from Civitai examples{note}.")
    return redirect(reverse("generation:recipes") + "?q=" + quote(made[0].title.rsplit(",", 1)[0]))


@require_POST
@permission_required(ADD, raise_exception=True)
def rematch(request: HttpRequest, pk: int) -> HttpResponse:
    """Look the LoRAs up again, e.g. after the missing ones were added to the library and hashed."""
    recipe = _visible(request, pk)
    changed = recipes.rematch(recipe)
    messages.info(request, f"{changed} LoRA match{'es' if changed != 1 else ''} changed." if changed else "No change.")
    return redirect("generation:recipe", pk=recipe.pk)


@require_GET
@permission_required(VIEW, raise_exception=True)
def civitai_page(request: HttpRequest, pk: int, lora_id: int) -> HttpResponse:
    """A LoRA missing from the catalog: ask Civitai by its hash (a person clicked) and go to its page there.
    A link, not a form: the CSP's ``form-action 'self'`` would stop a form's redirect to civitai.com. It
    stores nothing; the client's pacing and a bounded wait keep it polite."""
    recipe = _visible(request, pk)
    lora = get_object_or_404(RecipeLora, pk=lora_id, recipe=recipe)
    try:
        url = civitai_lookup.page_for_hash(lora.hash)
    except ValueError:
        messages.error(request, f"“{lora.name}” has no usable hash to look up on Civitai.")
    except CivitaiError as exc:
        messages.error(request, f"Civitai lookup of “{lora.name}” failed: {exc}")
    else:
        if url:
            return redirect(url)
        messages.info(request, f"Civitai does not know “{lora.name}” (hash {lora.hash}).")
    return redirect("generation:recipe", pk=recipe.pk)


@require_POST
@permission_required(SUBMIT, raise_exception=True)
def generate_again(request: HttpRequest, pk: int) -> HttpResponse:
    """Submit the recipe as it stands through the same path as the composer's Generate button."""
    recipe = _visible(request, pk)
    composition, notes = recipes.composition_for(recipe, backends.server_info("default"))
    try:
        job = submitting.submit(composition, request.user, private=recipe.private)
    except submitting.SubmitError as exc:
        messages.error(request, f"Not sent: {exc} Open it in the composer to fix it.")
        return redirect("generation:recipe", pk=recipe.pk)
    for note in notes:
        messages.info(request, note)
    messages.success(request, f"Job #{job.pk} queued from recipe “{recipe}”.")
    return redirect("generation:job", pk=job.pk)


@require_POST
@permission_required(ADD, raise_exception=True)
def save_job_image(request: HttpRequest, image_id: int) -> HttpResponse:
    """One click on a job's image: a recipe of exactly what that job sent (private jobs stay private)."""
    image = get_object_or_404(GenerationImage.objects.visible_to(request.user).select_related("job"), pk=image_id)
    recipe = recipes.from_job_image(image, request.user)
    if request.htmx:
        return render(request, "generation/_recipe_saved.html", {"recipe": recipe, "image": image})
    messages.success(request, f"Saved as recipe “{recipe}”.")
    return redirect("generation:recipe", pk=recipe.pk)
