"""Rating result images: thumbs up/down and an optional 1-5 star, one rating per user and image.

A rating is attributed to the LoRAs and weights the job used (copied into ``RatedLora`` rows), and
every rating change re-learns what those adapters taught (``learning.refresh``): the adapter page,
its suggested weight and the recommendation ranking read from there.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from generation import learning
from generation.models import GenerationImage, RatedLora, ResultRating


class RatingError(Exception):
    """The rating cannot be stored; the message says why."""


@dataclass
class Verdict:
    thumb: int | None
    stars: int | None


def parse(thumb: str | None, stars: str | None) -> Verdict:
    """Strict: thumb is "up", "down" or empty; stars an integer 1-5 or empty."""
    thumb = (thumb or "").strip().lower()
    stars = (stars or "").strip()
    if thumb not in ("", "up", "down", "1", "-1"):
        raise RatingError(f"“{thumb[:20]}” is not a thumb: use up or down.")
    value = None if not thumb else (1 if thumb in ("up", "1") else -1)
    count = None
    if stars:
        if not stars.isdigit() or not 1 <= int(stars) <= 5:
            raise RatingError(f"“{stars[:20]}” is not a star rating: use 1 to 5.")
        count = int(stars)
    return Verdict(value, count)


def can_rate(user, image: GenerationImage) -> bool:
    return user.is_authenticated and user.has_perm("generation.view_generationjob") and image.job.visible_to(user)


def rate(user, image: GenerationImage, verdict: Verdict) -> ResultRating | None:
    """Store (or clear, when both parts are empty) ``user``'s rating of ``image``; returns it or None."""
    if not can_rate(user, image):
        raise RatingError("This result is private to the user who generated it: you cannot rate it.")
    with transaction.atomic():
        if verdict.thumb is None and verdict.stars is None:
            ResultRating.objects.filter(image=image, user=user).delete()
            rating = None
        else:
            rating, _ = ResultRating.objects.update_or_create(
                image=image, user=user, defaults={"job": image.job, "thumb": verdict.thumb, "stars": verdict.stars}
            )
            rating.loras.all().delete()
            RatedLora.objects.bulk_create(
                RatedLora(
                    rating=rating, adapter_id=lora.adapter_id, name=lora.name, weight=lora.weight, applied=lora.applied
                )
                for lora in image.job.loras.all()
            )
        adapter_ids = [pk for pk in image.job.loras.values_list("adapter_id", flat=True) if pk]
        learning.refresh(adapter_ids)
    return rating


def for_user(user, images: list[GenerationImage]) -> dict[int, ResultRating]:
    """image id -> this user's rating, for the images shown."""
    if not user.is_authenticated or not images:
        return {}
    rows = ResultRating.objects.filter(user=user, image__in=[i.pk for i in images])
    return {r.image_id: r for r in rows}
