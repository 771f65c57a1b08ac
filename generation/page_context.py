"""What the generation templates need, gathered once for views and consumers alike (no request needed)."""

from __future__ import annotations

import secrets

from django.db.models import Case, Value, When
from django.db.models.functions import Lower

from adapters import search
from adapters.models import Adapter
from generation import backends, composer, lora_names, submitting
from generation.models import GenerationJob, Preset
from generation.progress import job_snapshot


def new_row_key() -> str:
    return secrets.token_hex(4)


def lora_row(adapter: Adapter | None, choice: composer.LoraChoice) -> dict:
    low, high = composer.slider_range(adapter)
    return {
        "key": choice.key or new_row_key(),
        "adapter": adapter,
        "adapter_id": choice.adapter_id,
        "name": adapter.name if adapter else choice.name or f"#{choice.adapter_id}",
        "weight": composer.format_weight(choice.weight),
        "triggers": choice.triggers,
        "negative": choice.negative,
        "slider_min": composer.format_weight(low),
        "slider_max": composer.format_weight(high),
        "inserted": composer.inserted_text(adapter) if adapter else "",
        "negative_text": adapter.negative_text.strip() if adapter else "",
    }


def lora_rows(composition: composer.Composition) -> list[dict]:
    ids = [c.adapter_id for c in composition.loras if c.adapter_id is not None]
    adapters = Adapter.objects.in_bulk(ids) if ids else {}
    return [lora_row(adapters.get(c.adapter_id) if c.adapter_id else None, c) for c in composition.loras]


def choice_for(adapter: Adapter) -> composer.LoraChoice:
    return composer.LoraChoice(adapter.pk, composer.default_weight(adapter), triggers=True, negative=False)


def backend_context(name: str, info: backends.ServerInfo, composition: composer.Composition, message: str = "") -> dict:
    checkpoints = [c.get("title") or c.get("model_name") or "" for c in info.checkpoints]
    if composition.checkpoint and composition.checkpoint not in checkpoints:
        checkpoints.insert(0, composition.checkpoint)
    samplers = ["Default", *[s for s in info.samplers if s != "Default"]]
    if composition.sampler and composition.sampler not in samplers:
        samplers.insert(0, composition.sampler)
    backend = backends.all_backends().get(name)
    return {
        "backend_name": name,
        "backend": backend,
        "info": info,
        "checkpoints": checkpoints,
        "current_checkpoint": info.current.get("title") or "",
        "samplers": samplers,
        "composition": composition,
        "sync": lora_names.sync_state(name),
        "backend_message": message,
    }


def queue_context(can_cancel: bool, user=None) -> dict:
    positions, counts = submitting.queue_positions()
    active = list(submitting.active_jobs())
    for job in active:
        job.position = positions.get(job.pk)
        job.snap = job_snapshot(job)
        job.hidden = user is not None and not job.visible_to(user)  # someone else's private job: no prompt
        if job.hidden:
            job.snap["preview"] = ""  # ... and no live preview either
    running = {job.backend for job in active if job.status == "running"}
    return {"active": active, "queued_counts": counts, "running_backends": running, "can_cancel": can_cancel}


def recent_context(user=None) -> dict:
    return {"recent": list(submitting.recent_jobs(user=user))}


def shown_warnings(job: GenerationJob, loras: list) -> list[str]:
    """The job's warnings as they stand now: once SD.Next reported which LoRAs it applied, the
    composer's "would be skipped" guesses are answered (the pipeline's own warning names any it skipped)."""
    outcome_known = not job.is_active and any(lora.applied is not None for lora in loras)
    if not outcome_known:
        return list(job.warnings)
    return [w for w in job.warnings if composer.SKIP_PREDICTION not in str(w)]


def job_context(job: GenerationJob, can_cancel: bool, can_submit: bool) -> dict:
    position = submitting.queue_positions()[0].get(job.pk) if job.status == "queued" else None
    loras = list(job.loras.select_related("adapter"))
    duration = job.duration_seconds
    return {
        "job": job,
        "warnings": shown_warnings(job, loras),
        "snap": job_snapshot(job),
        "position": position,
        "loras": loras,
        "images": list(job.images.all()),
        "can_cancel": can_cancel,
        "can_submit": can_submit,
        "parameters": [
            ("Backend", job.backend),
            ("Checkpoint", job.checkpoint or "(the one loaded)"),
            ("Sampler", job.sampler),
            ("Steps", job.steps),
            ("CFG scale", job.cfg_scale),
            ("Size", f"{job.width}×{job.height}"),
            ("Seed", job.seed if job.seed != -1 else "random"),
            ("Seeds used", ", ".join(str(s) for s in job.seeds) or "–"),
            ("Batch size × count", f"{job.batch_size} × {job.n_iter}"),
            ("Ran", f"{duration:.1f} s" if duration is not None else "–"),
        ],
    }


def presets() -> list[Preset]:
    return list(Preset.objects.select_related("owner"))


def popular_adapters(limit: int = 8):
    return Adapter.objects.usable().filter(active=True).order_by("-usage_count", "-last_used_at", "name")[:limit]


def search_adapters(query: str, limit: int = 20) -> list[Adapter]:
    """LoRAs whose name, alias, trigger words, description or tags contain every word of ``query``.

    The gallery's indexed search (adapters/search.py), so it stays fast on a large library; names
    that start with the query come first, then active, often used ones.
    """
    adapters = Adapter.objects.usable()
    matching = search.search_q(query)
    if matching is not None:
        adapters = adapters.filter(matching)
    starts = query.strip().lower()
    adapters = adapters.annotate(
        name_first=Case(When(name__istartswith=starts, then=Value(0)), default=Value(1)) if starts else Value(1)
    )
    ordered = adapters.order_by("name_first", "-active", "-usage_count", Lower("name"), "id")
    found = list(ordered.prefetch_related("tags")[:limit])
    for adapter in found:
        adapter.matched = _matched_on(adapter, starts)
    return found


def _matched_on(adapter: Adapter, query: str) -> str:
    """Why a result matched when its name does not show it: "alias x", "trigger x" or "tag x"."""
    words = [w for w in query.split() if len(w) >= 2]
    if not words or all(w in adapter.name.lower() for w in words):
        return ""
    if adapter.alias and any(w in adapter.alias.lower() for w in words):
        return f"alias {adapter.alias}"
    for word in adapter.trigger_words or []:
        if any(w in str(word).lower() for w in words):
            return f"trigger {word}"
    for tag in adapter.tags.all():
        if any(w in tag.name.lower() for w in words):
            return f"tag {tag.name}"
    return ""
