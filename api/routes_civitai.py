"""/api/v1 Civitai lookups: start one for an adapter or many, watch it, cancel it, read what Civitai said.
The same ``adapters.civitai_runs`` functions as the pages, the admin and ``manage.py fetch_civitai``."""

from __future__ import annotations

from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Router
from ninja.errors import HttpError

from adapters import civitai_lookup, civitai_runs, selection
from adapters.models import Adapter, CivitaiRecord, CivitaiRun
from api import schemas
from api.auth import require

router = Router(tags=["civitai"])
VIEW, CHANGE = "adapters.view_adapter", "adapters.change_adapter"
RUN_FIELDS = tuple(schemas.CivitaiRunOut.model_fields)


def run_out(run: CivitaiRun) -> dict:
    return {field: getattr(run, field) for field in RUN_FIELDS}


def _start(request: HttpRequest, mode: str, ids: list[int] | None = None) -> CivitaiRun:
    """A new run, or 409 while one runs; also when the running one has the same mode or ids: a client must
    not take someone else's run (or its own earlier one) for the run it just asked for."""
    newest = CivitaiRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    try:
        run = civitai_runs.start_run(mode, ids, user=request.user)
    except civitai_runs.CivitaiOff as exc:
        raise HttpError(409, str(exc)) from exc
    if run.pk <= newest:  # start_run answered with the run already queued or running
        raise HttpError(409, f"Civitai lookup #{run.pk} is running; wait for it (GET /api/v1/civitai/runs/{run.pk}).")
    return run


def _adapter(pk: int) -> Adapter:
    if pk > schemas.MAX_ID:
        raise Http404(f"No adapter {pk}.")
    return get_object_or_404(Adapter, pk=pk)


@router.post(
    "/adapters/{int:adapter_id}/civitai", response={202: schemas.CivitaiRunOut, 404: schemas.Error, 409: schemas.Error}
)
def lookup_adapter(request: HttpRequest, adapter_id: int):
    """Look this adapter up on Civitai by its hashes (a tracked run; poll it or watch the page)."""
    require(request, CHANGE, "look adapters up on Civitai")
    adapter = _adapter(adapter_id)
    return 202, run_out(_start(request, CivitaiRun.Mode.SELECTED, [adapter.pk]))


@router.get("/adapters/{int:adapter_id}/civitai", response={200: schemas.CivitaiOut, 404: schemas.Error})
def adapter_civitai(request: HttpRequest, adapter_id: int):
    """What Civitai said the last time: names, base model, trained words, update, and the example images'
    generation parameters (``meta``, raw)."""
    require(request, VIEW, "read adapters")
    adapter = _adapter(adapter_id)
    record = CivitaiRecord.objects.filter(adapter_id=adapter.pk).first()
    empty = {"matched_by": "", "model_name": "", "version_name": "", "base_model": "", "message": ""}
    data = {
        "checked_at": record.checked_at if record else None,
        "found": record.found if record else None,
        **{k: getattr(record, k) if record else v for k, v in empty.items()},
        "model_id": record.model_id if record else None,
        "version_id": record.version_id if record else None,
        "trained_words": record.trained_words if record else [],
        "tags": record.tags if record else [],
        "nsfw_level": record.nsfw_level if record else 0,
        "update": civitai_lookup.update_info(record),
        "images": civitai_lookup.example_images(adapter.pk),
    }
    return data


@router.post("/civitai/runs", response={202: schemas.CivitaiRunOut, 409: schemas.Error, 422: schemas.Error})
def start_run(request: HttpRequest, payload: schemas.CivitaiRunIn):
    """Look up many adapters: ``ids``, every match of a gallery ``filter``, or a ``mode`` (default "due")."""
    require(request, CHANGE, "look adapters up on Civitai")
    given = [payload.ids is not None, payload.filter is not None, payload.mode is not None]
    if sum(given) > 1:
        raise HttpError(422, "Give one of 'ids', 'filter' or 'mode'.")
    if payload.ids is None and payload.filter is None:
        return 202, run_out(_start(request, payload.mode or CivitaiRun.Mode.DUE))
    try:
        ids = selection.resolve(ids=payload.ids, filter=payload.filter).ids
    except selection.InvalidSelection as exc:
        raise HttpError(422, str(exc)) from exc
    if not ids:
        raise HttpError(422, "No adapter matches: nothing to look up.")
    return 202, run_out(_start(request, CivitaiRun.Mode.SELECTED, ids))


@router.get("/civitai/runs/{int:run_id}", response={200: schemas.CivitaiRunOut, 404: schemas.Error})
def get_run(request: HttpRequest, run_id: int):
    require(request, VIEW, "see Civitai lookups")
    if run_id > schemas.MAX_ID:
        raise Http404(f"No Civitai lookup {run_id}.")
    return run_out(get_object_or_404(CivitaiRun, pk=run_id))


@router.post("/civitai/runs/{int:run_id}/cancel", response={200: schemas.CivitaiRunOut, 404: schemas.Error})
def cancel_run(request: HttpRequest, run_id: int):
    """Cancel a queued lookup at once, or a running one before its next request."""
    require(request, CHANGE, "cancel Civitai lookups")
    if run_id > schemas.MAX_ID:
        raise Http404(f"No Civitai lookup {run_id}.")
    return run_out(civitai_runs.request_cancel(get_object_or_404(CivitaiRun, pk=run_id)))
