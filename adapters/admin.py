"""Bulk curation in the Django admin. Every action calls the same bulk_edit functions as the UI."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Count, Q
from django.db.models.functions import Lower
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html
from django.utils.text import Truncator

from adapters import bulk_edit, civitai_runs, display, scan_runs
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


class TagsForm(forms.Form):
    _selected_action = forms.CharField(widget=forms.MultipleHiddenInput)
    tags = forms.CharField(help_text="Comma-separated tags", max_length=1000)


class BaseModelForm(forms.Form):
    _selected_action = forms.CharField(widget=forms.MultipleHiddenInput)
    base_model = forms.ChoiceField(choices=BaseModel.choices)


def _ask(modeladmin, request, queryset, form_class, title: str, action: str):
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
    actions = [
        "activate",
        "deactivate",
        "add_tags",
        "remove_tags",
        "set_base_model",
        "mark_favorite",
        "rescan",
        "rehash",
        "lookup_on_civitai",
        "remove_from_catalog",
    ]  # archive.admin adds "Export selected"

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
        """Only "Remove from the catalog" removes (it can be undone and says what happens to the files);
        Django's own "Delete selected" would do the same without either."""
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @staticmethod
    def _ids(queryset) -> list[int]:
        """Plain ids (the search may join tags and files; bulk_edit wants each adapter once)."""
        return list(queryset.order_by().values_list("pk", flat=True).distinct())

    def _done(self, request, count: int, what: str) -> None:
        self.message_user(request, f"{count} adapter{'s' if count != 1 else ''} {what}.", messages.SUCCESS)

    @admin.action(description="Activate selected adapters", permissions=["change"])
    def activate(self, request, queryset):
        self._done(request, bulk_edit.set_active(self._ids(queryset), True, by=request.user), "activated")

    @admin.action(description="Deactivate selected adapters", permissions=["change"])
    def deactivate(self, request, queryset):
        self._done(request, bulk_edit.set_active(self._ids(queryset), False, by=request.user), "deactivated")

    @admin.action(description="Mark selected as favorite", permissions=["change"])
    def mark_favorite(self, request, queryset):
        self._done(request, bulk_edit.set_favorite(self._ids(queryset), True, by=request.user), "marked favorite")

    @admin.action(description="Add tags to selected", permissions=["change"])
    def add_tags(self, request, queryset):
        data = _ask(self, request, queryset, TagsForm, "Add tags", "add_tags")
        if not isinstance(data, dict):
            return data
        try:
            count = bulk_edit.add_tags(self._ids(queryset), data["tags"].split(","), by=request.user)
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        self.message_user(request, f"{count} tag assignment{'s' if count != 1 else ''} added.", messages.SUCCESS)
        return None

    @admin.action(description="Remove tags from selected", permissions=["change"])
    def remove_tags(self, request, queryset):
        data = _ask(self, request, queryset, TagsForm, "Remove tags", "remove_tags")
        if not isinstance(data, dict):
            return data
        try:
            count = bulk_edit.remove_tags(self._ids(queryset), data["tags"].split(","), by=request.user)
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return None
        self.message_user(request, f"{count} tag assignment{'s' if count != 1 else ''} removed.", messages.SUCCESS)
        return None

    @admin.action(description="Set base model of selected", permissions=["change"])
    def set_base_model(self, request, queryset):
        data = _ask(self, request, queryset, BaseModelForm, "Set base model", "set_base_model")
        if not isinstance(data, dict):
            return data
        count = bulk_edit.set_base_model(self._ids(queryset), data["base_model"], by=request.user)
        self._done(request, count, f"set to {data['base_model']}")
        return None

    @admin.action(description="Rescan selected (re-read files and sidecars)", permissions=["change"])
    def rescan(self, request, queryset):
        count = bulk_edit.mark_for_rescan(queryset.values_list("pk", flat=True))
        run = scan_runs.start_scan(user=request.user)
        self.message_user(request, f"{count} file(s) will be re-read by scan #{run.pk}.", messages.SUCCESS)

    @admin.action(description="Re-hash selected", permissions=["change"])
    def rehash(self, request, queryset):
        count = bulk_edit.mark_for_rehash(queryset.values_list("pk", flat=True))
        run = scan_runs.start_scan(user=request.user)
        self.message_user(request, f"{count} file(s) will be re-hashed by scan #{run.pk}.", messages.SUCCESS)

    @admin.action(description="Look up selected on Civitai (by hash)", permissions=["change"])
    def lookup_on_civitai(self, request, queryset):
        ids = self._ids(queryset)
        try:
            run = civitai_runs.start_run(CivitaiRun.Mode.SELECTED, ids, user=request.user)
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        if run.adapter_ids != ids:
            self.message_user(
                request, f"Civitai lookup #{run.pk} is already running; try again later.", messages.WARNING
            )
            return
        self.message_user(request, f"Civitai lookup #{run.pk} queued for {len(ids)} adapter(s).", messages.SUCCESS)

    @admin.action(description="Remove selected from the catalog (files stay on disk)", permissions=["delete"])
    def remove_from_catalog(self, request, queryset):
        self._done(request, bulk_edit.remove_from_catalog(self._ids(queryset), by=request.user), "removed")


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
