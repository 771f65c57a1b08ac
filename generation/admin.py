from django.contrib import admin

from generation.models import BackendLora, GenerationImage, GenerationJob, JobLora, Preset


class JobLoraInline(admin.TabularInline):
    model = JobLora
    extra = 0
    raw_id_fields = ["adapter"]


class ImageInline(admin.TabularInline):
    model = GenerationImage
    extra = 0
    fields = ["index", "path", "format", "width", "height", "seed", "partial"]
    readonly_fields = fields


@admin.register(GenerationJob)
class GenerationJobAdmin(admin.ModelAdmin):
    list_display = ["id", "status", "backend", "checkpoint", "steps", "requested_by", "created_at", "finished_at"]
    list_filter = ["status", "backend"]
    search_fields = ["prompt", "message", "checkpoint"]
    date_hierarchy = "created_at"
    inlines = [JobLoraInline, ImageInline]
    raw_id_fields = ["requested_by"]


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "updated_at"]
    search_fields = ["name"]


@admin.register(BackendLora)
class BackendLoraAdmin(admin.ModelAdmin):
    list_display = ["backend", "name", "alias", "adapter", "matched_by", "refreshed_at"]
    list_filter = ["backend", "matched_by"]
    search_fields = ["name", "alias", "path"]
    raw_id_fields = ["adapter"]
