"""Weight sweeps and LoRA comparisons: one prompt, one seed, a batch of ordinary generation jobs.

A weight sweep runs one LoRA at several weights (default 0, 0.25, 0.5, 0.75, 1); a comparison runs
two or three LoRAs at one weight. Every cell is a normal ``GenerationJob`` (same queue, progress,
history, ratings); the ``Sweep`` row ties them together. When the last cell ends (however it ends:
``signals.job_finished``), ``finish_if_done`` draws a labelled grid image with Pillow. Rating the
cells teaches the adapter's best weight (learning.py).
"""

from __future__ import annotations

import logging
import math
import random
import re
import textwrap
from dataclasses import replace

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from PIL import Image, ImageDraw, ImageFont

from adapters.models import Adapter
from generation import composer, storage, submitting
from generation.models import ACTIVE_STATUSES, GenerationJob, JobStatus, Sweep

logger = logging.getLogger(__name__)

DEFAULT_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
MAX_CELLS = 12
COMPARE = (2, 3)
CELL_SIDE = 320
LABEL_HEIGHT = 28
TITLE_HEIGHT = 56
GAP = 8
SWEEP_GROUP = "generation.sweep.{pk}"


class SweepError(Exception):
    """The sweep cannot be started; the message says why. Nothing was queued."""


def format_weights(weights: tuple[float, ...] | list[float]) -> str:
    return ", ".join(composer.format_weight(w) for w in weights)


def parse_weights(text: str) -> list[float]:
    """ "0, 0.25 0.5;1" -> [0.0, 0.25, 0.5, 1.0]: 1 to MAX_CELLS distinct numbers within the weight limits."""
    parts = [p for p in re.split(r"[,;\s]+", (text or "").strip()) if p]
    if not parts:
        raise SweepError("Give at least one weight, e.g. 0, 0.25, 0.5, 0.75, 1.")
    if len(parts) > MAX_CELLS:
        raise SweepError(f"A sweep has at most {MAX_CELLS} weights; you gave {len(parts)}.")
    weights: list[float] = []
    low, high = composer.WEIGHT
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise SweepError(f"“{part[:20]}” is not a number: weights are numbers like 0.5 or -1.") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise SweepError(f"{part[:20]} is outside the weights SD.Next accepts here ({low:g} to {high:g}).")
        if round(value, 4) not in [round(w, 4) for w in weights]:
            weights.append(value)
    return weights


def resolve_adapters(labels: list[str]) -> list[Adapter]:
    """Adapters by id, name or alias (exact, any case); a clear error for unknown or ambiguous ones."""
    found: list[Adapter] = []
    for label in labels:
        label = label.strip()
        if not label:
            continue
        matches = list(Adapter.objects.filter(pk=int(label)) if label.isdigit() else Adapter.objects.none()) or list(
            Adapter.objects.filter(Q(name__iexact=label) | Q(alias__iexact=label))[:5]
        )
        if not matches:
            raise SweepError(f"No LoRA called “{label[:60]}” in the catalog.")
        if len(matches) > 1:
            listed = ", ".join(f"#{a.pk} {a.name}" for a in matches)
            raise SweepError(f"“{label[:60]}” is ambiguous ({listed}): give the id instead.")
        if matches[0].pk not in [a.pk for a in found]:
            found.append(matches[0])
    return found


def _seed(base: composer.Composition) -> int:
    return base.seed if base.seed != -1 else random.randint(0, composer.SEED[1])


def start_weight_sweep(
    adapter: Adapter, base: composer.Composition, weights: list[float], user=None, private: bool = False
) -> Sweep:
    """One job per weight, same prompt and seed, queued together (all or nothing)."""
    if not weights:
        raise SweepError("Give at least one weight.")
    if len(weights) > MAX_CELLS:
        raise SweepError(f"A sweep has at most {MAX_CELLS} weights; you gave {len(weights)}.")
    cells = [{"adapter_id": adapter.pk, "name": adapter.name, "weight": w} for w in weights]
    labels = [f"{adapter.name} @ {composer.format_weight(w)}" for w in weights]
    return _start(Sweep.Mode.WEIGHTS, adapter, base, cells, labels, user, private)


def start_comparison(
    adapters: list[Adapter], weight: float, base: composer.Composition, user=None, private: bool = False
) -> Sweep:
    """Two or three LoRAs, each alone at the same weight, same prompt and seed."""
    if not COMPARE[0] <= len(adapters) <= COMPARE[1]:
        raise SweepError(f"Compare {COMPARE[0]} or {COMPARE[1]} different LoRAs; you chose {len(adapters)}.")
    low, high = composer.WEIGHT
    if not math.isfinite(weight) or not low <= weight <= high:
        raise SweepError(f"The weight must lie between {low:g} and {high:g}.")
    cells = [{"adapter_id": a.pk, "name": a.name, "weight": weight} for a in adapters]
    labels = [f"{a.name} @ {composer.format_weight(weight)}" for a in adapters]
    return _start(Sweep.Mode.COMPARE, adapters[0], base, cells, labels, user, private)


def _start(
    mode: str, adapter: Adapter, base: composer.Composition, cells: list[dict], labels: list[str], user, private: bool
) -> Sweep:
    seed = _seed(base)
    base = replace(base, seed=seed, batch_size=1, n_iter=1, loras=[])
    try:
        with transaction.atomic():
            sweep = Sweep.objects.create(
                mode=mode,
                adapter=adapter,
                labels=labels,
                cells=cells,
                prompt=base.prompt,
                seed=seed,
                requested_by=user if user is not None and user.is_authenticated else None,
            )
            for position, cell in enumerate(cells):
                choice = composer.LoraChoice(cell["adapter_id"], cell["weight"], triggers=True, negative=False)
                submitting.submit(
                    replace(base, loras=[choice]), user, private=private, sweep=sweep, sweep_cell=position
                )
    except submitting.SubmitError as exc:
        raise SweepError(f"Nothing was queued: {exc}") from exc
    return sweep


def cell_jobs(sweep: Sweep) -> list[GenerationJob | None]:
    """The job of each cell, in grid order (None for a cell whose job was deleted)."""
    jobs = {j.sweep_cell: j for j in sweep.jobs.prefetch_related("images")}
    return [jobs.get(i) for i in range(len(sweep.cells))]


def progress(sweep: Sweep, jobs: list[GenerationJob | None]) -> dict:
    done = sum(1 for j in jobs if j is None or not j.is_active)
    running = next((j for j in jobs if j is not None and j.status == JobStatus.RUNNING), None)
    fraction = (done + (running.progress if running else 0.0)) / max(1, len(jobs))
    failed = sum(1 for j in jobs if j is not None and j.status in (JobStatus.FAILED, JobStatus.CANCELLED))
    return {
        "done": done,
        "total": len(jobs),
        "percent": max(0, min(100, round(fraction * 100))),
        "failed": failed,
        "active": done < len(jobs),
        "running": running,
    }


def job_finished(sender, job_id: int, **kwargs) -> None:
    """Receives ``generation.signals.job_finished``: if the job was the last cell of a sweep, draw the grid."""
    sweep_id = GenerationJob.objects.filter(pk=job_id).values_list("sweep_id", flat=True).first()
    if sweep_id:
        finish_if_done(sweep_id)


def finish_if_done(sweep_id: int) -> bool:
    """Draw the grid once every cell has ended; exactly once, whoever gets here first."""
    if GenerationJob.objects.filter(sweep_id=sweep_id, status__in=ACTIVE_STATUSES).exists():
        return False
    if not Sweep.objects.filter(pk=sweep_id, finished_at__isnull=True).update(finished_at=timezone.now()):
        return False
    sweep = Sweep.objects.get(pk=sweep_id)
    jobs = cell_jobs(sweep)
    good = sum(1 for j in jobs if j is not None and j.status == JobStatus.SUCCEEDED and j.images.all())
    try:
        sweep.grid = build_grid(sweep, jobs)
        sweep.message = f"{good} of {len(jobs)} cells have an image."
    except (OSError, ValueError) as exc:
        logger.exception("sweep %s: grid failed", sweep_id)
        sweep.message = f"The grid image could not be drawn: {exc}. The cells' images are on their job pages."
    sweep.save(update_fields=["grid", "message"])
    announce(sweep_id)
    return True


def announce(sweep_id: int) -> None:
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(SWEEP_GROUP.format(pk=sweep_id), {"type": "sweep.status", "sweep_id": sweep_id})
    except Exception as exc:  # noqa: BLE001 - news is optional; the page re-reads the row
        logger.warning("could not announce sweep %s: %s", sweep_id, exc)


def grid_path(sweep_id: int) -> str:
    return f"generations/sweeps/{sweep_id}/grid.png"


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _cell_image(job: GenerationJob | None) -> tuple[Image.Image | None, str]:
    if job is None:
        return None, "deleted"
    images = list(job.images.all())
    if job.status != JobStatus.SUCCEEDED or not images:
        return None, job.get_status_display().lower()
    try:
        with Image.open(storage.absolute(images[0].path)) as image:
            image = image.convert("RGB")
            scale = min(CELL_SIDE / image.width, CELL_SIDE / image.height)  # small images are enlarged too
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            return image.resize(size, Image.Resampling.LANCZOS), ""
    except (OSError, ValueError) as exc:
        return None, f"unreadable ({type(exc).__name__})"


def build_grid(sweep: Sweep, jobs: list[GenerationJob | None]) -> str:
    """A labelled PNG: a title line (prompt, seed), then one cell per job with its label; returns its path."""
    count = len(jobs)
    columns = count if count <= 6 else math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    width = GAP + columns * (CELL_SIDE + GAP)
    height = TITLE_HEIGHT + rows * (LABEL_HEIGHT + CELL_SIDE + GAP) + GAP
    grid = Image.new("RGB", (width, height), (250, 250, 250))
    draw = ImageDraw.Draw(grid)
    title = f"{sweep.get_mode_display()} · seed {sweep.seed}"
    draw.text((GAP, 6), title, fill=(20, 20, 20), font=_font(18))
    prompt = textwrap.shorten(sweep.prompt or "(no prompt)", width=max(20, width // 8), placeholder="…")
    draw.text((GAP, 30), prompt, fill=(80, 80, 80), font=_font(13))
    label_font, note_font = _font(16), _font(14)
    for position, job in enumerate(jobs):
        x = GAP + (position % columns) * (CELL_SIDE + GAP)
        y = TITLE_HEIGHT + (position // columns) * (LABEL_HEIGHT + CELL_SIDE + GAP)
        label = sweep.labels[position] if position < len(sweep.labels) else f"cell {position + 1}"
        draw.text((x, y + 4), textwrap.shorten(label, width=36, placeholder="…"), fill=(20, 20, 20), font=label_font)
        image, problem = _cell_image(job)
        top = y + LABEL_HEIGHT
        if image is None:
            draw.rectangle((x, top, x + CELL_SIDE - 1, top + CELL_SIDE - 1), fill=(215, 215, 215))
            draw.text((x + 12, top + CELL_SIDE // 2 - 8), f"no image: {problem}", fill=(120, 0, 0), font=note_font)
        else:
            grid.paste(image, (x + (CELL_SIDE - image.width) // 2, top + (CELL_SIDE - image.height) // 2))
    relative = grid_path(sweep.pk)
    path = storage.absolute(relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".part")
    grid.save(temporary, "PNG")
    temporary.replace(path)
    return relative


def for_adapter(adapter: Adapter, user, limit: int = 10) -> list[Sweep]:
    """Recent sweeps this user may see that include this adapter (as the swept LoRA or a compared one)."""
    recent = Sweep.objects.visible_to(user).filter(Q(adapter=adapter) | Q(jobs__loras__adapter=adapter)).distinct()
    return list(recent.order_by("-created_at", "-id")[:limit])
