"""Bulk edits over adapter ids. ``bulk_actions.ACTIONS`` (used by the library, the API and the admin) and
the management commands call these.

Each returns how many adapters (or tag links) it changed. Values set here are user edits: they are
marked with source "user" where a rescan could otherwise overwrite them.

Pass ``by=<user>`` to make an action undoable: it then records a ``BulkAction`` with the previous
state of exactly what it changed (old values grouped by value, the tag links it added or removed,
or the removed rows themselves), and ``undo`` puts that state back with the action's ``undo_*`` function.
Only a user's latest action can be undone, so an undo never resurrects a value a later action of theirs
replaced.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator

from django.apps import apps
from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, models, transaction
from django.db.models.deletion import Collector
from django.utils import timezone

from adapters.models import USER_SOURCE, Adapter, AdapterFile, BaseModel, BulkAction, FileStatus, Tag
from recommendations.embedding_runs import reembeds  # edits below re-embed (debounced)

MAX_TAG_LENGTH = 100
CHUNK = 2000  # ids per statement: SQLite allows 32,766 variables, and short statements lock briefly
MAX_UNDOABLE_REMOVAL = 5000  # a removal keeps whole rows for its undo; beyond this it is final (and says so)
KEEP_ACTIONS = 10  # per user


def normalize_tag(name: str) -> str:
    tag = " ".join(name.strip().lower().split())
    if any(ch < " " for ch in tag):
        raise ValueError("a tag cannot contain control characters")
    if not tag:
        raise ValueError("a tag cannot be empty")
    if len(tag) > MAX_TAG_LENGTH:
        raise ValueError(f"a tag can have at most {MAX_TAG_LENGTH} characters")
    return tag


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def existing_ids(ids: Iterable[int]) -> list[int]:
    """The ids that still exist: a page may be stale (someone removed adapters since it was shown)."""
    ids = list(dict.fromkeys(ids))
    found: list[int] = []
    for chunk in _chunks(ids):
        found += Adapter.objects.filter(pk__in=chunk).values_list("pk", flat=True)
    return found


class SetSourceKey(models.Func):
    """``sources`` with one key set to a string, or removed (None), computed in the database."""

    output_field = models.JSONField()

    def __init__(self, key: str, value: str | None) -> None:
        super().__init__(models.F("sources"))
        self.key, self.value = key, value

    def as_sql(self, compiler, connection, **extra_context):
        column, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            if self.value is None:
                return f"({column} - %s)", [*params, self.key]
            return f"jsonb_set({column}, %s::text[], to_jsonb(%s::text), true)", [*params, [self.key], self.value]
        path = "$." + json.dumps(self.key)
        if self.value is None:
            return f"json_remove({column}, %s)", [*params, path]
        return f"json_set({column}, %s, %s)", [*params, path, self.value]


def _mark_user(ids: list[int], field: str) -> dict[str, list[int]]:
    """Record that ``field`` was set by a person, so rescans leave it alone; returns the previous sources."""
    before: dict[str, list[int]] = {}
    for chunk in _chunks(ids):
        for pk, sources in Adapter.objects.filter(pk__in=chunk).values_list("pk", "sources"):
            old = (sources or {}).get(field)
            if old != USER_SOURCE:
                before.setdefault(json.dumps(old), []).append(pk)
        Adapter.objects.filter(pk__in=chunk).update(sources=SetSourceKey(field, USER_SOURCE))
    return before


def _record(by, action: str, summary: str, count: int, payload: dict, undoable: bool = True) -> None:
    if by is None or not getattr(by, "is_authenticated", False):
        return
    BulkAction.objects.create(
        user=by, action=action, summary=summary, count=count, payload=payload, undoable=undoable and count > 0
    )
    old = BulkAction.objects.filter(user=by).values_list("pk", flat=True)[KEEP_ACTIONS:]
    BulkAction.objects.filter(pk__in=list(old)).delete()


def _plural(count: int, word: str = "adapter") -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _set_field(ids: Iterable[int], field: str, value, by, summary: str, mark_user: bool) -> int:
    """Set one field on many adapters, keeping the old values (grouped by value) for an undo."""
    ids = list(dict.fromkeys(ids))
    previous: dict[str, list[int]] = {}
    count = 0
    with transaction.atomic():
        for chunk in _chunks(ids):
            changing = Adapter.objects.filter(pk__in=chunk).exclude(**{field: value})
            if by is not None:
                for pk, old in changing.values_list("pk", field):
                    previous.setdefault(json.dumps(old), []).append(pk)
            count += changing.update(**{field: value})
        sources = _mark_user(ids, field) if mark_user else {}
        payload = {"field": field, "previous": previous, "sources": sources}
        _record(by, f"set_{field}", summary.format(n=_plural(count)), count, payload)
    return count


@reembeds
def set_active(ids: Iterable[int], active: bool, by=None) -> int:
    return _set_field(ids, "active", active, by, "{n} " + ("activated" if active else "deactivated"), False)


def set_favorite(ids: Iterable[int], favorite: bool, by=None) -> int:
    summary = "{n} " + ("marked favorite" if favorite else "no longer favorite")
    return _set_field(ids, "favorite", favorite, by, summary, True)


@reembeds
def set_base_model(ids: Iterable[int], base_model: str, by=None) -> int:
    if base_model not in BaseModel.values:
        raise ValueError(f"unknown base model {base_model!r}: use one of {', '.join(BaseModel.values)}")
    return _set_field(ids, "base_model", base_model, by, "{n} set to base model " + base_model, True)


def _tags_named(names: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(normalize_tag(n) for n in names if n.strip()))


@reembeds
def add_tags(ids: Iterable[int], names: Iterable[str], by=None) -> int:
    wanted = _tags_named(names)
    if not wanted:
        raise ValueError("name at least one tag")
    ids = list(dict.fromkeys(ids))
    through = Adapter.tags.through
    added: list[list[int]] = []
    with transaction.atomic():
        known = set(Tag.objects.filter(name__in=wanted).values_list("name", flat=True))
        Tag.objects.bulk_create([Tag(name=n) for n in wanted if n not in known], ignore_conflicts=True)
        tags = dict(Tag.objects.filter(name__in=wanted).values_list("pk", "name"))
        created = [pk for pk, name in tags.items() if name not in known]
        for chunk in _chunks(ids):
            present = Adapter.objects.filter(pk__in=chunk).values_list("pk", flat=True)
            linked = set(
                through.objects.filter(adapter_id__in=chunk, tag_id__in=tags).values_list("adapter_id", "tag_id")
            )
            new = [[a, t] for a in present for t in tags if (a, t) not in linked]
            through.objects.bulk_create([through(adapter_id=a, tag_id=t) for a, t in new], batch_size=1000)
            added += new
        summary = f"{_plural(len(added), 'tag link')} added ({', '.join(wanted)})"
        _record(by, "add_tags", summary, len(added), {"added": added, "created_tags": created})
    return len(added)


@reembeds
def remove_tags(ids: Iterable[int], names: Iterable[str], by=None) -> int:
    wanted = _tags_named(names)
    if not wanted:
        raise ValueError("name at least one tag")
    ids = list(dict.fromkeys(ids))
    through = Adapter.tags.through
    removed: list[list[int]] = []
    with transaction.atomic():
        for chunk in _chunks(ids):
            links = through.objects.filter(adapter_id__in=chunk, tag__name__in=wanted)
            pairs = [list(pair) for pair in links.values_list("adapter_id", "tag_id")]
            through.objects.filter(pk__in=list(links.values_list("pk", flat=True))).delete()
            removed += pairs
        summary = f"{_plural(len(removed), 'tag link')} removed ({', '.join(wanted)})"
        _record(by, "remove_tags", summary, len(removed), {"removed": removed})
    return len(removed)


def _owner(instance: models.Model) -> int | None:
    """The adapter a collected row belongs to, so an undo can skip the rows of an adapter it cannot restore."""
    if isinstance(instance, Adapter):
        return instance.pk
    for f in instance._meta.concrete_fields:
        if f.is_relation and f.related_model is Adapter:
            return getattr(instance, f.attname)
    return None


def _snapshot(ids: list[int]) -> dict:
    """Every row a removal deletes (serialized, restore order) and every reference it sets to NULL."""
    collector = Collector(using="default")
    collector.collect(list(Adapter.objects.filter(pk__in=ids)))
    collector.sort()
    instances: list[models.Model] = []
    for model, objects in reversed(list(collector.data.items())):
        if not model._meta.auto_created:
            instances += objects
    for qs in collector.fast_deletes:
        if not qs.model._meta.auto_created:  # m2m links travel with the adapter's tags field
            instances += list(qs)
    rows = json.loads(serializers.serialize("json", instances, cls=DjangoJSONEncoder))
    for row, instance in zip(rows, instances, strict=True):
        row["owner"] = _owner(instance)
    nulled = []
    for (fk, value), groups in collector.field_updates.items():
        if value is None:
            for group in groups:
                for obj in group:
                    nulled.append([obj._meta.label, fk.name, obj.pk, getattr(obj, fk.attname)])
    return {"rows": rows, "nulled": nulled}


@reembeds
def remove_from_catalog(ids: Iterable[int], by=None) -> int:
    """Forget adapters (their files stay on disk; a rescan would add them again as new)."""
    ids = list(dict.fromkeys(ids))
    with transaction.atomic():
        undoable = by is not None and len(ids) <= MAX_UNDOABLE_REMOVAL
        payload = _snapshot(ids) if undoable else {}
        deleted = 0
        for chunk in _chunks(ids):
            deleted += Adapter.objects.filter(pk__in=chunk).delete()[1].get("adapters.Adapter", 0)
        _record(by, "remove", f"{_plural(deleted)} removed from the catalog", deleted, payload, undoable)
    return deleted


def mark_for_rescan(ids: Iterable[int]) -> int:
    """Forget the files' cached (size, mtime) so the next scan re-reads them; returns how many files."""
    files = AdapterFile.objects
    return sum(
        files.filter(adapter_id__in=chunk).update(mtime_ns=-1, sidecar_signature="")
        for chunk in _chunks(list(dict.fromkeys(ids)))
    )


def mark_for_rehash(ids: Iterable[int]) -> int:
    """Forget the present files' hashes so the next scan hashes them again; returns how many files."""
    files = AdapterFile.objects.filter(status=FileStatus.PRESENT)
    return sum(
        files.filter(adapter_id__in=chunk).update(sha256="", tensor_sha256="", hashed_size=None, hashed_mtime_ns=None)
        for chunk in _chunks(list(dict.fromkeys(ids)))
    )


@reembeds
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


@reembeds
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


@reembeds
def delete_tag(tag: Tag) -> int:
    """Delete a tag and its links (the adapters stay); returns how many adapters had it."""
    with transaction.atomic():
        count = Adapter.tags.through.objects.filter(tag_id=tag.pk).count()
        tag.delete()
    return count


# --- undo ---------------------------------------------------------------------------------------


def latest_undoable(user) -> BulkAction | None:
    """The user's last bulk action, if it can still be undone (only the last one can)."""
    if user is None or not user.is_authenticated:
        return None
    last = BulkAction.objects.filter(user=user).first()
    return last if last and last.undoable and last.undone_at is None else None


def undo_set_field(payload: dict) -> str:
    """Put back the values (and their sources) a ``set_<field>`` action replaced."""
    field = payload["field"]
    restored = 0
    for value, ids in payload["previous"].items():
        for chunk in _chunks(ids):
            restored += Adapter.objects.filter(pk__in=chunk).update(**{field: json.loads(value)})
    for value, ids in payload.get("sources", {}).items():
        for chunk in _chunks(ids):
            Adapter.objects.filter(pk__in=chunk).update(sources=SetSourceKey(field, json.loads(value)))
    return f"Undone: {_plural(restored)} restored."


def undo_add_tags(payload: dict) -> str:
    """Remove the links an ``add_tags`` added, and the tags it created if nothing else uses them."""
    through = Adapter.tags.through
    restored = 0
    by_tag: dict[int, list[int]] = {}
    for adapter_id, tag_id in payload["added"]:
        by_tag.setdefault(tag_id, []).append(adapter_id)
    for tag_id, adapter_ids in by_tag.items():
        for chunk in _chunks(adapter_ids):
            restored += through.objects.filter(tag_id=tag_id, adapter_id__in=chunk).delete()[0]
    Tag.objects.filter(pk__in=payload["created_tags"], adapters__isnull=True).delete()
    return f"Undone: {_plural(restored, 'tag link')} removed again."


def undo_remove_tags(payload: dict) -> str:
    """Put back the links a ``remove_tags`` removed (of adapters and tags that still exist)."""
    through = Adapter.tags.through
    pairs = payload["removed"]
    live_adapters = set(existing_ids({a for a, _ in pairs}))
    live_tags = set(Tag.objects.filter(pk__in={t for _, t in pairs}).values_list("pk", flat=True))
    links = [through(adapter_id=a, tag_id=t) for a, t in pairs if a in live_adapters and t in live_tags]
    through.objects.bulk_create(links, ignore_conflicts=True, batch_size=1000)
    return f"Undone: {_plural(len(links), 'tag link')} restored."


def undo_remove(payload: dict) -> str:
    """Put removed rows back with their ids; adapters a scan has re-added since are skipped."""
    rows = payload["rows"]
    adapters = [r for r in rows if r["model"] == "adapters.adapter"]
    ids = [r["pk"] for r in adapters]
    blocked = set(existing_ids(ids))
    hashes = {r["fields"]["sha256"]: r["pk"] for r in adapters if r["fields"].get("sha256")}
    blocked |= {hashes[h] for h in Adapter.objects.filter(sha256__in=list(hashes)).values_list("sha256", flat=True)}
    paths = {r["fields"]["path"]: r["owner"] for r in rows if r["model"] == "adapters.adapterfile"}
    blocked |= {paths[p] for p in AdapterFile.objects.filter(path__in=list(paths)).values_list("path", flat=True)}
    live_tags = set(
        Tag.objects.values_list("pk", flat=True).filter(
            pk__in={t for r in adapters for t in r["fields"].get("tags", [])}
        )
    )
    wanted = [r for r in rows if r["owner"] not in blocked]
    by_owner: dict[int | None, list[dict]] = {}
    for row in wanted:
        by_owner.setdefault(row["owner"], []).append(row)
    restored = 0
    for owner, group in by_owner.items():
        try:
            with transaction.atomic():
                for item in serializers.deserialize(
                    "json", json.dumps([{k: v for k, v in r.items() if k != "owner"} for r in group])
                ):
                    if "tags" in (item.m2m_data or {}):
                        item.m2m_data["tags"] = [t for t in item.m2m_data["tags"] if int(t) in live_tags]
                    item.save()
        except IntegrityError:
            blocked.add(owner)
            continue
        restored += owner is not None and owner in ids
    for label, fk_name, pk, adapter_id in payload["nulled"]:
        if adapter_id in blocked:
            continue
        model = apps.get_model(label)
        model.objects.filter(pk=pk, **{f"{fk_name}__isnull": True}).update(**{fk_name: adapter_id})
    message = f"Undone: {_plural(restored)} back in the catalog."
    skipped = len([i for i in ids if i in blocked])
    if skipped:
        message += f" {_plural(skipped)} could not come back: a scan found them again meanwhile."
    return message


@reembeds
def undo(action: BulkAction, restore: Callable[[dict], str]) -> str:
    """Restore what ``action`` changed with ``restore`` (the action's undo in ``bulk_actions.ACTIONS``);
    returns a sentence for the user. Raises ValueError if it cannot (already undone, or final)."""
    if action.undone_at is not None:
        raise ValueError("this action was already undone")
    if not action.undoable:
        raise ValueError("this action cannot be undone")
    with transaction.atomic():
        locked = BulkAction.objects.select_for_update().filter(pk=action.pk, undone_at__isnull=True)
        if not locked.exists():
            raise ValueError("this action was already undone")
        message = restore(action.payload)
        locked.update(undone_at=timezone.now())
    action.undone_at = timezone.now()
    return message
