"""Civitai lookups stored in the catalog: values and their sources, user edits kept, 404 memory, previews."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from adapters import civitai_lookup, thumbnails
from adapters.models import Adapter, CivitaiImage, CivitaiRecord, CivitaiRun
from tests.adapters.catalog_factory import make_adapter
from tests.adapters.civitai_fixtures import fast_client, published
from tests.standins.civitai import png_bytes

pytestmark = pytest.mark.django_db


def test_found_values_are_stored_with_their_source(civitai):
    adapter, lora = published(civitai, "ink", trained_words=["ink style", "sketch"], base_model="Pony")
    outcome = civitai_lookup.lookup(adapter, fast_client(civitai))
    assert outcome.status == "found" and not outcome.update
    adapter.refresh_from_db()
    assert adapter.base_model == "SDXL" and adapter.base_model_detail == "Pony"
    assert adapter.trigger_words == ["ink style", "sketch"]
    assert adapter.civitai_model_id == lora.model_id and adapter.civitai_version_id == lora.version_id
    assert adapter.source_url == f"https://civitai.com/models/{lora.model_id}?modelVersionId={lora.version_id}"
    for field in ("base_model", "trigger_words", "civitai_version_id", "description", "preview"):
        assert adapter.sources[field] == "civitai", field
    assert "<b>Civitai stand-in</b>" in adapter.description
    assert {"style", "stand-in"} <= {t.name for t in adapter.tags.all()}
    record = CivitaiRecord.objects.get(adapter=adapter)
    assert record.found and record.matched_by == "sha256" and record.model_name == "Ink"
    assert record.version_name == "v1.0" and record.nsfw_level == 5 and record.update_version_id is None
    assert record.nsfw_labels == "PG, R"
    # the preview: downloaded, thumbnailed locally
    assert adapter.preview_source == "civitai" and thumbnails.thumbnail_path(adapter.preview_key, "card").is_file()
    # the example images' generation parameters, raw, for recipes
    images = civitai_lookup.example_images(adapter.pk)
    assert [i["nsfw_level"] for i in images] == [1, 4]
    assert images[0]["meta"]["prompt"].startswith("ink style") and images[1]["meta"] is None


def test_description_is_sanitised(civitai):
    adapter, _ = published(civitai, "evil", description='<p onclick="x()">hi<script>alert(1)</script></p>')
    civitai_lookup.lookup(adapter, fast_client(civitai))
    adapter.refresh_from_db()
    assert adapter.description == "<p>hi</p>"


def test_a_persons_edits_are_never_overwritten_and_words_merge(civitai):
    adapter, _ = published(civitai, "mine", trained_words=["theirs", "shared"], base_model="SD 1.5")
    adapter.trigger_words, adapter.base_model = ["my word"], "Flux"
    adapter.sources = {"trigger_words": "user", "base_model": "user"}
    adapter.save()
    civitai_lookup.lookup(adapter, fast_client(civitai))
    adapter.refresh_from_db()
    assert adapter.trigger_words == ["my word"] and adapter.base_model == "Flux"
    assert adapter.sources["trigger_words"] == "user" and adapter.base_model_detail == "SD 1.5"
    other, _ = published(civitai, "scanned", trained_words=["Shared", "new one"])
    other.trigger_words, other.sources = ["shared", "from header"], {"trigger_words": "header"}
    other.save()
    civitai_lookup.lookup(other, fast_client(civitai))
    other.refresh_from_db()
    assert other.trigger_words == ["shared", "from header", "new one"]  # merged, case-insensitively, none lost


def test_newer_version_means_update_available(civitai):
    adapter, lora = published(civitai, "old", newer_version=True)
    assert civitai_lookup.lookup(adapter, fast_client(civitai)).update
    info = civitai_lookup.record_info(adapter.pk)
    assert info["civitai_update"] == {"version_id": lora.newer_version_id, "name": "v2.0"}


def test_autov3_is_tried_when_the_full_hash_is_unknown(civitai):
    adapter, lora = published(civitai, "edited")
    civitai.hashes.pop(lora.sha256.lower())
    civitai.hashes.pop(lora.sha256[:10].lower())
    outcome = civitai_lookup.lookup(adapter, fast_client(civitai))
    assert outcome.status == "found"
    assert CivitaiRecord.objects.get(adapter=adapter).matched_by == "autov3"
    paths = [r["path"].rsplit("/", 1)[-1] for r in civitai.requests if "by-hash" in r["path"]]
    assert paths == [lora.sha256, lora.sha256[:10], lora.tensor_sha256[:12]]


def test_hashes_are_normalised():
    assert civitai_lookup.normalize_hash(" 0xABCDEF0123 ") == "abcdef0123"
    for bad in ("xyz", "abc", "a" * 65, ""):
        with pytest.raises(ValueError):
            civitai_lookup.normalize_hash(bad)


def test_not_on_civitai_is_remembered_for_30_days(civitai, settings):
    unknown = make_adapter("unknown")
    assert civitai_lookup.lookup(unknown, fast_client(civitai)).status == "not_found"
    unknown.refresh_from_db()
    assert unknown.not_on_civitai and unknown.sources["not_on_civitai"] == "civitai"
    never = make_adapter("never checked")
    found, _ = published(civitai, "found")
    civitai_lookup.lookup(found, fast_client(civitai))
    assert civitai_lookup.ids_for("due") == [found.pk, never.pk] or set(civitai_lookup.ids_for("due")) == {
        found.pk,
        never.pk,
    }
    assert civitai_lookup.ids_for("missing") == [never.pk]
    assert set(civitai_lookup.ids_for("all")) == {unknown.pk, never.pk, found.pk}
    CivitaiRecord.objects.filter(adapter=unknown).update(checked_at=timezone.now() - timedelta(days=31))
    assert unknown.pk in civitai_lookup.ids_for("due")


def test_unhashed_adapters_are_skipped(civitai):
    adapter = make_adapter("fresh", sha256=None)
    assert civitai_lookup.lookup(adapter, fast_client(civitai)).status == "skipped"
    assert civitai.requests == []


@pytest.mark.parametrize("fault", ["not_image", "bomb"])
def test_a_bad_preview_is_an_issue_of_that_adapter_only(civitai, fault):
    adapter, _ = published(civitai, f"bad {fault}")
    civitai.set_fault(fault)
    outcome = civitai_lookup.lookup(adapter, fast_client(civitai))
    assert outcome.status == "found"
    adapter.refresh_from_db()
    assert adapter.preview_key == "" and adapter.trigger_words  # the rest is stored
    assert any(i.startswith("civitai: preview") for i in adapter.issues), adapter.issues
    expected = "not an image" if fault == "not_image" else "image too large"
    assert expected in outcome.message


def test_a_failed_lookup_becomes_an_issue_and_a_later_success_clears_it(civitai):
    adapter, _ = published(civitai, "flaky")
    civitai.set_fault("html")
    outcome = civitai_lookup.lookup(adapter, fast_client(civitai))
    assert outcome.status == "failed" and "HTML" in outcome.message
    adapter.refresh_from_db()
    assert adapter.has_issues and not CivitaiRecord.objects.filter(adapter=adapter).exists()
    civitai.set_fault(None)
    assert civitai_lookup.lookup(adapter, fast_client(civitai)).status == "found"
    adapter.refresh_from_db()
    assert not adapter.issues


def test_a_local_preview_is_kept(civitai, tmp_path):
    adapter, _ = published(civitai, "has preview")
    Adapter.objects.filter(pk=adapter.pk).update(preview_source=str(tmp_path / "x.png"))
    adapter.refresh_from_db()
    civitai_lookup.lookup(adapter, fast_client(civitai))
    adapter.refresh_from_db()
    assert adapter.preview_source == str(tmp_path / "x.png")
    assert len([r for r in civitai.requests if r["path"].startswith("/images/")]) == 0


def test_a_refresh_downloads_the_preview_only_when_civitai_shows_another(civitai):
    """Refreshing "update available" asks for the version and the model, not the same picture again; a new
    first picture, or one whose download failed last time, is fetched."""
    adapter, lora = published(civitai, "refresh")
    client = fast_client(civitai)
    civitai_lookup.lookup(adapter, client)
    adapter.refresh_from_db()
    first_key = adapter.preview_key

    def images_asked() -> list[str]:
        paths = [r["path"] for r in civitai.requests if r["path"].startswith("/images/")]
        civitai.requests.clear()
        return paths

    assert images_asked() == [f"/images/{lora.version_id}-0.png"]
    assert civitai_lookup.lookup(Adapter.objects.get(pk=adapter.pk), client).status == "found"
    assert images_asked() == [] and Adapter.objects.get(pk=adapter.pk).preview_key == first_key

    civitai.images["/images/new.png"] = png_bytes("a new first picture", color=(10, 120, 40))
    civitai.versions[lora.version_id]["images"][0]["url"] = civitai.url + "/images/new.png"
    civitai.set_fault("not_image", times=1)
    outcome = civitai_lookup.lookup(Adapter.objects.get(pk=adapter.pk), client)
    assert outcome.status == "found" and "not an image" in outcome.message
    assert images_asked() == ["/images/new.png"] and Adapter.objects.get(pk=adapter.pk).preview_key == first_key
    civitai_lookup.lookup(Adapter.objects.get(pk=adapter.pk), client)  # the failed one is tried again
    assert images_asked() == ["/images/new.png"]
    adapter.refresh_from_db()
    assert adapter.preview_key != first_key and not adapter.issues
    assert CivitaiRecord.objects.get(adapter=adapter).preview_url == civitai.url + "/images/new.png"


def test_command_missing_then_all_with_json(civitai, capsys):
    found, _ = published(civitai, "cmd found", newer_version=True)
    unknown = make_adapter("cmd unknown")
    make_adapter("cmd unhashed", sha256=None)
    call_command("fetch_civitai", "--json")
    printed = capsys.readouterr()
    summary = json.loads(printed.out)
    assert "looking up: 2/2" in printed.err  # progress counts on stderr
    assert summary["status"] == "succeeded"
    assert (summary["total"], summary["found"], summary["not_found"], summary["updates"]) == (2, 1, 1, 1)
    call_command("fetch_civitai", "--missing", "--json")
    assert json.loads(capsys.readouterr().out)["total"] == 0  # both checked already
    call_command("fetch_civitai", "--json")  # the 404 is remembered: only the found one is asked again
    assert json.loads(capsys.readouterr().out)["total"] == 1
    call_command("fetch_civitai", "--all")
    out = capsys.readouterr().out
    assert "2 checked: 1 found (1 with a newer version), 1 not on Civitai" in out
    assert CivitaiRun.objects.filter(status="succeeded").count() == 4
    assert unknown.pk and found.pk


def test_command_refuses_when_switched_off(settings):
    settings.CIVITAI_URL = ""
    with pytest.raises(CommandError, match="switched off"):
        call_command("fetch_civitai")


def test_command_says_when_civitai_cannot_be_reached(civitai, capsys):
    published(civitai, "lonely")
    url = civitai.url
    civitai.stop()
    assert url
    with pytest.raises(CommandError, match="cannot be reached"):
        call_command("fetch_civitai", "--all")


def test_lora_info_json_has_update_and_checked_at(civitai, capsys):
    adapter, lora = published(civitai, "info", newer_version=True)
    call_command("lora_info", adapter.sha256, "--json")
    before = json.loads(capsys.readouterr().out)
    assert before["civitai_update"] is None and before["civitai_checked_at"] is None
    civitai_lookup.lookup(adapter, fast_client(civitai))
    call_command("lora_info", adapter.sha256, "--json")
    after = json.loads(capsys.readouterr().out)
    assert after["civitai_update"] == {"version_id": lora.newer_version_id, "name": "v2.0"}
    assert after["civitai_checked_at"].startswith(str(timezone.now().year))
    assert CivitaiImage.objects.filter(adapter=adapter).count() == 2
