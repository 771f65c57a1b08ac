"""Ratings: attribution to the job's LoRAs and weights, what the adapter page learns, privacy, bad input,
"Set as preview", and the rated-results term in recommendation ranking."""

from __future__ import annotations

import pytest
from django.test import Client

from adapters.models import Adapter
from generation import learning, ratings
from generation.models import RatedLora, ResultRating
from recommendations import co_usage
from tests.conftest import make_user
from tests.generation.results_factory import finished_job, image_of

pytestmark = pytest.mark.django_db


def rate(client, image, **data):
    return client.post(f"/generate/images/{image.pk}/rate/", data, HTTP_HX_REQUEST="true")


def test_a_rating_is_attributed_to_the_jobs_loras_and_weights(catalog, editor_client, editor):
    pixel, blur = catalog["pixel_xl"], catalog["blur_xl"]
    job = finished_job([(pixel, 0.6), (blur, 0.3)], user=editor)
    response = rate(editor_client, image_of(job), thumb="up", stars="4")
    assert response.status_code == 200
    assert 'id="image-' in response.content.decode() and "<html" not in response.content.decode()
    rating = ResultRating.objects.get()
    assert (rating.thumb, rating.stars, rating.user, rating.job) == (1, 4, editor, job)
    assert sorted(RatedLora.objects.values_list("adapter__name", "weight")) == [("blur_xl", 0.3), ("pixel_xl", 0.6)]
    # Changing the rating replaces it (one per user and image); clearing removes it.
    rate(editor_client, image_of(job), thumb="down", stars="")
    assert ResultRating.objects.get().thumb == -1 and ResultRating.objects.get().stars is None
    assert RatedLora.objects.count() == 2
    rate(editor_client, image_of(job), clear="1")
    assert not ResultRating.objects.exists()


def test_learned_weight_range_approval_and_partners_on_a_seeded_history(catalog, editor, viewer):
    pixel, blur, ink = catalog["pixel_xl"], catalog["blur_xl"], catalog["ink_sd15"]
    Adapter.objects.filter(pk=pixel.pk).update(weight_min=None, weight_max=None, preferred_weight=None, sources={})
    seeded = [  # (weight, thumb, stars, partner)
        (0.25, -1, 1, None),
        (0.25, -1, None, None),
        (0.5, 1, 4, blur),
        (0.75, 1, 5, blur),
        (0.75, 1, 5, None),
        (0.75, 1, 4, ink),
        (1.0, 1, 3, None),
        (1.0, -1, 2, blur),
    ]
    for weight, thumb, stars, partner in seeded:
        loras = [(pixel, weight)] + ([(partner, 0.5)] if partner else [])
        job = finished_job(loras, user=editor)
        ratings.rate(viewer, image_of(job), ratings.Verdict(thumb, stars))
    pixel.refresh_from_db()
    learned = learning.learn(pixel)
    assert learned.rated == 8 and (learned.approvals, learned.disapprovals) == (5, 3)
    assert learned.approval_percent == 62
    by_weight = {b.weight: (b.count, round(b.stars, 2)) for b in learned.buckets}
    assert by_weight == {0.25: (2, 1.0), 0.5: (1, 4.0), 0.75: (3, 4.67), 1.0: (2, 2.5)}
    assert learned.suggested_weight == 0.75
    assert learned.best_range == (0.5, 0.75)  # 0.5 rates almost as well; 1.0 and 0.25 do not
    assert [(p.name, p.count, p.approvals) for p in learned.partners] == [("blur_xl", 3, 2), ("ink_sd15", 1, 1)]
    # Written back to the catalog: the suggested weight (nobody set one by hand) and a 1-5 rating.
    assert pixel.preferred_weight == 0.75 and pixel.sources["preferred_weight"] == "ratings"
    assert pixel.rating == round(learned.stars) == 3  # mean 3.1 stars


def test_a_weight_set_by_hand_is_kept_and_the_page_says_so(catalog, editor, editor_client):
    pixel = catalog["pixel_xl"]
    Adapter.objects.filter(pk=pixel.pk).update(preferred_weight=0.8, sources={"preferred_weight": "user"})
    ratings.rate(editor, image_of(finished_job([(pixel, 0.6)], user=editor)), ratings.Verdict(1, 5))
    pixel.refresh_from_db()
    assert pixel.preferred_weight == 0.8
    page = editor_client.get(f"/generate/adapters/{pixel.pk}/results/", HTTP_HX_REQUEST="true").content.decode()
    assert f'id="adapter-{pixel.pk}-results"' in page and "<html" not in page
    assert "was set by hand and is kept" in page and "100% (1 up, 0 down)" in page
    assert f'id="adapter-{pixel.pk}-best-range">0.6<' in page
    full = editor_client.get(f"/generate/adapters/{pixel.pk}/results/").content.decode()
    assert "<html" in full and "Run a weight sweep" in full


def test_rating_someone_elses_private_result_is_refused(catalog, editor, client):
    owner = make_user("olive", "editor")
    job = finished_job([(catalog["pixel_xl"], 0.7)], user=owner, private=True)
    client.force_login(editor)
    response = rate(client, image_of(job), thumb="up")
    assert response.status_code == 403
    assert "private to the user who generated it" in response.content.decode()
    assert not ResultRating.objects.exists()
    assert client.get(f"/generate/jobs/{job.pk}/").status_code == 404
    assert client.get(f"/generate/jobs/{job.pk}/images/0/thumb").status_code == 404
    assert f"history-job-{job.pk}" not in client.get("/generate/history/").content.decode()
    client.force_login(owner)
    assert rate(client, image_of(job), thumb="up").status_code == 200
    assert f"history-job-{job.pk}" in client.get("/generate/history/").content.decode()


@pytest.mark.parametrize(
    ("data", "message"),
    [({"thumb": "sideways"}, "is not a thumb"), ({"stars": "7"}, "is not a star rating"), ({"stars": "x"}, "1 to 5")],
)
def test_bad_ratings_are_clear_errors(catalog, editor_client, editor, data, message):
    job = finished_job([(catalog["pixel_xl"], 0.7)], user=editor)
    response = rate(editor_client, image_of(job), **data)
    assert response.status_code == 422 and message in response.content.decode()
    assert not ResultRating.objects.exists()


def test_viewers_may_rate_with_csrf_and_without_htmx(catalog, viewer, editor):
    job = finished_job([(catalog["pixel_xl"], 0.7)], user=editor)
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    page = client.get(f"/generate/jobs/{job.pk}/results/")
    token = page.cookies["csrftoken"].value
    response = client.post(f"/generate/images/{image_of(job).pk}/rate/", {"thumb": "up", "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == f"/generate/jobs/{job.pk}/"
    assert ResultRating.objects.get().user == viewer


def test_set_as_preview_from_a_result_image(catalog, editor_client, editor, viewer):
    pixel = catalog["pixel_xl"]
    viewer_client = Client()
    viewer_client.force_login(viewer)
    job = finished_job([(pixel, 0.7)], user=editor)
    results = editor_client.get(f"/generate/jobs/{job.pk}/results/").content.decode()
    assert "Set as preview" in results
    assert (
        viewer_client.post(f"/generate/images/{image_of(job).pk}/set-preview/", {"adapter": pixel.pk}).status_code
        == 403
    )
    response = editor_client.post(
        f"/generate/images/{image_of(job).pk}/set-preview/", {"adapter": pixel.pk}, HTTP_HX_REQUEST="true"
    )
    assert "is now the preview of pixel_xl" in response.content.decode()
    pixel.refresh_from_db()
    assert pixel.preview_key and pixel.preview_source == "upload" and pixel.sources["preview"] == "user"
    assert editor_client.get(f"/library/{pixel.pk}/preview/card").status_code == 200


def test_results_rated_well_rank_higher_in_recommendations(catalog, editor):
    from recommendations import ranking

    pixel, blur = catalog["pixel_xl"], catalog["blur_xl"]
    for _ in range(3):
        ratings.rate(editor, image_of(finished_job([(pixel, 0.8)], user=editor)), ratings.Verdict(1, None))
    ratings.rate(editor, image_of(finished_job([(blur, 0.8)], user=editor)), ratings.Verdict(-1, None))
    for adapter in (pixel, blur, catalog["ink_sd15"]):
        adapter.refresh_from_db()
    assert (pixel.results_approved, pixel.results_disapproved) == (3, 0)
    assert (blur.results_approved, blur.results_disapproved) == (0, 1)
    assert (catalog["ink_sd15"].results_approved, catalog["ink_sd15"].results_disapproved) == (0, 0)
    assert ranking.results_term(3, 0) == pytest.approx(3 / 5) and ranking.results_term(0, 1) == pytest.approx(-1 / 3)
    ranked = ranking._rank(
        [(pixel, 0.5), (blur, 0.5)], {}, editor, "prompt", "x", [], lambda a: [], None
    )  # equal cosines: the rated-results term decides
    assert [s.name for s in ranked] == ["pixel_xl", "blur_xl"]
    assert ranked[0].score == pytest.approx(0.5 + ranking.GAMMA * 3 / 5)
    assert "results rated: 3 of 3 approved" in ranked[0].reasons


def test_co_usage_still_reads_job_loras():
    from generation.models import JobLora

    assert co_usage.relation()[0] is JobLora
