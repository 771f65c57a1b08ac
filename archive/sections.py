"""Optional manifest sections beside the adapters: presets, recommendation feedback, generation history
(with the ratings of its result images).

Each section has an ``export_*`` (rows to plain dicts) and an ``import_*`` that both plans (``apply=False``:
counts only, nothing written) and applies, so the dry-run plan and the import can never disagree.
Adapters are referred to by their archive key (``{"key": "a12"}``) or, when not in the archive, by
identity (``{"sha256": ..., "tensor_sha256": ..., "name": ...}``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from django.contrib.auth import get_user_model
from django.utils.dateparse import parse_datetime

from adapters.models import Adapter
from archive import manifest as mf
from generation import learning, storage
from generation.models import GenerationImage, GenerationJob, JobLora, Preset, RatedLora, ResultRating
from recommendations.feedback import context_key
from recommendations.models import Feedback

Resolve = Callable[[Any], int | None]
JOB_FIELDS = tuple(
    f.name
    for f in GenerationJob._meta.concrete_fields
    if not f.primary_key and not f.is_relation and f.name not in ("rq_job_id", "preview")
)  # relations (who asked, the sweep, the delivery target) are not part of the history
IMAGE_FIELDS = ("index", "format", "width", "height", "size", "seed", "infotext", "partial")


def _ref(adapter_id: int | None, keys: dict[int, str]) -> dict | None:
    if adapter_id is None:
        return None
    if adapter_id in keys:
        return {"key": keys[adapter_id]}
    adapter = Adapter.objects.filter(pk=adapter_id).only("name", "sha256", "tensor_sha256").first()
    if adapter is None:
        return None
    return {"sha256": adapter.sha256 or "", "tensor_sha256": adapter.tensor_sha256, "name": adapter.name}


def _usernames() -> dict[str, int]:
    return dict(get_user_model().objects.values_list("username", "pk"))


# --- presets -----------------------------------------------------------------------------------------


def export_presets() -> list[dict]:
    return [
        {
            "name": p.name,
            "data": p.data,
            "owner": p.owner.get_username() if p.owner else None,
            "created_at": p.created_at.isoformat(),
            "updated_at": p.updated_at.isoformat(),
        }
        for p in Preset.objects.select_related("owner").order_by("name")
    ]


def _free_name(name: str, taken: set[str]) -> str:
    for n in range(1, 1000):
        candidate = f"{name} (imported{'' if n == 1 else f' {n}'})"[:100]
        if candidate not in taken:
            return candidate
    raise ValueError(f"no free name for preset {name!r}")


def import_presets(items: list[dict], on_conflict: str, apply: bool) -> dict[str, int]:
    counts: Counter = Counter()
    existing = {p.name: p for p in Preset.objects.all()}
    users = _usernames()
    for item in items:
        name, data = str(item.get("name", ""))[:100], item.get("data", {})
        local = existing.get(name)
        if local is not None and local.data == data:
            counts["identical"] += 1
            continue
        if local is None:
            counts["new"] += 1
            if apply:
                preset = Preset.objects.create(name=name, data=data, owner_id=users.get(item.get("owner")))
                _stamp(Preset, preset.pk, item)
            continue
        counts["conflicting"] += 1
        if not apply or on_conflict == "skip":
            continue
        if on_conflict == "update":
            Preset.objects.filter(pk=local.pk).update(data=data)
        else:  # keep-both: the archive's version beside ours, under a new name
            taken = set(existing) | set(Preset.objects.values_list("name", flat=True))
            copy = Preset.objects.create(name=_free_name(name, taken), data=data, owner_id=users.get(item.get("owner")))
            _stamp(Preset, copy.pk, item)
    return dict(counts)


def _stamp(model, pk: int, item: dict) -> None:
    """Keep the archive's timestamps (auto_now fields would otherwise say 'now')."""
    values = {k: parse_datetime(item[k]) for k in ("created_at", "updated_at") if isinstance(item.get(k), str)}
    if values:
        model.objects.filter(pk=pk).update(**values)


# --- recommendation feedback ----------------------------------------------------------------------------


def export_feedback(keys: dict[int, str]) -> list[dict]:
    rows = Feedback.objects.filter(adapter_id__in=list(keys)).select_related("user").order_by("pk")
    items = []
    for row in rows.iterator(chunk_size=2000):
        context: Any = row.context
        if row.kind == Feedback.Kind.ADAPTER:
            context = _ref(int(row.context), keys)
            if context is None:
                continue
        items.append(
            {
                "user": row.user.get_username(),
                "adapter": {"key": keys[row.adapter_id]},
                "kind": row.kind,
                "context": context,
                "value": row.value,
                "created_at": row.created_at.isoformat(),
                "updated_at": row.updated_at.isoformat(),
            }
        )
    return items


def import_feedback(items: list[dict], resolve: Resolve, on_conflict: str, apply: bool) -> dict[str, int]:
    counts: Counter = Counter()
    users = _usernames()
    for item in items:
        user_id, adapter_id = users.get(item.get("user")), resolve(item.get("adapter"))
        kind, value = item.get("kind"), item.get("value")
        context = item.get("context")
        if kind == Feedback.Kind.ADAPTER:
            source = resolve(context)
            context = str(source) if source is not None else None
        if user_id is None or context is None or kind not in Feedback.Kind.values or value not in (-1, 1):
            counts["skipped"] += 1  # the user does not exist here, or the source adapter is not in this library
            continue
        if adapter_id is None:  # its adapter is new: so is the vote
            counts["new"] += 1
            continue
        key = context_key(kind, context)
        local = Feedback.objects.filter(user_id=user_id, adapter_id=adapter_id, context_key=key).first()
        if local is not None and local.value == value:
            counts["identical"] += 1
        elif local is None:
            counts["new"] += 1
            if apply:
                row = Feedback.objects.create(
                    user_id=user_id, adapter_id=adapter_id, kind=kind, context=context, context_key=key, value=value
                )
                _stamp(Feedback, row.pk, item)
        else:
            counts["conflicting"] += 1  # one vote per context: keep-both keeps ours
            if apply and on_conflict == "update":
                Feedback.objects.filter(pk=local.pk).update(value=value)
    return dict(counts)


def create_new_feedback(items: list[dict], resolve: Resolve, new_ids: set[int]) -> int:
    """Votes on adapters created by this import (the plan counted them as new)."""
    users = _usernames()
    made = 0
    for item in items:
        adapter_id = resolve(item.get("adapter"))
        if adapter_id not in new_ids:
            continue
        user_id, kind, value, context = (
            users.get(item.get("user")),
            item.get("kind"),
            item.get("value"),
            item.get("context"),
        )
        if kind == Feedback.Kind.ADAPTER:
            source = resolve(context)
            context = str(source) if source is not None else None
        if user_id is None or context is None or kind not in Feedback.Kind.values or value not in (-1, 1):
            continue
        row, created = Feedback.objects.get_or_create(
            user_id=user_id,
            adapter_id=adapter_id,
            context_key=context_key(kind, context),
            defaults={"kind": kind, "context": context, "value": value},
        )
        if created:
            _stamp(Feedback, row.pk, item)
            made += 1
    return made


# --- generation history ---------------------------------------------------------------------------------


EVERYTHING = object()  # backups and the command line: every job, private ones included


def export_history(keys: dict[int, str], user=EVERYTHING) -> tuple[list[dict], list[tuple[str, Path]]]:
    """Finished jobs with their LoRAs and images; returns (items, [(archive path, image file)]).
    An export a user asked for holds only the jobs that user may see (the one visibility rule)."""
    items, files = [], []
    jobs = GenerationJob.objects.exclude(status__in=["queued", "running"]).select_related("requested_by")
    if user is not EVERYTHING:
        jobs = jobs.visible_to(user)
    for job in (
        jobs.prefetch_related("loras", "images", "images__ratings__user").order_by("pk").iterator(chunk_size=500)
    ):
        item = {name: mf.dump_value(getattr(job, name)) for name in JOB_FIELDS}
        item["requested_by"] = job.requested_by.get_username() if job.requested_by else None
        item["loras"] = [
            {
                "name": lo.name,
                "weight": lo.weight,
                "position": lo.position,
                "applied": lo.applied,
                "adapter": _ref(lo.adapter_id, keys),
            }
            for lo in job.loras.all()
        ]
        item["images"] = []
        for image in job.images.all():
            entry = {name: getattr(image, name) for name in IMAGE_FIELDS}
            for kind in ("path", "thumbnail"):
                source = storage.absolute(getattr(image, kind))
                archive_path = f"media/{getattr(image, kind)}"
                entry[kind] = PurePosixPath(getattr(image, kind)).name
                if source.is_file():
                    files.append((archive_path, source))
                    entry[f"{kind}_archive"] = archive_path
            entry["ratings"] = [
                {
                    "user": r.user.get_username(),
                    "thumb": r.thumb,
                    "stars": r.stars,
                    "created_at": mf.dump_value(r.created_at),
                }
                for r in image.ratings.all()
            ]
            item["images"].append(entry)
        items.append(item)
    return items, files


def _job_key(created_at: Any, prompt: str, seed: Any) -> tuple:
    return (parse_datetime(created_at) if isinstance(created_at, str) else created_at, prompt, seed)


def new_history_files(items: list[dict]) -> list[str]:
    """Archive paths of the images (and thumbnails) an import would write: those of jobs not yet here."""
    existing = set(GenerationJob.objects.values_list("created_at", "prompt", "seed"))
    paths = []
    for item in items:
        if _job_key(item.get("created_at"), item.get("prompt", ""), item.get("seed")) in existing:
            continue
        for image in item.get("images", []):
            paths += [image[f"{kind}_archive"] for kind in ("path", "thumbnail") if image.get(f"{kind}_archive")]
    return paths


def import_history(
    items: list[dict], resolve: Resolve, apply: bool, place: Callable[[str, str], None] | None = None
) -> dict[str, int]:
    """New jobs are added (with their images, placed by ``place(archive_path, media_relative_path)``);
    a job already here (same creation time, prompt and seed) is identical and left alone. Ratings of new
    jobs' images come along for users that exist here, and teach the adapters as if rated here."""
    counts: Counter = Counter()
    taught: set[int] = set()
    existing = set(GenerationJob.objects.values_list("created_at", "prompt", "seed"))
    users = _usernames()
    for item in items:
        key = _job_key(item.get("created_at"), item.get("prompt", ""), item.get("seed"))
        if key in existing:
            counts["identical"] += 1
            continue
        counts["new"] += 1
        if not apply:
            continue
        values = mf.load_fields(GenerationJob, item, JOB_FIELDS)
        job = GenerationJob.objects.create(**values, requested_by_id=users.get(item.get("requested_by")))
        GenerationJob.objects.filter(pk=job.pk).update(created_at=values.get("created_at") or job.created_at)
        JobLora.objects.bulk_create(
            JobLora(
                job=job,
                adapter_id=resolve(lo.get("adapter")),
                name=lo["name"],
                weight=lo["weight"],
                position=lo.get("position", 0),
                applied=lo.get("applied"),
            )
            for lo in item.get("loras", [])
        )
        folder = storage.job_folder(job.pk)
        for image in item.get("images", []):
            paths = {}
            for kind in ("path", "thumbnail"):
                paths[kind] = f"{folder}/{PurePosixPath(image[kind]).name}"
                if image.get(f"{kind}_archive") and place:
                    place(image[f"{kind}_archive"], paths[kind])
            made = GenerationImage.objects.create(job=job, **{n: image[n] for n in IMAGE_FIELDS}, **paths)
            rated = _import_ratings(made, image.get("ratings", []), users)
            counts["ratings"] += rated
            if rated:
                taught.update(pk for pk in made.job.loras.values_list("adapter_id", flat=True) if pk)
        existing.add(key)
    learning.refresh(taught)
    return dict(counts)


def _import_ratings(image: GenerationImage, items: list[dict], users: dict[str, int]) -> int:
    made = 0
    loras = list(image.job.loras.all())
    for item in items:
        user_id = users.get(item.get("user"))
        if user_id is None:  # votes of people who have no account here are left out
            continue
        rating = ResultRating.objects.create(
            image=image, job=image.job, user_id=user_id, thumb=item.get("thumb"), stars=item.get("stars")
        )
        if item.get("created_at"):
            ResultRating.objects.filter(pk=rating.pk).update(created_at=parse_datetime(item["created_at"]))
        RatedLora.objects.bulk_create(
            RatedLora(rating=rating, adapter_id=lo.adapter_id, name=lo.name, weight=lo.weight, applied=lo.applied)
            for lo in loras
        )
        made += 1
    return made
