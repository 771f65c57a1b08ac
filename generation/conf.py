"""Tunables of the generation pipeline, overridable in settings (tests make them fast)."""

from __future__ import annotations

from django.conf import settings


def poll_seconds() -> float:
    """How often the pipeline reads SD.Next's /progress (SD.Next rate-limits at 5 requests/s)."""
    return float(getattr(settings, "GENERATION_POLL_SECONDS", 0.5))


def progress_interval() -> float:
    """Least time between two progress writes to the row and the channel groups (≤ 4/s)."""
    return float(getattr(settings, "GENERATION_PROGRESS_INTERVAL", 0.25))


def preview_seconds() -> float:
    """Least time between two live preview images (each costs SD.Next GPU time)."""
    return float(getattr(settings, "GENERATION_PREVIEW_SECONDS", 2.0))


def retry_backoff() -> float:
    """First wait before resending a request that never reached SD.Next (doubles each retry, 3 retries)."""
    return float(getattr(settings, "GENERATION_RETRY_BACKOFF", 0.5))


def cancel_grace_seconds() -> float:
    """How long after a cancel the worker still waits for SD.Next's answer (a real SD.Next answers at its
    next step with what it finished); a hung SD.Next is then abandoned, so the next job can start."""
    return float(getattr(settings, "GENERATION_CANCEL_GRACE_SECONDS", 3.0))
