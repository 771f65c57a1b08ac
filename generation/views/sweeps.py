"""Starting a sweep from an adapter's page, its one progress view, and its grid image."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from adapters.models import Adapter
from generation import ratings, storage, sweeps
from generation.forms import SweepForm
from generation.models import Sweep
from generation.views.results import adapter_context

VIEW = "generation.view_generationjob"
SUBMIT = "generation.add_generationjob"


@require_POST
@permission_required(SUBMIT, raise_exception=True)
def start(request: HttpRequest, pk: int) -> HttpResponse:
    adapter = Adapter.objects.filter(pk=pk).first()
    if adapter is None:
        raise Http404("no such adapter")
    form = SweepForm(request.POST)
    problem = ""
    if form.is_valid():
        data = form.cleaned_data
        try:
            if data["mode"] == "compare":
                sweep = sweeps.start_comparison(
                    [adapter, *data["others"]], data["weight"], form.composition(), request.user, data["private"]
                )
            else:
                sweep = sweeps.start_weight_sweep(
                    adapter, form.composition(), data["weight_list"], request.user, data["private"]
                )
        except sweeps.SweepError as exc:
            problem = str(exc)
        else:
            url = reverse("generation:sweep", args=[sweep.pk])
            if request.htmx:
                response = HttpResponse(status=204)
                response["HX-Redirect"] = url
                return response
            messages.success(request, f"Sweep #{sweep.pk} queued: {len(sweep.cells)} jobs, seed {sweep.seed}.")
            return redirect(url)
    context = adapter_context(request, adapter, form, problem)
    if request.htmx:
        return render(request, "generation/_adapter_results.html", context, status=422)
    return render(request, "generation/sweep_form_page.html", context, status=422)


def _visible_sweep(request: HttpRequest, pk: int) -> Sweep:
    return get_object_or_404(Sweep.objects.visible_to(request.user).select_related("adapter", "requested_by"), pk=pk)


def panel_context(sweep: Sweep, user) -> dict:
    jobs = sweeps.cell_jobs(sweep)
    images = [job.images.all()[0] if job is not None and job.images.all() else None for job in jobs]
    mine = ratings.for_user(user, [i for i in images if i is not None])
    cells = []
    for position, (job, image) in enumerate(zip(jobs, images, strict=True)):
        if image is not None:
            image.my_rating = mine.get(image.pk)
        label = sweep.labels[position] if position < len(sweep.labels) else f"cell {position + 1}"
        cells.append({"position": position, "label": label, "job": job, "image": image})
    return {"sweep": sweep, "cells": cells, "state": sweeps.progress(sweep, jobs)}


def render_panel(sweep_id: int, user) -> str:
    sweep = Sweep.objects.visible_to(user).select_related("adapter").filter(pk=sweep_id).first()
    if sweep is None:
        return ""
    context = {**panel_context(sweep, user), "user": user, "live": True}
    return render_to_string("generation/_sweep_panel.html", context)


@require_GET
@permission_required(VIEW, raise_exception=True)
def sweep(request: HttpRequest, pk: int) -> HttpResponse:
    found = _visible_sweep(request, pk)
    sweeps.finish_if_done(found.pk)  # self-healing: a grid missed because a worker died is drawn on view
    found.refresh_from_db()
    return render(request, "generation/sweep.html", panel_context(found, request.user))


@require_GET
@permission_required(VIEW, raise_exception=True)
def sweep_panel(request: HttpRequest, pk: int) -> HttpResponse:
    found = _visible_sweep(request, pk)
    return render(request, "generation/_sweep_panel.html", panel_context(found, request.user))


@require_GET
@permission_required(VIEW, raise_exception=True)
def grid(request: HttpRequest, pk: int) -> HttpResponse:
    found = _visible_sweep(request, pk)
    if not found.grid:
        raise Http404("the grid is not drawn yet")
    try:
        handle = storage.absolute(found.grid).open("rb")
    except (OSError, ValueError):
        raise Http404("the grid image is gone") from None
    response = FileResponse(handle, content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"
    if request.GET.get("download") == "1":
        response["Content-Disposition"] = f'attachment; filename="sweep{found.pk}-grid.png"'
    return response
