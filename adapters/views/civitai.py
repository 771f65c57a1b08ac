"""Civitai pages: start a lookup (library, detail page), watch it, cancel it, and the NSFW blur preference.
The work is in ``civitai_runs`` / ``civitai_lookup``; these views only start runs and render their rows."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from adapters import civitai_lookup, civitai_runs
from adapters.models import Adapter, CivitaiRun, NsfwLevel
from adapters.views.detail import gone

NSFW_CHOICES = [(level.value, level.label) for level in NsfwLevel if level != NsfwLevel.XXX] + [
    (NsfwLevel.XXX.value, "Never blur")
]


def _refused(request: HttpRequest, message: str, back: str) -> HttpResponse:
    if not request.htmx:
        messages.error(request, message)
        return redirect(back)
    response = render(request, "adapters/_feedback.html", {"errors": [message]}, status=409)
    response["HX-Retarget"], response["HX-Reswap"] = "#feedback", "innerHTML"
    return response


def _progress(request: HttpRequest, run: CivitaiRun, back: str, adapter_id: int | None = None) -> HttpResponse:
    if not request.htmx:
        messages.success(request, f"Civitai lookup #{run.pk}: {run.get_status_display().lower()}.")
        return redirect(back)
    return render(request, "adapters/_civitai_progress.html", {"run": run, "adapter_id": adapter_id})


@require_POST
@permission_required("adapters.change_adapter", raise_exception=True)
def start(request: HttpRequest) -> HttpResponse:
    back = reverse("adapters:library")
    mode = request.POST.get("mode", CivitaiRun.Mode.MISSING)
    if mode not in (CivitaiRun.Mode.MISSING, CivitaiRun.Mode.DUE, CivitaiRun.Mode.ALL):
        return _refused(request, "Unknown kind of lookup.", back)
    try:
        run = civitai_runs.start_run(mode, user=request.user)
    except civitai_runs.CivitaiOff as exc:
        return _refused(request, str(exc), back)
    return _progress(request, run, back)


@require_POST
@permission_required("adapters.change_adapter", raise_exception=True)
def lookup_adapter(request: HttpRequest, pk: int) -> HttpResponse:
    """The detail page's button: a run over this one adapter."""
    if not Adapter.objects.filter(pk=pk).exists():
        return gone(request, pk)
    back = reverse("adapters:detail", args=[pk])
    try:
        run = civitai_runs.start_run(CivitaiRun.Mode.SELECTED, [pk], user=request.user)
    except civitai_runs.CivitaiOff as exc:
        return _refused(request, str(exc), back)
    if run.mode != CivitaiRun.Mode.SELECTED or run.adapter_ids != [pk]:
        message = f"Civitai lookup #{run.pk} is running; try again when it has finished (or cancel it)."
        return _refused(request, message, back)
    return _progress(request, run, back, adapter_id=pk)


@require_GET
@permission_required("adapters.view_adapter", raise_exception=True)
def status(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(CivitaiRun, pk=pk)
    adapter_id = run.adapter_ids[0] if run.mode == CivitaiRun.Mode.SELECTED and len(run.adapter_ids) == 1 else None
    return render(request, "adapters/_civitai_status.html", {"run": run, "adapter_id": adapter_id})


@require_POST
@permission_required("adapters.change_adapter", raise_exception=True)
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    run = civitai_runs.request_cancel(get_object_or_404(CivitaiRun, pk=pk))
    return _progress(request, run, reverse("adapters:library"))


@require_POST
@permission_required("adapters.view_adapter", raise_exception=True)
def nsfw_preference(request: HttpRequest) -> HttpResponse:
    raw = request.POST.get("nsfw_blur_above", "")
    try:
        civitai_lookup.set_blur_threshold(request.user, int(raw) if raw.isdigit() and len(raw) < 4 else -1)
    except ValueError as exc:
        messages.error(request, f"Not saved: {exc}.")
    else:
        messages.success(request, "Saved: previews above that level are blurred until clicked.")
    return redirect(reverse("adapters:library"))
