"""Thumbs up / down on suggestions, stored per user and context, and the ranking term they make.

A context is what the suggestion answered: a prompt (normalised: lower case, single spaces) or a
source adapter ("similar to #12"). The feedback term (docs/recommendations.md, "Ranking"):

    F = v_own + W_USER * tanh(S_user / 2) + W_CROWD * tanh(S_crowd / 3)

v_own is this user's vote on the adapter in this very context (+1, -1 or 0), S_user the sum of
this user's votes on the adapter in other contexts (taste), S_crowd the sum of other users' votes on
it in this context. The ranking adds ALPHA * F to the cosine similarity.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Iterable

from django.db import transaction

from adapters.sanitize import check_storable
from recommendations.models import Feedback

ALPHA = 0.25
W_USER = 0.2
W_CROWD = 0.2
MAX_PROMPT_CHARS = 1000


def normalize_context(kind: str, context: str) -> str:
    if kind == Feedback.Kind.PROMPT:
        return " ".join(str(context).lower().split())[:MAX_PROMPT_CHARS]
    if kind == Feedback.Kind.ADAPTER:
        return str(int(context))
    raise ValueError(f"unknown feedback context kind {kind!r}: use prompt or adapter")


def context_key(kind: str, context: str) -> str:
    return hashlib.sha256(f"{kind}\x00{normalize_context(kind, context)}".encode()).hexdigest()


def record(user, adapter_id: int, kind: str, context: str, value: int) -> int:
    """Store a vote (+1 / -1) or clear it (0); returns the vote now stored for this context."""
    if value not in (-1, 0, 1):
        raise ValueError("a vote is +1, -1 or 0 (clear)")
    text = check_storable(normalize_context(kind, context), "the feedback's context")  # a NUL was a 500 on PostgreSQL
    if not text:
        raise ValueError("feedback needs a context: the prompt or the source adapter")
    key = context_key(kind, text)
    with transaction.atomic():
        if value == 0:
            Feedback.objects.filter(user=user, adapter_id=adapter_id, context_key=key).delete()
            return 0
        Feedback.objects.update_or_create(
            user=user,
            adapter_id=adapter_id,
            context_key=key,
            defaults={"kind": kind, "context": text, "value": value},
        )
    return value


def terms(user, adapter_ids: Iterable[int], key: str) -> dict[int, tuple[float, int]]:
    """adapter id -> (feedback term F, this user's own vote in this context), for ids with any feedback."""
    ids = list(adapter_ids)
    own: dict[int, int] = {}
    crowd: dict[int, int] = defaultdict(int)
    taste: dict[int, int] = defaultdict(int)
    user_id = getattr(user, "pk", None)
    for adapter_id, voter, value in Feedback.objects.filter(adapter_id__in=ids, context_key=key).values_list(
        "adapter_id", "user_id", "value"
    ):
        if voter == user_id:
            own[adapter_id] = value
        else:
            crowd[adapter_id] += value
    if user_id is not None:
        rows = Feedback.objects.filter(adapter_id__in=ids, user_id=user_id).exclude(context_key=key)
        for adapter_id, value in rows.values_list("adapter_id", "value"):
            taste[adapter_id] += value
    result = {}
    for adapter_id in set(own) | set(crowd) | set(taste):
        term = (
            own.get(adapter_id, 0)
            + W_USER * math.tanh(taste[adapter_id] / 2)
            + W_CROWD * math.tanh(crowd[adapter_id] / 3)
        )
        result[adapter_id] = (term, own.get(adapter_id, 0))
    return result
