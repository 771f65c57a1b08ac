"""Composer pages. Thin: prompts and the linter are in composer.py, submitting in submitting.py."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST

from adapters.models import Adapter, AdapterStatus
from generation import backends, composer, deliveries, forms, lora_names, page_context, recipes, submitting
from generation.models import DeliveryTarget, GenerationJob, Preset
from generation.sdnext import SDNextError

VIEW = "generation.view_generationjob"
SUBMIT = "generation.add_generationjob"


def _unreadable_note(adapter: Adapter) -> str:
    """Why an unreadable file is not put in the composer: where the user finds its reason."""
    return f"“{adapter.name}” could not be read (see Files with problems)"


def _initial(request: HttpRequest) -> tuple[composer.Composition, list[str]]:
    """The composition a GET asks for: ?job=, ?preset=, then ?adapter= (repeatable) added to it."""
    notes: list[str] = []
    composition = composer.Composition()
    if (job_id := request.GET.get("job", "")).isdigit():
        job = GenerationJob.objects.visible_to(request.user).filter(pk=int(job_id)).first()
        if job is None:  # someone else's private job reads as gone: not even its existence is told
            notes.append(f"Job #{job_id} no longer exists.")
        else:
            composition = composer.Composition.from_dict(job.composition)
            notes.append(f"Loaded from job #{job.pk}.")
    elif (recipe_id := request.GET.get("recipe", "")).isdigit():
        recipe = recipes.visible(request.user).filter(pk=int(recipe_id)).first()
        if recipe is None:
            notes.append(f"Recipe #{recipe_id} no longer exists.")
        else:
            composition, recipe_notes = recipes.composition_for(recipe, backends.server_info(composition.backend))
            notes += [f"Loaded from recipe “{recipe}”.", *recipe_notes]
    elif (preset_id := request.GET.get("preset", "")).isdigit():
        preset = Preset.objects.filter(pk=int(preset_id)).first()
        if preset is None:
            notes.append("That preset no longer exists.")
        else:
            composition = composer.Composition.from_dict(preset.data)
            notes.append(f"Loaded preset “{preset.name}”.")
    wanted = [int(pk) for pk in request.GET.getlist("adapter") if pk.isdigit()][: composer.MAX_LORAS]
    adapters = Adapter.objects.in_bulk(wanted)
    for pk in wanted:
        if pk not in adapters:
            continue
        if adapters[pk].status == AdapterStatus.ERROR:  # a file that could not be read is no LoRA (issue 15)
            notes.append(_unreadable_note(adapters[pk]) + ": not added.")
        else:
            composition.loras.append(page_context.choice_for(adapters[pk]))
    if request.GET.get("backend") in backends.names():
        composition.backend = request.GET["backend"]
    if composition.backend not in backends.names():
        composition.backend = "default"
    return composition, notes


def _compose_context(request: HttpRequest, composition: composer.Composition, errors: dict | None = None) -> dict:
    info = backends.server_info(composition.backend)
    lora_names.read_on_first_use(composition.backend, info)
    can_cancel = request.user.has_perm("generation.change_generationjob")
    return {
        "composition": composition,
        "rows": page_context.lora_rows(composition),
        "built": composer.build(composition, info),
        "errors": errors or {},
        "error_messages": forms.messages(errors or {}),
        "backend_names": backends.names(),
        "presets": page_context.presets(),
        "popular": page_context.popular_adapters(),
        "delivery_targets": deliveries.enabled_targets(),
        "limits": {
            "steps": composer.STEPS,
            "size": composer.SIZE,
            "cfg": composer.CFG,
            "batch": composer.BATCH,
            "count": composer.COUNT,
            "seed": composer.SEED,
        },
        **page_context.backend_context(composition.backend, info, composition),
        **page_context.queue_context(can_cancel, request.user),
    }


@require_GET
@permission_required(VIEW, raise_exception=True)
def compose(request: HttpRequest) -> HttpResponse:
    composition, notes = _initial(request)
    for note in notes:
        messages.info(request, note)
    return render(request, "generation/compose.html", _compose_context(request, composition))


@require_POST
@permission_required(VIEW, raise_exception=True)
def preview(request: HttpRequest) -> HttpResponse:
    composition, errors = forms.parse(request.POST)
    built = composer.build(composition)
    return render(request, "generation/_preview.html", {"built": built, "error_messages": forms.messages(errors)})


@require_POST
@permission_required(SUBMIT, raise_exception=True)
def submit(request: HttpRequest) -> HttpResponse:
    composition, errors = forms.parse(request.POST)
    job, problem = None, ""
    private = request.POST.get("private") == "1"
    target_id = request.POST.get("target", "").strip()
    target = None
    if target_id:  # another delivery than SD.Next: only a target an admin configured, by id
        target = DeliveryTarget.objects.filter(pk=int(target_id)).first() if target_id.isdigit() else None
        if target is None:
            problem = "That delivery target does not exist (any more): choose one from the list."
    if not errors and not problem:
        try:
            if target is not None:
                job = deliveries.submit(composition, target, request.user, private=private)
            else:
                job = submitting.submit(composition, request.user, private=private)
        except (submitting.SubmitError, deliveries.DeliveryError) as exc:
            problem = str(exc)
    if request.htmx:
        context = {"error_messages": forms.messages(errors), "problem": problem, "job": job}
        return render(request, "generation/_feedback.html", context)
    if job is not None:
        messages.success(request, f"Job #{job.pk} queued.")
        return redirect("generation:job", pk=job.pk)
    if problem:
        errors["form"] = problem
    return render(request, "generation/compose.html", _compose_context(request, composition, errors), status=400)


@require_GET
@permission_required(VIEW, raise_exception=True)
def lora_search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    adapters = page_context.search_adapters(query) if query else page_context.popular_adapters()
    return render(request, "generation/_lora_search.html", {"adapters": adapters, "query": query})


@require_GET
@permission_required(VIEW, raise_exception=True)
def lora_row(request: HttpRequest) -> HttpResponse:
    raw = request.GET.get("adapter", "")
    adapter = get_object_or_404(Adapter, pk=int(raw)) if raw.isdigit() else None
    if adapter is None:
        return HttpResponse("Choose a LoRA from the list.", status=400)
    if adapter.status == AdapterStatus.ERROR:  # a list shown before a rescan found the file broken
        # 409 is one of the statuses htmx swaps (static/js/htmx-errors.js): the reason shows under the rows.
        note = format_html(
            '<p class="message notice" role="alert">“{}” could not be read (see <a href="{}">Files with problems</a>): '
            "not added.</p>",
            adapter.name,
            reverse("adapters:problems"),
        )
        return HttpResponse(note, status=409)
    response = render(
        request, "generation/_lora_row.html", {"row": page_context.lora_row(adapter, page_context.choice_for(adapter))}
    )
    # After the swap: the preview re-reads the form, which must already hold the new row (item 3).
    response["HX-Trigger-After-Swap"] = "composer-changed"
    return response


@require_GET
@permission_required(VIEW, raise_exception=True)
def backend_status(request: HttpRequest) -> HttpResponse:
    name = request.GET.get("backend", "default")
    name = name if name in backends.names() else "default"
    composition = composer.Composition(
        backend=name, checkpoint=request.GET.get("checkpoint", "")[:255], sampler=request.GET.get("sampler", "")[:100]
    )
    info = backends.server_info(name, refresh=request.GET.get("refresh") == "1")
    lora_names.read_on_first_use(name, info)
    response = render(request, "generation/_backend.html", page_context.backend_context(name, info, composition))
    response["HX-Trigger-After-Swap"] = "composer-changed"
    return response


@require_POST
@permission_required(SUBMIT, raise_exception=True)
def refresh_loras(request: HttpRequest) -> HttpResponse:
    name = request.POST.get("backend", "default")
    name = name if name in backends.names() else "default"
    try:
        sync = lora_names.refresh(name)
        message = f"SD.Next lists {sync.lora_count} LoRAs; {sync.matched_count} matched to the catalog."
    except (SDNextError, backends.BackendNotConfigured) as exc:
        message = f"Could not refresh the LoRA list: {exc}"
    if not request.htmx:
        messages.info(request, message)
        return redirect(f"{reverse('generation:compose')}?backend={name}")
    composition = composer.Composition(
        backend=name, checkpoint=request.POST.get("checkpoint", "")[:255], sampler=request.POST.get("sampler", "")[:100]
    )
    info = backends.server_info(name)
    response = render(
        request, "generation/_backend.html", page_context.backend_context(name, info, composition, message)
    )
    response["HX-Trigger-After-Swap"] = "composer-changed"
    return response


@require_POST
@permission_required("generation.add_preset", raise_exception=True)
def save_preset(request: HttpRequest) -> HttpResponse:
    composition, errors = forms.parse(request.POST)
    form = forms.PresetForm(request.POST)
    message = ""
    if errors:
        message = "Fix the form first: " + "; ".join(errors.values())
    elif not form.is_valid():
        message = " ".join(str(e) for errs in form.errors.values() for e in errs)
    else:
        name = form.cleaned_data["preset_name"]
        _, created = Preset.objects.update_or_create(
            name=name, defaults={"data": composition.to_dict(), "owner": request.user}
        )
        message = f"Preset “{name}” {'saved' if created else 'updated'}."
    if not request.htmx:
        messages.info(request, message)
        return HttpResponseRedirect(reverse("generation:compose"))
    return render(request, "generation/_presets.html", {"presets": page_context.presets(), "preset_message": message})


@require_POST
@permission_required("generation.delete_preset", raise_exception=True)
def delete_preset(request: HttpRequest, pk: int) -> HttpResponse:
    deleted, _ = Preset.objects.filter(pk=pk).delete()
    message = "Preset deleted." if deleted else "That preset was already deleted."
    if not request.htmx:
        messages.info(request, message)
        return HttpResponseRedirect(reverse("generation:compose"))
    return render(request, "generation/_presets.html", {"presets": page_context.presets(), "preset_message": message})
