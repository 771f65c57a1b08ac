"""Importing into a library that overlaps the archive: the documented merge for each --on-conflict."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters import bulk_edit
from adapters.models import Adapter, AdapterFile
from archive import exporting, importing
from generation.models import Preset
from tests.archive.conftest import build_library, file_hashes


def _diverge(lib: dict[str, Adapter]) -> dict:
    """After the export: a local user edit (conflict), a scanner-side change (update), a removal (new)."""
    zelda = Adapter.objects.get(pk=lib["zelda"].pk)
    archived_notes = zelda.notes
    zelda.notes = "My own notes, written after the export."
    zelda.save()
    bulk_edit.add_tags([zelda.pk], ["local-only"])
    pixel = Adapter.objects.get(pk=lib["pixel"].pk)
    archived_description = pixel.description
    pixel.description = "an older description from a sidecar"
    pixel.save()
    bulk_edit.remove_from_catalog([lib["ink"].pk])
    Preset.objects.filter(name="portrait").update(data={"prompt": "edited here"})
    return {"notes": archived_notes, "description": archived_description}


def _plan_rows(result) -> dict[str, str]:
    return {row.name: row.outcome for row in result.plan.adapters}


@pytest.mark.django_db
@pytest.mark.parametrize("option", ["skip", "update", "keep-both"])
def test_overlapping_import_follows_the_documented_merge(places, settings, tmp_path, option):
    lib = build_library(places)
    archive = exporting.export_library(tmp_path / "a.zip").path
    archived = _diverge(lib)
    files_before = file_hashes(places)
    dry = importing.import_archive(archive, on_conflict=option, dry_run=True)
    rows = _plan_rows(dry)
    assert rows["Zelda (Breath of the Wild)"] == "conflicting"
    assert rows["pixel_xl"] == "updated" and rows["ink"] == "new" and rows["old_flux"] == "identical"
    zelda_plan = next(r for r in dry.plan.adapters if r.outcome == "conflicting")
    assert zelda_plan.matched_by == "tensor hash" and set(zelda_plan.conflicts) == {"notes", "tags"}
    assert Adapter.objects.filter(name="ink").count() == 0  # the dry run changed nothing

    result = importing.import_archive(archive, on_conflict=option)
    zelda = Adapter.objects.get(pk=lib["zelda"].pk)
    pixel = Adapter.objects.get(pk=lib["pixel"].pk)
    tags = set(zelda.tags.values_list("name", flat=True))
    ink = Adapter.objects.get(name="ink")  # new again, pointing at its unchanged file
    assert AdapterFile.objects.get(adapter=ink).path == str(places / "styles" / "ink.safetensors")
    assert ink.alias == "ink wash" and ink.sources["preview"] == "user" and ink.preview_source == "upload"
    assert file_hashes(places) == files_before  # identical files are reused, nothing overwritten
    presets = dict(Preset.objects.values_list("name", "data"))
    if option == "skip":
        assert zelda.notes.startswith("My own notes") and pixel.description == "an older description from a sidecar"
        assert "local-only" in tags and presets["portrait"] == {"prompt": "edited here"}
        assert result.counts["unchanged"] == 3
    elif option == "update":
        assert zelda.notes == archived["notes"] and pixel.description == archived["description"]
        assert "local-only" not in tags and presets["portrait"]["steps"] == 30
        assert len(presets) == 2
    else:
        assert zelda.notes == f"My own notes, written after the export.\n\n{archived['notes']}"
        assert pixel.description == archived["description"]
        assert {"local-only", "character", "favourites"} <= tags
        assert presets["portrait"] == {"prompt": "edited here"} and presets["portrait (imported)"]["steps"] == 30
    assert zelda.favorite and zelda.sources["notes"] == "user"


@pytest.mark.django_db
def test_weights_restored_for_an_adapter_whose_file_is_gone(places, settings, tmp_path):
    lib = build_library(places)
    archive = exporting.export_library(tmp_path / "a.zip").path
    files_before = file_hashes(places)
    flux_file = places / "misc" / "old_flux.safetensors"
    flux_file.unlink()
    AdapterFile.objects.filter(adapter=lib["flux"]).update(status="missing")
    Adapter.objects.filter(pk=lib["flux"].pk).update(status="missing")
    result = importing.import_archive(archive)
    assert next(r for r in result.plan.adapters if r.name == "old_flux").restore_files
    assert file_hashes(places) == files_before
    row = AdapterFile.objects.get(adapter=lib["flux"])
    assert row.status == "present" and row.path == str(flux_file)
    assert Adapter.objects.get(pk=lib["flux"].pk).status == "ok"


@pytest.mark.django_db
def test_a_different_file_at_the_target_path_is_never_overwritten(places, settings, tmp_path):
    build_library(places)
    archive = exporting.export_library(tmp_path / "a.zip").path
    Adapter.objects.all().delete()
    zelda = places / "characters" / "zelda.safetensors"
    zelda.write_bytes(b"someone else's file")
    importing.import_archive(archive)
    assert zelda.read_bytes() == b"someone else's file"
    moved = AdapterFile.objects.get(path__contains="zelda-")
    assert Path(moved.path).is_file() and Path(moved.path).name.startswith("zelda-")
    assert Path(moved.path).with_name(Path(moved.path).name.replace(".safetensors", ".civitai.info")).is_file()
