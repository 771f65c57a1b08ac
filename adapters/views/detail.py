"""One adapter: its detail page, inline section edits, toggles and "add this training tag as a trigger word".

Each section of the page is a fragment with a stable id (``adapter-<pk>-<section>``): htmx swaps the
form in, the form posts back, and the saved section (or the form with its errors, status 422) comes
back in its place. Without JavaScript the same URLs work as plain pages and redirects.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from adapters import bulk_edit, civitai_lookup, gallery, info, sidecar_writing
from adapters.forms import MAX_TRIGGER_WORD_LENGTH, MAX_TRIGGER_WORDS, SECTION_FORMS, SECTION_TITLES, section_form
from adapters.models import USER_SOURCE, Adapter, CivitaiRecord
from adapters.sanitize import clean_html

MAX_TRAINING_TAGS_SHOWN = 300
MAX_RAW_HEADER_CHARS = 200_000


def gone(request: HttpRequest, pk: int) -> HttpResponse:
    """A clear answer for a page that acts on an adapter removed meanwhile (by someone else, or another tab)."""
    context = {"pk": pk}
    if request.htmx:
        response = HttpResponse(render_to_string("adapters/_gone.html", context, request), status=404)
        response["HX-Retarget"], response["HX-Reswap"] = "#feedback", "innerHTML"
        return response
    return render(request, "adapters/gone.html", context, status=404)


def _adapter(pk: int) -> Adapter | None:
    return Adapter.objects.prefetch_related("tags", "files__root").filter(pk=pk).first()


def lora_token_name(adapter: Adapter) -> str:
    """The name in ``<lora:name:weight>`` as A1111 and SD.Next read it: the alias, else the file's stem, else
    the name."""
    if adapter.alias:
        return adapter.alias
    file = info.primary_file(adapter)
    return file.path.rsplit("/", 1)[-1].removesuffix(".safetensors") if file else adapter.name


def lora_prompt(adapter: Adapter) -> str:
    """``<lora:name:weight>`` for the copy button, at the adapter's preferred weight."""
    weight = adapter.preferred_weight if adapter.preferred_weight is not None else 1.0
    return f"<lora:{lora_token_name(adapter)}:{weight:g}>"


def sharing_the_token(adapter: Adapter, limit: int = 5) -> list[Adapter]:
    """Other LoRAs whose copy button gives the same ``<lora:name>`` (two copies both aliased ``inkwash_sd15``,
    or an alias equal to another file's stem): SD.Next loads one file for both, so the page says so."""
    name = lora_token_name(adapter)
    same = Q(alias=name) | Q(alias="", files__path__endswith=f"/{name}.safetensors")
    return list(Adapter.objects.usable().filter(same).exclude(pk=adapter.pk).distinct().only("pk", "name")[:limit])


def _prompt_context(adapter: Adapter) -> dict:
    return {"lora_prompt": lora_prompt(adapter), "sharing_the_token": sharing_the_token(adapter)}


def _section_context(adapter: Adapter, section: str, form=None) -> dict:
    return {
        "adapter": adapter,
        "section": section,
        "title": SECTION_TITLES[section],
        "form": form,
        "description_html": clean_html(adapter.description) if section == "description" else "",
        "user_source": USER_SOURCE,
    }


def detail_context(adapter: Adapter, editing: str = "", form=None) -> dict:
    duplicates = []
    if adapter.tensor_sha256:
        duplicates = list(
            Adapter.objects.filter(tensor_sha256=adapter.tensor_sha256).exclude(pk=adapter.pk).only("pk", "name")[:50]
        )
    header = json.dumps(adapter.header_metadata, indent=2, sort_keys=True, ensure_ascii=False)
    training = [t for t in adapter.training_tags if isinstance(t, (list, tuple)) and len(t) == 2]
    sections = [
        _section_context(adapter, section, form if section == editing else None)
        for section in ("name", "triggers", "tags", "weights", "texts", "description", "notes")
    ]
    return {
        "adapter": adapter,
        "files": sorted(adapter.files.all(), key=lambda f: (f.status != "present", f.path)),
        "duplicates": duplicates,
        **_prompt_context(adapter),
        "header_json": header[:MAX_RAW_HEADER_CHARS],
        "header_truncated": len(header) > MAX_RAW_HEADER_CHARS,
        "training_tags": training[:MAX_TRAINING_TAGS_SHOWN],
        "training_total": len(training),
        "sections": sections,
        "image": _section_context(adapter, "image", form if editing == "image" else None),
        "sources": sorted(adapter.sources.items()),
        "civitai": CivitaiRecord.objects.filter(adapter_id=adapter.pk).first(),
        "civitai_images": (images := civitai_lookup.example_images(adapter.pk)),
        "civitai_images_with_meta": sum(1 for image in images if image["meta"]),  # the ones that can be recipes
        "civitai_enabled": civitai_lookup.enabled(),
    }


@require_GET
@permission_required("adapters.view_adapter", raise_exception=True)
def detail(request: HttpRequest, pk: int) -> HttpResponse:
    adapter = _adapter(pk)
    if adapter is None:
        return gone(request, pk)
    editing = request.GET.get("edit", "")
    form = None
    if editing in SECTION_FORMS and request.user.has_perm("adapters.change_adapter"):
        form = section_form(editing, adapter)
    return render(request, "adapters/detail.html", detail_context(adapter, editing, form))


@require_GET
@permission_required("adapters.view_adapter", raise_exception=True)
def section(request: HttpRequest, pk: int, section: str) -> HttpResponse:
    """One section as shown (the Cancel of an inline edit)."""
    if section not in SECTION_FORMS:
        raise Http404("no such section")
    adapter = _adapter(pk)
    if adapter is None:
        return gone(request, pk)
    return render(request, "adapters/_detail_section.html", _section_context(adapter, section))


@require_http_methods(["GET", "POST"])
@permission_required("adapters.change_adapter", raise_exception=True)
def edit(request: HttpRequest, pk: int, section: str) -> HttpResponse:
    if section not in SECTION_FORMS:
        raise Http404("no such section")
    adapter = _adapter(pk)
    if adapter is None:
        return gone(request, pk)
    if request.method == "GET":
        form = section_form(section, adapter)
        if not request.htmx:
            return redirect(f"{reverse('adapters:detail', args=[pk])}?edit={section}#adapter-{pk}-{section}")
        return render(request, "adapters/_detail_section.html", _section_context(adapter, section, form))
    form = section_form(section, adapter, request.POST, request.FILES)
    if not form.is_valid():
        if request.htmx:
            context = _section_context(adapter, section, form)
            return render(request, "adapters/_detail_section.html", context, status=422)
        adapter = _adapter(pk)  # the form may have changed the instance's attributes while validating
        return render(request, "adapters/detail.html", detail_context(adapter, section, form), status=422)
    form.save()
    adapter = _adapter(pk)
    if not request.htmx:
        messages.success(request, f"{SECTION_TITLES[section]} saved.")
        return redirect(f"{reverse('adapters:detail', args=[pk])}#adapter-{pk}-{section}")
    context = {**_section_context(adapter, section), "oob_header": True, **_prompt_context(adapter)}
    return render(request, "adapters/_detail_section.html", context)


@require_POST
@permission_required("adapters.change_adapter", raise_exception=True)
def toggle(request: HttpRequest, pk: int, field: str) -> HttpResponse:
    """Active or favorite on one adapter, from a card, a list row or the detail page."""
    if field not in ("active", "favorite"):
        raise Http404("only active and favorite can be toggled")
    if not Adapter.objects.filter(pk=pk).exists():
        return gone(request, pk)
    value = request.POST.get("value") == "1"
    if field == "active":
        bulk_edit.set_active([pk], value)
    else:
        bulk_edit.set_favorite([pk], value)
    target = request.htmx.target if request.htmx else ""
    if target and target.endswith(("-card", "-row")):
        adapter = gallery.with_urls(Adapter.objects.prefetch_related("tags").get(pk=pk))
        civitai_lookup.annotate_cards([adapter], request.user)
        template = "adapters/_card.html" if target.endswith("-card") else "adapters/_row.html"
        return render(request, template, {"a": adapter})
    if request.htmx:
        return render(request, "adapters/_detail_flags.html", {"adapter": Adapter.objects.get(pk=pk)})
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, require_https=request.is_secure()):
        back = reverse("adapters:detail", args=[pk])
    return redirect(back)


@require_POST
@permission_required("adapters.change_adapter", raise_exception=True)
def add_trigger_word(request: HttpRequest, pk: int) -> HttpResponse:
    """A training tag, clicked, becomes a trigger word (once)."""
    adapter = _adapter(pk)
    if adapter is None:
        return gone(request, pk)
    word = " ".join(gallery.printable(request.POST.get("word", "")).split())
    error = ""
    if not word or len(word) > MAX_TRIGGER_WORD_LENGTH:
        error = f"A trigger word needs 1 to {MAX_TRIGGER_WORD_LENGTH} characters."
    elif word not in adapter.trigger_words and len(adapter.trigger_words) >= MAX_TRIGGER_WORDS:
        error = f"At most {MAX_TRIGGER_WORDS} trigger words."
    elif word not in adapter.trigger_words:
        adapter.trigger_words = [*(adapter.trigger_words if isinstance(adapter.trigger_words, list) else []), word]
        adapter.sources["trigger_words"] = USER_SOURCE
        adapter.save(update_fields=["trigger_words", "sources", "updated_at"])
        sidecar_writing.after_edit(adapter.pk, ["trigger_words"])
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect(f"{reverse('adapters:detail', args=[pk])}#adapter-{pk}-triggers")
    if error:
        response = render(request, "adapters/_feedback.html", {"errors": [error]}, status=422)
        response["HX-Retarget"], response["HX-Reswap"] = "#feedback", "innerHTML"
        return response
    return render(request, "adapters/_detail_section.html", _section_context(adapter, "triggers"))
