"""Library pages. Views stay thin: the work is in scanning / scan_runs / bulk_edit."""

from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from adapters import scan_runs, thumbnails
from adapters.models import Adapter, ScanRun

PAGE_SIZE = 50


@require_GET
@permission_required("adapters.view_adapter", raise_exception=True)
def library(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    adapters = Adapter.objects.all()
    if query:
        adapters = adapters.filter(Q(name__icontains=query) | Q(alias__icontains=query))
    page = Paginator(adapters.order_by("name", "id"), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "query": query, "scan": ScanRun.objects.first()}
    if request.htmx and request.htmx.target == "adapter-results":
        return render(request, "adapters/library.html#results", context)
    return render(request, "adapters/library.html", context)


@require_POST
@permission_required("adapters.scan_library", raise_exception=True)
def start_scan(request: HttpRequest) -> HttpResponse:
    run = scan_runs.start_scan(user=request.user, hash_files=request.POST.get("hash", "1") != "0")
    return render(request, "adapters/_scan_progress.html", {"scan": run})


@require_GET
@permission_required("adapters.view_adapter", raise_exception=True)
def scan_status(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "adapters/_scan_progress.html", {"scan": get_object_or_404(ScanRun, pk=pk)})


@require_GET
@permission_required("adapters.view_adapter", raise_exception=True)
def preview(request: HttpRequest, pk: int, size: str) -> HttpResponse:
    if size not in thumbnails.SIZES:
        raise Http404("unknown thumbnail size")
    adapter = get_object_or_404(Adapter.objects.only("pk", "preview_source", "preview_key", "issues"), pk=pk)
    key = thumbnails.ensure_thumbnails(adapter)
    if not key:
        raise Http404("this adapter has no preview")
    if request.headers.get("If-None-Match") == f'"{key}"':
        return HttpResponseNotModified()
    response = FileResponse(open(thumbnails.thumbnail_path(key, size), "rb"), content_type="image/webp")  # noqa: SIM115
    response["ETag"] = f'"{key}"'
    response["Cache-Control"] = "private, max-age=300"
    return response
