"""The tags page (counts, rename, merge, delete) and tag autocomplete. The work is in bulk_edit."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from adapters import bulk_edit
from adapters.forms import split_tags
from adapters.gallery import printable
from adapters.models import Tag

TAGS_PER_PAGE = 100
SUGGESTIONS = 15
TAG_SORTS = {
    "name": ("Name", ["name"]),
    "-count": ("Most used", ["-n", "name"]),
    "count": ("Least used", ["n", "name"]),
}


def _list_context(params) -> dict:
    q = " ".join(printable(params.get("q", "")).split())[:100].lower()
    sort = params.get("sort", "name")
    notices = []
    if sort not in TAG_SORTS:
        notices.append(f"Unknown sort “{sort[:40]}”; sorted by name.")
        sort = "name"
    tags = Tag.objects.annotate(n=Count("adapters")).order_by(*TAG_SORTS[sort][1])
    if q:
        tags = tags.filter(name__contains=q)
    page = Paginator(tags, TAGS_PER_PAGE).get_page(params.get("page"))
    querystring = urlencode({k: v for k, v in (("q", q), ("sort", sort if sort != "name" else "")) if v})
    return {
        "tag_page": page,
        "q": q,
        "sort": sort,
        "sorts": [(key, label) for key, (label, _) in TAG_SORTS.items()],
        "notices": notices,
        "querystring": querystring,
        "page_prefix": f"?{querystring}&page=" if querystring else "?page=",
    }


@require_GET
@permission_required("adapters.view_tag", raise_exception=True)
def tags(request: HttpRequest) -> HttpResponse:
    context = _list_context(request.GET)
    if request.htmx and request.htmx.target == "tag-list":
        return render(request, "adapters/_tag_list.html", context)
    return render(request, "adapters/tags.html", context)


@require_GET
@permission_required("adapters.view_tag", raise_exception=True)
def suggest(request: HttpRequest) -> HttpResponse:
    """``<datalist id="tag-suggestions">`` for what is being typed; comma-separated input keeps its head."""
    typed = printable(next((request.GET[k] for k in ("q", "tags", "target", "tag") if request.GET.get(k)), ""))[:2000]
    head, _, last = typed.rpartition(",")
    term = " ".join(last.split()).lower()
    prefix = f"{head.strip()}, " if head.strip() else ""
    names: list[str] = []
    if term:
        starts = Tag.objects.filter(name__startswith=term).order_by("name").values_list("name", flat=True)
        names = list(starts[:SUGGESTIONS])
        if len(names) < SUGGESTIONS:
            more = Tag.objects.filter(name__contains=term).exclude(name__in=names).order_by("name")
            names += more.values_list("name", flat=True)[: SUGGESTIONS - len(names)]
    return render(request, "adapters/_tag_suggestions.html", {"options": [prefix + n for n in names]})


def _done(request: HttpRequest, message: str, error: bool = False) -> HttpResponse:
    """After a change: the refreshed list (htmx) with the message out of band, or a redirect with a message."""
    if not request.htmx:
        (messages.error if error else messages.success)(request, message)
        back = request.POST.get("back", "")
        return redirect(reverse("adapters:tags") + (f"?{back}" if back and "//" not in back else ""))
    context = _list_context(QueryDict(request.POST.get("back", "")))
    context.update(message=message, error=error, oob_feedback=True)
    return render(request, "adapters/_tag_list.html", context, status=422 if error else 200)


@require_POST
@permission_required("adapters.change_tag", raise_exception=True)
def rename(request: HttpRequest, pk: int) -> HttpResponse:
    tag = Tag.objects.filter(pk=pk).first()
    if tag is None:
        return _done(request, "That tag no longer exists (removed or merged meanwhile).", error=True)
    old = tag.name
    try:
        result = bulk_edit.rename_tag(tag, request.POST.get("name", ""))
    except ValueError as exc:
        return _done(request, f"Cannot rename “{old}”: {exc}.", error=True)
    if result.pk != pk:
        return _done(request, f"“{old}” merged into the existing tag “{result.name}”.")
    return _done(request, f"“{old}” renamed to “{result.name}”.")


@require_POST
@permission_required("adapters.change_tag", raise_exception=True)
def merge(request: HttpRequest) -> HttpResponse:
    ids = [int(v) for v in request.POST.getlist("tag") if v.isdigit() and len(v) < 19]
    sources = list(Tag.objects.filter(pk__in=ids).values_list("pk", "name"))
    try:
        names = split_tags(request.POST.get("target", ""))
    except forms.ValidationError as exc:
        return _done(request, f"Cannot merge: {' '.join(exc.messages)}", error=True)
    if len(names) != 1:
        return _done(request, "Cannot merge: name the one tag to keep.", error=True)
    if not sources:
        return _done(request, "Cannot merge: tick the tags to merge first (they may have been removed).", error=True)
    target, _ = Tag.objects.get_or_create(name=names[0])
    count = bulk_edit.merge_tags([pk for pk, _ in sources], target)
    merged = ", ".join(f"“{name}”" for pk, name in sources if pk != target.pk)
    return _done(request, f"{count} tag{'s' * (count != 1)} ({merged}) merged into “{target.name}”.")


@require_POST
@permission_required("adapters.delete_tag", raise_exception=True)
def delete(request: HttpRequest, pk: int) -> HttpResponse:
    tag = Tag.objects.filter(pk=pk).first()
    if tag is None:
        return _done(request, "That tag no longer exists (removed or merged meanwhile).", error=True)
    name = tag.name
    count = bulk_edit.delete_tag(tag)
    return _done(request, f"Tag “{name}” deleted (it was on {count} adapter{'s' * (count != 1)}).")
