"""Generation jobs and what they leave behind: the row users watch, its LoRAs, its images, presets.

A job's state lives in its row (ARCHITECTURE: the database is the truth); websocket events only say
that the row changed. The composer state is kept as JSON (``composition``) so any job can be opened
in the composer again or re-run exactly.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


def sees_everything(user) -> bool:
    return bool(user is not None and getattr(user, "is_staff", False) and getattr(user, "is_active", True))


def visible_q(user, job: str = "", owner: str = "requested_by") -> models.Q:
    """THE visibility rule of generation results (docs/security.md), as a filter on a job relation:
    a private job is seen by the user who requested it and by admins (staff) only. ``job`` is the path
    to the job from the filtered model ("" for jobs, "job__" for images and ratings); recipes, which
    carry their own ``private`` flag and ``owner``, use the same rule with ``owner="owner"``."""
    if sees_everything(user):
        return models.Q()
    public = models.Q(**{f"{job}private": False})
    if user is None or getattr(user, "pk", None) is None:
        return public
    return public | models.Q(**{f"{job}{owner}_id": user.pk})


class VisibleQuerySet(models.QuerySet):
    """``.visible_to(user)`` on jobs, images, ratings and sweeps: every view, API endpoint, consumer,
    re-run, history, dashboard figure and export that shows results goes through it."""

    job_path = ""
    owner_field = "requested_by"

    def visible_to(self, user):
        return self.filter(visible_q(user, self.job_path, self.owner_field))


class GenerationJobQuerySet(VisibleQuerySet):
    pass


class GenerationImageQuerySet(VisibleQuerySet):
    job_path = "job__"


class ResultRatingQuerySet(VisibleQuerySet):
    job_path = "job__"

    def visible_to(self, user):  # a rating whose job was deleted shows no prompt: still visible
        return self.filter(visible_q(user, "job__") | models.Q(job__isnull=True)) if not sees_everything(user) else self


class RecipeQuerySet(VisibleQuerySet):
    owner_field = "owner"


class SweepQuerySet(models.QuerySet):
    def visible_to(self, user):
        """A sweep is seen when every one of its jobs is (a sweep holds one prompt: one private job hides it)."""
        if sees_everything(user):
            return self
        hidden = GenerationJob.objects.exclude(visible_q(user)).filter(sweep_id=models.OuterRef("pk"))
        return self.filter(~models.Exists(hidden))


class GenerationJob(models.Model):
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    backend = models.CharField(max_length=32, default="default")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    # What was sent: the final prompts (with <lora:...> tokens and inserted trigger words) and parameters.
    prompt = models.TextField(blank=True)
    negative_prompt = models.TextField(blank=True)
    checkpoint = models.CharField(max_length=255, blank=True)
    sampler = models.CharField(max_length=100, default="Default")
    steps = models.PositiveIntegerField(default=20)
    cfg_scale = models.FloatField(default=6.0)
    width = models.PositiveIntegerField(default=1024)
    height = models.PositiveIntegerField(default=1024)
    seed = models.BigIntegerField(default=-1)
    batch_size = models.PositiveIntegerField(default=1)
    n_iter = models.PositiveIntegerField(default=1)
    live_preview = models.BooleanField(default=False)
    composition = models.JSONField(default=dict, blank=True)  # the composer's state (composer.Composition)
    payload = models.JSONField(default=dict, blank=True)  # the txt2img request body
    rq_job_id = models.CharField(max_length=100, blank=True)
    cancel_requested = models.BooleanField(default=False)
    # Progress of the current SD.Next phase, written by progress.JobReporter (throttled).
    phase = models.CharField(max_length=64, blank=True)
    step = models.PositiveIntegerField(default=0)
    steps_total = models.PositiveIntegerField(default=0)
    pass_no = models.PositiveIntegerField(default=0)
    passes = models.PositiveIntegerField(default=0)
    progress = models.FloatField(default=0.0)
    eta_seconds = models.FloatField(null=True, blank=True)
    preview = models.TextField(blank=True)  # latest live preview as a data: URL (only when live_preview)
    # Outcome.
    message = models.TextField(blank=True)
    warnings = models.JSONField(default=list, blank=True)
    info = models.JSONField(default=dict, blank=True)  # SD.Next's parsed `info`
    infotext = models.TextField(blank=True)
    seeds = models.JSONField(default=list, blank=True)
    loras_applied = models.JSONField(default=list, blank=True)  # names from SD.Next's "LoRA networks"
    timings = models.JSONField(default=dict, blank=True)  # wall-clock stamps: submitted, started, sent, ...
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Curation and results (docs/results.md): private jobs are seen by their owner and admins only;
    # pinned jobs (like rated ones) are never removed by retention.
    private = models.BooleanField(default=False)
    pinned = models.BooleanField(default=False)
    sweep = models.ForeignKey("Sweep", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    sweep_cell = models.PositiveIntegerField(null=True, blank=True)  # position in the sweep's grid
    # Another delivery than SD.Next (a webhook or a command): what the target answered.
    target = models.ForeignKey("DeliveryTarget", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    result_code = models.IntegerField(null=True, blank=True)  # HTTP status, or the command's exit code
    output = models.TextField(blank=True)  # response body, or the command's output (capped)

    objects = GenerationJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["backend", "status", "id"]),
            models.Index(fields=["status", "created_at"]),
            models.Index(fields=["created_at"]),
            models.Index(fields=["checkpoint", "created_at"]),
            models.Index(fields=["pinned", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"generation #{self.pk} ({self.status})"

    @property
    def is_delivery(self) -> bool:
        return self.target_id is not None

    def visible_to(self, user) -> bool:
        """The same rule as ``GenerationJob.objects.visible_to`` for a row already loaded."""
        if not self.private or sees_everything(user):
            return True
        return user is not None and user.pk is not None and user.pk == self.requested_by_id

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class JobLora(models.Model):
    """One LoRA a job asked for; `applied` says whether SD.Next reported loading it."""

    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="loras")
    adapter = models.ForeignKey(
        "adapters.Adapter", null=True, blank=True, on_delete=models.SET_NULL, related_name="generation_uses"
    )
    name = models.CharField(max_length=255)  # the name in the <lora:name:weight> token
    weight = models.FloatField()
    position = models.PositiveIntegerField(default=0)
    applied = models.BooleanField(null=True)

    class Meta:
        ordering = ["position", "id"]
        indexes = [models.Index(fields=["name"])]

    def __str__(self) -> str:
        return f"<lora:{self.name}:{self.weight:g}>"


class GenerationImage(models.Model):
    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="images")
    index = models.PositiveIntegerField()
    path = models.CharField(max_length=500)  # relative to MEDIA_ROOT
    thumbnail = models.CharField(max_length=500)  # relative to MEDIA_ROOT
    format = models.CharField(max_length=8)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size = models.PositiveIntegerField()
    seed = models.BigIntegerField(null=True, blank=True)
    infotext = models.TextField(blank=True)
    partial = models.BooleanField(default=False)  # from a cancelled run (SD.Next's keep_incomplete)

    objects = GenerationImageQuerySet.as_manager()

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="generation_image_job_index")]

    def __str__(self) -> str:
        return self.path


class Preset(models.Model):
    """A named composer state, shared by everyone who may generate."""

    name = models.CharField(max_length=100, unique=True)
    data = models.JSONField(default=dict)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class BackendLora(models.Model):
    """A LoRA as one SD.Next backend knows it (from /sdapi/v1/loras), matched to a catalog adapter."""

    backend = models.CharField(max_length=32)
    name = models.CharField(max_length=255)
    alias = models.CharField(max_length=255, blank=True)
    path = models.CharField(max_length=2048, blank=True)
    model_hash = models.CharField(max_length=64, blank=True)  # metadata sshs_model_hash, when present
    adapter = models.ForeignKey(
        "adapters.Adapter", null=True, blank=True, on_delete=models.SET_NULL, related_name="backend_loras"
    )
    matched_by = models.CharField(max_length=16, blank=True)  # hash, path, name, alias
    refreshed_at = models.DateTimeField()

    class Meta:
        ordering = ["backend", "name"]
        constraints = [models.UniqueConstraint(fields=["backend", "name"], name="backend_lora_unique_name")]
        indexes = [models.Index(fields=["backend", "adapter"])]

    def __str__(self) -> str:
        return f"{self.backend}:{self.name}"


class BackendSync(models.Model):
    """When a backend's LoRA list was last read, so the linter can tell "unknown" from "never asked"."""

    backend = models.CharField(max_length=32, unique=True)
    loras_refreshed_at = models.DateTimeField(null=True, blank=True)
    lora_count = models.PositiveIntegerField(default=0)
    matched_count = models.PositiveIntegerField(default=0)
    message = models.TextField(blank=True)

    def __str__(self) -> str:
        return self.backend


class ResultRating(models.Model):
    """One user's verdict on one result image: thumbs up/down and/or 1-5 stars.

    What the job used is copied into ``RatedLora`` rows when the rating is saved, so what was
    learned survives deleting the image or the job (curation removes pictures, not lessons)."""

    image = models.ForeignKey(GenerationImage, null=True, blank=True, on_delete=models.SET_NULL, related_name="ratings")
    job = models.ForeignKey(GenerationJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="ratings")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="result_ratings")
    thumb = models.SmallIntegerField(null=True, blank=True)  # +1 up, -1 down, None: stars only
    stars = models.PositiveSmallIntegerField(null=True, blank=True)  # 1-5
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ResultRatingQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["image", "user"], name="result_rating_one_per_user"),
            models.CheckConstraint(
                condition=models.Q(thumb__isnull=True) | models.Q(thumb__in=[-1, 1]), name="result_rating_thumb"
            ),
            models.CheckConstraint(
                condition=models.Q(stars__isnull=True) | models.Q(stars__gte=1, stars__lte=5),
                name="result_rating_stars",
            ),
        ]

    def __str__(self) -> str:
        return f"rating of image {self.image_id} by {self.user_id}"

    @property
    def score(self) -> float:
        """0..1: the stars when given, else the thumb (up 1, down 0)."""
        if self.stars:
            return (self.stars - 1) / 4
        return 1.0 if self.thumb == 1 else 0.0


class RatedLora(models.Model):
    """A LoRA (and its weight) of a rated result: the attribution the adapter page learns from."""

    rating = models.ForeignKey(ResultRating, on_delete=models.CASCADE, related_name="loras")
    adapter = models.ForeignKey(
        "adapters.Adapter", null=True, blank=True, on_delete=models.CASCADE, related_name="rated_uses"
    )
    name = models.CharField(max_length=255)
    weight = models.FloatField()
    applied = models.BooleanField(null=True)

    class Meta:
        ordering = ["rating", "id"]
        indexes = [models.Index(fields=["adapter", "weight"])]

    def __str__(self) -> str:
        return f"{self.name}:{self.weight:g}"


class Sweep(models.Model):
    """A batch of jobs with one prompt and one seed: one LoRA at several weights, or 2-3 LoRAs at one weight."""

    class Mode(models.TextChoices):
        WEIGHTS = "weights", "Weight sweep"
        COMPARE = "compare", "Compare LoRAs"

    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.WEIGHTS)
    adapter = models.ForeignKey(
        "adapters.Adapter", null=True, blank=True, on_delete=models.SET_NULL, related_name="sweeps"
    )
    labels = models.JSONField(default=list)  # one label per cell: "0.25", "pixel_xl @ 0.8"
    cells = models.JSONField(default=list)  # [{"adapter_id": .., "name": .., "weight": ..}, ...]
    prompt = models.TextField(blank=True)
    seed = models.BigIntegerField()
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    grid = models.CharField(max_length=500, blank=True)  # relative to MEDIA_ROOT, when built
    message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = SweepQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"sweep #{self.pk}"


class DeliveryTarget(models.Model):
    """Somewhere else a composed prompt can go: configured by admins in the Django admin, never by a request."""

    class Kind(models.TextChoices):
        WEBHOOK = "webhook", "HTTP webhook (POST JSON)"
        COMMAND = "command", "Command (run without a shell)"

    class Stdin(models.TextChoices):
        NONE = "none", "Nothing"
        PROMPT = "prompt", "The prompt"
        JSON = "json", "The JSON document (as the webhook's body)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    url = models.URLField(max_length=1000, blank=True, help_text="Webhook: the URL to POST to (http or https).")
    arguments = models.JSONField(
        default=list,
        blank=True,
        help_text="Command: the program and its arguments. {prompt}, {negative_prompt}, {json} and {job} "
        "inside an argument are replaced; no shell is involved.",
    )
    stdin = models.CharField(max_length=8, choices=Stdin.choices, default=Stdin.NONE)
    timeout_seconds = models.PositiveIntegerField(default=30)
    retries = models.PositiveSmallIntegerField(default=2, help_text="Webhook: retries after a connection error.")
    max_output_kb = models.PositiveIntegerField(default=256, help_text="Keep at most this much of the answer.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RecipeSource(models.TextChoices):
    A1111 = "a1111", "A1111 / SD.Next"
    COMFYUI = "comfyui", "ComfyUI"
    CIVITAI = "civitai", "Civitai"
    JOB = "job", "This app's result"


class Recipe(models.Model):
    """Generation parameters read from an image (docs/recipes.md), with the image kept and thumbnailed."""

    source = models.CharField(max_length=16, choices=RecipeSource.choices)
    title = models.CharField(max_length=255, blank=True)  # the uploaded file's name, or "Job #12, image 1"
    prompt = models.TextField(blank=True)
    negative = models.TextField(blank=True)
    steps = models.PositiveIntegerField(null=True, blank=True)
    sampler = models.CharField(max_length=100, blank=True)
    cfg_scale = models.FloatField(null=True, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    checkpoint = models.CharField(max_length=255, blank=True)
    checkpoint_hash = models.CharField(max_length=64, blank=True)
    parameters = models.JSONField(default=dict, blank=True)  # every other key the image carried
    warnings = models.JSONField(default=list, blank=True)  # what could not be read, ambiguous matches
    image = models.CharField(max_length=500, blank=True)  # the original, relative to MEDIA_ROOT
    image_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    image_key = models.CharField(max_length=64, blank=True)  # thumbnail key (adapters/thumbnails.py)
    job = models.ForeignKey(GenerationJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="recipes")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    private = models.BooleanField(default=False)  # made from a private result: its owner (and admins) only
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RecipeQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["private", "created_at"])]

    def __str__(self) -> str:
        return self.title or f"recipe #{self.pk}"

    def visible_to(self, user) -> bool:
        return not self.private or user.is_staff or (user.pk is not None and user.pk == self.owner_id)


class RecipeLora(models.Model):
    """One LoRA of a recipe and how it was found in the catalog (``matched_by`` empty = missing)."""

    class MatchedBy(models.TextChoices):
        AUTOV3 = "autov3", "AutoV3 (tensor hash)"
        AUTOV2 = "autov2", "AutoV2 (short file hash)"
        SHA256 = "sha256", "SHA256"
        FILE = "file", "File name"
        NAME = "name", "Name or alias"

    recipe = models.ForeignKey(Recipe, on_delete=models.CASCADE, related_name="loras")
    position = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=255)
    weight = models.FloatField(null=True, blank=True)
    hash = models.CharField(max_length=64, blank=True)
    file = models.CharField(max_length=1000, blank=True)
    adapter = models.ForeignKey(
        "adapters.Adapter", null=True, blank=True, on_delete=models.SET_NULL, related_name="recipe_uses"
    )
    matched_by = models.CharField(max_length=8, choices=MatchedBy.choices, blank=True)
    note = models.CharField(max_length=500, blank=True)  # e.g. "hash 36ea8a matches 2 LoRAs: ..."

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.name
