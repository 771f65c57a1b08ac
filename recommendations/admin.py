from django.contrib import admin

from recommendations.models import EmbeddingRun, Feedback


@admin.register(EmbeddingRun)
class EmbeddingRunAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "reason", "embedded", "unchanged", "indexed", "index_kind", "created_at")
    list_filter = ("status",)
    readonly_fields = [f.name for f in EmbeddingRun._meta.fields]


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ("user", "adapter", "kind", "context", "value", "updated_at")
    list_filter = ("kind", "value")
    raw_id_fields = ("user", "adapter")
    search_fields = ("context", "adapter__name")
