"""RQ jobs of the recommendations app (queue ``embeddings``). They take ids and call the domain functions."""

from __future__ import annotations

from lora_manager.runs.jobs import tracked
from recommendations import embedding_runs
from recommendations.models import EmbeddingRun


@tracked
def embed_job(run_id: int) -> dict:
    run = EmbeddingRun.objects.get(pk=run_id)
    if run.status != EmbeddingRun.Status.QUEUED:  # reconciled or run by hand meanwhile
        return {"skipped": run.status}
    run = embedding_runs.execute(run)
    return {"embedded": run.embedded, "unchanged": run.unchanged, "indexed": run.indexed}
