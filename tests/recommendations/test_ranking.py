"""Ranking with the real model: compatible first, filters, reasons, and the documented feedback and co-usage terms."""

from __future__ import annotations

import math

import pytest

from adapters.models import Adapter
from recommendations import co_usage, feedback, ranking, sync
from recommendations.models import Feedback
from tests.conftest import make_user
from tests.recommendations.conftest import make_adapter, training

pytestmark = pytest.mark.django_db

PROMPT = "retro 16-bit pixel art sprite of a knight"


@pytest.fixture
def library(st_model):
    pixel = [
        make_adapter(
            "pixelArtXL", tags=["pixel art", "retro"], trigger_words=["pixel art"], training_tags=training("sprite")
        ),
        make_adapter("snes_sprites", tags=["pixel art", "sprites"], trigger_words=["16bitsprite"]),
        make_adapter("gameboy_palette", tags=["pixel art", "retro"], base_model="Unknown"),
        make_adapter("nes_8bit_sd15", tags=["pixel art", "8-bit"], base_model="SD1"),
        make_adapter("pixel_icons_inactive", tags=["pixel art", "icons"], active=False),
    ]
    others = [
        make_adapter("watercolorWash", tags=["watercolor", "painting"]),
        make_adapter("neonCyberCity", tags=["cyberpunk", "neon"], base_model="SD1"),
        make_adapter("gothicCathedral", tags=["architecture", "gothic"]),
        make_adapter("ramenBowls", tags=["food", "photography"]),
    ]
    sync.sync_library()
    return {a.name: a for a in pixel + others}


def names(results):
    return [s.name for s in results.suggestions]


def test_similar_lists_compatible_base_models_first_and_never_inactive_or_itself(library):
    source = library["pixelArtXL"]
    results = ranking.similar(source, k=10)
    listed = names(results)
    assert "pixelArtXL" not in listed and "pixel_icons_inactive" not in listed
    assert len(listed) == 7  # every other active adapter
    compatible = [s.compatible for s in results.suggestions]
    assert compatible == sorted(compatible, reverse=True)  # all compatible ones, then the rest
    assert {s.base_model for s in results.suggestions if s.compatible} <= {"SDXL", "Unknown"}
    assert listed[:2] == ["snes_sprites", "gameboy_palette"] or listed[:2] == ["gameboy_palette", "snes_sprites"]
    assert listed.index("nes_8bit_sd15") > listed.index("ramenBowls")  # SD1: after every compatible one


def test_similar_gives_short_reasons(library):
    results = ranking.similar(library["pixelArtXL"], k=3)
    snes = next(s for s in results.suggestions if s.name == "snes_sprites")
    assert "shared tags: pixel art" in snes.reasons and "same base model (SDXL)" in snes.reasons
    gameboy = next(s for s in results.suggestions if s.name == "gameboy_palette")
    assert "shared tags: pixel art, retro" in gameboy.reasons
    assert "base model unknown: may work with SDXL" in gameboy.reasons
    assert snes.lora_token == "<lora:snes_sprites:1>"


def test_catalog_changes_not_yet_indexed_are_still_filtered(library):
    """Deactivated a moment ago (no embedding run since): gone from results, which still fill up."""
    Adapter.objects.filter(pk=library["snes_sprites"].pk).update(active=False)
    results = ranking.similar(library["pixelArtXL"], k=2)
    assert "snes_sprites" not in names(results) and len(results.suggestions) == 2


def test_prompt_suggestions_follow_the_checkpoint_base_model(library):
    results = ranking.for_prompt(PROMPT, k=4, base_model="SDXL")
    assert names(results)[0] in ("pixelArtXL", "snes_sprites", "gameboy_palette")
    assert {s.base_model for s in results.suggestions} <= {"SDXL", "Unknown"}
    sd1 = ranking.for_prompt(PROMPT, k=3, base_model="SD1")
    assert names(sd1)[0] in ("nes_8bit_sd15", "gameboy_palette")
    assert {s.base_model for s in sd1.suggestions} <= {"SD1", "Unknown"}
    assert (
        "matches your prompt: pixel art, retro, sprite"
        in next(s for s in results.suggestions if s.name == "pixelArtXL").reasons
    )
    with pytest.raises(ValueError, match="unknown base model"):
        ranking.for_prompt(PROMPT, base_model="SD9")


def test_composition_members_are_left_out(library):
    first = ranking.for_prompt(PROMPT, k=3).suggestions[0]
    assert first.id not in [s.id for s in ranking.for_prompt(PROMPT, k=3, with_ids=[first.id]).suggestions]


def test_feedback_changes_the_ranking_as_documented(library):
    """score = cosine + ALPHA * (own vote + W_USER * tanh(taste / 2) + W_CROWD * tanh(crowd / 3))."""
    vera, otto = make_user("vera", "viewer"), make_user("otto", "viewer")
    before = ranking.for_prompt(PROMPT, user=vera, k=5)
    top, second = before.suggestions[0], before.suggestions[1]
    assert top.score == pytest.approx(top.cosine)  # no feedback yet: the score is the cosine
    feedback.record(vera, second.id, Feedback.Kind.PROMPT, PROMPT, 1)
    feedback.record(vera, top.id, Feedback.Kind.PROMPT, PROMPT, -1)
    after = ranking.for_prompt(PROMPT, user=vera, k=5)
    by_id = {s.id: s for s in after.suggestions}
    assert by_id[second.id].score == pytest.approx(second.cosine + feedback.ALPHA)
    assert by_id[second.id].feedback == 1 and by_id[top.id].feedback == -1
    assert after.suggestions[0].id == second.id
    if top.id in by_id:
        assert by_id[top.id].score == pytest.approx(top.cosine - feedback.ALPHA)
    # Another user: Vera's votes count only as the crowd's, damped.
    crowd = {s.id: s for s in ranking.for_prompt(PROMPT, user=otto, k=5).suggestions}
    assert crowd[second.id].score == pytest.approx(second.cosine + feedback.ALPHA * feedback.W_CROWD * math.tanh(1 / 3))
    # The same user in another context: her taste, damped.
    elsewhere = {s.id: s for s in ranking.for_prompt(PROMPT + " in a castle", user=vera, k=9).suggestions}
    assert elsewhere[second.id].score - elsewhere[second.id].cosine == pytest.approx(
        feedback.ALPHA * feedback.W_USER * math.tanh(1 / 2)
    )
    # Clearing the vote restores the plain ranking.
    feedback.record(vera, second.id, Feedback.Kind.PROMPT, PROMPT, 0)
    feedback.record(vera, top.id, Feedback.Kind.PROMPT, PROMPT, 0)
    assert names(ranking.for_prompt(PROMPT, user=vera, k=5)) == names(before)


def test_feedback_on_similar_is_per_source_adapter(library):
    vera = make_user("vera", "viewer")
    source = library["pixelArtXL"]
    second = ranking.similar(source, user=vera, k=3).suggestions[1]
    feedback.record(vera, second.id, Feedback.Kind.ADAPTER, str(source.pk), 1)
    now = ranking.similar(source, user=vera, k=3).suggestions[0]
    assert now.id == second.id and now.score == pytest.approx(second.cosine + feedback.ALPHA)
    other = library["snes_sprites"]
    assert all(s.feedback == 0 for s in ranking.similar(other, user=vera, k=5).suggestions)


def test_co_usage_is_a_no_op_without_generation_history(library, monkeypatch):
    monkeypatch.setattr(co_usage, "relation", lambda: None)
    assert co_usage.counts([1], [2, 3]) == {}
    assert co_usage.term(0) == 0 and co_usage.term(2) == pytest.approx(0.5)


def test_co_usage_from_generation_history_raises_pairs_used_together(library):
    link = co_usage.relation()
    assert link is not None, "generation.models has a job -> adapter link (JobLora); co-usage reads it"
    model, job_field, adapter_field = link
    job_model = model._meta.get_field(job_field).related_model
    source, partner = library["pixelArtXL"], library["ramenBowls"]
    before = {s.id: s for s in ranking.similar(source, k=10).suggestions}[partner.pk]
    for _ in range(2):
        job = job_model.objects.create()
        for adapter in (source, partner):
            model.objects.create(**{job_field: job, adapter_field: adapter, "name": adapter.name, "weight": 1.0})
    after = {s.id: s for s in ranking.similar(source, k=10).suggestions}[partner.pk]
    assert after.score == pytest.approx(before.cosine + co_usage.BETA * co_usage.term(2))
    assert "used together in 2 generations" in after.reasons


def test_not_embedded_yet_says_so_and_asks_for_a_run(st_model):
    from recommendations.models import EmbeddingRun

    adapter = make_adapter("fresh")
    results = ranking.similar(adapter)
    assert results.unavailable is None and "not been embedded" in results.note
    assert EmbeddingRun.objects.filter(status=EmbeddingRun.Status.QUEUED).count() == 1
