"""Results that teach: rating images, pinning, "Set as preview", deleting, retention, the adapter's lessons.

Thin views over ratings.py, learning.py and retention.py. Every fragment has a stable id; without
JavaScript the same URLs answer with a redirect and a message.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from adapters.models import USER_SOURCE, Adapter
from adapters.previews import PreviewError
from adapters.thumbnails import store_preview_bytes
from generation import learning, ratings, retention, storage, sweeps
from generation.forms import SweepForm
from generation.models import GenerationImage, GenerationJob, JobStatus

VIEW = "generation.view_generationjob"
CHANGE = "generation.change_generationjob"
DELETE = "generation.delete_generationjob"


def _visible_job(request: HttpRequest, pk: int) -> GenerationJob:
    return get_object_or_404(GenerationJob.objects.all().visible_to(request.user), pk=pk)


def results_context(request: HttpRequest, job: GenerationJob, message: str = "") -> dict:
    images = list(job.images.all())
    mine = ratings.for_user(request.user, images)
    for image in images:
        image.my_rating = mine.get(image.pk)
    adapters = [lora.adapter for lora in job.loras.select_related("adapter") if lora.adapter is not None]
    return {
        "job": job,
        "images": images,
        "adapters": list({a.pk: a for a in adapters}.values()),
        "can_pin": request.user.has_perm(CHANGE),
        "can_delete": request.user.has_perm(DELETE),
        "can_set_preview": request.user.has_perm("adapters.change_adapter"),
        "can_save_recipe": request.user.has_perm("generation.add_recipe"),
        "results_message": message,
    }


@require_GET
@permission_required(VIEW, raise_exception=True)
def job_results(request: HttpRequest, pk: int) -> HttpResponse:
    """Ratings, pin, set-as-preview and delete for one job's images (per user, so not in the live panel)."""
    return render(request, "generation/_job_results.html", results_context(request, _visible_job(request, pk)))


@require_POST
@permission_required(VIEW, raise_exception=True)
def rate(request: HttpRequest, image_id: int) -> HttpResponse:
    image = get_object_or_404(GenerationImage.objects.select_related("job"), pk=image_id)
    error = ""
    try:
        verdict = ratings.parse(request.POST.get("thumb"), request.POST.get("stars"))
        if request.POST.get("clear") == "1":
            verdict = ratings.Verdict(None, None)
        image.my_rating = ratings.rate(request.user, image, verdict)
    except ratings.RatingError as exc:
        error = str(exc)
        image.my_rating = (
            ratings.for_user(request.user, [image]).get(image.pk) if image.job.visible_to(request.user) else None
        )
    status = 403 if error and not image.job.visible_to(request.user) else 422 if error else 200
    if not request.htmx:
        if error:
            messages.error(request, error)
            if status == 403:
                return HttpResponse(error, status=403)
        else:
            messages.success(request, "Rating saved.")
        return redirect(_back(request, image.job))
    context = {"image": image, "job": image.job, "rating_error": error, **_sweep_cell(request, image.job)}
    return render(request, "generation/_rating.html", context, status=status)


def _sweep_cell(request: HttpRequest, job: GenerationJob) -> dict:
    """On a sweep's page a rating widget is labelled by its cell ("pixel_xl @ 0.5") and leads back there."""
    if request.POST.get("from") != "sweep" or job.sweep is None or job.sweep_cell is None:
        return {}
    labels = job.sweep.labels
    return {"from_sweep": True, "label": labels[job.sweep_cell] if job.sweep_cell < len(labels) else ""}


def _back(request: HttpRequest, job: GenerationJob) -> str:
    if job.sweep_id and request.POST.get("from") == "sweep":
        return reverse("generation:sweep", args=[job.sweep_id])
    return reverse("generation:job", args=[job.pk])


@require_POST
@permission_required(CHANGE, raise_exception=True)
def pin(request: HttpRequest, pk: int) -> HttpResponse:
    job = _visible_job(request, pk)
    job.pinned = request.POST.get("value") == "1"
    job.save(update_fields=["pinned"])
    message = "Pinned: retention keeps this job." if job.pinned else "Unpinned."
    if not request.htmx:
        messages.info(request, message)
        return redirect("generation:job", pk=pk)
    return render(request, "generation/_job_results.html", results_context(request, job, message))


@require_POST
@permission_required("adapters.change_adapter", raise_exception=True)
def set_preview(request: HttpRequest, image_id: int) -> HttpResponse:
    """Any result image becomes an adapter's preview (kept as if uploaded: rescans leave it alone)."""
    image = get_object_or_404(GenerationImage.objects.select_related("job"), pk=image_id)
    if not image.job.visible_to(request.user):
        raise Http404("this result is private")
    raw = request.POST.get("adapter", "")
    adapter = Adapter.objects.filter(pk=int(raw)).first() if raw.isdigit() else None
    if adapter is None:
        message = "Choose the LoRA whose preview this image should become."
    else:
        try:
            data = storage.absolute(image.path).read_bytes()
            store_preview_bytes(adapter, data, "upload")
            adapter.sources = {**adapter.sources, "preview": USER_SOURCE}
            adapter.issues = [i for i in adapter.issues if not str(i).startswith("preview ")]
            adapter.save(update_fields=["sources", "issues", "updated_at"])
            message = f"This image is now the preview of {adapter.name}."
        except (OSError, ValueError):
            message = "The image file is gone from disk; it cannot become a preview."
        except PreviewError as exc:
            message = f"Not a usable preview: {exc}."
    if not request.htmx:
        messages.info(request, message)
        return redirect(_back(request, image.job))
    return render(request, "generation/_job_results.html", results_context(request, image.job, message))


@require_POST
@permission_required(DELETE, raise_exception=True)
def delete_images(request: HttpRequest, pk: int) -> HttpResponse:
    job = _visible_job(request, pk)
    indexes = [int(i) for i in request.POST.getlist("image") if i.isdigit()]
    outcome = retention.delete_images(job, indexes) if indexes else None
    message = outcome.message if outcome else "Tick the images to delete first."
    if not request.htmx:
        messages.info(request, message)
        return redirect("generation:job", pk=pk)
    return render(request, "generation/_job_results.html", results_context(request, job, message))


@require_POST
@permission_required(DELETE, raise_exception=True)
def bulk_delete(request: HttpRequest) -> HttpResponse:
    """Delete the jobs ticked on the history page: first a confirmation with counts, then the deletion."""
    ids = sorted({int(i) for i in request.POST.getlist("job") if i.isdigit()})
    back = reverse("generation:history") + (
        "?" + request.POST["querystring"] if request.POST.get("querystring") else ""
    )
    if not ids:
        messages.error(request, "Tick the jobs to delete first.")
        return redirect(back)
    if request.POST.get("confirm") != "1":
        chosen = GenerationJob.objects.filter(pk__in=ids).visible_to(request.user)
        context = {
            "ids": ids,
            "count": chosen.count(),
            "images": GenerationImage.objects.filter(job__in=chosen).count(),
            "pinned": chosen.filter(pinned=True).count(),
            "rated": chosen.filter(ratings__isnull=False).distinct().count(),
            "active": chosen.filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).count(),
            "back": back,
            "querystring": request.POST.get("querystring", ""),
        }
        return render(request, "generation/delete_confirm.html", context)
    outcome = retention.delete_jobs(ids, request.user)
    messages.success(request, outcome.message)
    return redirect(back)


@require_GET
@permission_required(VIEW, raise_exception=True)
def curation(request: HttpRequest) -> HttpResponse:
    """The retention policy, what it would remove now, and a button to run it."""
    rule = retention.policy()
    context = {"policy": rule, "plan": retention.plan(rule), "can_run": request.user.has_perm(DELETE)}
    return render(request, "generation/curation.html", context)


@require_POST
@permission_required(DELETE, raise_exception=True)
def run_retention(request: HttpRequest) -> HttpResponse:
    outcome = retention.apply()
    messages.success(request, outcome.message)
    return redirect("generation:curation")


@require_GET
@permission_required("adapters.view_adapter", raise_exception=True)
def adapter_results(request: HttpRequest, pk: int) -> HttpResponse:
    """The adapter page's "What results taught" section and its sweep form (loaded by the page)."""
    adapter = Adapter.objects.filter(pk=pk).first()
    if adapter is None:
        raise Http404("no such adapter")
    template = "generation/_adapter_results.html" if request.htmx else "generation/sweep_form_page.html"
    return render(request, template, adapter_context(request, adapter))


def adapter_context(request: HttpRequest, adapter: Adapter, form: SweepForm | None = None, problem: str = "") -> dict:
    learned = learning.learn(adapter)
    suggested = learned.suggested_weight
    return {
        "adapter": adapter,
        "learned": learned,
        "max_bucket": max((b.count for b in learned.buckets), default=1),
        "suggested_outside": suggested is not None and not learning.within_range(adapter, suggested),
        "weight_by_hand": adapter.is_user_edited("preferred_weight"),
        "sweeps": sweeps.for_adapter(adapter, request.user),
        "form": form or SweepForm(initial=SweepForm.initial_for(adapter)),
        "can_sweep": request.user.has_perm("generation.add_generationjob"),
        "sweep_problem": problem,
    }
