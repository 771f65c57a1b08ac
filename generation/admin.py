from django import forms
from django.contrib import admin

from adapters.sanitize import StorableModelForm, StorableTextForm
from generation import deliveries, recipes
from generation.models import (
    BackendLora,
    DeliveryTarget,
    GenerationImage,
    GenerationJob,
    JobLora,
    Preset,
    Recipe,
    RecipeLora,
    ResultRating,
    Sweep,
)


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
    form = StorableModelForm
    list_display = ["id", "status", "backend", "checkpoint", "steps", "requested_by", "created_at", "finished_at"]
    list_filter = ["status", "backend", "pinned", "private"]
    search_fields = ["prompt", "message", "checkpoint"]
    date_hierarchy = "created_at"
    inlines = [JobLoraInline, ImageInline]
    raw_id_fields = ["requested_by", "sweep"]


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    form = StorableModelForm
    list_display = ["name", "owner", "updated_at"]
    search_fields = ["name"]


@admin.register(BackendLora)
class BackendLoraAdmin(admin.ModelAdmin):
    list_display = ["backend", "name", "alias", "adapter", "matched_by", "refreshed_at"]
    list_filter = ["backend", "matched_by"]
    search_fields = ["name", "alias", "path"]
    raw_id_fields = ["adapter"]


class DeliveryTargetForm(StorableTextForm, forms.ModelForm):
    """Arguments as one per line (no shell: each line is exactly one argument, spaces included)."""

    url = forms.URLField(
        required=False, max_length=1000, assume_scheme="https", help_text="Webhook: the URL to POST to (http or https)."
    )

    arguments_text = forms.CharField(
        label="Arguments",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "cols": 80}),
        help_text="Command: the program, then one argument per line. {prompt}, {negative_prompt}, {json} and {job} "
        "inside a line are replaced. Run without a shell: no pipes, globbing or variables.",
    )

    class Meta:
        model = DeliveryTarget
        fields = ["name", "kind", "enabled", "url", "stdin", "timeout_seconds", "retries", "max_output_kb"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["arguments_text"].initial = "\n".join(self.instance.arguments or [])

    def clean(self) -> dict:
        data = super().clean()
        lines = [line for line in (data.get("arguments_text") or "").splitlines() if line.strip()]
        kind = data.get("kind")
        if kind == DeliveryTarget.Kind.COMMAND and not lines:
            self.add_error("arguments_text", "A command needs at least the program (first line).")
        if kind == DeliveryTarget.Kind.WEBHOOK and not data.get("url"):
            self.add_error("url", "A webhook needs the URL to POST to.")
        timeout = data.get("timeout_seconds")
        if timeout is not None and not 1 <= timeout <= deliveries.MAX_TIMEOUT:
            self.add_error("timeout_seconds", f"Use 1 to {deliveries.MAX_TIMEOUT} seconds.")
        if data.get("max_output_kb") is not None and not 1 <= data["max_output_kb"] <= 10240:
            self.add_error("max_output_kb", "Use 1 to 10240 KB.")
        if data.get("retries") is not None and data["retries"] > 10:
            self.add_error("retries", "At most 10 retries.")
        self.instance.arguments = lines
        return data


@admin.register(DeliveryTarget)
class DeliveryTargetAdmin(admin.ModelAdmin):
    form = DeliveryTargetForm
    list_display = ["name", "kind", "enabled", "url", "timeout_seconds", "updated_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "url"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "enabled"]}),
        ("Webhook", {"fields": ["url", "retries"]}),
        ("Command", {"fields": ["arguments_text", "stdin"]}),
        ("Limits", {"fields": ["timeout_seconds", "max_output_kb"]}),
    ]


@admin.register(ResultRating)
class ResultRatingAdmin(admin.ModelAdmin):
    list_display = ["id", "image", "job", "user", "thumb", "stars", "updated_at"]
    list_filter = ["thumb", "stars"]
    raw_id_fields = ["image", "job", "user"]


@admin.register(Sweep)
class SweepAdmin(admin.ModelAdmin):
    list_display = ["id", "mode", "adapter", "seed", "created_at", "finished_at"]
    list_filter = ["mode"]
    raw_id_fields = ["adapter", "requested_by"]


class RecipeLoraInline(admin.TabularInline):
    model = RecipeLora
    extra = 0
    fields = ["position", "name", "weight", "hash", "file", "adapter", "matched_by", "note"]
    raw_id_fields = ["adapter"]


@admin.register(Recipe)
class RecipeAdmin(admin.ModelAdmin):
    """Read and delete; recipes are made by importing images (generation.recipes), not typed in here."""

    list_display = ["__str__", "source", "checkpoint", "owner", "private", "created_at"]
    list_filter = ["source", "private"]
    search_fields = ["title", "prompt", "checkpoint", "loras__name"]
    readonly_fields = ["image", "image_sha256", "image_key", "job", "warnings", "parameters", "created_at"]
    raw_id_fields = ["owner"]
    inlines = [RecipeLoraInline]

    def has_add_permission(self, request) -> bool:
        return False

    def delete_model(self, request, obj: Recipe) -> None:
        recipes.delete(obj)  # its image too, unless shared

    def delete_queryset(self, request, queryset) -> None:
        for recipe in queryset:
            recipes.delete(recipe)
