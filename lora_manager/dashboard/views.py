"""The dashboard (home page), the system status page and its staff JSON. Thin: the figures are in
``dashboard/figures.py`` / ``dashboard/activity_feed.py``, the checks in ``system_status.py``."""

from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from adapters.models import Adapter
from lora_manager import system_status
from lora_manager.dashboard import charts
from lora_manager.dashboard import figures as dashboard_figures
from lora_manager.models import SuggestionAcceptance

REFRESH_SECONDS = 15


def _dashboard_context() -> dict:
    figures = dashboard_figures.collect()
    return {
        "figures": figures,
        "library": figures["library"],
        "usage": figures["usage"],
        "recs": figures["recommendations"],
        "activity": figures["activity"],
        "generations_chart": charts.stacked_days(figures["usage"]["per_day"]),
        "base_chart": charts.bars(figures["library"]["by_base_model"], "chart-base-models"),
        "type_chart": charts.bars(figures["library"]["by_network_type"], "chart-network-types"),
        "refresh_seconds": REFRESH_SECONDS,
    }


@never_cache
@require_GET
@permission_required("adapters.view_adapter", raise_exception=True)
def home(request: HttpRequest) -> HttpResponse:
    template = "lora_manager/dashboard/_figures.html" if request.htmx else "lora_manager/dashboard/page.html"
    return render(request, template, _dashboard_context())


@require_POST
def suggestion_accepted(request: HttpRequest) -> HttpResponse:
    """Record that a suggestion was added to a composition (its "Add to composition" button posts here)."""
    adapter_id, kind = request.POST.get("adapter", ""), request.POST.get("kind", "")
    if kind not in SuggestionAcceptance.Kind.values or not adapter_id.isdigit() or len(adapter_id) > 18:
        return HttpResponse("adapter must be an id and kind 'prompt' or 'adapter'", status=400)
    if not Adapter.objects.filter(pk=int(adapter_id)).exists():
        return HttpResponse("no such adapter", status=404)
    SuggestionAcceptance.objects.create(user=request.user, adapter_id=int(adapter_id), kind=kind)
    return HttpResponse(status=204)


@never_cache
@require_GET
def status_page(request: HttpRequest) -> HttpResponse:
    """Staff see every detail; everyone else sees states only (paths, worker ids and versions are staff-only,
    as in status.json)."""
    status = system_status.collect()
    context = {"status": status, "refresh_seconds": REFRESH_SECONDS}
    if not request.user.is_staff:
        context["public"] = system_status.public_summary(status)
    template = "lora_manager/_status.html" if request.htmx else "lora_manager/status.html"
    return render(request, template, context)


@never_cache
@require_GET
def status_json(request: HttpRequest) -> JsonResponse:
    if not request.user.is_staff:
        return JsonResponse({"detail": "The status JSON is for staff (admins) only."}, status=403)
    status = system_status.collect()
    return JsonResponse(status, status=200 if status["ok"] else 503)
