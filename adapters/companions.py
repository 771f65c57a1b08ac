"""Find the files that go with a model (``<stem>.<anything>``: sidecars, previews) in a directory listing.

The scanner lists each directory once and passes the same set for every model in it, so the indexes here
are built once per listing; lookups never touch the disk. Names match exactly first, then without regard
to case (libraries copied from Windows).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

_index_cache: tuple[Collection[str], int, dict[str, str]] | None = None


def _lower_index(dir_names: Collection[str]) -> dict[str, str]:
    """Lower-cased name -> real name, built once per directory listing (the scanner reuses one set per dir)."""
    global _index_cache
    cached = _index_cache
    if cached is not None and cached[0] is dir_names and cached[1] == len(dir_names):
        return cached[2]
    index: dict[str, str] = {}
    for name in sorted(dir_names):
        index.setdefault(name.lower(), name)
    _index_cache = (dir_names, len(dir_names), index)
    return index


def find_name(name: str, dir_names: Collection[str]) -> str | None:
    """The entry of ``dir_names`` called ``name``, falling back to a case-insensitive match (Windows copies)."""
    if name in dir_names:
        return name
    return _lower_index(dir_names).get(name.lower())


_companion_cache: tuple[Collection[str], int, dict[str, list[str]]] | None = None


def _companion_index(dir_names: Collection[str]) -> dict[str, list[str]]:
    """Lower-cased stem -> entries named ``<stem>.<anything>`` (any case) other than ``<stem>.safetensors``,
    built once per directory listing: most models have no sidecar or preview, and the others a few."""
    global _companion_cache
    cached = _companion_cache
    if cached is not None and cached[0] is dir_names and cached[1] == len(dir_names):
        return cached[2]
    index: dict[str, list[str]] = {}
    for name in dir_names:
        low = name.lower()
        dot = low.find(".")
        while dot > 0:
            if low[dot:] != ".safetensors":
                index.setdefault(low[:dot], []).append(name)
            dot = low.find(".", dot + 1)
    _companion_cache = (dir_names, len(dir_names), index)
    return index


def has_companions(stem: str, dir_names: Collection[str]) -> bool:
    """Whether any entry but ``<stem>.safetensors`` is named ``<stem>.<anything>`` (any case)."""
    return stem.lower() in _companion_index(dir_names)


def find_companions(stem: str, dir_names: Collection[str], suffixes: Iterable[str]) -> list[str]:
    """For each of ``suffixes`` (lower case) in order, the entry ``stem + suffix`` if present, else its
    case-insensitive match (the same answer as ``find_name``, from the few entries that share the stem)."""
    low_stem = stem.lower()
    group = _companion_index(dir_names).get(low_stem)
    if not group:
        return []
    ranks = _suffix_ranks(suffixes)  # walk the stem's few entries, not every suffix (33 for previews)
    cut = len(low_stem)
    by_suffix: dict[str, list[str]] = {}
    for name in group:
        suffix = name.lower()[cut:]
        if suffix in ranks:
            by_suffix.setdefault(suffix, []).append(name)
    found = []
    for suffix in sorted(by_suffix, key=ranks.__getitem__):
        names = by_suffix[suffix]
        exact = stem + suffix
        found.append(exact if exact in names else min(names))
    return found


_ranks_cache: dict[tuple[str, ...], dict[str, int]] = {}


def _suffix_ranks(suffixes: Iterable[str]) -> dict[str, int]:
    """Suffix -> its first position in ``suffixes``; cached for the module-level tuples callers pass."""
    key = suffixes if isinstance(suffixes, tuple) else tuple(suffixes)
    ranks = _ranks_cache.get(key)
    if ranks is None:
        ranks = {}
        for position, suffix in enumerate(key):
            ranks.setdefault(suffix, position)
        if len(_ranks_cache) < 64:
            _ranks_cache[key] = ranks
    return ranks
