"""What rated results teach about each adapter: approval, the weights that rate best, good partners.

Each rating counts once for every LoRA its job used (``RatedLora``), except LoRAs SD.Next reported
it did not apply (they made no difference). A rating's score is its stars (1 → 0, 5 → 1) when given,
else its thumb (up 1, down 0); it *approves* when thumbs up (or 4-5 stars without a thumb) and
*disapproves* when thumbs down (or 1-2 stars). docs/results.md has the rules in words.

``refresh`` writes the results back to the catalog: ``Adapter.rating`` (1-5 from the mean score), how
many rated results approve and disapprove (``results_approved`` / ``results_disapproved``, which
recommendations rank by) and the preferred weight, unless a person set that weight by hand
(``sources`` says "user").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Case, Count, ExpressionWrapper, F, FloatField, Q, Sum, Value, When

from adapters.models import Adapter
from generation.models import RatedLora

RATINGS_SOURCE = "ratings"
PRIOR = 0.5  # a bucket's score is pulled toward "neutral" by one imaginary rating
RANGE_SLACK = 0.25  # a neighbouring weight joins the best range when its mean is within this of the best's
GOOD = 0.6  # ... and at least this (3.4 stars) with more approvals than disapprovals
MAX_PARTNERS = 5


@dataclass
class Bucket:
    weight: float
    count: int = 0
    total: float = 0.0
    approvals: int = 0
    disapprovals: int = 0

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def smoothed(self) -> float:
        return (self.total + PRIOR) / (self.count + 1)

    @property
    def stars(self) -> float:
        return 1 + 4 * self.mean


@dataclass
class Partner:
    adapter_id: int | None
    name: str
    count: int = 0
    approvals: int = 0
    disapprovals: int = 0
    total: float = 0.0

    @property
    def approval(self) -> float | None:
        judged = self.approvals + self.disapprovals
        return self.approvals / judged if judged else None

    @property
    def stars(self) -> float:
        return 1 + 4 * self.total / self.count if self.count else 0.0


@dataclass
class Learned:
    rated: int = 0
    approvals: int = 0
    disapprovals: int = 0
    total: float = 0.0
    buckets: list[Bucket] = field(default_factory=list)
    best_range: tuple[float, float] | None = None
    suggested_weight: float | None = None
    partners: list[Partner] = field(default_factory=list)

    @property
    def approval(self) -> float | None:
        judged = self.approvals + self.disapprovals
        return self.approvals / judged if judged else None

    @property
    def approval_percent(self) -> int | None:
        return None if self.approval is None else round(self.approval * 100)

    @property
    def stars(self) -> float:
        return 1 + 4 * self.total / self.rated if self.rated else 0.0


def verdict(thumb: int | None, stars: int | None) -> tuple[float, int]:
    """(score 0..1, +1 approves / -1 disapproves / 0 neither) of one rating."""
    score = (stars - 1) / 4 if stars else (1.0 if thumb == 1 else 0.0)
    if thumb is not None:
        return score, thumb
    return score, 1 if stars and stars >= 4 else -1 if stars and stars <= 2 else 0


def _uses(adapter_ids: Iterable[int]):
    return (
        RatedLora.objects.filter(adapter_id__in=list(adapter_ids))
        .exclude(applied=False)
        .values_list("adapter_id", "rating_id", "weight", "rating__thumb", "rating__stars")
    )


def learn(adapter: Adapter) -> Learned:
    """Everything the adapter page shows about what ratings taught (a few queries, bounded by ratings)."""
    learned = Learned()
    buckets: dict[float, Bucket] = {}
    rating_ids: set[int] = set()
    scores: dict[int, tuple[float, int]] = {}
    for _, rating_id, weight, thumb, stars in _uses([adapter.pk]):
        if rating_id in rating_ids:  # the same LoRA twice in one job counts once
            continue
        rating_ids.add(rating_id)
        score, vote = verdict(thumb, stars)
        scores[rating_id] = (score, vote)
        learned.rated += 1
        learned.total += score
        learned.approvals += vote == 1
        learned.disapprovals += vote == -1
        bucket = buckets.setdefault(round(weight, 2), Bucket(round(weight, 2)))
        bucket.count += 1
        bucket.total += score
        bucket.approvals += vote == 1
        bucket.disapprovals += vote == -1
    learned.buckets = sorted(buckets.values(), key=lambda b: b.weight)
    learned.best_range, learned.suggested_weight = best_range(learned.buckets)
    learned.partners = _partners(adapter.pk, scores)
    return learned


def best_range(buckets: list[Bucket]) -> tuple[tuple[float, float] | None, float | None]:
    """The weights that rate best: the best bucket (smoothed mean, so one lucky rating does not win; then
    more ratings) widened over neighbours that rate almost as well; the suggestion is the best bucket's
    weight, if it was approved."""
    if not buckets:
        return None, None
    best = max(range(len(buckets)), key=lambda i: (buckets[i].smoothed, buckets[i].count, -abs(buckets[i].weight - 1)))
    floor = max(GOOD, buckets[best].mean - RANGE_SLACK)

    def good(bucket: Bucket) -> bool:
        return bucket.mean >= floor and bucket.approvals > bucket.disapprovals

    low = high = best
    while low > 0 and good(buckets[low - 1]):
        low -= 1
    while high < len(buckets) - 1 and good(buckets[high + 1]):
        high += 1
    top = buckets[best]
    if top.approvals == 0 or top.mean < 0.5:
        return None, None  # nothing rated well yet: no range to recommend
    return (buckets[low].weight, buckets[high].weight), top.weight


def _partners(adapter_id: int, scores: dict[int, tuple[float, int]]) -> list[Partner]:
    partners: dict[tuple[int | None, str], Partner] = {}
    seen: set[tuple[int, int | None, str]] = set()
    others = (
        RatedLora.objects.filter(rating_id__in=list(scores))
        .exclude(adapter_id=adapter_id)
        .values_list("rating_id", "adapter_id", "name", "adapter__name")
    )
    for rating_id, other_id, name, adapter_name in others:
        key = (other_id, name if other_id is None else "")
        if (rating_id, *key) in seen:
            continue
        seen.add((rating_id, *key))
        partner = partners.setdefault(key, Partner(other_id, adapter_name or name))
        score, vote = scores[rating_id]
        partner.count += 1
        partner.total += score
        partner.approvals += vote == 1
        partner.disapprovals += vote == -1
    return sorted(partners.values(), key=lambda p: (-p.count, -p.total, p.name))[:MAX_PARTNERS]


def refresh(adapter_ids: Iterable[int]) -> None:
    """Write the rating (1-5), the approval counts and, unless set by hand and when within the adapter's
    range, the preferred weight. Called whenever ratings of these adapters' results change."""
    for adapter in Adapter.objects.filter(pk__in=set(adapter_ids)):
        learned = learn(adapter)
        fields = {
            "rating": round(learned.stars) if learned.rated else 0,
            "results_approved": learned.approvals,
            "results_disapproved": learned.disapprovals,
        }
        weight = learned.suggested_weight
        if weight is not None and not adapter.is_user_edited("preferred_weight") and within_range(adapter, weight):
            fields["preferred_weight"] = weight
            fields["sources"] = {**adapter.sources, "preferred_weight": RATINGS_SOURCE}
        Adapter.objects.filter(pk=adapter.pk).update(**fields)


def within_range(adapter: Adapter, weight: float) -> bool:
    return (adapter.weight_min is None or weight >= adapter.weight_min) and (
        adapter.weight_max is None or weight <= adapter.weight_max
    )


def best_rated(limit: int = 10) -> list[tuple[Adapter, int, float, int | None]]:
    """(adapter, rated results, mean stars 1-5, approval %) of the adapters whose results rate best.

    One aggregate query, ordered by the mean score pulled toward neutral by one imaginary rating
    (``PRIOR``, as for weights), then by how many results were rated. (A LoRA used twice in one job
    counts that job's score twice here.)"""
    score = Case(
        When(rating__stars__isnull=False, then=(F("rating__stars") - 1.0) / 4.0),
        When(rating__thumb=1, then=Value(1.0)),
        default=Value(0.0),
        output_field=FloatField(),
    )
    approves = Q(rating__thumb=1) | Q(rating__thumb__isnull=True, rating__stars__gte=4)
    disapproves = Q(rating__thumb=-1) | Q(rating__thumb__isnull=True, rating__stars__lte=2)
    rows = (
        RatedLora.objects.filter(adapter__isnull=False)
        .exclude(applied=False)
        .values("adapter_id")
        .annotate(
            rated=Count("rating", distinct=True),
            total=Sum(score),
            up=Count("rating", filter=approves, distinct=True),
            down=Count("rating", filter=disapproves, distinct=True),
        )
        .annotate(smoothed=ExpressionWrapper((F("total") + PRIOR) / (F("rated") + 1.0), output_field=FloatField()))
        .order_by("-smoothed", "-rated", "adapter_id")[:limit]
    )
    rows = list(rows)
    adapters = Adapter.objects.in_bulk([row["adapter_id"] for row in rows])
    best = []
    for row in rows:
        if row["adapter_id"] in adapters:
            judged = row["up"] + row["down"]
            mean = row["total"] / row["rated"] if row["rated"] else 0.0
            approval = round(100 * row["up"] / judged) if judged else None
            best.append((adapters[row["adapter_id"]], row["rated"], round(1 + 4 * mean, 1), approval))
    return best
