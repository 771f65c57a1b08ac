"""/api/v1/generation/jobs: submit, list, read and cancel generations through generation.submitting."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import reverse
from ninja import Query, Router
from ninja.errors import HttpError

from api import schemas
from api.auth import require
from generation import backends, composer, submitting
from generation.models import GenerationJob, JobStatus

router = Router(tags=["generation"])

VIEW, SUBMIT, CHANGE = (
    "generation.view_generationjob",
    "generation.add_generationjob",
    "generation.change_generationjob",
)
JOBS_PAGE = 50


def job_out(job: GenerationJob) -> dict:
    data = {field: getattr(job, field) for field in schemas.JobOut.model_fields if field not in ("loras", "images")}
    data["loras"] = [
        {"adapter_id": lora.adapter_id, "name": lora.name, "weight": lora.weight, "applied": lora.applied}
        for lora in job.loras.all()
    ]
    data["images"] = [
        {
            "index": image.index,
            "url": reverse("generation:image", args=[job.pk, image.index, "full"]),
            "width": image.width,
            "height": image.height,
            "seed": image.seed,
        }
        for image in job.images.all()
    ]
    return data


def _job_or_404(queryset, pk: int) -> GenerationJob:
    if pk > schemas.MAX_ID:
        raise Http404(f"No generation job {pk}.")
    return get_object_or_404(queryset, pk=pk)


def _jobs(request: HttpRequest):
    """The jobs this caller may see (other users' private jobs are absent, as in the browser)."""
    return GenerationJob.objects.visible_to(request.user).prefetch_related("loras", "images")


@router.post("/generation/jobs", response={201: schemas.JobOut, 422: schemas.Error})
def create_job(request: HttpRequest, payload: schemas.JobIn):
    """Queue a txt2img job; the composer's linter runs first, and its errors come back as a 422."""
    require(request, SUBMIT, "start generations")
    if payload.backend not in backends.names():
        raise HttpError(422, f"Unknown backend '{payload.backend}' (configured: {', '.join(backends.names())}).")
    data = payload.model_dump()
    loras = [composer.LoraChoice(**lora) for lora in data.pop("loras")]
    composition = composer.Composition(**data, loras=loras)
    try:
        job = submitting.submit(composition, request.user)
    except submitting.SubmitError as exc:
        raise HttpError(422, str(exc)) from exc
    return 201, job_out(_jobs(request).get(pk=job.pk))


@router.get("/generation/jobs", response={200: schemas.JobPage, 404: schemas.Error})
def list_jobs(
    request: HttpRequest,
    status: list[JobStatus] = Query([]),
    page: int = Query(1, ge=1, le=100_000),
):
    """Newest first, 50 per page, optionally only some statuses."""
    require(request, VIEW, "see generation jobs")
    jobs = _jobs(request).order_by("-created_at", "-id")
    if status:
        jobs = jobs.filter(status__in=[s.value for s in status])
    paginator = Paginator(jobs, JOBS_PAGE)
    if page > paginator.num_pages:
        raise HttpError(404, f"Page {page} is out of range: there are {paginator.num_pages} page(s).")
    current = paginator.page(page)
    return {
        "count": paginator.count,
        "page": page,
        "pages": paginator.num_pages,
        "page_size": JOBS_PAGE,
        "results": [job_out(job) for job in current.object_list],
    }


@router.get("/generation/jobs/{int:job_id}", response={200: schemas.JobOut, 404: schemas.Error})
def get_job(request: HttpRequest, job_id: int):
    require(request, VIEW, "see generation jobs")
    return job_out(_job_or_404(_jobs(request), job_id))


@router.post("/generation/jobs/{int:job_id}/cancel", response={200: schemas.CancelOut, 404: schemas.Error})
def cancel_job(request: HttpRequest, job_id: int):
    """Take a queued job out of its queue or ask SD.Next to stop the running one (as the Cancel button)."""
    require(request, CHANGE, "cancel generations")
    job = _job_or_404(GenerationJob.objects.visible_to(request.user), job_id)
    message = submitting.cancel(job.pk)
    job.refresh_from_db()
    return {"id": job.pk, "status": job.status, "message": message}
