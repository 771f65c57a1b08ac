"""Recommendation pages, fragments and JSON. Views stay thin: the work is in ranking / feedback / embedding_runs.

Viewers may see suggestions and give feedback (it is theirs: stored per user); starting an
embedding run needs ``recommendations.add_embeddingrun`` (editors, admins).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from adapters.models import Adapter, BaseModel
from recommendations import embedding_runs, embeddings, feedback, ranking, status
from recommendations.models import EmbeddingRun, Feedback

VIEW = "adapters.view_adapter"
BASE_MODEL_CHOICES = [(value, label) for value, label in BaseModel.choices if value != BaseModel.UNKNOWN]


def _k(request: HttpRequest) -> int:
    try:
        return max(1, min(int(request.GET.get("k", ranking.DEFAULT_K)), ranking.MAX_K))
    except ValueError:
        return ranking.DEFAULT_K


def _with_ids(request: HttpRequest) -> list[int]:
    """``with=3,8,12``: LoRAs already in the composition (ignored tokens that are not ids)."""
    raw = request.GET.get("with", "")
    return [int(token) for token in raw.split(",") if token.strip().isdigit()][:20]


def _payload(results: ranking.Results, **extra: Any) -> JsonResponse:
    body = {
        "available": results.unavailable is None,
        "reason": results.unavailable,
        "note": results.note,
        **extra,
        "feedback_context": {"kind": results.kind, "context": results.context},
        "results": [suggestion.as_dict() for suggestion in results.suggestions],
    }
    return JsonResponse(body, status=503 if results.unavailable else 200)


@require_GET
@permission_required(VIEW, raise_exception=True)
def page(request: HttpRequest) -> HttpResponse:
    """The standalone page: the "LoRAs for this prompt" box and the status of the embeddings."""
    embeddings.warm_up_in_background()  # the prompt box needs the model: load it while the user types
    return render(request, "recommendations/page.html", _prompt_context(request, run_query=False))


def _prompt_context(request: HttpRequest, run_query: bool = True) -> dict[str, Any]:
    query = request.GET.get("q", "").strip()[: ranking.MAX_QUERY_CHARS]
    base_model = request.GET.get("base_model", "").strip()
    results = None
    error = ""
    if run_query or query:
        try:
            results = ranking.for_prompt(query, request.user, base_model or None, _k(request), _with_ids(request))
        except ValueError as exc:
            error = str(exc)
    return {
        "query": query,
        "base_model": base_model,
        "base_models": BASE_MODEL_CHOICES,
        "results": results,
        "error": error,
        "overview": status.overview(),
    }


@require_GET
@permission_required(VIEW, raise_exception=True)
def for_prompt(request: HttpRequest) -> HttpResponse:
    context = _prompt_context(request)
    if request.htmx:
        response = render(request, "recommendations/_prompt_results.html", context)
        return response if not context["error"] else HttpResponseBadRequest(response.content)
    return render(request, "recommendations/page.html", context, status=400 if context["error"] else 200)


@require_GET
@permission_required(VIEW, raise_exception=True)
def for_prompt_json(request: HttpRequest) -> JsonResponse:
    query = request.GET.get("q", "")
    base_model = request.GET.get("base_model", "").strip() or None
    if len(query) > ranking.MAX_QUERY_CHARS:
        return JsonResponse(
            {"error": f"the prompt is too long (at most {ranking.MAX_QUERY_CHARS} characters)"}, status=400
        )
    try:
        results = ranking.for_prompt(query, request.user, base_model, _k(request), _with_ids(request))
    except ValueError as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return _payload(results, query={"q": results.context, "base_model": base_model or ""})


def _similar(request: HttpRequest, adapter_id: int) -> tuple[Adapter, ranking.Results]:
    adapter = get_object_or_404(Adapter.objects.prefetch_related("tags"), pk=adapter_id)
    return adapter, ranking.similar(adapter, request.user, _k(request))


@require_GET
@permission_required(VIEW, raise_exception=True)
def similar(request: HttpRequest, adapter_id: int) -> HttpResponse:
    adapter, results = _similar(request, adapter_id)
    context = {"adapter": adapter, "results": results}
    if request.htmx:
        return render(request, "recommendations/_similar.html", context)
    return render(request, "recommendations/similar.html", context)


@require_GET
@permission_required(VIEW, raise_exception=True)
def similar_json(request: HttpRequest, adapter_id: int) -> JsonResponse:
    adapter, results = _similar(request, adapter_id)
    source = {"id": adapter.pk, "name": adapter.name, "base_model": adapter.base_model}
    return _payload(results, adapter=source)


@require_POST
@permission_required(VIEW, raise_exception=True)
def give_feedback(request: HttpRequest) -> HttpResponse:
    """Thumbs up / down (value 1 / -1; 0 clears) on one suggestion in its context."""
    kind = request.POST.get("kind", "")
    context = request.POST.get("context", "")
    try:
        adapter_id, value = int(request.POST.get("adapter", "")), int(request.POST.get("value", ""))
        if kind not in Feedback.Kind.values:
            raise ValueError("kind must be prompt or adapter")
        if not Adapter.objects.filter(pk=adapter_id).exists():
            return HttpResponse("This LoRA is no longer in the catalog.", status=404)
        vote = feedback.record(request.user, adapter_id, kind, context, value)
    except ValueError as exc:
        return HttpResponseBadRequest(f"Feedback not saved: {exc}")
    if request.htmx:
        context_text = feedback.normalize_context(kind, context)
        ctx = {"adapter_id": adapter_id, "vote": vote, "kind": kind, "fb_context": context_text}
        return render(request, "recommendations/_feedback.html", ctx)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        target = "recommendations:page"
    return redirect(target)


@require_POST
@permission_required("recommendations.add_embeddingrun", raise_exception=True)
def start_embedding(request: HttpRequest) -> HttpResponse:
    run = embedding_runs.request_embedding(
        reason="requested", user=request.user, rebuild=request.POST.get("rebuild") == "1"
    )
    if request.htmx:
        return render(request, "recommendations/_embed_progress.html", {"run": run})
    return redirect("recommendations:page")


@require_GET
@permission_required(VIEW, raise_exception=True)
def embedding_status(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "recommendations/_embed_progress.html", {"run": get_object_or_404(EmbeddingRun, pk=pk)})


@require_GET
@permission_required(VIEW, raise_exception=True)
def status_fragment(request: HttpRequest) -> HttpResponse:
    """The status panel on its own (for a dashboard: ``hx-get`` it)."""
    return render(request, "recommendations/_status.html", {"overview": status.overview()})


@require_GET
@permission_required(VIEW, raise_exception=True)
def status_json(request: HttpRequest) -> JsonResponse:
    info = status.overview()
    run = info.pop("run")
    info["run"] = (
        {"id": run.pk, "status": run.status, "done": run.done, "total": run.total, "message": run.message}
        if run
        else None
    )
    return JsonResponse(info)
