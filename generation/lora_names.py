"""Which name each catalog adapter has on an SD.Next backend (the name in `<lora:name:weight>`).

SD.Next names a LoRA by its file stem with '.' replaced by '_' and also resolves the relative path
and the raw basename (docs/sdnext-contract.md §9). We read its list (/sdapi/v1/loras) and match every entry to an
adapter, strongest evidence first: the hash in its metadata (sshs_model_hash), the same file path,
the same file stem, then the alias (ss_output_name) or name. The result is stored per backend so the
composer and the linter never call SD.Next while a user types.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable
from pathlib import PurePath

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from adapters.models import Adapter, AdapterFile
from generation import backends
from generation.models import BackendLora, BackendSync
from generation.sdnext import SDNextError

CHUNK = 500


def sdnext_name(stem: str) -> str:
    """SD.Next's legacy `name` for a file stem."""
    return stem.replace(".", "_")


def _chunks(values: list, size: int = CHUNK) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _tail_score(a: str, b: str) -> int:
    """How many trailing path parts two paths share (folder names break ties between equal stems)."""
    parts_a, parts_b = PurePath(a).with_suffix("").parts[::-1], PurePath(b).with_suffix("").parts[::-1]
    score = 0
    for x, y in zip(parts_a, parts_b, strict=False):
        if x.lower() != y.lower():
            break
        score += 1
    return score


def match_entries(entries: list[dict]) -> list[tuple[dict, int | None, str]]:
    """(entry, adapter id or None, how it matched) for each SD.Next LoRA entry."""
    hashes = {str(e.get("metadata", {}).get("sshs_model_hash") or "").lower() for e in entries if _meta(e)}
    hashes.discard("")
    by_hash: dict[str, int] = {}
    for chunk in _chunks(sorted(hashes)):
        for pk, sha, tensor in Adapter.objects.filter(Q(sha256__in=chunk) | Q(tensor_sha256__in=chunk)).values_list(
            "pk", "sha256", "tensor_sha256"
        ):
            by_hash.setdefault((tensor or "").lower(), pk)
            by_hash.setdefault((sha or "").lower(), pk)
    paths = [str(e.get("path") or "") for e in entries]
    by_path: dict[str, int] = {}
    for chunk in _chunks([p for p in paths if p]):
        by_path.update(AdapterFile.objects.filter(path__in=chunk).values_list("path", "adapter_id"))
    by_stem: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for path, adapter_id in AdapterFile.objects.values_list("path", "adapter_id").iterator(chunk_size=2000):
        stem = PurePath(path).stem
        by_stem[stem].append((path, adapter_id))
        if sdnext_name(stem) != stem:
            by_stem[sdnext_name(stem)].append((path, adapter_id))
    labels = {str(e.get(k) or "") for e in entries for k in ("alias", "name")} - {""}
    by_label: dict[str, set[int]] = defaultdict(set)
    for chunk in _chunks(sorted(labels)):
        for pk, name, alias in Adapter.objects.filter(Q(alias__in=chunk) | Q(name__in=chunk)).values_list(
            "pk", "name", "alias"
        ):
            by_label[name].add(pk)
            if alias:
                by_label[alias].add(pk)
    results = []
    for entry in entries:
        results.append((entry, *_match_one(entry, by_hash, by_path, by_stem, by_label)))
    return results


def _meta(entry: dict) -> bool:
    return isinstance(entry.get("metadata"), dict)


def _match_one(
    entry: dict,
    by_hash: dict[str, int],
    by_path: dict[str, int],
    by_stem: dict[str, list[tuple[str, int]]],
    by_label: dict[str, set[int]],
) -> tuple[int | None, str]:
    model_hash = str(entry["metadata"].get("sshs_model_hash") or "").lower() if _meta(entry) else ""
    if model_hash and model_hash in by_hash:
        return by_hash[model_hash], "hash"
    path = str(entry.get("path") or "")
    if path in by_path:
        return by_path[path], "path"
    stem = PurePath(path).stem if path else ""
    candidates = by_stem.get(stem) or by_stem.get(str(entry.get("name") or "")) or []
    if len({adapter_id for _, adapter_id in candidates}) == 1:
        return candidates[0][1], "file name"
    if candidates and path:
        scored = sorted(((_tail_score(path, p), a) for p, a in candidates), reverse=True)
        if scored[0][0] > scored[1][0]:
            return scored[0][1], "file path"
    for key, how in (("alias", "alias"), ("name", "name")):
        found = by_label.get(str(entry.get(key) or ""), set())
        if len(found) == 1:
            return next(iter(found)), how
    return None, ""


def refresh(backend_name: str, *, rescan: bool = True) -> BackendSync:
    """Ask SD.Next to rescan its LoRA folder (optional), read its list and store the matches.

    Raises BackendNotConfigured or SDNextError (messages a user can act on)."""
    backend = backends.require(backend_name)
    api = backends.client(backend, read_timeout=60.0, retries=1)
    if rescan:
        api.refresh_loras()
    entries = [e for e in api.loras() if isinstance(e, dict) and e.get("name")]
    now = timezone.now()
    rows, seen = [], set()
    for entry, adapter_id, how in match_entries(entries):
        name = str(entry["name"])[:255]
        if name in seen:
            continue
        seen.add(name)
        model_hash = str(entry["metadata"].get("sshs_model_hash") or "")[:64] if _meta(entry) else ""
        rows.append(
            BackendLora(
                backend=backend.name,
                name=name,
                alias=str(entry.get("alias") or "")[:255],
                path=str(entry.get("path") or "")[:2048],
                model_hash=model_hash,
                adapter_id=adapter_id,
                matched_by=how,
                refreshed_at=now,
            )
        )
    with transaction.atomic():
        BackendLora.objects.filter(backend=backend.name).delete()
        BackendLora.objects.bulk_create(rows, batch_size=CHUNK)
        sync, _ = BackendSync.objects.update_or_create(
            backend=backend.name,
            defaults={
                "loras_refreshed_at": now,
                "lora_count": len(rows),
                "matched_count": sum(1 for row in rows if row.adapter_id),
                "message": "",
            },
        )
    return sync


def sync_state(backend_name: str) -> BackendSync | None:
    return BackendSync.objects.filter(backend=backend_name, loras_refreshed_at__isnull=False).first()


def read_on_first_use(backend_name: str, info: backends.ServerInfo) -> None:
    """Read SD.Next's LoRA list once, the first time a backend that answers is used (the composer, the
    ``generate`` command); later only when a user asks to refresh. A failure is not raised: the linter
    then says the list is unknown and the backend fragment shows the server's state."""
    if info.ok and sync_state(backend_name) is None:
        with contextlib.suppress(SDNextError, backends.BackendNotConfigured):
            refresh(backend_name, rescan=False)


def names_for(adapter_ids: Iterable[int], backend_name: str) -> dict[int, str]:
    """SD.Next's name for each adapter it knows (first by name when SD.Next has several copies)."""
    names: dict[int, str] = {}
    rows = BackendLora.objects.filter(backend=backend_name, adapter_id__in=list(adapter_ids)).order_by("name")
    for adapter_id, name in rows.values_list("adapter_id", "name"):
        names.setdefault(adapter_id, name)
    return names


def known_names(backend_name: str, candidates: Iterable[str]) -> set[str]:
    """Which of these tag names SD.Next would resolve: its name, or a relative path or raw stem of one."""
    by_candidate = {c: {c, sdnext_name(PurePath(c).name)} for c in candidates if c}
    lookups = set().union(*by_candidate.values()) if by_candidate else set()
    found = set(BackendLora.objects.filter(backend=backend_name, name__in=lookups).values_list("name", flat=True))
    return {c for c, forms in by_candidate.items() if forms & found}


def fallback_names(adapters: Iterable[Adapter]) -> dict[int, str]:
    """A best guess for adapters SD.Next has not listed: the stem of a present file, else alias or name."""
    adapters = list(adapters)
    stems: dict[int, str] = {}
    files = AdapterFile.objects.filter(adapter__in=adapters).order_by("status", "path")
    for adapter_id, path in files.values_list("adapter_id", "path"):
        stems.setdefault(adapter_id, PurePath(path).stem)
    return {a.pk: stems.get(a.pk) or a.alias or a.name for a in adapters}
