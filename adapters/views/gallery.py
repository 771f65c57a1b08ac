"""Library pages. Views stay thin: the work is in gallery / bulk_actions / selection / scan_runs."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotModified, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST

from adapters import bulk_actions, bulk_edit, civitai_lookup, gallery, scan_runs, selection, thumbnails
from adapters.forms import BulkForm
from adapters.models import Adapter, BaseModel, BulkAction, CivitaiRun, ScanRun
from adapters.views.civitai import NSFW_CHOICES

VIEW_COOKIE = "gallery_view"
VIEWS = ("grid", "list")


def _view_mode(request: HttpRequest) -> tuple[str, bool]:
    """Grid or list: from the URL when given (and then remembered in a cookie), else the cookie."""
    chosen = request.GET.get("view", "")
    if chosen in VIEWS:
        return chosen, True
    remembered = request.COOKIES.get(VIEW_COOKIE, "")
    return (remembered if remembered in VIEWS else "grid"), False


def gallery_context(request: HttpRequest, query: gallery.GalleryQuery, view: str) -> dict:
    results = gallery.results(query)
    civitai_lookup.annotate_cards(results.page.object_list, request.user)
    querystring = query.querystring()
    return {
        "results": results,
        "query": query,
        "page": results.page,
        "facets": results.facets,
        "view": view,
        "querystring": querystring,
        "all_folders_qs": query.querystring(folder=""),
        "page_prefix": f"?{querystring}&page=" if querystring else "?page=",
        "page_range": results.page.paginator.get_elided_page_range(results.page.number, on_each_side=2, on_ends=1),
        "base_choices": BaseModel.choices,
        "bulk_actions": bulk_actions.offered(request.user),
        "civitai_enabled": civitai_lookup.enabled(),
    }


@require_GET
@permission_required("adapters.view_adapter", raise_exception=True)
def library(request: HttpRequest) -> HttpResponse:
    query = gallery.parse(request.GET)
    view, chosen = _view_mode(request)
    context = gallery_context(request, query, view)
    context["scan"] = ScanRun.objects.first()
    if request.htmx and request.htmx.target == "adapter-results":
        response = render(request, "adapters/_results.html", {**context, "oob": True})
        if request.htmx.trigger != "adapter-results":  # not the list refreshing itself after a bulk action
            # The address bar gets the canonical query (no empty fields), not the raw form submission.
            canonical = query.querystring(page=query.page if query.page > 1 else "")
            response["HX-Push-Url"] = reverse("adapters:library") + (f"?{canonical}" if canonical else "")
    else:
        context.update(undo=bulk_edit.latest_undoable(request.user))
        context.update(
            civitai_run=CivitaiRun.objects.first(), nsfw_blur_above=civitai_lookup.blur_threshold(request.user)
        )
        context["nsfw_choices"] = NSFW_CHOICES
        response = render(request, "adapters/library.html", context)
    if chosen:
        response.set_cookie(
            VIEW_COOKIE, view, max_age=365 * 24 * 3600, samesite="Lax", httponly=True, secure=settings.HTTPS
        )
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


def _feedback(request: HttpRequest, context: dict, status: int = 200, refresh: bool = False) -> HttpResponse:
    """The bulk-action message (and Undo, or a confirmation) as a fragment; full pages get a redirect."""
    if not request.htmx:
        if context.get("confirm"):
            return render(request, "adapters/bulk_confirm.html", context, status=status)
        level = messages.ERROR if status >= 400 else messages.SUCCESS
        messages.add_message(request, level, context.get("message") or " ".join(context.get("errors", [])))
        filter_qs = context.get("filter", "")
        return redirect(reverse("adapters:library") + (f"?{filter_qs}" if filter_qs else ""))
    response = render(request, "adapters/_feedback.html", context, status=status)
    if status >= 400:
        response["HX-Retarget"], response["HX-Reswap"] = "#feedback", "innerHTML"
    if refresh:
        response["HX-Trigger"] = "gallery-changed"
    return response


@require_POST
@permission_required("adapters.change_adapter", raise_exception=True)
def bulk(request: HttpRequest) -> HttpResponse:
    """One action of ``bulk_actions.ACTIONS`` over the selected adapters or every match of the filter."""
    form = BulkForm(request.POST, actions=bulk_actions.ACTIONS)
    raw_filter = request.POST.get("filter", "")[: selection.MAX_FILTER_LENGTH]
    base = {"filter": gallery.parse(QueryDict(raw_filter)).querystring()}
    if not form.is_valid():
        errors = [str(e) for field_errors in form.errors.values() for e in field_errors]
        return _feedback(request, {**base, "errors": errors}, status=422)
    data = form.cleaned_data
    action = bulk_actions.ACTIONS[data["action"]]
    if not bulk_actions.allowed(request.user, action):
        raise PermissionDenied
    by_filter = data["scope"] == "filter"
    try:
        chosen = selection.resolve(filter=raw_filter) if by_filter else selection.resolve(ids=data["ids"])
    except selection.InvalidSelection as exc:
        return _feedback(request, {**base, "errors": [str(exc)]}, status=422)
    if not chosen.ids:
        message = (
            "None of the selected adapters exist any more: they were removed, perhaps by someone else. "
            "The list is now up to date."
            if chosen.missing
            else "Nothing matches this filter any more."
        )
        return _feedback(request, {**base, "errors": [message]}, status=409, refresh=True)
    if action.confirm and not data["confirm"]:
        context = {
            **base,
            "confirm": True,
            "action": action,
            "count": len(chosen.ids),
            "ids": [] if by_filter else data["ids"],
            "scope": data["scope"],
            "undoable": action.undo is not None and len(chosen.ids) <= bulk_edit.MAX_UNDOABLE_REMOVAL,
        }
        return _feedback(request, context)
    params = bulk_actions.Params(tags=tuple(data["tag_names"]), base_model=data.get("base_model") or "")
    try:
        done = bulk_actions.perform(action.name, chosen.ids, params, request.user)
    except bulk_actions.Refused as exc:
        return _feedback(request, {**base, "errors": [str(exc)]}, status=409)
    except ValueError as exc:
        return _feedback(request, {**base, "errors": [str(exc)]}, status=422)
    message = done.message
    if gone := chosen.missing:
        exist = "exist" if gone != 1 else "exists"
        message += f" Skipped {gone} selected adapter{'s' * (gone != 1)} that no longer {exist} (removed meanwhile)."
    undo = bulk_edit.latest_undoable(request.user)
    return _feedback(request, {**base, "message": message, "undo": undo}, refresh=True)


@require_POST
@permission_required("adapters.change_adapter", raise_exception=True)
def undo(request: HttpRequest, pk: int) -> HttpResponse:
    action = BulkAction.objects.filter(pk=pk, user=request.user).first()
    latest = bulk_edit.latest_undoable(request.user)
    if action is None or latest is None or latest.pk != action.pk:
        message = "Only your last bulk action can be undone, and only once."
        return _feedback(request, {"errors": [message]}, status=409, refresh=True)
    try:
        message = bulk_actions.undo(action)
    except ValueError as exc:
        return _feedback(request, {"errors": [str(exc)]}, status=409, refresh=True)
    return _feedback(request, {"message": message}, refresh=True)


@require_POST
@permission_required("adapters.scan_library", raise_exception=True)
def start_scan(request: HttpRequest) -> HttpResponse:
    run = scan_runs.start_scan(user=request.user, hash_files=request.POST.get("hash", "1") != "0")
    return render(request, "adapters/_scan_progress.html", {"scan": run})


@require_GET
@permission_required("adapters.view_adapter", raise_exception=True)
def scan_status(request: HttpRequest, pk: int) -> HttpResponse:
    return render(request, "adapters/_scan_status.html", {"scan": get_object_or_404(ScanRun, pk=pk)})


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
