"""Bulk curation in the Django admin: its actions are the library's, from ``bulk_actions.ACTIONS``."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.db.models.functions import Lower
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html
from django.utils.text import Truncator

from adapters import bulk_actions, bulk_edit, civitai_runs, display
from adapters.models import (
    Adapter,
    AdapterFile,
    BaseModel,
    CivitaiImage,
    CivitaiRecord,
    CivitaiRun,
    LibraryRoot,
    ScanRun,
    Tag,
)
from adapters.sanitize import StorableModelForm
from archive.admin import export_selected, has_export_permission


class BulkParamsForm(forms.Form):
    """What a bulk action needs besides the selection (its ``needs``), asked on a small page."""

    _selected_action = forms.CharField(widget=forms.MultipleHiddenInput)
    tags = forms.CharField(help_text="Comma-separated tags", max_length=1000)
    base_model = forms.ChoiceField(choices=BaseModel.choices)

    def __init__(self, *args, needs: tuple[str, ...], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in ("tags", "base_model"):
            if name not in needs:
                del self.fields[name]


def _ask(modeladmin, request, queryset, form_class: Callable[..., forms.Form], title: str, action: str):
    """Show a small form for an action that needs a value; None until it is submitted and valid."""
    if "apply" in request.POST:
        form = form_class(request.POST)
        if form.is_valid():
            return form.cleaned_data
    else:
        form = form_class(initial={"_selected_action": request.POST.getlist(ACTION_CHECKBOX_NAME)})
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "form": form,
        "queryset": queryset,
        "action": action,
        "opts": modeladmin.model._meta,
    }
    return render(request, "admin/adapters/action_form.html", context)


class TagFilter(admin.SimpleListFilter):
    title = "tag"
    parameter_name = "tag"

    def lookups(self, request, model_admin):
        return [(t.pk, t.name) for t in Tag.objects.order_by("name")[:200]]

    def queryset(self, request, queryset):
        return queryset.filter(tags__pk=self.value()) if self.value() else queryset


class RootFilter(admin.SimpleListFilter):
    title = "library root"
    parameter_name = "root"

    def lookups(self, request, model_admin):
        return [(r.pk, r.path) for r in LibraryRoot.objects.all()]

    def queryset(self, request, queryset):
        return queryset.filter(files__root_id=self.value()).distinct() if self.value() else queryset


class AdapterFileInline(admin.TabularInline):
    model = AdapterFile
    extra = 0
    can_delete = False
    fields = ("path", "status", "size", "sha256", "tensor_sha256")
    readonly_fields = fields


def _bulk_action(action: bulk_actions.Action) -> Callable:
    """The admin action for one entry of the bulk-action table (named like it, permission-checked by it)."""

    def run(modeladmin: AdapterAdmin, request, queryset):
        return modeladmin.run_bulk(request, queryset, action)

    run.__name__ = action.name
    return admin.action(description=action.label)(run)


@admin.register(Adapter)
class AdapterAdmin(admin.ModelAdmin):
    form = StorableModelForm  # a \ud800 escape typed into a JSON field must not break every page
    list_display = (
        "thumbnail",
        "display_name",
        "base_label",
        "network_type",
        "rank",
        "active",
        "favorite",
        "tag_list",
        "human_size",
        "status",
    )
    list_display_links = ("display_name",)
    ordering = (Lower("name"), "id")
    list_filter = ("base_model", "network_type", "active", "favorite", "status", TagFilter, RootFilter)
    search_fields = (
        "name",
        "alias",
        "trigger_words",
        "tags__name",
        "=sha256",
        "sha256__startswith",
        "tensor_sha256__startswith",
        "files__path",
    )
    list_per_page = 100
    readonly_fields = (
        "sha256",
        "tensor_sha256",
        "size",
        "header_metadata",
        "sources",
        "issues",
        "hashed_at",
        "created_at",
        "updated_at",
        "usage_count",
        "last_used_at",
    )
    inlines = [AdapterFileInline]
    actions = [*(_bulk_action(action) for action in bulk_actions.ACTIONS.values()), export_selected]
    has_export_permission = has_export_permission

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("tags")

    def get_search_results(self, request, queryset, search_term):
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        return queryset, True if search_term else may_have_duplicates

    @admin.display(description="Preview")
    def thumbnail(self, obj: Adapter):
        if not obj.preview_source and not obj.preview_key:
            return "–"
        return format_html('<img src="/library/{}/preview/card" alt="" width="48" height="48" loading="lazy">', obj.pk)

    @admin.display(description="Tags")
    def tag_list(self, obj: Adapter) -> str:
        return Truncator(", ".join(t.name for t in obj.tags.all())).chars(60)

    @admin.display(description="Name", ordering=Lower("name"))
    def display_name(self, obj: Adapter) -> str:
        return obj.name

    @admin.display(description="Base model", ordering="base_model")
    def base_label(self, obj: Adapter) -> str:
        return display.base_model_label(obj.base_model)

    @admin.display(description="Size", ordering="size")
    def human_size(self, obj: Adapter) -> str:
        return filesizeformat(obj.size)

    def get_actions(self, request):
        """The bulk actions this person may use. Only "Remove from catalog" removes (it can be undone and says
        what happens to the files); Django's own "Delete selected" would do the same without either."""
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        for name, action in bulk_actions.ACTIONS.items():
            if not bulk_actions.allowed(request.user, action):
                actions.pop(name, None)
        return actions

    @staticmethod
    def _ids(queryset) -> list[int]:
        """Plain ids (the search may join tags and files; bulk_edit wants each adapter once)."""
        return list(queryset.order_by().values_list("pk", flat=True).distinct())

    def run_bulk(self, request, queryset, action: bulk_actions.Action):
        """Ask for what the action needs (tags, a base model), then run it as the library would."""
        if not bulk_actions.allowed(request.user, action):
            raise PermissionDenied
        params = bulk_actions.Params()
        if action.needs:
            form_class = partial(BulkParamsForm, needs=action.needs)
            data = _ask(self, request, queryset, form_class, action.label, action.name)
            if not isinstance(data, dict):
                return data
            params = bulk_actions.Params(
                tags=tuple(data.get("tags", "").split(",")), base_model=data.get("base_model", "")
            )
        try:
            done = bulk_actions.perform(action.name, self._ids(queryset), params, request.user)
        except bulk_actions.Refused as exc:
            self.message_user(request, str(exc), messages.WARNING)
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, done.message, messages.SUCCESS)
        return None


class MergeTagsForm(forms.Form):
    _selected_action = forms.CharField(widget=forms.MultipleHiddenInput)
    target = forms.CharField(max_length=100, help_text="Name of the tag to keep (created if new)")


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    form = StorableModelForm
    list_display = ("name", "adapter_count")
    search_fields = ("name",)
    actions = ["merge"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n=Count("adapters"))

    @admin.display(description="Adapters", ordering="n")
    def adapter_count(self, obj: Tag) -> int:
        return obj.n

    @admin.action(description="Merge selected tags into one", permissions=["change"])
    def merge(self, request, queryset):
        data = _ask(self, request, queryset, MergeTagsForm, "Merge tags", "merge")
        if not isinstance(data, dict):
            return data
        try:
            target, _ = Tag.objects.get_or_create(name=bulk_edit.normalize_tag(data["target"]))
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        count = bulk_edit.merge_tags(queryset.values_list("pk", flat=True), target)
        self.message_user(request, f"{count} tag(s) merged into '{target.name}'.", messages.SUCCESS)
        return None


@admin.register(LibraryRoot)
class LibraryRootAdmin(admin.ModelAdmin):
    list_display = ("path", "online", "last_scan_at", "file_count")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n=Count("files", filter=Q(files__status="present")))

    @admin.display(description="Present files", ordering="n")
    def file_count(self, obj) -> int:
        return obj.n


@admin.register(ScanRun)
class ScanRunAdmin(admin.ModelAdmin):
    list_display = ("pk", "status", "created_at", "found", "added", "updated", "relinked", "missing", "errors")
    list_filter = ("status",)
    readonly_fields = [f.name for f in ScanRun._meta.fields]


@admin.register(CivitaiRun)
class CivitaiRunAdmin(admin.ModelAdmin):
    list_display = ("pk", "status", "mode", "created_at", "total", "found", "not_found", "updates", "failed")
    list_filter = ("status", "mode")
    readonly_fields = [f.name for f in CivitaiRun._meta.fields]
    actions = ["cancel"]

    @admin.action(description="Cancel selected lookups", permissions=["change"])
    def cancel(self, request, queryset):
        for run in queryset:
            civitai_runs.request_cancel(run)
        self.message_user(request, "Cancel requested.", messages.SUCCESS)


class CivitaiImageInline(admin.TabularInline):
    model = CivitaiImage
    fk_name = "adapter"
    extra = 0
    can_delete = False
    fields = ("position", "url", "kind", "nsfw_level", "meta")
    readonly_fields = fields


@admin.register(CivitaiRecord)
class CivitaiRecordAdmin(admin.ModelAdmin):
    list_display = ("adapter", "found", "model_name", "version_name", "base_model", "update_version_name", "checked_at")
    list_filter = ("found",)
    search_fields = ("adapter__name", "model_name")
    readonly_fields = [f.name for f in CivitaiRecord._meta.fields]
