"""The catalog: adapters (one per LoRA content), the files they live in, roots, tags and scan runs.

The database is the source of truth. Files and sidecars are read into it; a value a user edits here
is marked with source "user" in ``Adapter.sources`` and no rescan overwrites it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from lora_manager.models import TrackedRun

USER_SOURCE = "user"


class NonEmptyJSONArray(models.Func):
    """True when a JSON column holds a non-empty array; backs ``Adapter.has_issues`` (a generated column),
    so the gallery can filter and count "has issues" from an index instead of reading wide rows."""

    output_field = models.BooleanField()
    arity = 1

    def as_sql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            sql = f"(CASE WHEN jsonb_typeof({column}) = 'array' THEN jsonb_array_length({column}) > 0 ELSE false END)"
        else:
            sql = f"(CASE WHEN json_type({column}) = 'array' THEN json_array_length({column}) > 0 ELSE 0 END)"
        return sql, params


class LibraryRoot(models.Model):
    path = models.CharField(max_length=1024, unique=True)
    online = models.BooleanField(default=True)
    last_scan_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["path"]

    def __str__(self) -> str:
        return self.path


class Tag(models.Model):
    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class BaseModel(models.TextChoices):
    SD1 = "SD1", "SD 1.x"
    SD2 = "SD2", "SD 2.x"
    SDXL = "SDXL", "SDXL"
    SD3 = "SD3", "SD 3"
    FLUX = "Flux", "Flux"
    OTHER = "Other", "Other"
    UNKNOWN = "Unknown", "Unknown"


class NetworkType(models.TextChoices):
    LORA = "LoRA", "LoRA"
    LOCON = "LoCon", "LoCon"
    LOHA = "LoHa", "LoHa"
    LOKR = "LoKr", "LoKr"
    DORA = "DoRA", "DoRA"
    OFT = "OFT", "OFT"
    OTHER = "Other", "Other"


class AdapterStatus(models.TextChoices):
    OK = "ok", "OK"
    MISSING = "missing", "Missing"
    OFFLINE = "offline", "Offline"
    ERROR = "error", "Error"


class AdapterQuerySet(models.QuerySet):
    def usable(self) -> AdapterQuerySet:
        """Adapters a user can work with: not files whose header could not be read (status "error").

        Those stay in the table so rescans stay incremental and their reason is kept, but they are not
        LoRAs: they appear only on the "Files with problems" page, never in lists, counts or suggestions.
        """
        return self.exclude(status=AdapterStatus.ERROR)

    def unreadable(self) -> AdapterQuerySet:
        return self.filter(status=AdapterStatus.ERROR)


class Adapter(models.Model):
    name = models.CharField(max_length=255)
    alias = models.CharField(max_length=255, blank=True)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, null=True, blank=True, unique=True)
    tensor_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    base_model = models.CharField(max_length=16, choices=BaseModel.choices, default=BaseModel.UNKNOWN)
    base_model_detail = models.CharField(max_length=100, blank=True)
    network_type = models.CharField(max_length=16, choices=NetworkType.choices, default=NetworkType.LORA)
    rank = models.PositiveIntegerField(null=True, blank=True)
    alpha = models.FloatField(null=True, blank=True)
    trigger_words = models.JSONField(default=list, blank=True)
    training_tags = models.JSONField(default=list, blank=True)  # [[tag, count], ...] most frequent first
    preferred_weight = models.FloatField(null=True, blank=True)
    weight_min = models.FloatField(null=True, blank=True)
    weight_max = models.FloatField(null=True, blank=True)
    activation_text = models.TextField(blank=True)
    negative_text = models.TextField(blank=True)
    description = models.TextField(blank=True)
    notes = models.TextField(blank=True)
    civitai_model_id = models.PositiveBigIntegerField(null=True, blank=True)
    civitai_version_id = models.PositiveBigIntegerField(null=True, blank=True)
    source_url = models.URLField(max_length=500, blank=True)
    not_on_civitai = models.BooleanField(default=False)
    preview_source = models.CharField(max_length=2048, blank=True)  # image file path, or "embedded", "upload"
    preview_key = models.CharField(max_length=64, blank=True)  # thumbnail content key (adapters/previews.py)
    active = models.BooleanField(default=True)
    favorite = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=AdapterStatus.choices, default=AdapterStatus.OK)
    header_metadata = models.JSONField(default=dict, blank=True)
    sources = models.JSONField(default=dict, blank=True)  # field -> where its value came from ("user" = edited here)
    issues = models.JSONField(default=list, blank=True)  # current problems with its files and sidecars
    tags = models.ManyToManyField(Tag, related_name="adapters", blank=True)
    usage_count = models.PositiveIntegerField(default=0)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # 0 = not rated. Ratings (1-5) arrive with the ratings issue; the gallery already sorts by this column.
    rating = models.PositiveSmallIntegerField(default=0)
    # How many rated results using this adapter approve / disapprove of it (generation.learning keeps
    # them with ``rating``); recommendations rank by them without reading generation's tables.
    results_approved = models.PositiveIntegerField(default=0)
    results_disapproved = models.PositiveIntegerField(default=0)
    has_issues = models.GeneratedField(
        expression=NonEmptyJSONArray("issues"), output_field=models.BooleanField(), db_persist=True
    )
    hashed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AdapterQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            models.Index(Lower("name"), "id", name="adapter_name_ci"),
            models.Index(fields=["base_model", "name"]),
            models.Index(fields=["active", "name"]),
            models.Index(fields=["status"]),
            models.Index(fields=["favorite"]),
            # Gallery sorts: (column, id) so a page at any offset is an index-only walk on both engines.
            models.Index(fields=["created_at", "id"], name="adapter_created_id"),
            models.Index(fields=["updated_at", "id"], name="adapter_updated_id"),
            models.Index(fields=["size", "id"], name="adapter_size_id"),
            models.Index(fields=["usage_count", "id"], name="adapter_usage_id"),
            models.Index(fields=["last_used_at", "id"], name="adapter_last_used_id"),
            models.Index(fields=["rank", "id"], name="adapter_rank_id"),
            models.Index(fields=["rating", "id"], name="adapter_rating_id"),
            # Every low-cardinality gallery facet in one index: facet counts are one index-only GROUP BY.
            models.Index(
                fields=["base_model", "network_type", "active", "favorite", "status", "has_issues"],
                name="adapter_facets",
            ),
        ]
        permissions = [("scan_library", "Can scan the library")]

    def __str__(self) -> str:
        return self.name

    @property
    def autov2(self) -> str:
        return (self.sha256 or "")[:10]

    @property
    def autov3(self) -> str:
        return self.tensor_sha256[:12]

    def is_user_edited(self, field: str) -> bool:
        return self.sources.get(field) == USER_SOURCE


class FileStatus(models.TextChoices):
    PRESENT = "present"
    MISSING = "missing"
    OFFLINE = "offline"


class AdapterFile(models.Model):
    """One place an adapter's bytes live; also the hash cache, keyed by (path, size, mtime)."""

    adapter = models.ForeignKey(Adapter, on_delete=models.CASCADE, related_name="files")
    root = models.ForeignKey(LibraryRoot, on_delete=models.CASCADE, related_name="files")
    path = models.CharField(max_length=2048, unique=True)
    size = models.BigIntegerField()
    mtime_ns = models.BigIntegerField()
    data_offset = models.BigIntegerField(default=0)  # 0 = header unreadable, tensor hash unknown
    header_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    sidecar_signature = models.CharField(max_length=64, blank=True)
    # What LoRA Manager last wrote next to this file (adapters/sidecar_writing.py): {"name", "sha256",
    # "values"}; a scan that finds a key still holding our value knows it is ours and already applied.
    sidecar_written = models.JSONField(null=True, blank=True)  # nullable: SQLite adds it without a table rebuild
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    tensor_sha256 = models.CharField(max_length=64, blank=True)
    hashed_size = models.BigIntegerField(null=True, blank=True)
    hashed_mtime_ns = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=FileStatus.choices, default=FileStatus.PRESENT)
    issues = models.JSONField(default=list, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["path"]
        indexes = [models.Index(fields=["root", "status"]), models.Index(fields=["status", "size"])]

    def __str__(self) -> str:
        return self.path

    @property
    def hash_is_current(self) -> bool:
        return bool(self.sha256) and self.hashed_size == self.size and self.hashed_mtime_ns == self.mtime_ns


class ScanRun(TrackedRun):
    """One scan (and hash) of the library folders: the row users watch."""

    roots = models.JSONField(default=list, blank=True)
    hash_files = models.BooleanField(default=True)
    found = models.PositiveIntegerField(default=0)
    added = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    relinked = models.PositiveIntegerField(default=0)
    missing = models.PositiveIntegerField(default=0)
    offline = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    hashed = models.PositiveIntegerField(default=0)
    postponed = models.PositiveIntegerField(default=0)
    issues = models.JSONField(default=list, blank=True)  # [{"path": ..., "message": ...}], capped

    job_path, job_id_prefix, progress_group = "adapters.tasks.scan_job", "scan", "scan.{pk}"
    noun, again = "scan", "start a new scan"

    class Meta(TrackedRun.Meta):
        pass

    # Share of the whole run each phase covers, so the bar moves through every phase (a small library
    # reads in one step, then hashes) instead of restarting at 0 % or sitting there until the end.
    PHASE_SPANS = {"listing": (0, 5), "reading": (5, 55), "hashing": (55, 95), "thumbnails": (95, 100)}

    @property
    def percent(self) -> int:
        if not self.is_active:
            return 100
        start, end = self.PHASE_SPANS.get(self.phase, (0, 0))
        if not self.hash_files and self.phase == "reading":
            end = 95
        fraction = min(self.done / self.total, 1.0) if self.total else 0.0
        return int(start + (end - start) * fraction)

    def summary(self) -> dict:
        keys = (
            "found",
            "added",
            "updated",
            "unchanged",
            "relinked",
            "missing",
            "offline",
            "errors",
            "hashed",
            "postponed",
        )
        return {key: getattr(self, key) for key in keys}


class BulkAction(models.Model):
    """One bulk edit and what it changed, so the last one can be undone exactly.

    ``payload`` holds the previous state of the affected adapters only (see ``bulk_edit``): previous
    field values grouped by value, tag links added or removed, or whole rows for a removal.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    action = models.CharField(max_length=32)
    summary = models.CharField(max_length=300)
    count = models.PositiveIntegerField(default=0)
    undoable = models.BooleanField(default=True)
    payload = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self) -> str:
        return self.summary


class NsfwLevel(models.IntegerChoices):
    """Civitai's NSFW levels (bit flags on versions; one of them on an image)."""

    PG = 1, "PG"
    PG13 = 2, "PG-13"
    R = 4, "R"
    X = 8, "X"
    XXX = 16, "XXX"


class CivitaiRecord(models.Model):
    """What Civitai said about one adapter the last time it was asked by hash; ``found`` False = "not on Civitai".

    Values that the catalog shows (base model, trigger words, tags, description, preview) are also copied
    onto the adapter with source "civitai" (``adapters.civitai_lookup``); this row keeps Civitai's own view.
    """

    adapter = models.OneToOneField(Adapter, on_delete=models.CASCADE, primary_key=True, related_name="civitai")
    checked_at = models.DateTimeField(db_index=True)
    found = models.BooleanField(default=False)
    matched_by = models.CharField(max_length=16, blank=True)  # sha256, autov2 or autov3
    model_id = models.PositiveBigIntegerField(null=True, blank=True)
    version_id = models.PositiveBigIntegerField(null=True, blank=True)
    model_name = models.CharField(max_length=255, blank=True)
    version_name = models.CharField(max_length=255, blank=True)
    base_model = models.CharField(max_length=100, blank=True)
    trained_words = models.JSONField(default=list, blank=True)
    tags = models.JSONField(default=list, blank=True)
    nsfw_level = models.PositiveSmallIntegerField(default=0)  # the version's bit flags
    preview_url = models.URLField(max_length=1000, blank=True)
    preview_nsfw_level = models.PositiveSmallIntegerField(default=0)  # of the image shown on cards
    update_version_id = models.PositiveBigIntegerField(null=True, blank=True, db_index=True)
    update_version_name = models.CharField(max_length=255, blank=True)
    message = models.TextField(blank=True)  # the last lookup's problem, if it had one

    def __str__(self) -> str:
        return f"Civitai record of adapter {self.adapter_id}"

    @property
    def nsfw_labels(self) -> str:
        """The version's NSFW bit flags in words, e.g. "PG, R"."""
        return ", ".join(level.label for level in NsfwLevel if self.nsfw_level & level) or "unrated"

    @property
    def page_url(self) -> str:
        if not self.model_id:
            return ""
        query = f"?modelVersionId={self.version_id}" if self.version_id else ""
        return f"https://civitai.com/models/{self.model_id}{query}"


class CivitaiImage(models.Model):
    """One example image of the adapter's Civitai version, with its generation parameters (``meta``) kept raw."""

    adapter = models.ForeignKey(Adapter, on_delete=models.CASCADE, related_name="civitai_images")
    position = models.PositiveSmallIntegerField(default=0)
    url = models.URLField(max_length=1000)
    kind = models.CharField(max_length=16, default="image")  # "image" or "video"
    nsfw_level = models.PositiveSmallIntegerField(default=0)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    meta = models.JSONField(null=True, blank=True)  # prompt, negativePrompt, seed, steps, sampler, cfgScale, ...

    class Meta:
        ordering = ["adapter", "position"]

    def __str__(self) -> str:
        return self.url


class CivitaiRun(TrackedRun):
    """A Civitai lookup over some adapters, tracked like a scan (one tracked-run machinery: lora_manager.runs)."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Mode(models.TextChoices):
        DUE = "due", "Never checked, found before, or not found over 30 days ago"
        MISSING = "missing", "Only adapters never checked"
        ALL = "all", "Every hashed adapter"
        SELECTED = "selected", "The chosen adapters"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.DUE)
    adapter_ids = models.JSONField(default=list, blank=True)  # for mode "selected"
    found = models.PositiveIntegerField(default=0)
    not_found = models.PositiveIntegerField(default=0)
    updates = models.PositiveIntegerField(default=0)  # found with a newer version on Civitai
    failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)  # not hashed yet
    requests = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    issues = models.JSONField(default=list, blank=True)  # [{"adapter_id", "name", "message"}], capped

    job_path, job_id_prefix, progress_group = "adapters.tasks.civitai_job", "civitai", "civitai.{pk}"
    noun, again = "Civitai lookup", "start a new one"

    class Meta(TrackedRun.Meta):
        pass

    def __str__(self) -> str:
        return f"Civitai lookup #{self.pk} ({self.status})"

    def summary(self) -> dict:
        keys = ("total", "found", "not_found", "updates", "failed", "skipped", "requests")
        return {"id": self.pk, "status": self.status, **{key: getattr(self, key) for key in keys}}


class ViewerPreference(models.Model):
    """A person's display choices. Previews rated above ``nsfw_blur_above`` are blurred on cards until clicked."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="viewer_preference")
    nsfw_blur_above = models.PositiveSmallIntegerField(default=NsfwLevel.PG13)  # 16 = never blur

    def __str__(self) -> str:
        return f"preferences of {self.user}"


# --- Tables the database keeps by itself (triggers of migration 0010_derived_tables) -----------------
# Read-only here: ``managed = False`` because their DDL and triggers live in that migration's frozen SQL.


class Duplicate(models.Model):
    """An adapter that shares its tensor sha256 with another, or has more than one present file."""

    adapter = models.OneToOneField(
        Adapter, primary_key=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="duplicate_entry"
    )

    class Meta:
        managed = False
        db_table = "adapters_duplicate"

    def __str__(self) -> str:
        return f"duplicate adapter {self.adapter_id}"


class CatalogVersion(models.Model):
    """The one row (id 1) whose random token changes whenever something a gallery facet counts changes."""

    id = models.IntegerField(primary_key=True)
    token = models.BigIntegerField()

    class Meta:
        managed = False
        db_table = "adapters_catalog_version"

    def __str__(self) -> str:
        return f"catalog version {self.token}"


class CatalogPart(models.Model):
    """One random token per table the catalog version follows, changed with it."""

    part = models.TextField(primary_key=True)
    token = models.BigIntegerField()

    class Meta:
        managed = False
        db_table = "adapters_catalog_part"

    def __str__(self) -> str:
        return f"{self.part}: {self.token}"


class CatalogChange(models.Model):
    """An edit of an adapter's facet columns (the newest ``derived.CHANGE_LOG_KEEP`` are kept)."""

    seq = models.BigAutoField(primary_key=True)
    adapter_id = models.BigIntegerField()

    class Meta:
        managed = False
        db_table = "adapters_catalog_change"

    def __str__(self) -> str:
        return f"edit #{self.seq} of adapter {self.adapter_id}"
