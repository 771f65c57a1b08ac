"""Embeddings of adapters (the truth the FAISS index is rebuilt from), embedding runs and feedback.

Vectors live in the database with the model and recipe that produced them and a hash of the text
they came from, so a run re-embeds only adapters whose text, model or recipe changed.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from adapters.models import Adapter
from lora_manager.models import TrackedRun


class Embedding(models.Model):
    adapter = models.OneToOneField(Adapter, on_delete=models.CASCADE, primary_key=True, related_name="embedding")
    model_name = models.CharField(max_length=200)  # embeddings.model_identity(): directory name + content hash
    recipe_version = models.PositiveSmallIntegerField()
    text_sha256 = models.CharField(max_length=64)
    dim = models.PositiveSmallIntegerField()
    vector = models.BinaryField()  # float32, little-endian, L2-normalised
    updated_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["model_name", "recipe_version"])]

    def __str__(self) -> str:
        return f"embedding of adapter {self.adapter_id}"


class EmbeddingRun(TrackedRun):
    """One pass that brings embeddings and the index in line with the catalog; the row users watch."""

    rebuild = models.BooleanField(default=False)  # re-embed everything, even unchanged adapters
    reason = models.CharField(max_length=100, blank=True)  # what asked for it: scan, edit, user, ...
    embedded = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    indexed = models.PositiveIntegerField(default=0)
    index_kind = models.CharField(max_length=16, blank=True)

    queue_name, job_path, job_id_prefix = "embeddings", "recommendations.tasks.embed_job", "embed"
    progress_group, noun, again = "embedding.{pk}", "embedding run", "it runs again after the next scan or edit"

    class Meta(TrackedRun.Meta):
        indexes = [models.Index(fields=["status", "created_at"])]


class Feedback(models.Model):
    """A user's thumbs up (+1) or down (-1) on one suggestion in one context (a prompt or a source adapter)."""

    class Kind(models.TextChoices):
        PROMPT = "prompt", "Prompt"
        ADAPTER = "adapter", "Similar to an adapter"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="lora_feedback")
    adapter = models.ForeignKey(Adapter, on_delete=models.CASCADE, related_name="feedback")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    context = models.TextField()  # the normalised prompt, or the source adapter id
    context_key = models.CharField(max_length=64)  # sha256 of kind + context: indexable and unique
    value = models.SmallIntegerField()  # +1 or -1
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "adapter", "context_key"], name="feedback_one_vote_per_context"),
            models.CheckConstraint(condition=models.Q(value__in=[-1, 1]), name="feedback_value_is_plus_minus_one"),
        ]
        indexes = [models.Index(fields=["adapter", "context_key"]), models.Index(fields=["user", "adapter"])]

    def __str__(self) -> str:
        return f"{self.user_id} {'+' if self.value > 0 else '-'}1 adapter {self.adapter_id} ({self.kind})"
