"""Admin: archive runs (read-only history) and the "Export selected" action for adapters."""

from __future__ import annotations

from django.contrib import admin, messages
from django.shortcuts import redirect
from django.urls import reverse

from adapters.admin import AdapterAdmin
from adapters.models import Adapter
from archive import runs
from archive.models import ArchiveRun


@admin.action(description="Export selected (archive with weights)", permissions=["export"])
def export_selected(modeladmin, request, queryset):
    """Queues an export of exactly these adapters and opens its progress page."""
    ids = sorted(queryset.values_list("pk", flat=True))
    run = runs.start_export(request.user, adapter_ids=ids, scope="selected")
    modeladmin.message_user(request, f"Exporting {len(ids)} adapter{'s' * (len(ids) != 1)}…", messages.SUCCESS)
    return redirect(reverse("archive:run", args=[run.pk]))


def has_export_permission(self, request) -> bool:
    return request.user.has_perm("archive.export_library")


@admin.register(ArchiveRun)
class ArchiveRunAdmin(admin.ModelAdmin):
    list_display = ("pk", "kind", "status", "original_name", "size", "created_at", "finished_at")
    list_filter = ("kind", "status")
    readonly_fields = [f.name for f in ArchiveRun._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


class ExportingAdapterAdmin(AdapterAdmin):
    """The catalog's admin plus "Export selected": archive extends it, so adapters never import archive."""

    actions = [*AdapterAdmin.actions, export_selected]
    has_export_permission = has_export_permission


admin.site.unregister(Adapter)
admin.site.register(Adapter, ExportingAdapterAdmin)
