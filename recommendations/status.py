"""What the status panel, the dashboard and the JSON endpoints say about recommendations.

Reads only cheap things (the model directory, the index stamp, row counts): never loads the model.
"""

from __future__ import annotations

from typing import Any

from adapters.models import Adapter
from recommendations import embeddings, index, recipe
from recommendations.embedding_runs import latest_run
from recommendations.embeddings import Unavailable
from recommendations.models import Embedding


def overview() -> dict[str, Any]:
    model = embeddings.status()
    unavailable = model["problem"]
    stamp = None
    if unavailable is None:
        try:
            snapshot = index.current()
            stamp = snapshot.stamp if snapshot is not None else None
        except Unavailable as exc:
            unavailable = str(exc)
    embedded = 0
    if model.get("identity"):
        embedded = Embedding.objects.filter(model_name=model["identity"], recipe_version=recipe.RECIPE_VERSION).count()
    stale_index = bool(stamp) and (
        stamp.get("model") != model.get("identity") or stamp.get("recipe") != recipe.RECIPE_VERSION
    )
    return {
        "unavailable": unavailable,
        "ready": unavailable is None and stamp is not None and not stale_index,
        "model": model,
        "index": stamp,
        "stale_index": stale_index,
        "embedded": embedded,
        "adapters": Adapter.objects.usable().count(),
        "recipe_version": recipe.RECIPE_VERSION,
        "run": latest_run(),
    }
