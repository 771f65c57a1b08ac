"""The two questions users ask ("similar to this LoRA", "LoRAs for this prompt") and how answers rank.

    score = cosine + ALPHA * F + BETA * C + GAMMA * R        (docs/recommendations.md, "Ranking")

cosine comes from the index (filters applied inside the search, so they never cost results), F is
the feedback term (feedback.py), C the co-usage term (co_usage.py) and R the rated-results term
(generation/learning.py: how people rated the images this LoRA helped make). Candidates are re-checked
against the catalog (the index's filter columns may be seconds old) and the pool is widened when
that removes too many.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from pathlib import PurePath
from typing import Any

import numpy as np
from django.db.models import Prefetch

from adapters.models import Adapter, AdapterFile, BaseModel, FileStatus, Tag
from generation import learning
from recommendations import co_usage, embeddings, feedback, index, recipe
from recommendations.embedding_runs import request_embedding_safely
from recommendations.embeddings import Unavailable
from recommendations.models import Feedback

DEFAULT_K = 10
MAX_K = 50
POOL_FACTOR = 3
POOL_MIN = 30
MAX_QUERY_CHARS = 1000
_ADAPTER_FIELDS = (
    "pk",
    "name",
    "alias",
    "base_model",
    "base_model_detail",
    "active",
    "trigger_words",
    "training_tags",
    "preferred_weight",
)


@dataclass
class Suggestion:
    id: int
    name: str
    alias: str
    base_model: str
    score: float
    cosine: float
    compatible: bool
    reasons: list[str]
    feedback: int  # this user's vote in this context: +1, -1 or 0
    lora_token: str
    trigger_words: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["score"], data["cosine"] = round(self.score, 4), round(self.cosine, 4)
        return data


@dataclass
class Results:
    suggestions: list[Suggestion] = field(default_factory=list)
    unavailable: str | None = None  # "Recommendations unavailable: <this>"
    note: str = ""  # why there is nothing yet (not embedded, empty prompt)
    kind: str = ""  # feedback context kind: prompt / adapter
    context: str = ""  # feedback context: the normalised prompt or the source adapter id


def compatible(base_model: str, wanted: str | None) -> bool:
    """Same family, or either side Unknown (it may be anything); no wanted family means all fit."""
    return not wanted or wanted == BaseModel.UNKNOWN or base_model in (wanted, BaseModel.UNKNOWN)


def ready() -> tuple[index.Snapshot | None, str | None, str]:
    """(snapshot, unavailable reason, note): the model must be usable and the index readable and current."""
    problem = embeddings.model_problem()
    if problem:
        return None, problem, ""
    try:
        snapshot = index.current()
    except Unavailable as exc:
        return None, str(exc), ""
    if snapshot is None:
        request_embedding_safely("no index yet")
        return None, None, "The library has not been embedded yet; a background job is doing it now."
    if snapshot.model != embeddings.model_identity() or snapshot.stamp.get("recipe") != recipe.RECIPE_VERSION:
        request_embedding_safely("model or recipe changed")
        return None, None, "The embedding model or recipe changed; the library is being embedded again."
    return snapshot, None, ""


def lora_token(adapter: Adapter, paths: list[str]) -> str:
    """As the adapter page's copy button (adapters.views.detail.lora_prompt): alias, else file stem, else name."""
    stem = adapter.alias or (PurePath(paths[0]).stem if paths else adapter.name)
    weight = adapter.preferred_weight if adapter.preferred_weight is not None else 1.0
    return f"<lora:{stem}:{weight:g}>"


def _fetch(ids: list[int]) -> tuple[dict[int, Adapter], dict[int, list[str]]]:
    tags = Prefetch("tags", queryset=Tag.objects.only("pk", "name"))
    rows = {a.pk: a for a in Adapter.objects.usable().filter(pk__in=ids).only(*_ADAPTER_FIELDS).prefetch_related(tags)}
    paths: dict[int, list[str]] = {}
    files = AdapterFile.objects.filter(adapter_id__in=list(rows)).values_list("adapter_id", "path", "status")
    for adapter_id, path, _ in sorted(files, key=lambda f: (f[2] != FileStatus.PRESENT, f[1])):  # present first
        paths.setdefault(adapter_id, []).append(path)
    return rows, paths


def _retrieve(
    snapshot: index.Snapshot,
    vector: np.ndarray,
    want: int,
    families: Collection[int] | None,
    exclude: Collection[int],
    check: Callable[[Adapter], bool],
) -> tuple[list[tuple[Adapter, float]], dict[int, list[str]]]:
    """Top ``want`` candidates that pass the filters in the index *and* in the catalog right now."""
    fetch = want
    while True:
        hits = snapshot.search(vector, fetch, families=families, exclude=exclude)
        rows, paths = _fetch([adapter_id for adapter_id, _ in hits])
        good = [(rows[i], s) for i, s in hits if i in rows and rows[i].active and check(rows[i])]
        if len(good) >= want or len(hits) < fetch or fetch >= len(snapshot):
            return good[:want], paths
        fetch *= 4


def _words(values: list[str]) -> dict[str, str]:
    return {v.lower().strip(): v for v in values if v and v.strip()}


def _shared(a: list[str], b: list[str], limit: int = 3) -> list[str]:
    left, right = _words(a), _words(b)
    return [left[key] for key in left if key in right][:limit]


def _tag_names(adapter: Adapter) -> list[str]:
    return [t.name for t in adapter.tags.all()]


def _base_reason(candidate: Adapter, wanted: str | None) -> str:
    if not wanted or wanted == BaseModel.UNKNOWN:
        return f"base model {candidate.base_model}"
    if candidate.base_model == wanted:
        return f"same base model ({wanted})"
    if candidate.base_model == BaseModel.UNKNOWN:
        return f"base model unknown: may work with {wanted}"
    return f"different base model: {candidate.base_model}, not {wanted}"


def _rank(
    hits: list[tuple[Adapter, float]],
    paths: dict[int, list[str]],
    user,
    kind: str,
    context: str,
    anchors: list[int],
    reasons: Callable[[Adapter], list[str]],
    wanted: str | None,
) -> list[Suggestion]:
    ids = [adapter.pk for adapter, _ in hits]
    votes = feedback.terms(user, ids, feedback.context_key(kind, context))
    together = co_usage.counts(anchors, ids)
    rated = learning.ranking_terms(ids)
    ranked = []
    for adapter, cosine in hits:
        term, own = votes.get(adapter.pk, (0.0, 0))
        uses = together.get(adapter.pk, 0)
        results_term, up, down = rated.get(adapter.pk, (0.0, 0, 0))
        why = reasons(adapter)
        if uses:
            why.append(f"used together in {uses} generation{'s' if uses != 1 else ''}")
        if up or down:
            why.append(f"results rated: {up} of {up + down} approved")
        ranked.append(
            Suggestion(
                id=adapter.pk,
                name=adapter.name,
                alias=adapter.alias,
                base_model=adapter.base_model,
                score=cosine
                + feedback.ALPHA * term
                + co_usage.BETA * co_usage.term(uses)
                + learning.GAMMA * results_term,
                cosine=cosine,
                compatible=compatible(adapter.base_model, wanted),
                reasons=why,
                feedback=own,
                lora_token=lora_token(adapter, paths.get(adapter.pk, [])),
                trigger_words=recipe.clean_list(adapter.trigger_words),
            )
        )
    ranked.sort(key=lambda s: -s.score)
    return ranked


def similar(adapter: Adapter, user=None, k: int = DEFAULT_K) -> Results:
    """Adapters most like ``adapter``: compatible base models first, then others if fewer than k fit."""
    k = max(1, min(k, MAX_K))
    results = Results(kind=Feedback.Kind.ADAPTER, context=str(adapter.pk))
    snapshot, results.unavailable, results.note = ready()
    if snapshot is None:
        return results
    vector = snapshot.vector(adapter.pk)
    if vector is None:
        request_embedding_safely("adapter not embedded yet")
        results.note = "This LoRA has not been embedded yet; a background job will do it shortly."
        return results
    source_tags = _tag_names(adapter)
    source_words = recipe.clean_list(adapter.trigger_words)
    source_trained = recipe.top_training_tags(adapter.training_tags, 20)
    wanted = adapter.base_model

    def reasons(candidate: Adapter) -> list[str]:
        why = []
        if shared := _shared(source_tags, _tag_names(candidate)):
            why.append("shared tags: " + ", ".join(shared))
        if shared := _shared(source_words, recipe.clean_list(candidate.trigger_words)):
            why.append("shared trigger words: " + ", ".join(shared))
        if shared := _shared(source_trained, recipe.top_training_tags(candidate.training_tags, 20)):
            why.append("both trained on: " + ", ".join(shared))
        if not why:
            why.append("similar name and description")
        why.append(_base_reason(candidate, wanted))
        return why

    pool = max(POOL_MIN, POOL_FACTOR * k)
    exclude = {adapter.pk}
    families = index.compatible_codes(wanted)
    hits, paths = _retrieve(snapshot, vector, pool, families, exclude, lambda a: compatible(a.base_model, wanted))
    ranked = _rank(hits, paths, user, results.kind, results.context, [adapter.pk], reasons, wanted)[:k]
    if len(ranked) < k and families is not None:
        others = index.incompatible_codes(wanted)
        hits, paths = _retrieve(snapshot, vector, pool, others, exclude, lambda a: not compatible(a.base_model, wanted))
        extra = _rank(hits, paths, user, results.kind, results.context, [adapter.pk], reasons, wanted)
        ranked += extra[: k - len(ranked)]
    results.suggestions = ranked
    return results


_query_vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
_query_lock = threading.Lock()


def query_vector(text: str) -> np.ndarray:
    """The prompt's vector; the last few hundred are kept (typing and feedback clicks repeat queries)."""
    key = (embeddings.model_identity(), text)
    with _query_lock:
        vector = _query_vectors.get(key)
    if vector is None:
        vector = embeddings.encode([text])[0]
        with _query_lock:
            _query_vectors[key] = vector
            while len(_query_vectors) > 256:
                _query_vectors.popitem(last=False)
    return vector


_WORD = re.compile(r"[\w']+")


def for_prompt(
    prompt: str, user=None, base_model: str | None = None, k: int = DEFAULT_K, with_ids: Collection[int] = ()
) -> Results:
    """Active adapters whose recipe text is closest to the prompt, compatible with ``base_model``.

    ``with_ids`` are LoRAs already in the composition: they are left out and anchor co-usage."""
    if base_model and base_model not in BaseModel.values:
        raise ValueError(f"unknown base model {base_model!r}: use one of {', '.join(BaseModel.values)}")
    k = max(1, min(k, MAX_K))
    text = " ".join((prompt or "").split())[:MAX_QUERY_CHARS]
    results = Results(kind=Feedback.Kind.PROMPT, context=feedback.normalize_context(Feedback.Kind.PROMPT, text))
    if not text:
        results.note = "Type a prompt to get suggestions."
        return results
    snapshot, results.unavailable, results.note = ready()
    if snapshot is None:
        return results
    try:
        vector = query_vector(text)
    except Unavailable as exc:
        results.unavailable = str(exc)
        return results
    prompt_text = " " + " ".join(_WORD.findall(text.lower())) + " "

    def in_prompt(values: list[str]) -> list[str]:
        found = []
        for value in values:
            words = " ".join(_WORD.findall(value.lower()))
            if words and f" {words} " in prompt_text and value not in found:
                found.append(value)
        return found

    def reasons(candidate: Adapter) -> list[str]:
        matches = in_prompt(_tag_names(candidate) + recipe.clean_list(candidate.trigger_words))
        matches += in_prompt(recipe.top_training_tags(candidate.training_tags, 20))
        why = [("matches your prompt: " + ", ".join(dict.fromkeys(matches[:4]))) if matches else "close in meaning"]
        if candidate.trigger_words:
            why.append("trigger words: " + ", ".join(recipe.clean_list(candidate.trigger_words)[:3]))
        why.append(_base_reason(candidate, base_model))
        return why

    anchors = [int(i) for i in with_ids]
    families = index.compatible_codes(base_model)
    pool = max(POOL_MIN, POOL_FACTOR * k)
    hits, paths = _retrieve(
        snapshot, vector, pool, families, set(anchors), lambda a: compatible(a.base_model, base_model)
    )
    results.suggestions = _rank(hits, paths, user, results.kind, results.context, anchors, reasons, base_model)[:k]
    return results
