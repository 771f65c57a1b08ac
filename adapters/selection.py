"""What a bulk request acts on: "these ids" or "everything matching this gallery filter".

The library's bulk bar, the API's bulk route and the API's Civitai lookups resolve a selection here, so
"all matching" means the same set the gallery counts (``gallery.matching_ids``, from the gallery's one
filter definition in ``gallery_filter``), and ids removed since the page was shown are reported the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.http import QueryDict

from adapters import bulk_edit, gallery

MAX_FILTER_LENGTH = 4000


class InvalidSelection(ValueError):
    """Neither or both of ids and filter, or a filter the gallery cannot read; the message says which."""


@dataclass(frozen=True)
class Selection:
    ids: list[int]  # adapters that exist now, each once
    missing: int = 0  # chosen ids that no longer exist (removed since the page was shown)
    by_filter: bool = False


def resolve(ids: Iterable[int] | None = None, filter: str | None = None) -> Selection:
    """The adapters ``ids`` names (those that still exist), or every match of the gallery query string
    ``filter``; exactly one of the two. A filter with a part the gallery would ignore is refused rather
    than widened, since "remove everything matching" must not act on more than the person saw."""
    if (ids is None) == (filter is None):
        raise InvalidSelection("Give either 'ids' (a list of adapter ids) or 'filter' (a gallery query string).")
    if filter is not None:
        if len(filter) > MAX_FILTER_LENGTH:
            raise InvalidSelection(f"Invalid filter: at most {MAX_FILTER_LENGTH} characters.")
        query = gallery.parse(QueryDict(filter))
        if query.notices:
            raise InvalidSelection("Invalid filter: " + " ".join(query.notices))
        return Selection(gallery.matching_ids(filter), by_filter=True)
    wanted = list(dict.fromkeys(ids))
    found = bulk_edit.existing_ids(wanted)
    return Selection(found, missing=len(wanted) - len(found))
