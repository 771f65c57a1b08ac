"""Bulk actions over adapter ids: the admin, the library UI, the API and commands all call these.

Each returns how many adapters it changed. Values set here are user edits: they are marked with
source "user" where a rescan could otherwise overwrite them.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from adapters.models import USER_SOURCE, Adapter, AdapterFile, BaseModel, FileStatus, Tag

MAX_TAG_LENGTH = 100


def normalize_tag(name: str) -> str:
    tag = " ".join(name.strip().lower().split())
    if not tag:
        raise ValueError("a tag cannot be empty")
    if len(tag) > MAX_TAG_LENGTH:
        raise ValueError(f"a tag can have at most {MAX_TAG_LENGTH} characters")
    return tag


def _mark_user(ids: list[int], field: str) -> None:
    """Record on each adapter that ``field`` was set by a person, so rescans leave it alone."""
    changed = []
    for adapter in Adapter.objects.filter(pk__in=ids).only("pk", "sources"):
        if adapter.sources.get(field) != USER_SOURCE:
            adapter.sources[field] = USER_SOURCE
            changed.append(adapter)
    Adapter.objects.bulk_update(changed, ["sources"], batch_size=1000)


def set_active(ids: Iterable[int], active: bool) -> int:
    return Adapter.objects.filter(pk__in=list(ids)).exclude(active=active).update(active=active)


def set_favorite(ids: Iterable[int], favorite: bool) -> int:
    ids = list(ids)
    with transaction.atomic():
        count = Adapter.objects.filter(pk__in=ids).exclude(favorite=favorite).update(favorite=favorite)
        _mark_user(ids, "favorite")
    return count


def set_base_model(ids: Iterable[int], base_model: str) -> int:
    if base_model not in BaseModel.values:
        raise ValueError(f"unknown base model {base_model!r}: use one of {', '.join(BaseModel.values)}")
    ids = list(ids)
    with transaction.atomic():
        count = Adapter.objects.filter(pk__in=ids).exclude(base_model=base_model).update(base_model=base_model)
        _mark_user(ids, "base_model")
    return count


def add_tags(ids: Iterable[int], names: Iterable[str]) -> int:
    tags = [Tag.objects.get_or_create(name=normalize_tag(n))[0] for n in names]
    ids = list(ids)
    through = Adapter.tags.through
    before = through.objects.filter(adapter_id__in=ids, tag__in=tags).count()
    through.objects.bulk_create(
        [through(adapter_id=a, tag_id=t.pk) for a in ids for t in tags], ignore_conflicts=True, batch_size=1000
    )
    return through.objects.filter(adapter_id__in=ids, tag__in=tags).count() - before


def remove_tags(ids: Iterable[int], names: Iterable[str]) -> int:
    wanted = [normalize_tag(n) for n in names]
    deleted, _ = Adapter.tags.through.objects.filter(adapter_id__in=list(ids), tag__name__in=wanted).delete()
    return deleted


def remove_from_catalog(ids: Iterable[int]) -> int:
    """Forget adapters (their files stay on disk; a rescan would add them again as new)."""
    deleted = Adapter.objects.filter(pk__in=list(ids)).delete()[1].get("adapters.Adapter", 0)
    return deleted


def mark_for_rescan(ids: Iterable[int]) -> int:
    """Forget the files' cached (size, mtime) so the next scan re-reads them."""
    return AdapterFile.objects.filter(adapter_id__in=list(ids)).update(mtime_ns=-1, sidecar_signature="")


def mark_for_rehash(ids: Iterable[int]) -> int:
    return AdapterFile.objects.filter(adapter_id__in=list(ids), status=FileStatus.PRESENT).update(
        sha256="", tensor_sha256="", hashed_size=None, hashed_mtime_ns=None
    )


def rename_tag(tag: Tag, new_name: str) -> Tag:
    """Renaming onto an existing tag merges the two."""
    name = normalize_tag(new_name)
    existing = Tag.objects.filter(name=name).exclude(pk=tag.pk).first()
    if existing:
        merge_tags([tag.pk], existing)
        return existing
    tag.name = name
    tag.save(update_fields=["name"])
    return tag


def merge_tags(source_ids: Iterable[int], target: Tag) -> int:
    """Move every association of the source tags to ``target`` and delete the sources."""
    source_ids = [pk for pk in source_ids if pk != target.pk]
    through = Adapter.tags.through
    with transaction.atomic():
        adapter_ids = through.objects.filter(tag_id__in=source_ids).values_list("adapter_id", flat=True).distinct()
        through.objects.bulk_create(
            [through(adapter_id=a, tag_id=target.pk) for a in adapter_ids], ignore_conflicts=True, batch_size=1000
        )
        Tag.objects.filter(pk__in=source_ids).delete()
    return len(source_ids)
