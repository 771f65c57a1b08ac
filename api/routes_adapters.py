"""/api/v1/adapters and recommendations: the gallery's query (adapters.gallery), the detail page's forms,
bulk_actions and recommendations.ranking, behind the same permissions as the pages."""

from __future__ import annotations

from typing import Literal

from django.db import transaction
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Query, Router
from ninja.errors import HttpError

from adapters import bulk_actions, bulk_edit, civitai_lookup, gallery, selection
from adapters.forms import (
    DescriptionForm,
    NameForm,
    NotesForm,
    TagsForm,
    TextsForm,
    TriggerWordsForm,
    WeightsForm,
)
from adapters.models import Adapter, BaseModel, NetworkType
from api import schemas
from api.auth import require
from recommendations import ranking

router = Router(tags=["adapters"])

VIEW, CHANGE = "adapters.view_adapter", bulk_actions.CHANGE
LIST_PARAMS = {"q", "base", "type", "tag", "tag_mode", "active", "favorite", "status", "root", "dup", "unused", "sort"}
LIST_PARAMS |= {"update"}
LIST_PARAMS |= {"page"}
SortKey = Literal[tuple(gallery.SORTS)]  # type: ignore[valid-type]
StatusKey = Literal[tuple(value for value, _ in gallery.STATUS_CHOICES)]  # type: ignore[valid-type]


def adapter_out(adapter: Adapter) -> dict:
    data = {field: getattr(adapter, field) for field in schemas.AdapterOut.model_fields if field != "tags"}
    data["tags"] = sorted(tag.name for tag in adapter.tags.all())
    return data


def adapter_detail(adapter: Adapter) -> dict:
    data = adapter_out(adapter)
    for field in schemas.AdapterDetailOut.model_fields:
        if field not in data and field not in ("files", "civitai_update", "civitai_checked_at"):
            data[field] = getattr(adapter, field)
    data.update(civitai_lookup.record_info(adapter.pk))
    data.pop("civitai_found", None)
    data["files"] = [
        {"path": f.path, "size": f.size, "status": f.status, "sha256": f.sha256} for f in adapter.files.all()
    ]
    return data


def _reject_unknown(request: HttpRequest, allowed: set[str]) -> None:
    unknown = sorted(set(request.GET) - allowed)
    if unknown:
        raise HttpError(
            422, f"Unknown query parameter(s): {', '.join(unknown)}. Allowed: {', '.join(sorted(allowed))}."
        )


@router.get("/adapters", response={200: schemas.AdapterPage, 422: schemas.Error, 404: schemas.Error})
def list_adapters(
    request: HttpRequest,
    q: str = Query("", max_length=gallery.MAX_QUERY_LENGTH, description="search words"),
    base: list[BaseModel] = Query([]),
    type: list[NetworkType] = Query([]),
    tag: list[str] = Query([], max_length=gallery.MAX_TAG_FILTERS),
    tag_mode: Literal["any", "all"] = "any",
    active: Literal["1", "0"] | None = None,
    favorite: Literal["1", "0"] | None = None,
    status: list[StatusKey] = Query([]),
    root: list[int] = Query([]),
    dup: Literal["1", "0"] | None = None,
    update: Literal["1", "0"] | None = Query(None, description="1: only adapters with a newer version on Civitai"),
    unused: str | None = Query(None, pattern=r"^(never|[0-9]{1,5})$", description="'never' or days without use"),
    sort: SortKey = gallery.DEFAULT_SORT,
    page: int = Query(1, ge=1, le=gallery.MAX_PAGE),
):
    """The library gallery as JSON: the same filters, sort and pages (48 per page) as /library/."""
    require(request, VIEW, "list adapters")
    _reject_unknown(request, LIST_PARAMS)
    query = gallery.parse(request.GET)
    if query.notices:
        raise HttpError(422, " ".join(query.notices))
    results = gallery.results(query)
    paginator = results.page.paginator
    if page > paginator.num_pages:
        raise HttpError(404, f"Page {page} is out of range: this query has {paginator.num_pages} page(s).")
    return {
        "count": paginator.count,
        "page": results.page.number,
        "pages": paginator.num_pages,
        "page_size": gallery.PAGE_SIZE,
        "results": [adapter_out(a) for a in results.page.object_list],
    }


def _adapter(pk: int) -> Adapter:
    if pk > schemas.MAX_ID:
        raise Http404(f"No adapter {pk}.")
    return get_object_or_404(Adapter.objects.prefetch_related("tags", "files"), pk=pk)


@router.get("/adapters/{int:adapter_id}", response={200: schemas.AdapterDetailOut, 404: schemas.Error})
def get_adapter(request: HttpRequest, adapter_id: int):
    require(request, VIEW, "read adapters")
    return adapter_detail(_adapter(adapter_id))


def _forms(adapter: Adapter, patch: dict) -> list:
    """The detail page's section forms for the fields in ``patch`` (fields not given keep their values)."""

    def value(name: str) -> str:
        current = patch.get(name, getattr(adapter, name))
        return "" if current is None else str(current)

    forms = []
    if {"name", "alias"} & patch.keys():
        forms.append(NameForm({"name": value("name"), "alias": value("alias")}, instance=adapter))
    if "trigger_words" in patch:
        forms.append(TriggerWordsForm({"trigger_words": "\n".join(patch["trigger_words"] or [])}, instance=adapter))
    if "tags" in patch:
        forms.append(TagsForm({"tags": ", ".join(patch["tags"] or [])}, instance=adapter))
    if {"preferred_weight", "weight_min", "weight_max"} & patch.keys():
        names = ("preferred_weight", "weight_min", "weight_max")
        forms.append(WeightsForm({n: value(n) for n in names}, instance=adapter))
    if {"activation_text", "negative_text"} & patch.keys():
        forms.append(TextsForm({n: value(n) for n in ("activation_text", "negative_text")}, instance=adapter))
    if "notes" in patch:
        forms.append(NotesForm({"notes": patch["notes"] or ""}, instance=adapter))
    if "description" in patch:
        forms.append(DescriptionForm({"description": patch["description"] or ""}, instance=adapter))
    return forms


@router.patch(
    "/adapters/{int:adapter_id}", response={200: schemas.AdapterDetailOut, 404: schemas.Error, 422: schemas.Error}
)
def update_adapter(request: HttpRequest, adapter_id: int, payload: schemas.AdapterUpdate):
    """Change some fields; validated exactly as the detail page's forms; edited fields survive rescans."""
    require(request, CHANGE, "edit adapters")
    adapter = _adapter(adapter_id)
    patch = payload.model_dump(exclude_unset=True)
    null_fields = [n for n in ("name", "active", "favorite") if n in patch and patch[n] is None]
    if null_fields:
        raise HttpError(422, f"{', '.join(null_fields)} cannot be null.")
    forms = _forms(adapter, patch)
    errors = [f"{field}: {' '.join(messages)}" for form in forms for field, messages in form.errors.items()]
    if errors:
        raise HttpError(422, "Invalid update: " + "; ".join(errors))
    with transaction.atomic():
        for form in forms:
            form.save()
        if "active" in patch:
            bulk_edit.set_active([adapter.pk], patch["active"], by=request.user)
        if "favorite" in patch:
            bulk_edit.set_favorite([adapter.pk], patch["favorite"], by=request.user)
    return adapter_detail(_adapter(adapter_id))


@router.post(
    "/adapters/bulk", response={200: schemas.BulkOut, 403: schemas.Error, 409: schemas.Error, 422: schemas.Error}
)
def bulk(request: HttpRequest, payload: schemas.BulkIn):
    """One action over ids or over every match of a gallery filter (e.g. deactivate all never-used LoRAs);
    the actions, permissions and messages of the library's bulk bar (``adapters.bulk_actions``)."""
    action = bulk_actions.ACTIONS[payload.action]
    require(request, CHANGE, "change adapters in bulk")
    for permission in action.permissions:
        require(request, permission, f"run '{action.name}' in bulk")
    if payload.ids is not None and not payload.ids:
        raise HttpError(422, "'ids' is empty: name at least one adapter.")
    try:
        chosen = selection.resolve(ids=payload.ids, filter=payload.filter)
    except selection.InvalidSelection as exc:
        raise HttpError(422, str(exc)) from exc
    for need in action.needs:
        if not getattr(payload, need):
            raise HttpError(422, f"'{action.name}' needs '{need}'.")
    params = bulk_actions.Params(tags=tuple(payload.tags or ()), base_model=payload.base_model or "")
    done = None
    if chosen.ids:
        try:
            done = bulk_actions.perform(action.name, chosen.ids, params, request.user)
        except bulk_actions.Refused as exc:
            raise HttpError(409, str(exc)) from exc
        except ValueError as exc:
            raise HttpError(422, str(exc)) from exc
    return {
        "action": action.name,
        "matched": len(chosen.ids),
        "changed": done.changed if done else 0,
        "skipped_missing": chosen.missing,
        "undoable": done.undoable if done else False,
    }


def _suggestions(results: ranking.Results) -> dict:
    return {
        "results": [s.as_dict() for s in results.suggestions],
        "unavailable": results.unavailable,
        "note": results.note,
    }


@router.get("/adapters/{int:adapter_id}/similar", response={200: schemas.SuggestionsOut, 404: schemas.Error})
def similar(request: HttpRequest, adapter_id: int, k: int = Query(ranking.DEFAULT_K, ge=1, le=ranking.MAX_K)):
    """LoRAs most like this one (embeddings + tags + feedback), as on the detail page."""
    require(request, VIEW, "see similar LoRAs")
    return _suggestions(ranking.similar(_adapter(adapter_id), request.user, k))


@router.get(
    "/recommendations/for-prompt", response={200: schemas.SuggestionsOut, 422: schemas.Error}, tags=["recommendations"]
)
def for_prompt(
    request: HttpRequest,
    prompt: str = Query(..., max_length=10_000),
    base_model: BaseModel | None = None,
    k: int = Query(ranking.DEFAULT_K, ge=1, le=ranking.MAX_K),
):
    """Active LoRAs that fit a prompt, compatible with ``base_model`` when given."""
    require(request, VIEW, "get LoRA suggestions")
    try:
        results = ranking.for_prompt(prompt, request.user, base_model.value if base_model else None, k)
    except ValueError as exc:
        raise HttpError(422, str(exc)) from exc
    return _suggestions(results)
