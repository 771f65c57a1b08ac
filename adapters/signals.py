"""Signals the catalog sends, so apps above it can react without the catalog importing them.

``catalog_changed(reason=...)``: adapters were added, updated or removed in a way that changes what
other apps derive from the catalog (a scan, a bulk edit of tags / base model / active, a Civitai lookup,
an archive import). Recommendations receive it and queue a (debounced) embedding run. Single edits
through the detail page or the admin are model saves; recommendations listen to those directly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from django.dispatch import Signal

_T = TypeVar("_T")

catalog_changed = Signal()  # keyword: reason (str, shown on the embedding run)


def send_catalog_changed(reason: str) -> None:
    """Tell the receivers; one that fails is logged (by Django) and never fails the catalog work that sent it."""
    catalog_changed.send_robust(sender=None, reason=reason)


def changes_catalog(func: Callable[..., _T]) -> Callable[..., _T]:
    """Decorator for catalog edits that change what is derived from it (tags, base model, active): when
    the edit changed something (a truthy result), send ``catalog_changed``."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> _T:
        result = func(*args, **kwargs)
        if result:
            send_catalog_changed(f"edit: {func.__name__}")
        return result

    return wrapper
