"""Jobs, job detail, history and images. Every fragment here is also what the websocket consumers send."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from generation import history, page_context, rerunning, storage, submitting
from generation.models import GenerationImage, GenerationJob, JobStatus

VIEW = "generation.view_generationjob"
CHANGE = "generation.change_generationjob"
SUBMIT = "generation.add_generationjob"
HISTORY_PAGE = 24


def _can(request: HttpRequest) -> tuple[bool, bool]:
    return request.user.has_perm(CHANGE), request.user.has_perm(SUBMIT)


@require_GET
@permission_required(VIEW, raise_exception=True)
def jobs(request: HttpRequest) -> HttpResponse:
    can_cancel, _ = _can(request)
    context = {**page_context.queue_context(can_cancel, request.user), **page_context.recent_context(request.user)}
    return render(request, "generation/jobs.html", context)


@require_GET
@permission_required(VIEW, raise_exception=True)
def queue_fragment(request: HttpRequest) -> HttpResponse:
    can_cancel, _ = _can(request)
    return render(request, "generation/_queue.html", page_context.queue_context(can_cancel, request.user))


@require_GET
@permission_required(VIEW, raise_exception=True)
def recent_fragment(request: HttpRequest) -> HttpResponse:
    return render(request, "generation/_recent.html", page_context.recent_context(request.user))


@require_GET
@permission_required(VIEW, raise_exception=True)
def job(request: HttpRequest, pk: int) -> HttpResponse:
    found = get_object_or_404(GenerationJob.objects.select_related("requested_by").visible_to(request.user), pk=pk)
    return render(request, "generation/job.html", page_context.job_context(found, *_can(request)))


@require_GET
@permission_required(VIEW, raise_exception=True)
def job_panel(request: HttpRequest, pk: int) -> HttpResponse:
    found = get_object_or_404(GenerationJob.objects.select_related("requested_by").visible_to(request.user), pk=pk)
    return render(request, "generation/_job_panel.html", page_context.job_context(found, *_can(request)))


@require_POST
@permission_required(CHANGE, raise_exception=True)
def cancel(request: HttpRequest, pk: int) -> HttpResponse:
    found = get_object_or_404(GenerationJob.objects.visible_to(request.user), pk=pk)
    message = submitting.cancel(found.pk)
    if request.htmx:
        if request.POST.get("fragment") == "panel":
            found.refresh_from_db()
            response = render(request, "generation/_job_panel.html", page_context.job_context(found, *_can(request)))
        else:
            response = render(request, "generation/_queue.html", page_context.queue_context(True, request.user))
        response["HX-Trigger"] = "job-cancel-requested"
        return response
    messages.info(request, f"Job #{found.pk}: {message}")
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        target = reverse("generation:job", args=[found.pk])
    return redirect(target)


@require_POST
@permission_required(SUBMIT, raise_exception=True)
def rerun(request: HttpRequest, pk: int) -> HttpResponse:
    found = get_object_or_404(GenerationJob.objects.visible_to(request.user), pk=pk)
    try:
        new = rerunning.rerun(found, request.user)
    except submitting.SubmitError as exc:
        messages.error(request, f"Could not re-run job #{found.pk}: {exc}")
        return redirect("generation:job", pk=found.pk)
    messages.success(request, f"Job #{new.pk} queued (a re-run of #{found.pk}).")
    url = reverse("generation:job", args=[new.pk])
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


@require_GET
@permission_required(VIEW, raise_exception=True)
def image(request: HttpRequest, pk: int, index: int, kind: str) -> HttpResponse:
    if kind not in ("original", "thumb"):
        raise Http404("unknown image kind")
    found = get_object_or_404(GenerationImage.objects.visible_to(request.user), job_id=pk, index=index)
    relative = found.path if kind == "original" else (found.thumbnail or found.path)
    try:
        path = storage.absolute(relative)
        handle = path.open("rb")
    except (OSError, ValueError):
        raise Http404("the image file is gone") from None
    content_type = "image/webp" if kind == "thumb" and found.thumbnail else storage.CONTENT_TYPES.get(found.format)
    response = FileResponse(handle, content_type=content_type or "application/octet-stream")
    response["Cache-Control"] = "private, max-age=86400"
    if request.GET.get("download") == "1":
        response["Content-Disposition"] = f'attachment; filename="job{pk}-{index + 1}{path.suffix}"'
    return response


@require_GET
@permission_required(VIEW, raise_exception=True)
def history_page(request: HttpRequest) -> HttpResponse:
    filters = history.parse(request.GET)
    page = Paginator(history.jobs(filters).visible_to(request.user), HISTORY_PAGE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "filters": filters,
        "querystring": filters.querystring(),
        "checkpoints": history.checkpoints(),
        "statuses": JobStatus.choices,
        "sorts": history.SORT_LABELS,
    }
    if request.htmx and request.htmx.target == "history-results":
        return render(request, "generation/_history_results.html", context)
    return render(request, "generation/history.html", context)
