"""Archive pages: export (all / gallery filter / selection), upload + dry-run plan + import, backups.

Views stay thin: they check permissions, create a run (``archive.runs``) and show its row; the work
happens in RQ jobs, and progress arrives over the websocket like a scan's.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST

from adapters import gallery
from adapters.models import Adapter
from archive import backups, runs
from archive.models import ArchiveRun
from archive.planning import ON_CONFLICT
from archive.uploads import FORM_OVERHEAD, TOO_LARGE, ArchiveUploadHandler

VIEW = "archive.view_archiverun"
EXPORT = "archive.export_library"
IMPORT = "archive.import_library"


def _to_run(request: HttpRequest, run: ArchiveRun) -> HttpResponse:
    url = reverse("archive:run", args=[run.pk])
    if getattr(request, "htmx", None):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def _error(request: HttpRequest, message: str, status: int = 422) -> HttpResponse:
    if getattr(request, "htmx", None):
        response = render(request, "archive/_error.html", {"message": message}, status=status)
        target = "#feedback" if request.POST.get("from_gallery") else "#archive-feedback"  # the library's bulk bar
        response["HX-Retarget"], response["HX-Reswap"] = target, "innerHTML"
        return response
    messages.error(request, message)
    return redirect("archive:page")


@require_GET
@permission_required(VIEW, raise_exception=True)
def page(request: HttpRequest) -> HttpResponse:
    filter_qs = gallery.parse(QueryDict(request.GET.get("filter", "")[:4000])).querystring()
    context = {
        "filter": filter_qs,
        "filter_count": len(gallery.matching_ids(filter_qs)) if filter_qs else None,
        "total": Adapter.objects.count(),
        "backups": backups.list_backups(),
        "runs": ArchiveRun.objects.select_related("requested_by")[:15],
        "on_conflict": ON_CONFLICT,
        "max_upload": settings.ARCHIVE_MAX_UPLOAD_BYTES,
        "backup_interval": settings.BACKUP_INTERVAL_HOURS,
        "backup_keep": settings.BACKUP_KEEP,
    }
    return render(request, "archive/page.html", context)


@require_POST
@permission_required(EXPORT, raise_exception=True)
def export(request: HttpRequest) -> HttpResponse:
    """Scope "all", "filter" (a gallery query string) or "selected" (ids): the gallery's bulk form posts here too."""
    scope = request.POST.get("scope") or ("selected" if request.POST.getlist("ids") else "all")
    if request.POST.get("from_gallery") and scope != "filter":
        scope = "selected"  # the gallery's bulk form: no selection must never mean "everything"
    options = {
        "metadata_only": request.POST.get("metadata_only") in ("1", "on", "true"),
        "include_history": request.POST.get("include_history") in ("1", "on", "true"),
    }
    if scope == "filter":
        ids = gallery.matching_ids(gallery.parse(QueryDict(request.POST.get("filter", "")[:4000])).querystring())
        if not ids:
            return _error(request, "Nothing matches this filter: there is nothing to export.")
    elif scope == "selected":
        try:
            wanted = {int(v) for v in request.POST.getlist("ids")}
        except ValueError:
            return _error(request, "The selection is not a list of adapter ids.")
        ids = sorted(Adapter.objects.filter(pk__in=wanted).values_list("pk", flat=True))
        if not ids:
            return _error(request, "Select at least one adapter to export (or export everything).")
    elif scope == "all":
        ids = None
    else:
        return _error(request, f"Unknown export scope {scope!r}.")
    run = runs.start_export(request.user, adapter_ids=ids, scope=scope, **options)
    return _to_run(request, run)


@csrf_exempt
def upload(request: HttpRequest) -> HttpResponse:
    """Upload handlers must be in place before the body is parsed, hence csrf_exempt + csrf_protect.
    The permission is checked first, before anything touches the body (lora_manager.upload_gate checked
    it before Django read it, too): a refused upload writes nothing."""
    if request.method == "POST" and not request.user.has_perm(IMPORT):
        raise PermissionDenied("Your role cannot import archives.")
    limit = f"{settings.ARCHIVE_MAX_UPLOAD_BYTES // 2**20} MB"
    too_large = f"The archive is larger than the upload limit of {limit} (LORA_MANAGER_ARCHIVE_MAX_UPLOAD_MB)."
    declared = request.META.get("CONTENT_LENGTH") or "0"
    over = getattr(request, "scope", {}).get(TOO_LARGE) or (
        declared.isdigit() and int(declared) > settings.ARCHIVE_MAX_UPLOAD_BYTES + FORM_OVERHEAD
    )
    if request.method == "POST" and over and request.user.has_perm(IMPORT):
        return _error(request, too_large, 413)  # refused without reading (or keeping) the body
    handler = ArchiveUploadHandler(request)
    request.upload_handlers = [handler]
    response = _upload(request, too_large)
    if not handler.kept:
        handler.abort()  # refused after the body was read (a failed CSRF check, a bad form): keep nothing
    return response


@csrf_protect
@require_POST
@permission_required(IMPORT, raise_exception=True)
def _upload(request: HttpRequest, too_large: str) -> HttpResponse:
    handler = request.upload_handlers[0]
    file = request.FILES.get("archive")
    if handler.too_large:
        return _error(request, too_large, 413)
    if file is None:
        handler.abort()
        return _error(request, "Choose a .zip archive to upload.")
    file.close()
    on_conflict = request.POST.get("on_conflict", "skip")
    if on_conflict not in ON_CONFLICT:
        handler.abort()
        return _error(request, f"Unknown conflict option {on_conflict!r}.")
    run = runs.start_check(handler.path, request.user, original_name=file.name[:255], on_conflict=on_conflict)
    handler.kept = True
    return _to_run(request, run)


@require_GET
@permission_required(VIEW, raise_exception=True)
def run_page(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(ArchiveRun, pk=pk)
    return render(request, "archive/run.html", {"run": run, "on_conflict": ON_CONFLICT})


@require_GET
@permission_required(VIEW, raise_exception=True)
def run_status(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(ArchiveRun, pk=pk)
    return render(request, "archive/_run.html", {"run": run, "on_conflict": ON_CONFLICT})


@require_POST
@permission_required(IMPORT, raise_exception=True)
def confirm(request: HttpRequest, pk: int) -> HttpResponse:
    check = get_object_or_404(ArchiveRun, pk=pk, kind=ArchiveRun.Kind.CHECK)
    if check.status != ArchiveRun.Status.READY or not Path(check.path).is_file():
        return _error(request, "This archive has not been checked successfully (or was already imported).", 409)
    on_conflict = request.POST.get("on_conflict", check.options.get("on_conflict", "skip"))
    if on_conflict not in ON_CONFLICT:
        return _error(request, f"Unknown conflict option {on_conflict!r}.")
    ArchiveRun.objects.filter(pk=check.pk).update(status=ArchiveRun.Status.SUCCEEDED, message="import started")
    return _to_run(request, runs.start_import(check, on_conflict, request.user))


@require_GET
@permission_required(EXPORT, raise_exception=True)
def download(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(ArchiveRun, pk=pk, kind__in=[ArchiveRun.Kind.EXPORT, ArchiveRun.Kind.BACKUP])
    if not may_download(run, request.user):
        raise Http404("this archive holds another user's results: only they and admins can download it")
    path = Path(run.path)
    if run.status != ArchiveRun.Status.SUCCEEDED or not path.is_file():
        raise Http404("this archive is not (or no longer) available")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)


def may_download(run: ArchiveRun, user) -> bool:
    """Archives with generation history hold what their requester may see (backups: everyone's, private
    results included), so only the requester and admins download them; metadata-only exports are shared."""
    holds_history = run.kind == ArchiveRun.Kind.BACKUP or run.options.get("include_history")
    return not holds_history or user.is_staff or (run.requested_by_id is not None and run.requested_by_id == user.pk)


@require_POST
@permission_required(EXPORT, raise_exception=True)
def backup_now(request: HttpRequest) -> HttpResponse:
    return _to_run(request, runs.start_backup(request.user, weights=request.POST.get("weights") == "1"))


@require_GET
@permission_required(EXPORT, raise_exception=True)
def backup_download(request: HttpRequest, name: str) -> HttpResponse:
    if not request.user.is_staff:  # a backup holds every user's results, private ones included
        raise PermissionDenied("Only admins can download backups: they hold every user's results.")
    path = backups.backup_path(name)
    if path is None:
        raise Http404("no such backup")
    return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)


@require_POST
@permission_required(IMPORT, raise_exception=True)
def backup_restore(request: HttpRequest, name: str) -> HttpResponse:
    """Restore = an import of the backup, starting with its dry-run plan."""
    path = backups.backup_path(name)
    if path is None:
        raise Http404("no such backup")
    return _to_run(request, runs.start_check(path, request.user, original_name=name, upload=False))
