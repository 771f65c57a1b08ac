"""Request and response shapes of the JSON API. Request bodies forbid unknown fields: a typo is a 422, not a no-op."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from ninja import Schema
from pydantic import BeforeValidator, ConfigDict, Field

from adapters import bulk_actions
from adapters.forms import MAX_TAGS, MAX_TRIGGER_WORDS, WEIGHT_LIMIT
from adapters.gallery import MAX_PAGE
from adapters.models import BaseModel
from adapters.sanitize import UnstorableText, check_storable
from generation import composer

MAX_ID = 2**63 - 1  # the largest id a database column holds; bigger numbers are a 422, not an overflow
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


def _storable(value: Any) -> Any:
    """The API's side of the one gate for untrusted text (adapters.sanitize): a 422 naming the character."""
    if isinstance(value, str):
        try:
            check_storable(value, "text")
        except UnstorableText as exc:
            raise ValueError(str(exc)) from None
    return value


# Every string a request body or query brings: lone surrogates and NUL are a 422, never stored.
Text = Annotated[str, BeforeValidator(_storable)]


class Strict(Schema):
    model_config = ConfigDict(extra="forbid")


class Error(Schema):
    detail: str


class AdapterOut(Schema):
    id: int
    name: str
    alias: str
    base_model: str
    network_type: str
    rank: int | None
    size: int
    trigger_words: list[str]
    preferred_weight: float | None
    active: bool
    favorite: bool
    status: str
    has_issues: bool
    rating: int
    usage_count: int
    last_used_at: datetime | None
    created_at: datetime
    updated_at: datetime
    tags: list[str]


class AdapterFileOut(Schema):
    path: str
    size: int
    status: str
    sha256: str


class AdapterDetailOut(AdapterOut):
    base_model_detail: str
    alpha: float | None
    weight_min: float | None
    weight_max: float | None
    activation_text: str
    negative_text: str
    description: str
    notes: str
    sha256: str | None
    tensor_sha256: str
    civitai_model_id: int | None
    civitai_version_id: int | None
    source_url: str
    civitai_update: dict[str, Any] | None = Field(None, description="null, or the newer Civitai version's id and name")
    civitai_checked_at: str | None = None
    issues: list[Any]
    files: list[AdapterFileOut]


class AdapterPage(Schema):
    count: int
    page: int
    pages: int
    page_size: int
    results: list[AdapterOut]


class AdapterUpdate(Strict):
    """Only the fields given change; each is validated as on the detail page and marked a user edit."""

    name: Text | None = Field(None, max_length=255)
    alias: Text | None = Field(None, max_length=255)
    trigger_words: list[Text] | None = Field(None, max_length=MAX_TRIGGER_WORDS)
    tags: list[Text] | None = Field(None, max_length=MAX_TAGS)
    preferred_weight: float | None = Field(None, ge=-WEIGHT_LIMIT, le=WEIGHT_LIMIT)
    weight_min: float | None = Field(None, ge=-WEIGHT_LIMIT, le=WEIGHT_LIMIT)
    weight_max: float | None = Field(None, ge=-WEIGHT_LIMIT, le=WEIGHT_LIMIT)
    activation_text: Text | None = Field(None, max_length=5000)
    negative_text: Text | None = Field(None, max_length=5000)
    notes: Text | None = Field(None, max_length=20_000)
    description: Text | None = Field(None, max_length=100_000)
    active: bool | None = None
    favorite: bool | None = None


class BulkIn(Strict):
    action: Literal[tuple(bulk_actions.ACTIONS)] = Field(  # type: ignore[valid-type]
        description="one of the library's bulk actions (adapters.bulk_actions.ACTIONS)"
    )
    ids: list[Id] | None = Field(None, max_length=100_000, description="adapter ids; or give `filter`")
    filter: Text | None = Field(
        None, max_length=4000, description="a gallery query string (e.g. 'unused=never&active=1'): every match"
    )
    tags: list[Text] | None = Field(None, max_length=MAX_TAGS)
    base_model: BaseModel | None = None


class BulkOut(Schema):
    action: str
    matched: int
    changed: int
    skipped_missing: int
    undoable: bool


class SuggestionOut(Schema):
    id: int
    name: str
    alias: str
    base_model: str
    score: float
    cosine: float
    compatible: bool
    reasons: list[str]
    feedback: int
    lora_token: str
    trigger_words: list[str]


class SuggestionsOut(Schema):
    results: list[SuggestionOut]
    unavailable: str | None
    note: str


class LoraIn(Strict):
    adapter_id: int = Field(..., ge=1, le=MAX_ID)
    weight: float = Field(1.0, ge=composer.WEIGHT[0], le=composer.WEIGHT[1])
    triggers: bool = True
    negative: bool = False


class JobIn(Strict):
    prompt: Text = Field("", max_length=composer.MAX_PROMPT)
    negative: Text = Field("", max_length=composer.MAX_PROMPT)
    loras: list[LoraIn] = Field(default_factory=list, max_length=composer.MAX_LORAS)
    backend: Text = Field("default", max_length=32)
    checkpoint: Text = Field("", max_length=255)
    sampler: Text = Field("Default", max_length=100)
    steps: int = Field(20, ge=composer.STEPS[0], le=composer.STEPS[1])
    cfg_scale: float = Field(6.0, ge=composer.CFG[0], le=composer.CFG[1])
    width: int = Field(1024, ge=composer.SIZE[0], le=composer.SIZE[1], multiple_of=8)
    height: int = Field(1024, ge=composer.SIZE[0], le=composer.SIZE[1], multiple_of=8)
    seed: int = Field(-1, ge=composer.SEED[0], le=composer.SEED[1])
    batch_size: int = Field(1, ge=composer.BATCH[0], le=composer.BATCH[1])
    n_iter: int = Field(1, ge=composer.COUNT[0], le=composer.COUNT[1])


class JobLoraOut(Schema):
    adapter_id: int | None
    name: str
    weight: float
    applied: bool | None


class JobImageOut(Schema):
    index: int
    url: str
    width: int
    height: int
    seed: int | None


class JobOut(Schema):
    id: int
    status: str
    backend: str
    prompt: str
    negative_prompt: str
    checkpoint: str
    steps: int
    width: int
    height: int
    seed: int
    progress: float
    message: str
    warnings: list[str]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    loras: list[JobLoraOut]
    images: list[JobImageOut]


class JobPage(Schema):
    count: int
    page: int
    pages: int
    page_size: int
    results: list[JobOut]


class CancelOut(Schema):
    id: int
    status: str
    message: str


PAGE_FIELD = Field(1, ge=1, le=MAX_PAGE)


class CivitaiRunIn(Strict):
    """Which adapters to look up: ``ids``, or every match of a gallery ``filter``, or a ``mode`` over the catalog."""

    mode: Literal["due", "missing", "all"] | None = Field(
        None, description="due: all but recent 'not on Civitai'; missing: never checked; all: every hashed adapter"
    )
    ids: list[Id] | None = Field(None, max_length=100_000)
    filter: str | None = Field(None, max_length=4000, description="a gallery query string: every match")


class CivitaiRunOut(Schema):
    id: int
    status: str
    mode: str
    done: int
    total: int
    found: int
    not_found: int
    updates: int
    failed: int
    skipped: int
    requests: int
    message: str
    issues: list[dict[str, Any]]
    created_at: datetime
    finished_at: datetime | None


class CivitaiImageOut(Schema):
    url: str
    kind: str
    nsfw_level: int
    width: int | None
    height: int | None
    meta: dict[str, Any] | None


class CivitaiOut(Schema):
    checked_at: datetime | None
    found: bool | None
    matched_by: str
    model_id: int | None
    version_id: int | None
    model_name: str
    version_name: str
    base_model: str
    trained_words: list[str]
    tags: list[str]
    nsfw_level: int
    update: dict[str, Any] | None
    message: str
    images: list[CivitaiImageOut]
