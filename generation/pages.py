"""What the generation templates need, gathered once for views and consumers alike (no request needed)."""

from __future__ import annotations

import secrets

from django.db.models import Q

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
    running = {job.backend for job in active if job.status == "running"}
    return {"active": active, "queued_counts": counts, "running_backends": running, "can_cancel": can_cancel}


def recent_context(user=None) -> dict:
    return {"recent": list(submitting.recent_jobs(user=user))}


def job_context(job: GenerationJob, can_cancel: bool, can_submit: bool) -> dict:
    position = submitting.queue_positions()[0].get(job.pk) if job.status == "queued" else None
    return {
        "job": job,
        "snap": job_snapshot(job),
        "position": position,
        "loras": list(job.loras.select_related("adapter")),
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
        ],
    }


def visible(queryset, user):
    """Jobs this user may see: everything but other users' private jobs (admins see all)."""
    if user is None or user.is_staff:
        return queryset
    return queryset.filter(Q(private=False) | Q(requested_by_id=user.pk))


def presets() -> list[Preset]:
    return list(Preset.objects.select_related("owner"))


def popular_adapters(limit: int = 8):
    return Adapter.objects.usable().filter(active=True).order_by("-usage_count", "-last_used_at", "name")[:limit]


def search_adapters(query: str, limit: int = 20):
    adapters = Adapter.objects.usable()
    if query:
        adapters = adapters.filter(Q(name__icontains=query) | Q(alias__icontains=query))
    return adapters.order_by("-active", "-usage_count", "name", "id")[:limit]
