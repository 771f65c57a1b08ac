"""The "Files with problems" page: files the scanner found but could not read.

They are not adapters (``Adapter.objects.usable`` leaves them out of every list, count and suggestion),
but they stay in the catalog with their reason, so a user sees what is wrong and the next scan notices
when the file is fixed or replaced.
"""

from __future__ import annotations

from django.contrib.auth.decorators import permission_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from adapters.models import Adapter, AdapterFile, ScanRun

PAGE_LIMIT = 500


@require_GET
@permission_required("adapters.view_adapter", raise_exception=True)
def problems(request: HttpRequest) -> HttpResponse:
    unreadable = Adapter.objects.unreadable()
    files = (
        AdapterFile.objects.filter(adapter__in=unreadable)
        .select_related("adapter", "root")
        .order_by("path")[:PAGE_LIMIT]
    )
    rows = [
        {
            "path": f.path,
            "folder": f.root.path,
            "size": f.size,
            "status": f.get_status_display(),
            "reasons": [str(issue) for issue in f.adapter.issues] or ["the file could not be read"],
            "seen": f.last_seen_at,
        }
        for f in files
    ]
    readable = Adapter.objects.usable().aggregate(n=Count("id", filter=Q(has_issues=True)))["n"]
    context = {
        "rows": rows,
        "total": unreadable.count(),
        "limit": PAGE_LIMIT,
        "with_issues": readable,
        "scan": ScanRun.objects.first(),
    }
    return render(request, "adapters/problems.html", context)
