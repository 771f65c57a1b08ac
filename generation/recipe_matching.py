"""Find a recipe's LoRAs in the catalog: by hash first, then file name, then name or alias.

Order (docs/recipes.md), first evidence that names exactly one adapter wins:

1. hash, any case and length from 8 hex digits, ``0x`` prefix allowed, compared as a prefix of
   - the tensor ("addnet") sha256 -> ``autov3`` (A1111's ``Lora hashes``, Civitai AutoV3, SD.Next's hash),
   - the full-file sha256 -> ``autov2`` when shorter than 64 digits, ``sha256`` when complete;
2. the file name (ComfyUI's ``lora_name`` path, or the token name plus ``.safetensors``) -> ``file``;
3. the adapter's name or alias, or the name a SD.Next backend lists it under -> ``name``.

A hash naming two catalog LoRAs (two files with the same short hash) is reported and matches none:
guessing would silently swap a LoRA.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from django.db.models import Q

from adapters.models import Adapter, AdapterFile
from generation.models import BackendLora
from generation.recipe_parsing import ParsedLora

MIN_HASH = 8
_HEX = re.compile(r"[0-9a-f]+")


@dataclass
class Match:
    adapter: Adapter | None
    matched_by: str  # autov3, autov2, sha256, file, name or "" (missing)
    note: str = ""


def normalize_hash(value: str) -> str:
    """Lower-case hex without a ``0x`` prefix; "" when it is not a usable hash (too short, not hex)."""
    digest = (value or "").strip().lower().removeprefix("0x")
    return digest if len(digest) >= MIN_HASH and len(digest) <= 64 and _HEX.fullmatch(digest) else ""


def _names(adapters: list[Adapter]) -> str:
    return ", ".join(f"“{a.name}” (#{a.pk})" for a in adapters[:4])


def _unique(adapters: list[Adapter], matched_by: str, what: str) -> Match | None:
    distinct = list({a.pk: a for a in adapters}.values())
    if len(distinct) == 1:
        return Match(distinct[0], matched_by)
    if len(distinct) > 1:
        note = f"{what} matches {len(distinct)} catalog LoRAs ({_names(distinct)}): none was picked, choose yourself"
        return Match(None, "", note)
    return None


def _prefix(column: str, digest: str) -> Q:
    """Stored hashes are lower-case hex: a prefix is the range [digest, digest + "g"), which uses the index
    on both engines (LIKE 'abc%' does not on SQLite)."""
    return Q(**{f"{column}__gte": digest, f"{column}__lt": digest + "g"})


def by_hash(digest: str) -> Match | None:
    if not digest:
        return None
    tensor = list(Adapter.objects.filter(_prefix("tensor_sha256", digest))[:5])
    if found := _unique(tensor, "autov3", f"hash {digest}"):
        return found
    full = list(Adapter.objects.filter(_prefix("sha256", digest))[:5])
    return _unique(full, "sha256" if len(digest) == 64 else "autov2", f"hash {digest}")


def _tail_score(candidate: str, wanted: str) -> int:
    a, b = PurePosixPath(candidate.lower()).parts[::-1], PurePosixPath(wanted.lower()).parts[::-1]
    score = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        score += 1
    return score


def by_file(lora: ParsedLora) -> Match | None:
    wanted = (lora.file or "").replace("\\", "/").strip("/")
    if not wanted and lora.name:
        wanted = f"{lora.name}.safetensors"
    basename = wanted.rsplit("/", 1)[-1]
    if not basename or "." not in basename:
        return None
    rows = list(
        AdapterFile.objects.filter(Q(path__iendswith="/" + basename) | Q(path__iendswith="\\" + basename))
        .select_related("adapter")
        .order_by("pk")[:20]
    )
    if not rows:
        return None
    scores = [(_tail_score(row.path.replace("\\", "/"), wanted), row.adapter) for row in rows]
    best = max(score for score, _ in scores)
    return _unique([adapter for score, adapter in scores if score == best], "file", f"file {wanted}")


def by_name(name: str) -> Match | None:
    name = name.strip()
    if not name:
        return None
    adapters = list(Adapter.objects.filter(Q(name__iexact=name) | Q(alias__iexact=name)).order_by("pk")[:5])
    if found := _unique(adapters, "name", f"name “{name}”"):
        return found
    listed = BackendLora.objects.filter(Q(name__iexact=name) | Q(alias__iexact=name), adapter__isnull=False)
    return _unique([row.adapter for row in listed.select_related("adapter")[:5]], "name", f"name “{name}”")


def match(lora: ParsedLora) -> Match:
    """The catalog adapter for one LoRA of a recipe, or why there is none."""
    digest = normalize_hash(lora.hash)
    for attempt in (lambda: by_hash(digest), lambda: by_file(lora), lambda: by_name(lora.name)):
        found = attempt()
        if found is not None:  # a match, or an ambiguity, which stops the search: guessing would swap a LoRA
            return found
    missing = "not in the catalog" + (f" (hash {digest})" if digest else "")
    if lora.hash and not digest:
        missing += f"; “{lora.hash[:70]}” is not a usable hash (8 to 64 hex digits)"
    return Match(None, "", missing)
